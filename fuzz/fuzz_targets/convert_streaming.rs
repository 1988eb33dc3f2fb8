//! Arbitrary bytes as Defender XDR streaming input: an Event Hubs body
//! (`{"records":[…]}`), the inside of one, or Storage archive lines (one
//! envelope record per line, CRLF or LF), auto-detected or forced to
//! `CloudAppEvents`. Never panic; every message parses back with the
//! independent CEF parser (`checks.rs`); every record is converted,
//! rejected or skipped, and counted once.
#![no_main]

use cefwire::cef::{CefOptions, KindChoice};
use cefwire::input::DocumentReader;
use cefwire::json::INPUT_PADDING;
use cefwire::records::{Origin, RecordConverter};
use cefwire::rejects::RejectLog;
use libfuzzer_sys::fuzz_target;

#[path = "../../tests/util/cef_parser.rs"]
mod cef_parser;
mod checks;

fuzz_target!(|data: &[u8]| {
    let Some((&choice, body)) = data.split_first() else { return };
    let kind = if choice & 1 == 0 { KindChoice::Auto } else { KindChoice::CloudAppEvents };
    let mut converter = RecordConverter::new(&CefOptions { kind, ..CefOptions::default() });
    let mut sink = checks::CollectingSink::default();
    let mut rejects = RejectLog::with_messages(0, Box::new(std::io::sink()));
    match (choice >> 1) % 3 {
        0 | 1 => {
            let mut buf = Vec::with_capacity(body.len() + 16 + INPUT_PADDING);
            let wrap = (choice >> 1) % 3 == 1;
            if wrap {
                buf.extend_from_slice(b"{\"records\":[");
            }
            buf.extend_from_slice(body);
            if wrap {
                buf.extend_from_slice(b"]}");
            }
            let len = buf.len();
            buf.resize(len + INPUT_PADDING, 0);
            let origin = Origin { file: "fuzz", line: 1, multi_line: true };
            converter.convert_document(origin, &mut buf, len, &mut sink, &mut rejects).unwrap();
        }
        _ => {
            let mut reader = DocumentReader::from_reader("fuzz", Box::new(std::io::Cursor::new(body.to_vec())));
            while let Ok(Some(doc)) = reader.next_document() {
                let origin = Origin { file: "fuzz", line: doc.line, multi_line: doc.whole_input };
                converter.convert_document(origin, doc.bytes, doc.len, &mut sink, &mut rejects).unwrap();
            }
        }
    }
    let c = converter.counts;
    assert_eq!(c.records, c.converted() + c.rejected + c.skipped + c.other_tables, "{c:?}");
    assert_eq!(sink.messages.len() as u64, c.converted(), "one message per converted record");
});

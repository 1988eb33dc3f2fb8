//! Arbitrary bytes as an NDJSON/page input file: the reader, the parser and
//! the CEF writer must never panic, and every message must be one line.
#![no_main]

use cefwire::cef::CefOptions;
use cefwire::input::DocumentReader;
use cefwire::records::{Origin, RecordConverter};
use cefwire::rejects::RejectLog;
use libfuzzer_sys::fuzz_target;

#[path = "checking_sink.rs"]
mod checking_sink;

use checking_sink::CheckingSink;

fuzz_target!(|data: &[u8]| {
    let mut reader = DocumentReader::from_reader("fuzz", Box::new(std::io::Cursor::new(data.to_vec())));
    let mut converter = RecordConverter::new(&CefOptions::default());
    let mut sink = CheckingSink(Vec::new());
    let mut rejects = RejectLog::with_messages(0, Box::new(std::io::sink()));
    while let Ok(Some(doc)) = reader.next_document() {
        let origin = Origin { file: "fuzz", line: doc.line, multi_line: doc.whole_input };
        converter.convert_document(origin, doc.bytes, doc.len, &mut sink, &mut rejects).unwrap();
    }
});

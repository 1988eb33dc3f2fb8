//! Arbitrary bytes as an NDJSON/page input file: the reader, the parser and
//! the CEF writer must never panic; every message must parse back with the
//! independent CEF parser (`checks.rs`); the reader must never fail on an
//! in-memory input (an error there is a finding, not the end of the input).
#![no_main]

use cefwire::cef::CefOptions;
use cefwire::input::DocumentReader;
use cefwire::records::{Origin, RecordConverter};
use cefwire::rejects::RejectLog;
use libfuzzer_sys::fuzz_target;

#[path = "../../tests/util/cef_parser.rs"]
mod cef_parser;
mod checks;

fuzz_target!(|data: &[u8]| {
    let mut reader = DocumentReader::from_reader("fuzz", Box::new(std::io::Cursor::new(data.to_vec())));
    let mut converter = RecordConverter::new(&CefOptions::default());
    let mut sink = checks::CollectingSink::default();
    let mut rejects = RejectLog::with_messages(0, Box::new(std::io::sink()));
    loop {
        let doc = match reader.next_document() {
            Ok(Some(doc)) => doc,
            Ok(None) => break,
            Err(err) => panic!("the reader failed on an in-memory input: {err}"),
        };
        let origin = Origin { file: "fuzz", line: doc.line, multi_line: doc.whole_input };
        converter.convert_document(origin, doc.bytes, doc.len, &mut sink, &mut rejects).unwrap();
    }
    let counts = &converter.counts;
    assert_eq!(
        counts.converted() + counts.rejected + counts.other_tables,
        counts.records,
        "every record converted, rejected or skipped as of another table"
    );
    assert_eq!(sink.messages.len() as u64, counts.converted(), "one message per converted record");
});

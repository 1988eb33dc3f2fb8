//! What every converter fuzz target checks about the lines it gets: each
//! message is one line of valid UTF-8 that the independent CEF parser
//! (`tests/util/cef_parser.rs`, strict: a duplicate key or a bad escape is
//! an error) reads back, with the fixed header fields, an `externalId`,
//! `start` and `end` that are integers, and for activities (the lines with
//! `rt`) `rt == start == end`. (An alert's `end` may differ from its
//! `start`: a Graph alert's is its `lastActivityDateTime`.)
//! A parse error is a finding, never skipped.

#![allow(dead_code)]

use crate::cef_parser::{self, CefEvent};
use cefwire::records::MessageSink;

/// Collects every committed message as text, checking it on the way.
#[derive(Default)]
pub struct CollectingSink {
    pub buffer: Vec<u8>,
    pub messages: Vec<CefEvent>,
}

impl MessageSink for CollectingSink {
    fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.buffer
    }

    fn commit(&mut self, start: usize) -> std::io::Result<()> {
        let message = &self.buffer[start..];
        assert!(!message.contains(&b'\n') && !message.contains(&b'\r'), "a message spans lines: {message:?}");
        let line = std::str::from_utf8(message).unwrap_or_else(|e| panic!("a message is not UTF-8 ({e}): {message:?}"));
        self.messages.push(check_line(line));
        self.buffer.clear();
        Ok(())
    }
}

/// Parses `line` and checks what holds for every record (see the module
/// doc); panics, naming the line, when something does not.
pub fn check_line(line: &str) -> CefEvent {
    let event = cef_parser::parse(line).unwrap_or_else(|e| panic!("the CEF parser refuses the line ({e}): {line:?}"));
    assert_eq!(event.header[..3], ["0", "MCAS", "SIEM_Agent"], "{line:?}");
    assert!(matches!(event.header[6].as_str(), "0" | "1" | "3" | "6" | "8"), "severity in {line:?}");
    assert_eq!(event.extension.first().map(|(k, _)| k.as_str()), Some("externalId"), "{line:?}");
    let start = event.get("start").unwrap_or_else(|| panic!("no start in {line:?}"));
    assert!(start.parse::<i64>().is_ok(), "start is not an integer in {line:?}");
    let end = event.get("end").unwrap_or_else(|| panic!("no end in {line:?}"));
    assert!(end.parse::<i64>().is_ok(), "end is not an integer in {line:?}");
    if let Some(rt) = event.get("rt") {
        assert_eq!(rt, start, "rt differs from start in {line:?}");
        assert_eq!(end, start, "end differs from start in {line:?}");
    }
    event
}

//! Arbitrary bytes as one API page body (the path backfill and the agent
//! use): parse in place and convert; never panic, one line per message.
#![no_main]

use cefwire::cef::{CefOptions, KindChoice};
use cefwire::json::INPUT_PADDING;
use cefwire::records::{Origin, RecordConverter};
use cefwire::rejects::RejectLog;
use libfuzzer_sys::fuzz_target;

#[path = "checking_sink.rs"]
mod checking_sink;

use checking_sink::CheckingSink;

fuzz_target!(|data: &[u8]| {
    let Some((&choice, body)) = data.split_first() else { return };
    let kind = match choice % 3 {
        0 => KindChoice::Auto,
        1 => KindChoice::Activities,
        _ => KindChoice::Alerts,
    };
    let mut converter = RecordConverter::new(&CefOptions { kind, ..CefOptions::default() });
    let mut buf = body.to_vec();
    buf.resize(body.len() + INPUT_PADDING, 0);
    let mut rejects = RejectLog::with_messages(0, Box::new(std::io::sink()));
    let origin = Origin { file: "fuzz", line: 1, multi_line: true };
    converter.convert_document(origin, &mut buf, body.len(), &mut CheckingSink(Vec::new()), &mut rejects).unwrap();
});

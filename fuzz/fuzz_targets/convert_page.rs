//! Arbitrary bytes as one API page body, on both paths that read pages:
//! as a document (`convert`, `replay`: a page, an array or one record), and
//! as an API page through the agent's gate (`_id` de-duplication, the sent
//! ids and the resend window), the way backfill and the agent convert
//! pages. Never panic, one line per message; and the agent's path sends no
//! id twice: reading the same page again sends nothing.
#![no_main]

use cefwire::agent::gate::SendOnceGate;
use cefwire::agent::resend::ResendWindow;
use cefwire::agent::state::SeenIds;
use cefwire::api::{PageInfo, TimeKey};
use cefwire::cef::{CefOptions, KindChoice};
use cefwire::json::INPUT_PADDING;
use cefwire::records::{Origin, PageError, RecordConverter};
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
    let key = if choice & 4 == 0 { TimeKey::Created } else { TimeKey::Date };
    let padded = || {
        let mut buf = body.to_vec();
        buf.resize(body.len() + INPUT_PADDING, 0);
        buf
    };
    let mut converter = RecordConverter::new(&CefOptions { kind, ..CefOptions::default() });
    let mut rejects = RejectLog::with_messages(0, Box::new(std::io::sink()));
    let mut sink = CheckingSink(Vec::new());

    let origin = Origin { file: "fuzz", line: 1, multi_line: true };
    converter.convert_document(origin, &mut padded(), body.len(), &mut sink, &mut rejects).unwrap();

    let mut seen = SeenIds::default();
    let mut resend = ResendWindow::new(64 << 20);
    let origin = Origin { file: "activities@fuzz", line: 1, multi_line: false };
    let mut sent = [0; 2];
    for pass in sent.iter_mut() {
        let before = converter.counts;
        let mut gate = SendOnceGate::new(&mut seen, &mut resend, key);
        let read = converter.convert_page(origin, &mut padded(), body.len(), &mut sink, &mut rejects, &mut gate, |root| {
            PageInfo::from_page(root, key)
        });
        match read {
            Ok(_) | Err(PageError::NotJson(_) | PageError::NotAPage) => {}
            Err(PageError::Sink(err)) => panic!("the sink never fails here: {err}"),
        }
        *pass = converter.counts.since(&before).converted();
    }
    assert_eq!(sent[1], 0, "the second reading of the page sent {} records again", sent[1]);
    assert_eq!(resend.pushed(), sent[0], "every message sent is in the resend window");
});

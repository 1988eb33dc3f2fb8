//! Arbitrary bytes as one API page body, on both paths that read pages:
//! as a document (`convert`, `replay`: a page, an array or one record), and
//! as an API page through the agent's gate (`_id` de-duplication, the sent
//! ids and the resend window), the way backfill and the agent convert
//! pages. Never panic; every message parses back with the independent CEF
//! parser (`checks.rs`); the agent's path sends no id twice: reading the
//! same page again sends nothing. When the body is plain JSON —
//! `{"data":[…]}` or a bare array, no key repeated anywhere
//! (`strict_json.rs`) — every message must carry the `_id` and `timestamp`
//! of one of its records, read independently with serde_json.
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

#[path = "../../tests/util/cef_contract.rs"]
mod cef_contract;
#[path = "../../tests/util/cef_parser.rs"]
mod cef_parser;
mod checks;
mod strict_json;

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
    let mut sink = checks::CollectingSink::default();

    let origin = Origin { file: "fuzz", line: 1, multi_line: true };
    converter.convert_document(origin, &mut padded(), body.len(), &mut sink, &mut rejects).unwrap();
    assert_eq!(sink.messages.len() as u64, converter.counts.converted());
    check_against_the_records(body, &sink.messages);

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

/// Every message carries the `_id` (as read back) and `timestamp` of one
/// of the page's records, when the page is strict JSON.
fn check_against_the_records(body: &[u8], messages: &[cef_parser::CefEvent]) {
    let Some(records) = strict_json::page_records(body) else { return };
    let known: Vec<(String, i64)> = records
        .iter()
        .filter_map(|r| {
            let id = match &r["_id"] {
                serde_json::Value::String(s) => cef_contract::expected_extension(s),
                serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
                _ => return None,
            };
            let time = match &r["timestamp"] {
                serde_json::Value::Number(n) => n.as_i64()?,
                serde_json::Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s.parse().ok()?,
                _ => return None,
            };
            Some((id, time))
        })
        .collect();
    for event in messages {
        let id = event.get("externalId").unwrap();
        let start: i64 = event.get("start").unwrap().parse().unwrap();
        assert!(
            known.iter().any(|(k, t)| k == id && *t == start),
            "a message (externalId={id:?} start={start}) matches no record of the page"
        );
    }
}

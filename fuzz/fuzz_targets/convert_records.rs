//! Structure-aware: the fuzzer picks the fields of activities and alerts
//! (any strings, IPs, fallbacks, policy types, severities, numbers as
//! strings), the target builds the JSON records, converts them as one API
//! page and reads every line back with the independent CEF parser; each
//! must equal what the contract model (`tests/util/cef_contract.rs`)
//! predicts — every header field and every extension key, in order. Every
//! record must convert (each has a usable `_id` and `timestamp`).
#![no_main]

use cef_contract::{Activity, Alert, DEVICE_VERSION, PORTAL, POLICY_TYPES};
use cefwire::cef::CefOptions;
use cefwire::json::INPUT_PADDING;
use cefwire::records::{Origin, RecordConverter};
use cefwire::rejects::RejectLog;
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

#[path = "../../tests/util/cef_contract.rs"]
mod cef_contract;
#[path = "../../tests/util/cef_parser.rs"]
mod cef_parser;
mod checks;

fn text(u: &mut Unstructured<'_>) -> Result<String> {
    u.arbitrary()
}

fn optional(u: &mut Unstructured<'_>) -> Result<Option<String>> {
    Ok(match u.int_in_range(0..=2u8)? {
        0 => None,
        1 => Some(String::new()),
        _ => Some(text(u)?),
    })
}

fn ip(u: &mut Unstructured<'_>) -> Result<Option<String>> {
    Ok(match u.int_in_range(0..=4u8)? {
        0 => None,
        1 => Some(std::net::Ipv4Addr::from(u.arbitrary::<u32>()?).to_string()),
        2 => Some(std::net::Ipv6Addr::from(u.arbitrary::<u128>()?).to_string()),
        3 => Some(format!("::ffff:{}", std::net::Ipv4Addr::from(u.arbitrary::<u32>()?))),
        _ => Some(text(u)?),
    })
}

fn id(u: &mut Unstructured<'_>) -> Result<String> {
    let id = text(u)?;
    Ok(if id.is_empty() { "x".to_owned() } else { id })
}

fn activity(u: &mut Unstructured<'_>) -> Result<Activity> {
    Ok(Activity {
        id: id(u)?,
        timestamp: u.int_in_range(0..=4_102_444_800_000)?,
        timestamp_as_string: u.arbitrary()?,
        signature: optional(u)?,
        category: optional(u)?,
        pretty_operation: optional(u)?,
        event_type_value: optional(u)?,
        description: text(u)?,
        user: text(u)?,
        app: text(u)?,
        app_id: text(u)?,
        client_ip: ip(u)?,
        agent: text(u)?,
        objects: (0..u.int_in_range(0..=3)?).map(|_| optional(u)).collect::<Result<_>>()?,
        rules: (0..u.int_in_range(0..=3)?)
            .map(|_| Ok(if u.arbitrary()? { Ok(text(u)?) } else { Err(text(u)?) }))
            .collect::<Result<_>>()?,
    })
}

fn alert(u: &mut Unstructured<'_>) -> Result<Alert> {
    Ok(Alert {
        id: id(u)?,
        timestamp: u.int_in_range(0..=4_102_444_800_000)?,
        alert_type: match u.int_in_range(0..=2u8)? {
            0 => None,
            1 => Some(format!("ALERT_{}", text(u)?)),
            _ => Some(text(u)?),
        },
        policy_type: match u.int_in_range(0..=2u8)? {
            0 => None,
            1 => Some(u.choose(POLICY_TYPES)?.0.to_owned()),
            _ => Some(text(u)?),
        },
        policy_label: optional(u)?,
        policy_id: text(u)?,
        title: text(u)?,
        description: optional(u)?,
        severity: if u.arbitrary()? { Some(u.int_in_range(-1..=5)?) } else { None },
        service_label: text(u)?,
        service_id: text(u)?,
        user: if u.arbitrary()? { Ok(text(u)?) } else { Err(text(u)?) },
        threat_score: u.arbitrary::<i32>()?.into(),
        url: optional(u)?,
        audits: (0..u.int_in_range(0..=2)?).map(|_| text(u)).collect::<Result<_>>()?,
        ip: ip(u)?,
    })
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let mut records = Vec::new();
    let mut expected = Vec::new();
    while records.len() < 8 && !u.is_empty() {
        let Ok(is_activity) = u.arbitrary::<bool>() else { break };
        let made = if is_activity { activity(&mut u).map(|a| (a.json(), a.expected())) } else { alert(&mut u).map(|a| (a.json(), a.expected())) };
        let Ok((record, want)) = made else { break };
        records.push(record);
        expected.push(want);
    }
    let mut body = serde_json::to_vec(&serde_json::json!({"data": records, "hasNext": false})).unwrap();
    let len = body.len();
    body.resize(len + INPUT_PADDING, 0);
    let options = CefOptions { portal_url: PORTAL.into(), device_version: DEVICE_VERSION.into(), ..CefOptions::default() };
    let mut converter = RecordConverter::new(&options);
    let mut sink = checks::CollectingSink::default();
    let mut rejects = RejectLog::with_messages(0, Box::new(std::io::sink()));
    let origin = Origin { file: "fuzz", line: 1, multi_line: false };
    converter.convert_document(origin, &mut body, len, &mut sink, &mut rejects).unwrap();
    assert_eq!(converter.counts.rejected, 0, "a record was rejected");
    assert_eq!(sink.messages.len(), expected.len());
    for (n, (event, want)) in sink.messages.iter().zip(&expected).enumerate() {
        if let Err(difference) = cef_contract::check(event, want) {
            panic!("record {n}: {difference}\n{:?}", records[n]);
        }
    }
});

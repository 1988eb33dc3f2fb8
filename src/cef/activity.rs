//! The activity mapping: which fields of a Defender for Cloud Apps activity
//! fill the activity layout ([`super::layout`], the key order of the
//! original agent; see `cef-format.md`).

use super::CefLine;
use super::fields::{RecordFields, present};
use super::layout::{ActivityLine, Joined, every, write_activity};
use crate::json::JsonValue;

/// Writes everything after `CEF:0|MCAS|SIEM_Agent|<version>|`.
pub fn write(
    line: &mut CefLine<'_>,
    f: &RecordFields<'_, '_>,
    id: JsonValue<'_, '_>,
    timestamp: i64,
    portal_link: &[u8],
) {
    let activity = ActivityLine {
        signature: f.event_type_name,
        name: present(f.event_category).or(present(f.pretty_operation_name)).or(f.event_type_value),
        id,
        timestamp,
        msg: [f.description, None],
        suser: f.user_name,
        service: f.app_name,
        ip: f.client_ip.and_then(|v| v.as_str()),
        user_agent: f.user_agent,
        app_id: f.app_id,
        objects: Joined::Each { array: f.event_objects, keep: every, pick: |object| object.get("name"), prefix: b"" },
        // Rule ids as strings, or objects with an `id`.
        policies: Joined::Each {
            array: f.matching_rules,
            keep: every,
            pick: |rule| if rule.is_object() { rule.get("id") } else { Some(rule) },
            prefix: b"",
        },
    };
    write_activity(line, &activity, portal_link);
}

//! The Defender XDR streaming mapping: a `CloudAppEvents` record
//! (`{"category":"AdvancedHunting-CloudAppEvents","properties":{…}}`, one per
//! line in the Storage archive, many per Event Hubs message) written in the
//! legacy activity layout, key for key (`successor-sources.md`), so SIEM
//! parsers built for the retired agent keep working.
//!
//! It owns the column scan of `properties` (names matched
//! case-insensitively: live data says `ISP` where the docs say `Isp`), the
//! checks a line needs (`ReportId`, an ISO 8601 `Timestamp`) and which
//! column fills which key of the activity layout ([`super::layout`]). Like the legacy mappings it writes straight from the parsed
//! tape and allocates nothing. It does not know where records come from.

use super::fields::{RecordFields, present};
use super::layout::{ActivityLine, Joined, every, write_activity};
use super::{CefLine, RecordError};
use crate::json::JsonValue;
use crate::time::parse_iso8601_ms;

/// The streaming API's name for the `CloudAppEvents` table.
pub const CATEGORY: &str = "AdvancedHunting-CloudAppEvents";

/// Most fraction digits a streaming `Timestamp` carries (100 ns ticks).
pub const MAX_FRACTION_DIGITS: usize = 7;

/// The columns of a record: its `properties`, or with `forced` (the user
/// said `--kind cloudappevents`) the record itself when it has neither
/// `properties` nor `category` (a bare row, as advanced hunting exports it).
/// A record of another table is skipped, not rejected.
pub fn row_of<'t, 'i>(fields: &RecordFields<'t, 'i>, forced: bool) -> Result<JsonValue<'t, 'i>, RecordError> {
    if let Some(category) = present(fields.category)
        && !category.as_str().is_some_and(|c| c.eq_ignore_ascii_case(CATEGORY))
    {
        return Err(RecordError::OtherCategory);
    }
    match (fields.properties, fields.root) {
        (Some(properties), _) if properties.is_object() => Ok(properties),
        (None, Some(root)) if forced && fields.category.is_none() => Ok(root),
        _ => Err(RecordError::NoProperties),
    }
}

/// The columns the mapping reads, borrowed from the tape.
#[derive(Default, Clone, Copy)]
pub struct Columns<'t, 'i> {
    pub action_type: Option<JsonValue<'t, 'i>>,
    pub activity_type: Option<JsonValue<'t, 'i>>,
    pub report_id: Option<JsonValue<'t, 'i>>,
    pub timestamp: Option<JsonValue<'t, 'i>>,
    pub object_name: Option<JsonValue<'t, 'i>>,
    pub account_id: Option<JsonValue<'t, 'i>>,
    pub account_object_id: Option<JsonValue<'t, 'i>>,
    pub account_display_name: Option<JsonValue<'t, 'i>>,
    pub application: Option<JsonValue<'t, 'i>>,
    pub application_id: Option<JsonValue<'t, 'i>>,
    pub ip_address: Option<JsonValue<'t, 'i>>,
    pub user_agent: Option<JsonValue<'t, 'i>>,
    pub activity_objects: Option<JsonValue<'t, 'i>>,
}

/// Longest column name the mapping reads (`AccountDisplayName`).
const LONGEST_COLUMN: usize = 18;

/// `key` in ASCII lower case, in `buf`; `None` when it is longer than any
/// column the mapping reads (so it cannot be one).
fn lower<'b>(key: &str, buf: &'b mut [u8; LONGEST_COLUMN]) -> Option<&'b [u8]> {
    let bytes = key.as_bytes();
    let out = buf.get_mut(..bytes.len())?;
    for (o, b) in out.iter_mut().zip(bytes) {
        *o = b.to_ascii_lowercase();
    }
    Some(out)
}

impl<'t, 'i> Columns<'t, 'i> {
    /// One pass over the row's keys. When a column appears twice (in two
    /// spellings), the later one wins, as with any JSON object.
    pub fn scan(row: JsonValue<'t, 'i>) -> Self {
        let mut columns = Self::default();
        let Some(object) = row.object() else { return columns };
        let mut buf = [0u8; LONGEST_COLUMN];
        for (key, value) in object {
            let Some(name) = lower(key, &mut buf) else { continue };
            let slot = match name {
                b"actiontype" => &mut columns.action_type,
                b"activitytype" => &mut columns.activity_type,
                b"reportid" => &mut columns.report_id,
                b"timestamp" => &mut columns.timestamp,
                b"objectname" => &mut columns.object_name,
                b"accountid" => &mut columns.account_id,
                b"accountobjectid" => &mut columns.account_object_id,
                b"accountdisplayname" => &mut columns.account_display_name,
                b"application" => &mut columns.application,
                b"applicationid" => &mut columns.application_id,
                b"ipaddress" => &mut columns.ip_address,
                b"useragent" => &mut columns.user_agent,
                b"activityobjects" => &mut columns.activity_objects,
                _ => continue,
            };
            *slot = Some(value);
        }
        columns
    }

    /// The `Timestamp` in epoch ms (required: the line's time).
    pub fn time(&self) -> Result<i64, RecordError> {
        let time = present(self.timestamp).ok_or(RecordError::Missing("Timestamp"))?;
        time.as_str()
            .and_then(|t| parse_iso8601_ms(t.as_bytes(), MAX_FRACTION_DIGITS))
            .ok_or(RecordError::BadIsoTime("Timestamp"))
    }
}

/// `Name` of an `ActivityObjects` entry (matched case-insensitively too).
fn object_name<'t, 'i>(object: JsonValue<'t, 'i>) -> Option<JsonValue<'t, 'i>> {
    object.object()?.find(|(k, _)| k.eq_ignore_ascii_case("name")).map(|(_, v)| v)
}

/// Writes everything after `CEF:0|MCAS|SIEM_Agent|<version>|`.
pub fn write(line: &mut CefLine<'_>, c: &Columns<'_, '_>, id: JsonValue<'_, '_>, timestamp: i64, portal_link: &[u8]) {
    let (action, activity) = (present(c.action_type), present(c.activity_type));
    let activity_line = ActivityLine {
        signature: action.or(activity),
        name: activity.or(action),
        id,
        timestamp,
        msg: [action, c.object_name],
        suser: present(c.account_id).or(present(c.account_object_id)).or(c.account_display_name),
        service: c.application,
        ip: c.ip_address.and_then(|v| v.as_str()),
        user_agent: c.user_agent,
        app_id: c.application_id,
        objects: Joined::Each { array: c.activity_objects, keep: every, pick: object_name, prefix: b"" },
        policies: Joined::One(None),
    };
    write_activity(line, &activity_line, portal_link);
}

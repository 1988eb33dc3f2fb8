//! Times and durations as users type them: `48h`, `90m`, `2d`, `1500ms`,
//! `2024-05-01T12:00:00Z`, epoch milliseconds, `now`. All times are epoch
//! milliseconds (UTC), like the API's.

use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since 1970 now, from the system clock (shifted by the
/// test-only clock offset of [`crate::fault_hooks`] in test builds).
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
        + crate::fault_hooks::clock_offset_ms()
}

/// Parses `90s`, `15m`, `48h`, `2d`, `1w`, `250ms` (a bare number is seconds)
/// into milliseconds.
pub fn parse_duration_ms(text: &str) -> Result<i64, DurationError> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().map_err(|_| DurationError::NotADuration(text.to_owned()))?;
    let unit_ms = match unit.trim() {
        "ms" => 1.0,
        "" | "s" | "sec" | "secs" => 1000.0,
        "m" | "min" | "mins" => 60_000.0,
        "h" | "hour" | "hours" => 3_600_000.0,
        "d" | "day" | "days" => 86_400_000.0,
        "w" | "week" | "weeks" => 604_800_000.0,
        other => return Err(DurationError::UnknownUnit { unit: other.to_owned(), text: text.to_owned() }),
    };
    Ok((value * unit_ms).round() as i64)
}

/// A duration as people write it ([`parse_duration_ms`]): the one parser of
/// every duration setting, on the command line and in the agent's file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl FromStr for HumanDuration {
    type Err = DurationError;

    fn from_str(text: &str) -> Result<Self, DurationError> {
        parse_duration_ms(text).map(|ms| HumanDuration(Duration::from_millis(ms.max(0) as u64)))
    }
}

/// A duration, or `never` (no limit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DurationOrNever(pub Option<Duration>);

impl FromStr for DurationOrNever {
    type Err = DurationError;

    fn from_str(text: &str) -> Result<Self, DurationError> {
        if text.trim() == "never" {
            return Ok(DurationOrNever(None));
        }
        text.parse().map(|HumanDuration(d)| DurationOrNever(Some(d)))
    }
}

/// Why a duration could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("{0:?} is not a duration (examples: 90s, 15m, 48h, 2d)")]
    NotADuration(String),
    #[error("unknown duration unit {unit:?} in {text:?} (use ms, s, m, h, d or w)")]
    UnknownUnit { unit: String, text: String },
}

/// Parses a point in time: `now`, epoch milliseconds, or an RFC 3339 UTC
/// time (`2024-05-01T12:00:00Z`, `2024-05-01T12:00:00.250Z`, `2024-05-01`).
pub fn parse_time_ms(text: &str) -> Result<i64, TimeError> {
    let text = text.trim();
    if text == "now" {
        return Ok(now_ms());
    }
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().map_err(|_| TimeError::OutOfRange(text.to_owned()));
    }
    parse_rfc3339(text).ok_or_else(|| TimeError::NotATime(text.to_owned()))
}

/// Why a point in time could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    #[error("{0:?} is out of range")]
    OutOfRange(String),
    #[error("{0:?} is not a time (use 2024-05-01T12:00:00Z, 2024-05-01, epoch milliseconds or now)")]
    NotATime(String),
}

fn parse_rfc3339(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() == 10 {
        let (year, month, day) = (digits(b, 0, 4)?, digits(b, 5, 2)?, digits(b, 8, 2)?);
        if b[4] != b'-' || b[7] != b'-' || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
            return None;
        }
        return Some(days_from_civil(year, month, day) * 86_400_000);
    }
    parse_iso8601_ms(b, usize::MAX)
}

/// The decimal number in `b[at..at + len]`, when all of it is digits.
fn digits(b: &[u8], at: usize, len: usize) -> Option<i64> {
    let part = b.get(at..at + len)?;
    part.iter().try_fold(0i64, |n, &c| c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0')))
}

/// Parses an ISO 8601 / RFC 3339 date-time with a zone,
/// `2024-05-01T12:00:00[.fffffff](Z|±hh:mm)`, into epoch milliseconds
/// (the fraction truncated to milliseconds). At most `max_fraction_digits`
/// fraction digits are accepted. Allocates nothing: the CEF mappings of
/// the streaming and Graph records call it per record.
pub fn parse_iso8601_ms(b: &[u8], max_fraction_digits: usize) -> Option<i64> {
    parse_iso8601_ticks(b, max_fraction_digits).map(|ticks| ticks.div_euclid(TICKS_PER_MS))
}

/// 100-nanosecond ticks per millisecond: Graph and Defender times carry
/// seven fraction digits, and comparing them must not lose any.
pub const TICKS_PER_MS: i64 = 10_000;

/// Like [`parse_iso8601_ms`], in 100-ns ticks since 1970 (digits beyond
/// the seventh truncated).
pub fn parse_iso8601_ticks(b: &[u8], max_fraction_digits: usize) -> Option<i64> {
    let (year, month, day) = (digits(b, 0, 4)?, digits(b, 5, 2)?, digits(b, 8, 2)?);
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) || b.get(13) != Some(&b':') || b.get(16) != Some(&b':') {
        return None;
    }
    let (hour, minute, second) = (digits(b, 11, 2)?, digits(b, 14, 2)?, digits(b, 17, 2)?);
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &b[19..];
    let mut ticks = 0;
    if let Some(fraction) = rest.strip_prefix(b".") {
        let count = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
        if count == 0 || count > max_fraction_digits {
            return None;
        }
        // Seven digits, zero-padded; more are truncated.
        for n in 0..7 {
            ticks = ticks * 10 + fraction.get(n).filter(|_| n < count).map_or(0, |c| i64::from(c - b'0'));
        }
        rest = &fraction[count..];
    }
    let offset_ms = match rest {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let (h, m) = (digits(&[*h1, *h2], 0, 2)?, digits(&[*m1, *m2], 0, 2)?);
            if h > 23 || m > 59 {
                return None;
            }
            let offset = h * 3_600_000 + m * 60_000;
            if *sign == b'+' { offset } else { -offset }
        }
        _ => return None,
    };
    let ms =
        days_from_civil(year, month, day) * 86_400_000 + hour * 3_600_000 + minute * 60_000 + second * 1000 - offset_ms;
    Some(ms * TICKS_PER_MS + ticks)
}

const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTH_NAMES: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// Formats epoch milliseconds as an HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub fn format_http_date(ms: i64) -> String {
    let Ok(t) = crate::syslog::header::CivilTime::from_epoch_ms(ms) else { return String::new() };
    let weekday = WEEKDAYS[ms.div_euclid(86_400_000).rem_euclid(7) as usize];
    format!(
        "{weekday}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        t.day,
        MONTH_NAMES[usize::from(t.month - 1)],
        t.year,
        t.hour,
        t.minute,
        t.second
    )
}

/// Parses an HTTP date in the IMF-fixdate form (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub fn parse_http_date(text: &str) -> Option<i64> {
    let mut parts = text.trim().split_ascii_whitespace();
    let _weekday = parts.next()?;
    let day: i64 = parts.next()?.parse().ok()?;
    let month_name = parts.next()?;
    let month = MONTH_NAMES.iter().position(|m| *m == month_name)? as i64 + 1;
    let year: i64 = parts.next()?.parse().ok()?;
    let clock: Vec<i64> = parts.next()?.split(':').map(|p| p.parse().ok()).collect::<Option<_>>()?;
    if parts.next()? != "GMT" || clock.len() != 3 || !(1..=31).contains(&day) {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400_000 + clock[0] * 3_600_000 + clock[1] * 60_000 + clock[2] * 1000)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant).
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Formats epoch milliseconds as `2024-05-01T12:00:00.000Z` (for messages
/// and reports; not a hot path).
pub fn format_ms(ms: i64) -> String {
    let mut out = Vec::with_capacity(24);
    match crate::syslog::header::CivilTime::from_epoch_ms(ms) {
        Ok(t) => t.write(crate::syslog::header::TimestampStyle::Rfc5424, &mut out),
        Err(_) => return ms.to_string(),
    }
    String::from_utf8(out).unwrap_or_default()
}

/// Formats 100-ns ticks as `2024-05-01T12:00:00.1234567Z` (Graph's form).
pub fn format_iso8601_ticks(ticks: i64) -> String {
    let mut text = format_ms(ticks.div_euclid(TICKS_PER_MS));
    if text.ends_with('Z') {
        text.pop();
        text.push_str(&format!("{:04}Z", ticks.rem_euclid(TICKS_PER_MS)));
    }
    text
}

/// Formats a duration in milliseconds as `2d 3h`, `5m 10s`, `850ms`.
pub fn format_duration_ms(ms: i64) -> String {
    let ms = ms.max(0);
    let (d, h, m, s) = (ms / 86_400_000, ms / 3_600_000 % 24, ms / 60_000 % 60, ms / 1000 % 60);
    match () {
        _ if d > 0 => format!("{d}d {h}h"),
        _ if h > 0 => format!("{h}h {m}m"),
        _ if m > 0 => format!("{m}m {s}s"),
        _ if ms >= 1000 => format!("{:.1}s", ms as f64 / 1000.0),
        _ => format!("{ms}ms"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("48h"), Ok(172_800_000));
        assert_eq!(parse_duration_ms("2d"), Ok(172_800_000));
        assert_eq!(parse_duration_ms("90"), Ok(90_000));
        assert_eq!(parse_duration_ms("1.5m"), Ok(90_000));
        assert_eq!(parse_duration_ms("250ms"), Ok(250));
        assert!(parse_duration_ms("5 parsecs").is_err());
        assert!(parse_duration_ms("h").is_err());
        assert_eq!("90s".parse(), Ok(HumanDuration(Duration::from_secs(90))));
        assert_eq!("never".parse(), Ok(DurationOrNever(None)));
        assert_eq!("2m".parse(), Ok(DurationOrNever(Some(Duration::from_secs(120)))));
        assert_eq!(
            "2 fortnights".parse::<HumanDuration>().unwrap_err().to_string(),
            "unknown duration unit \"fortnights\" in \"2 fortnights\" (use ms, s, m, h, d or w)"
        );
    }

    #[test]
    fn times() {
        assert_eq!(parse_time_ms("2017-11-22T17:50:04Z"), Ok(1_511_373_004_000));
        assert_eq!(parse_time_ms("2017-11-22T17:50:04.5Z"), Ok(1_511_373_004_500));
        assert_eq!(parse_time_ms("2017-11-22T18:50:04+01:00"), Ok(1_511_373_004_000));
        assert_eq!(parse_time_ms("1970-01-02"), Ok(86_400_000));
        assert_eq!(parse_time_ms("1511373004000"), Ok(1_511_373_004_000));
        assert!(parse_time_ms("2017-13-01").is_err());
        assert!(parse_time_ms("yesterday").is_err());
        assert_eq!(format_ms(1_511_373_004_000), "2017-11-22T17:50:04.000Z");
    }

    #[test]
    fn iso8601_with_a_bounded_fraction() {
        let parse = |text: &str| parse_iso8601_ms(text.as_bytes(), 7);
        assert_eq!(parse("2017-11-22T17:50:04Z"), Some(1_511_373_004_000));
        assert_eq!(parse("2017-11-22T17:50:04.1Z"), Some(1_511_373_004_100));
        assert_eq!(parse("2017-11-22T17:50:04.12Z"), Some(1_511_373_004_120));
        // Truncated, never rounded.
        assert_eq!(parse("2017-11-22T17:50:04.9999999Z"), Some(1_511_373_004_999));
        assert_eq!(parse("2017-11-22T19:50:04.5+02:00"), Some(1_511_373_004_500));
        assert_eq!(parse("2017-11-22T15:20:04-02:30"), Some(1_511_373_004_000));
        assert_eq!(parse("1969-12-31T23:59:59.999Z"), Some(-1));
        for bad in [
            "2017-11-22T17:50:04.12345678Z", // eight fraction digits
            "2017-11-22T17:50:04.Z",
            "2017-11-22T17:50:04", // no zone
            "2017-11-22T17:50:04+0200",
            "2017-11-22T17:50:04Z ",
            "2017-11-22",
            "2017-13-22T17:50:04Z",
            "2017-11-22T24:00:00Z",
            "2017-11-22T17:50:04+24:00",
            "２017-11-22T17:50:04Z",
            "",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        assert_eq!(parse_iso8601_ms(b"2017-11-22T17:50:04.123456789Z", usize::MAX), Some(1_511_373_004_123));
        assert_eq!(parse_iso8601_ticks(b"2017-11-22T17:50:04.1234567Z", 7), Some(15_113_730_041_234_567));
        assert_eq!(parse_iso8601_ticks(b"1969-12-31T23:59:59.9999999Z", 7), Some(-1));
        assert_eq!(format_iso8601_ticks(-1), "1969-12-31T23:59:59.9999999Z");
        assert_eq!(format_iso8601_ticks(15_113_730_041_234_567), "2017-11-22T17:50:04.1234567Z");
        assert_eq!(parse_iso8601_ms(b"1969-12-31T23:59:59.9999Z", 7), Some(-1));
    }

    #[test]
    fn http_dates() {
        assert_eq!(format_http_date(784_111_777_000), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(784_111_777_000));
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), None);
        let now = now_ms() / 1000 * 1000;
        assert_eq!(parse_http_date(&format_http_date(now)), Some(now));
    }

    #[test]
    fn civil_round_trip() {
        for days in (-700_000..2_900_000).step_by(997) {
            let t = crate::syslog::header::CivilTime::from_epoch_ms(days * 86_400_000).unwrap();
            assert_eq!(days_from_civil(i64::from(t.year), i64::from(t.month), i64::from(t.day)), days);
        }
    }
}

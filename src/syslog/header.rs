//! The syslog part of a message: `[<PRI>][TIMESTAMP ][HOSTNAME ]` before the
//! CEF text, or a full RFC 5424 header.
//!
//! The timestamp is the record's own time (epoch milliseconds, UTC), never
//! the send time. Dates are computed with integer arithmetic (no time crate,
//! no allocation).
//!
//! The header's settings (facility, severity, timestamp style, layout) each
//! have one parser here (`FromStr`), which the command line and the
//! agent's file both use.

use std::str::FromStr;

/// How the header timestamp is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TimestampStyle {
    /// `2017-11-22T17:50:04.000Z` (the original wizard's "RFC 5424 time").
    #[default]
    Rfc5424,
    /// `Nov 22 17:50:04`, day padded with a space.
    Rfc3164,
    /// `Nov 22 2017 17:50:04`.
    Rfc3164WithYear,
}

impl TimestampStyle {
    /// The names the settings use, with what each looks like.
    pub const CHOICES: &[(&str, &str)] = &[
        ("rfc5424", "2017-11-22T17:50:04.000Z"),
        ("rfc3164", "Nov 22 17:50:04"),
        ("rfc3164-year", "Nov 22 2017 17:50:04"),
    ];
}

impl FromStr for TimestampStyle {
    type Err = UnknownChoice;

    fn from_str(text: &str) -> Result<Self, UnknownChoice> {
        match text {
            "rfc5424" => Ok(Self::Rfc5424),
            "rfc3164" => Ok(Self::Rfc3164),
            "rfc3164-year" => Ok(Self::Rfc3164WithYear),
            _ => Err(UnknownChoice::new(text, Self::CHOICES)),
        }
    }
}

/// Which syslog header layout precedes the CEF text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HeaderLayout {
    /// `[<PRI>][TIMESTAMP ][HOSTNAME ]` as the original agent wrote it.
    #[default]
    Legacy,
    /// `<PRI>1 TIMESTAMP HOSTNAME cefwire - - - ` (RFC 5424).
    Rfc5424,
}

impl HeaderLayout {
    /// The names the settings use, with what each looks like.
    pub const CHOICES: &[(&str, &str)] = &[
        ("legacy", "[<PRI>][TIMESTAMP ][HOSTNAME ]CEF:… as the original agent wrote it"),
        ("rfc5424", "<PRI>1 TIMESTAMP HOSTNAME cefwire - - - CEF:…"),
    ];
}

impl FromStr for HeaderLayout {
    type Err = UnknownChoice;

    fn from_str(text: &str) -> Result<Self, UnknownChoice> {
        match text {
            "legacy" => Ok(Self::Legacy),
            "rfc5424" => Ok(Self::Rfc5424),
            _ => Err(UnknownChoice::new(text, Self::CHOICES)),
        }
    }
}

/// A name that is not one of a setting's choices.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{given:?} is not one of {}", self.names())]
pub struct UnknownChoice {
    given: String,
    choices: &'static [(&'static str, &'static str)],
}

impl UnknownChoice {
    pub fn new(given: &str, choices: &'static [(&'static str, &'static str)]) -> Self {
        Self { given: given.to_owned(), choices }
    }

    fn names(&self) -> String {
        let names: Vec<&str> = self.choices.iter().map(|(name, _)| *name).collect();
        names.join(", ")
    }
}

/// Validated header settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyslogHeader {
    /// `facility * 8 + severity`; `None` leaves PRI out (legacy layout only).
    pub pri: Option<u8>,
    pub timestamp: TimestampStyle,
    /// `None` leaves the hostname out (legacy) or writes `-` (RFC 5424).
    pub hostname: Option<String>,
    pub layout: HeaderLayout,
}

/// PRI of local0.info, the default when sending to syslog.
pub const DEFAULT_PRI: u8 = 16 * 8 + 6;

/// Timestamps outside years 0..=9999 cannot be written in these formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("timestamp {0} ms is outside the years 0000-9999")]
pub struct TimestampOutOfRange(pub i64);

impl SyslogHeader {
    /// Appends the header for a record whose time is `epoch_ms`.
    pub fn write(&self, epoch_ms: i64, out: &mut Vec<u8>) -> Result<(), TimestampOutOfRange> {
        let time = CivilTime::from_epoch_ms(epoch_ms)?;
        match self.layout {
            HeaderLayout::Legacy => {
                if let Some(pri) = self.pri {
                    write_pri(pri, out);
                }
                time.write(self.timestamp, out);
                out.push(b' ');
                if let Some(host) = &self.hostname {
                    out.extend_from_slice(host.as_bytes());
                    out.push(b' ');
                }
            }
            HeaderLayout::Rfc5424 => {
                write_pri(self.pri.unwrap_or(DEFAULT_PRI), out);
                out.extend_from_slice(b"1 ");
                time.write(TimestampStyle::Rfc5424, out);
                out.push(b' ');
                match &self.hostname {
                    Some(host) => out.extend_from_slice(host.as_bytes()),
                    None => out.push(b'-'),
                }
                out.extend_from_slice(b" cefwire - - - ");
            }
        }
        Ok(())
    }
}

fn write_pri(pri: u8, out: &mut Vec<u8>) {
    out.push(b'<');
    out.extend_from_slice(itoa::Buffer::new().format(pri).as_bytes());
    out.push(b'>');
}

/// A UTC calendar time with millisecond precision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CivilTime {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    pub millis: u16,
}

const MONTHS: [&[u8; 3]; 12] =
    [b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"];

/// Milliseconds from 1970 to 0000-01-01 and to 10000-01-01.
const MIN_EPOCH_MS: i64 = -62_167_219_200_000;
const MAX_EPOCH_MS: i64 = 253_402_300_800_000;

impl CivilTime {
    /// Splits epoch milliseconds into a calendar date (proleptic Gregorian,
    /// H. Hinnant's `civil_from_days`).
    pub fn from_epoch_ms(epoch_ms: i64) -> Result<Self, TimestampOutOfRange> {
        if !(MIN_EPOCH_MS..MAX_EPOCH_MS).contains(&epoch_ms) {
            return Err(TimestampOutOfRange(epoch_ms));
        }
        let millis = epoch_ms.rem_euclid(1000);
        let secs = epoch_ms.div_euclid(1000);
        let days = secs.div_euclid(86_400);
        let of_day = secs.rem_euclid(86_400);

        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);

        Ok(Self {
            year: year as u16,
            month: month as u8,
            day: day as u8,
            hour: (of_day / 3600) as u8,
            minute: (of_day / 60 % 60) as u8,
            second: (of_day % 60) as u8,
            millis: millis as u16,
        })
    }

    /// Appends the time in `style`.
    pub fn write(&self, style: TimestampStyle, out: &mut Vec<u8>) {
        match style {
            TimestampStyle::Rfc5424 => {
                // One append of the whole stamp (it is on every line).
                let (y, ms) = (self.year, self.millis);
                let [mo1, mo2] = two_digits(self.month);
                let [d1, d2] = two_digits(self.day);
                let [h1, h2] = two_digits(self.hour);
                let [mi1, mi2] = two_digits(self.minute);
                let [s1, s2] = two_digits(self.second);
                out.extend_from_slice(&[
                    digit(y / 1000),
                    digit(y / 100 % 10),
                    digit(y / 10 % 10),
                    digit(y % 10),
                    b'-',
                    mo1,
                    mo2,
                    b'-',
                    d1,
                    d2,
                    b'T',
                    h1,
                    h2,
                    b':',
                    mi1,
                    mi2,
                    b':',
                    s1,
                    s2,
                    b'.',
                    digit(ms / 100),
                    digit(ms / 10 % 10),
                    digit(ms % 10),
                    b'Z',
                ]);
            }
            TimestampStyle::Rfc3164 | TimestampStyle::Rfc3164WithYear => {
                out.extend_from_slice(MONTHS[usize::from(self.month - 1)]);
                out.push(b' ');
                let day_tens = if self.day >= 10 { digit(u16::from(self.day / 10)) } else { b' ' };
                out.extend_from_slice(&[day_tens, digit(u16::from(self.day % 10)), b' ']);
                if style == TimestampStyle::Rfc3164WithYear {
                    out.extend_from_slice(itoa::Buffer::new().format(self.year).as_bytes());
                    out.push(b' ');
                }
                self.write_clock(out);
            }
        }
    }

    fn write_clock(&self, out: &mut Vec<u8>) {
        push2(self.hour, out);
        out.push(b':');
        push2(self.minute, out);
        out.push(b':');
        push2(self.second, out);
    }
}

fn digit(v: u16) -> u8 {
    b'0' + (v % 10) as u8
}

fn push2(v: u8, out: &mut Vec<u8>) {
    out.extend_from_slice(&two_digits(v));
}

fn two_digits(v: u8) -> [u8; 2] {
    [b'0' + v / 10, b'0' + v % 10]
}

const FACILITIES: &[&str] = &[
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];
const SEVERITIES: &[&str] = &["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"];

/// A syslog facility (0-23): by name (`local0`, `daemon`, …) or number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Facility(pub u8);

impl Facility {
    pub const LOCAL0: Facility = Facility(16);
}

impl FromStr for Facility {
    type Err = UnknownName;

    fn from_str(text: &str) -> Result<Self, UnknownName> {
        parse_named(text, text, FACILITIES).map(Facility)
    }
}

/// A syslog severity (0-7): by name (`info`, `warning`, `warn`, …) or number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Severity(pub u8);

impl Severity {
    pub const INFO: Severity = Severity(6);
}

impl FromStr for Severity {
    type Err = UnknownName;

    fn from_str(text: &str) -> Result<Self, UnknownName> {
        let name = match text.to_ascii_lowercase().as_str() {
            "error" => "err",
            "warn" => "warning",
            "emergency" => "emerg",
            "critical" => "crit",
            "informational" => "info",
            _ => text,
        };
        parse_named(text, name, SEVERITIES).map(Severity)
    }
}

/// PRI: `facility * 8 + severity`.
pub fn pri(facility: Facility, severity: Severity) -> u8 {
    facility.0 * 8 + severity.0
}

/// A facility or severity that is neither a known name nor in range.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{given:?} is not one of {} or 0-{}", names.join(", "), names.len() - 1)]
pub struct UnknownName {
    given: String,
    names: &'static [&'static str],
}

fn parse_named(given: &str, name: &str, names: &'static [&'static str]) -> Result<u8, UnknownName> {
    let lower = name.to_ascii_lowercase();
    if let Some(n) = names.iter().position(|n| *n == lower) {
        return Ok(n as u8);
    }
    match lower.parse::<u8>() {
        Ok(n) if usize::from(n) < names.len() => Ok(n),
        _ => Err(UnknownName { given: given.to_owned(), names }),
    }
}

/// A hostname for the header: one token, no spaces or control characters.
pub fn validate_hostname(name: &str) -> Result<String, BadHostname> {
    if name.is_empty() || name.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(BadHostname(name.to_owned()));
    }
    Ok(name.to_owned())
}

/// A hostname the header cannot carry.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} must be one word without spaces or control characters")]
pub struct BadHostname(String);

/// This machine's hostname (`-` if it cannot be found).
pub fn local_hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates
    // within it on success (truncation is handled by searching for NUL).
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "-".to_owned();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..end]).trim().to_owned();
    if name.is_empty() { "-".to_owned() } else { name }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn render(header: &SyslogHeader, ms: i64) -> String {
        let mut out = Vec::new();
        header.write(ms, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn facility_and_severity_names_and_numbers() {
        assert_eq!("local0".parse(), Ok(Facility(16)));
        assert_eq!("LOCAL7".parse(), Ok(Facility(23)));
        assert_eq!("3".parse(), Ok(Facility(3)));
        assert!("24".parse::<Facility>().is_err());
        assert_eq!(
            "locale".parse::<Facility>().unwrap_err().to_string(),
            "\"locale\" is not one of kern, user, mail, daemon, auth, syslog, lpr, news, uucp, cron, authpriv, ftp, \
             ntp, security, console, solaris-cron, local0, local1, local2, local3, local4, local5, local6, local7 or 0-23"
        );
        assert_eq!("info".parse(), Ok(Severity(6)));
        assert_eq!("warn".parse(), Ok(Severity(4)));
        assert_eq!("Warn".parse(), Ok(Severity(4)));
        assert_eq!("loud".parse::<Severity>().unwrap_err().to_string().split(" is ").next(), Some("\"loud\""));
        assert!("8".parse::<Severity>().is_err());
        assert_eq!(pri(Facility::LOCAL0, Severity::INFO), DEFAULT_PRI);
        assert_eq!("rfc3164-year".parse(), Ok(TimestampStyle::Rfc3164WithYear));
        assert_eq!(
            "iso".parse::<TimestampStyle>().unwrap_err().to_string(),
            "\"iso\" is not one of rfc5424, rfc3164, rfc3164-year"
        );
        assert_eq!("legacy".parse(), Ok(HeaderLayout::Legacy));
    }

    #[test]
    fn local_hostname_is_a_single_token() {
        let name = local_hostname();
        assert!(!name.is_empty() && !name.contains(' '));
    }

    #[test]
    fn seed_timestamps() {
        let plain = SyslogHeader::default();
        assert_eq!(render(&plain, 1_511_373_004_000), "2017-11-22T17:50:04.000Z ");
        assert_eq!(render(&plain, 1_500_151_350_531), "2017-07-15T20:42:30.531Z ");
    }

    #[test]
    fn rfc3164_pads_the_day_with_a_space() {
        let h = SyslogHeader { timestamp: TimestampStyle::Rfc3164, ..Default::default() };
        // 2017-11-02T03:04:05Z
        assert_eq!(render(&h, 1_509_591_845_000), "Nov  2 03:04:05 ");
        let y = SyslogHeader { timestamp: TimestampStyle::Rfc3164WithYear, ..Default::default() };
        assert_eq!(render(&y, 1_511_373_004_000), "Nov 22 2017 17:50:04 ");
    }

    #[test]
    fn pri_hostname_and_rfc5424_layout() {
        let h = SyslogHeader { pri: Some(134), hostname: Some("LAB".into()), ..Default::default() };
        assert_eq!(render(&h, 0), "<134>1970-01-01T00:00:00.000Z LAB ");
        let full = SyslogHeader { layout: HeaderLayout::Rfc5424, ..Default::default() };
        assert_eq!(render(&full, 0), "<134>1 1970-01-01T00:00:00.000Z - cefwire - - - ");
    }

    #[test]
    fn range_limits() {
        assert!(CivilTime::from_epoch_ms(MIN_EPOCH_MS).is_ok());
        assert!(CivilTime::from_epoch_ms(MIN_EPOCH_MS - 1).is_err());
        assert!(CivilTime::from_epoch_ms(MAX_EPOCH_MS - 1).is_ok());
        assert!(CivilTime::from_epoch_ms(MAX_EPOCH_MS).is_err());
        let t = CivilTime::from_epoch_ms(-1).unwrap();
        assert_eq!((t.year, t.month, t.day, t.hour, t.second, t.millis), (1969, 12, 31, 23, 59, 999));
    }

    /// Independent twin: walk day by day from 1970 with the leap-year rule.
    fn naive_date(mut days: i64) -> (i64, u32, u32) {
        let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let len = |y: i64, m: u32| match m {
            2 if leap(y) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        let (mut y, mut m) = (1970i64, 1u32);
        while days < 0 {
            m = if m == 1 {
                y -= 1;
                12
            } else {
                m - 1
            };
            days += len(y, m);
        }
        while days >= len(y, m) {
            days -= len(y, m);
            m = if m == 12 {
                y += 1;
                1
            } else {
                m + 1
            };
        }
        (y, m, days as u32 + 1)
    }

    proptest! {
        #[test]
        fn civil_date_matches_day_walk(days in -40_000i64..40_000, ms_of_day in 0i64..86_400_000) {
            let t = CivilTime::from_epoch_ms(days * 86_400_000 + ms_of_day).unwrap();
            let (y, m, d) = naive_date(days);
            prop_assert_eq!((i64::from(t.year), u32::from(t.month), u32::from(t.day)), (y, m, d));
            prop_assert_eq!(
                i64::from(t.hour) * 3_600_000 + i64::from(t.minute) * 60_000
                    + i64::from(t.second) * 1000 + i64::from(t.millis),
                ms_of_day
            );
        }
    }
}

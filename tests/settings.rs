//! One settings path: a value given on the command line and the same value
//! in the agent's TOML file are refused alike — exit 2, before anything is
//! fetched or sent — with the same reason, each naming the setting the way
//! it was given (the flag, or the key). Runs the real binary both ways.

use crate::util::{Scratch, cefwire, stderr, wait_child};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// Where a case puts its line in the agent's file.
#[derive(Clone, Copy)]
enum Section {
    Top,
    Auth,
    Syslog,
    Cef,
    Activities,
}

struct Case {
    what: &'static str,
    flags: Vec<&'static str>,
    toml: (Section, &'static str),
    /// The reason both must give, word for word.
    reason: &'static str,
    /// How each path names the setting.
    flag: &'static str,
    key: &'static str,
}

/// A working agent file with `line` added to `section` (later keys of the
/// same name are not used: each case sets a key the base leaves out).
fn agent_file(dir: &Path, (section, line): (Section, &str)) -> String {
    let at = |s: Section| if std::mem::discriminant(&s) == std::mem::discriminant(&section) { line } else { "" };
    let to = if line.contains("tls") { "" } else { "to = [\"tcp://127.0.0.1:9\"]" };
    format!(
        "portal_url_line\n{top}\nstate_directory = \"{state}\"\n[auth]\n{auth}\n[syslog]\n{to}\n{syslog}\n[cef]\n{cef}\n[activities]\n{activities}\n",
        top = at(Section::Top),
        state = dir.join("state").display(),
        auth = if matches!(section, Section::Auth) { line } else { "token = \"t\"" },
        syslog = at(Section::Syslog),
        cef = at(Section::Cef),
        activities = at(Section::Activities),
    )
    .replace(
        "portal_url_line",
        if line.starts_with("portal_url") { "" } else { "portal_url = \"http://127.0.0.1:9\"" },
    )
}

/// `cefwire backfill` with a window and an output, and `extra`.
fn backfill(extra: &[&'static str]) -> Vec<&'static str> {
    let mut flags =
        vec!["backfill", "--since", "1h", "--portal-url", "http://127.0.0.1:9", "--retries", "1", "-o", "/dev/null"];
    flags.extend_from_slice(extra);
    flags
}

/// Runs `command`, which must end by itself: a run that accepted the bad
/// value would go on to the (closed) API port and retry; it is stopped.
fn refused(mut command: Command, what: &str) -> Output {
    let mut child = command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    if wait_child(&mut child, Duration::from_secs(60)).is_none() {
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        panic!("{what}: still running after 60 s, so the value was taken:\n{}", stderr(&out));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn the_command_line_and_the_agent_file_refuse_the_same_values_with_the_same_reason() {
    let cases = [
        Case {
            what: "a duration in unknown units",
            flags: vec!["replay", "-", "--to", "tcp://127.0.0.1:9", "--duration", "2 fortnights"],
            toml: (Section::Top, "window = \"2 fortnights\""),
            reason: "unknown duration unit \"fortnights\" in \"2 fortnights\" (use ms, s, m, h, d or w)",
            flag: "--duration",
            key: "window",
        },
        Case {
            what: "a zero duration",
            flags: vec!["backfill", "--since", "0s", "--token", "t", "--portal-url", "http://127.0.0.1:9"],
            toml: (Section::Top, "poll_interval = \"0s\""),
            reason: "must be longer than zero",
            flag: "--since",
            key: "poll_interval",
        },
        Case {
            what: "a rate of zero requests",
            flags: backfill(&["--token", "t", "--rate-limit", "0"]),
            toml: (Section::Top, "rate_limit = 0"),
            reason: "\"0\": the request count must be a positive integer (e.g. 30/min)",
            flag: "--rate-limit",
            key: "rate_limit",
        },
        Case {
            what: "a rate with a bad window",
            flags: backfill(&["--token", "t", "--rate-limit", "30/0s"]),
            toml: (Section::Top, "rate_limit = \"30/0s\""),
            reason: "\"30/0s\": the window must be longer than zero",
            flag: "--rate-limit",
            key: "rate_limit",
        },
        Case {
            what: "an unknown facility",
            flags: vec!["convert", "--facility", "local9"],
            toml: (Section::Cef, "facility = \"local9\""),
            reason: "\"local9\" is not one of kern, user, mail, daemon, auth, syslog, lpr, news, uucp, cron, authpriv, ftp, ntp, security, console, solaris-cron, local0, local1, local2, local3, local4, local5, local6, local7 or 0-23",
            flag: "--facility",
            key: "cef.facility",
        },
        Case {
            what: "a facility out of range",
            flags: vec!["convert", "--facility", "24"],
            toml: (Section::Cef, "facility = 24"),
            reason: "\"24\" is not one of",
            flag: "--facility",
            key: "cef.facility",
        },
        Case {
            what: "an unknown severity",
            flags: vec!["convert", "--severity", "loud"],
            toml: (Section::Cef, "severity = \"loud\""),
            reason: "\"loud\" is not one of emerg, alert, crit, err, warning, notice, info, debug or 0-7",
            flag: "--severity",
            key: "cef.severity",
        },
        Case {
            what: "an unknown time format",
            flags: vec!["convert", "--time-format", "iso"],
            toml: (Section::Cef, "time_format = \"iso\""),
            reason: "\"iso\" is not one of rfc5424, rfc3164, rfc3164-year",
            flag: "--time-format",
            key: "cef.time_format",
        },
        Case {
            what: "an unknown framing",
            flags: vec!["replay", "-", "--to", "tcp://127.0.0.1:9", "--framing", "crlf"],
            toml: (Section::Syslog, "framing = \"crlf\""),
            reason: "\"crlf\" is not one of auto, lf, octet",
            flag: "--framing",
            key: "syslog.framing",
        },
        Case {
            what: "newline framing over TLS",
            flags: vec!["replay", "-", "--to", "tls://127.0.0.1:9", "--framing", "lf"],
            toml: (Section::Syslog, "to = [\"tls://127.0.0.1:9\"]\nframing = \"lf\""),
            reason: "lf cannot be used with tls:// (RFC 5425 needs octet counting)",
            flag: "--framing",
            key: "syslog.framing",
        },
        Case {
            what: "a CA file without a TLS destination",
            flags: vec!["replay", "-", "--to", "tcp://127.0.0.1:9", "--ca", "Cargo.toml"],
            toml: (Section::Syslog, "ca_file = \"Cargo.toml\""),
            reason: "is for tls:// and relp+tls:// destinations only",
            flag: "--ca",
            key: "syslog.ca_file",
        },
        Case {
            what: "a size limit of zero",
            flags: vec!["replay", "-", "--to", "tcp://127.0.0.1:9", "--max-message-bytes", "0"],
            toml: (Section::Syslog, "max_message_bytes = 0"),
            reason: "must be at least 1",
            flag: "--max-message-bytes",
            key: "syslog.max_message_bytes",
        },
        Case {
            what: "a hostname with a space",
            flags: vec!["convert", "--hostname", "two words"],
            toml: (Section::Cef, "hostname = \"two words\""),
            reason: "\"two words\" must be one word without spaces or control characters",
            flag: "--hostname",
            key: "cef.hostname",
        },
        Case {
            what: "a portal URL without a scheme",
            flags: vec!["convert", "--portal-url", "contoso"],
            toml: (Section::Top, "portal_url = \"contoso\""),
            reason: "\"contoso\" must start with https:// (or http://)",
            flag: "--portal-url",
            key: "portal_url",
        },
        Case {
            what: "a token URL that is not a web URL",
            flags: backfill(&[
                "--tenant-id",
                "T",
                "--client-id",
                "C",
                "--client-secret",
                "S",
                "--token-url",
                "ftp://login",
            ]),
            toml: (
                Section::Auth,
                "tenant_id = \"T\"\nclient_id = \"C\"\nclient_secret = \"S\"\ntoken_url = \"ftp://login\"",
            ),
            reason: "\"ftp://login\" must start with https:// (or http://)",
            flag: "--token-url",
            key: "auth.token_url",
        },
        Case {
            what: "an incomplete Entra ID application",
            flags: backfill(&["--client-id", "C", "--client-secret", "S"]),
            toml: (Section::Auth, "client_id = \"C\"\nclient_secret = \"S\""),
            reason: "required for an Entra ID application",
            flag: "--tenant-id",
            key: "auth.tenant_id",
        },
        Case {
            what: "a filter on the time field",
            flags: backfill(&["--token", "t", "--filter", r#"{"created":{"gte":1}}"#]),
            toml: (Section::Activities, "filters = { created = { gte = 1 } }"),
            reason: "must not filter on \"created\": cefwire sets the time window itself",
            flag: "--filter",
            key: "activities.filters",
        },
        Case {
            what: "a filter that is not an object of operators",
            flags: backfill(&["--token", "t", "--filter", r#"{"service":11161}"#]),
            toml: (Section::Activities, "filters = { service = 11161 }"),
            reason: "filter \"service\" must be an object of operators",
            flag: "--filter",
            key: "activities.filters",
        },
        Case {
            what: "a proxy that is not HTTP",
            flags: backfill(&["--token", "t", "--proxy", "socks5://p:1"]),
            toml: (Section::Top, "proxy = \"socks5://p:1\""),
            reason: "\"socks5://p:1\": only HTTP CONNECT proxies are supported (http://host:port)",
            flag: "--proxy",
            key: "proxy (--proxy)",
        },
    ];
    let dir = Scratch::new("settings-agree");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for case in &cases {
        let mut command = cefwire();
        command.args(&case.flags).current_dir(root);
        let flags = refused(command, case.what);
        let file = dir.join(format!("{}.toml", case.what.replace(' ', "-")));
        std::fs::write(&file, agent_file(dir.path(), case.toml)).unwrap();
        let mut command = cefwire();
        command.arg("agent").arg("--config").arg(&file).current_dir(root);
        let agent = refused(command, case.what);
        for (path, out, name) in [("command line", &flags, case.flag), ("agent file", &agent, case.key)] {
            let text = stderr(out);
            assert_eq!(out.status.code(), Some(2), "{}, {path}: exit 2 expected:\n{text}", case.what);
            assert!(text.contains(case.reason), "{}, {path}: reason {:?} expected:\n{text}", case.what, case.reason);
            assert!(text.contains(name), "{}, {path}: the setting {name:?} named:\n{text}", case.what);
        }
    }
}

//! `cefwire convert` end to end through the real binary: bad input, broken
//! inputs, failing outputs, header options and exit codes.

use crate::util::{cefwire, run, stderr, stdout, write_file};
use std::io::{Read, Write};
use std::process::Stdio;

const GOOD_ACTIVITY: &str =
    r#"{"_id":"a1","timestamp":1511373004000,"eventTypeName":"EVENT_CATEGORY_LOGIN","description":"ok"}"#;
const GOOD_ALERT: &str = r#"{"_id":"b2","timestamp":1500151350531,"title":"T","severityValue":2}"#;

#[test]
fn bad_lines_are_reported_and_good_ones_still_convert() {
    let dir = tempfile::tempdir().unwrap();
    let input = [
        GOOD_ACTIVITY,
        "this is not json",
        r#"{"timestamp":1,"eventType":3}"#,
        "",
        r#"{"_id":"x","eventType":3}"#,
        r#"{"_id":"y","timestamp":5,"something":"else"}"#,
        GOOD_ALERT,
        r#"{"_id":"z","timestamp":"soon","eventType":1}"#,
    ]
    .join("\n");
    let file = write_file(&dir, "mixed.ndjson", input.as_bytes());
    let rejects = dir.path().join("rejects.ndjson");
    let out = run(&["convert", &file, "--rejects", rejects.to_str().unwrap()], b"");
    let err = stderr(&out);

    assert_eq!(out.status.code(), Some(3), "rejected records give exit code 3\n{err}");
    let lines: Vec<String> = stdout(&out).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 2);
    assert!(lines[0].contains("externalId=a1 "), "{}", lines[0]);
    assert!(lines[1].contains("externalId=b2 "), "{}", lines[1]);

    for (line, reason) in [
        (2, "not valid JSON"),
        (3, "no usable \"_id\""),
        (5, "no \"timestamp\""),
        (6, "neither an activity"),
        (8, "not an integer"),
    ] {
        let prefix = format!("{file}:{line}: ");
        assert!(
            err.lines().any(|l| l.starts_with(&prefix) && l.contains(reason)),
            "expected a message {prefix}…{reason}… in:\n{err}"
        );
    }
    assert!(err.contains("converted 2 of 7 records"), "{err}");
    assert!(err.contains("rejected 5"), "{err}");

    let kept = std::fs::read_to_string(&rejects).unwrap();
    let expected: Vec<&str> =
        input.lines().enumerate().filter(|(n, _)| [1, 2, 4, 5, 7].contains(n)).map(|x| x.1).collect();
    assert_eq!(kept.lines().collect::<Vec<_>>(), expected, "rejected lines are kept verbatim");
}

#[test]
fn a_bad_record_inside_a_pretty_page_names_its_line() {
    let page = format!(
        "{{\n  \"data\": [\n    {GOOD_ACTIVITY},\n    {{\"_id\": \"no-time\", \"eventType\": 1}},\n    {GOOD_ALERT}\n  ],\n  \"hasNext\": false\n}}\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(&dir, "page.json", page.as_bytes());
    let rejects = dir.path().join("rejects.ndjson");
    let out = run(&["convert", &file, "--rejects", rejects.to_str().unwrap()], b"");
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(stdout(&out).lines().count(), 2);
    let err = stderr(&out);
    assert!(err.contains(&format!("{file}:4: record 2: record has no \"timestamp\"")), "{err}");
    assert_eq!(std::fs::read_to_string(&rejects).unwrap(), "{\"_id\":\"no-time\",\"eventType\":1}\n");
}

#[test]
fn ndjson_of_pages_and_bare_arrays() {
    let input =
        format!("{{\"data\":[{GOOD_ACTIVITY},{GOOD_ALERT}],\"hasNext\":true}}\n[{GOOD_ALERT}]\n{GOOD_ACTIVITY}\n");
    let out = run(&["convert", "-"], input.as_bytes());
    assert!(out.status.success(), "{}", stderr(&out));
    let ids: Vec<String> = stdout(&out)
        .lines()
        .map(|l| l.split("externalId=").nth(1).unwrap().split(' ').next().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["a1", "b2", "b2", "a1"]);
}

#[test]
fn truncated_gzip_is_reported_and_other_inputs_still_convert() {
    let dir = tempfile::tempdir().unwrap();
    let body = format!("{GOOD_ACTIVITY}\n").repeat(20_000);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(body.as_bytes()).unwrap();
    let gz = gz.finish().unwrap();
    let cut = write_file(&dir, "cut.ndjson.gz", &gz[..gz.len() - 20]);
    let zst = zstd::encode_all(body.as_bytes(), 3).unwrap();
    let cut_zst = write_file(&dir, "cut.ndjson.zst", &zst[..zst.len() / 2]);
    let good = write_file(&dir, "good.ndjson", format!("{GOOD_ALERT}\n").as_bytes());
    let missing = dir.path().join("missing.ndjson");
    let out = run(&["convert", &cut, &cut_zst, missing.to_str().unwrap(), dir.path().to_str().unwrap(), &good], b"");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "unreadable inputs give exit code 4\n{err}");
    assert!(stdout(&out).lines().any(|l| l.contains("externalId=b2 ")), "the good input still converts");
    for name in [&cut, &cut_zst, &missing.display().to_string(), &dir.path().display().to_string()] {
        assert!(err.contains(&format!("cefwire: {name}: ")), "no message naming {name}:\n{err}");
    }
    assert!(err.contains("4 input(s) could not be read completely"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn full_disk_on_output_is_a_clear_error() {
    let input = format!("{GOOD_ACTIVITY}\n").repeat(50_000);
    let out = run(&["convert", "-o", "/dev/full"], input.as_bytes());
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("writing /dev/full") && err.contains("No space left on device"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn closed_stdout_pipe_ends_quietly() {
    let input = format!("{GOOD_ACTIVITY}\n").repeat(200_000);
    let mut child = cefwire()
        .args(["convert", "--quiet"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let mut first = [0u8; 100];
    child.stdout.as_mut().unwrap().read_exact(&mut first).unwrap();
    drop(child.stdout.take());
    let status = child.wait().unwrap();
    feeder.join().unwrap();
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(err.is_empty(), "{err}");
}

#[test]
fn header_options() {
    let record = format!("{GOOD_ACTIVITY}\n");
    let cases: &[(&[&str], &str)] = &[
        (&[], "2017-11-22T17:50:04.000Z CEF:0|"),
        (&["--pri"], "<134>2017-11-22T17:50:04.000Z CEF:0|"),
        (&["--pri", "--facility", "local3", "--severity", "warning"], "<156>2017-11-22T17:50:04.000Z CEF:0|"),
        (&["--time-format", "rfc3164"], "Nov 22 17:50:04 CEF:0|"),
        (&["--time-format", "rfc3164-year", "--hostname", "h1"], "Nov 22 2017 17:50:04 h1 CEF:0|"),
        (&["--header", "rfc5424", "--hostname", "h1"], "<134>1 2017-11-22T17:50:04.000Z h1 cefwire - - - CEF:0|"),
        (&["--pri", "--no-pri"], "2017-11-22T17:50:04.000Z CEF:0|"),
    ];
    for (flags, prefix) in cases {
        let mut args = vec!["convert", "--quiet", "--device-version", "9.9"];
        args.extend_from_slice(flags);
        let out = run(&args, record.as_bytes());
        assert!(out.status.success(), "{flags:?}: {}", stderr(&out));
        let line = stdout(&out);
        assert!(line.starts_with(&format!("{prefix}MCAS|SIEM_Agent|9.9|")), "{flags:?}: {line}");
    }
}

#[test]
fn forced_kind_and_unknown_records() {
    let odd = r#"{"_id":"q","timestamp":0}"#;
    let out = run(&["convert", "--quiet"], odd.as_bytes());
    assert_eq!(out.status.code(), Some(3));
    let out = run(&["convert", "--quiet", "--kind", "activities"], odd.as_bytes());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("|EVENT_CATEGORY_UNSPECIFIED|EVENT_CATEGORY_UNSPECIFIED|0|externalId=q "));
    let out = run(&["convert", "--quiet", "--kind", "alerts"], odd.as_bytes());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("|ALERT_UNKNOWN||3|externalId=q "), "{}", stdout(&out));
}

#[test]
fn usage_errors_name_the_flag_and_exit_2() {
    for (args, needle) in [
        (&["convert", "--facility", "local9"][..], "--facility"),
        (&["convert", "--severity", "loud"][..], "--severity"),
        (&["convert", "--portal-url", "contoso"][..], "--portal-url"),
        (&["convert", "--no-such-flag"][..], "--no-such-flag"),
        (&["convert", "-", "-"][..], "stdin"),
        (&["generate", "--late-ratio", "2"][..], "--late-ratio"),
    ] {
        let out = run(args, b"");
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn empty_input_converts_nothing_successfully() {
    let out = run(&["convert"], b"\n\n");
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).is_empty());
    assert!(stderr(&out).contains("converted 0 of 0 records"));
}

#[test]
fn generated_records_all_convert() {
    let generated = run(&["generate", "--kind", "mixed", "--count", "3000", "--seed", "5", "--late-ratio", "0.2"], b"");
    assert!(generated.status.success(), "{}", stderr(&generated));
    assert_eq!(generated.stdout.iter().filter(|&&b| b == b'\n').count(), 3000);
    let again = run(&["generate", "--kind", "mixed", "--count", "3000", "--seed", "5", "--late-ratio", "0.2"], b"");
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(generated.stdout, again.stdout, "deterministic for a seed");
    let out = run(&["convert"], &generated.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), 3000);
    assert!(stderr(&out).contains("(2850 activities, 150 alerts)"), "{}", stderr(&out));
}

/// Peak resident memory of a `cefwire` run, in KiB: its `VmHWM` (the
/// high-water mark of this process's memory since its exec), read until it
/// exits. (`wait4`'s `ru_maxrss` would not do: it includes the copy of this
/// large test process the child was forked from.) The run must succeed.
fn peak_rss_kib(args: &[&std::ffi::OsStr]) -> u64 {
    let mut child = cefwire().args(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    loop {
        let exited = child.try_wait().unwrap();
        if let Some(status) = exited {
            assert!(status.success(), "cefwire {args:?} failed: {status}");
            break;
        }
        // A zombie has no memory lines: keep the last reading.
        if let Some(kib) = std::fs::read_to_string(&status_file).ok().and_then(|text| {
            text.lines().find_map(|l| l.strip_prefix("VmHWM:")?.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())
        }) {
            peak = peak.max(kib);
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    assert!(peak > 0, "no VmHWM read for cefwire {args:?}");
    peak
}

/// "A flat 6–7 MiB of memory whatever the input size" (README; target: flat,
/// under 32 MiB): the peak RSS of `convert` over 100 MB of NDJSON is no more
/// than 2 MiB above its peak over 10 MB, plain and zstd, and under 32 MiB.
/// (This is the test build; release figures are in docs/benchmarks.md.)
#[test]
fn memory_stays_flat_whatever_the_input_size() {
    let dir = crate::util::Scratch::new("flat-memory");
    let generate = |count: u64, name: &str| {
        let path = dir.join(name);
        let out = cefwire()
            .args(["generate", "--kind", "activities", "--count", &count.to_string(), "--seed", "9", "-o"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        path
    };
    let small = generate(4_000, "small.ndjson");
    let large = generate(40_000, "large.ndjson");
    let small_zst = generate(4_000, "small.ndjson.zst");
    let large_zst = generate(40_000, "large.ndjson.zst");
    let size = |p: &std::path::Path| std::fs::metadata(p).unwrap().len();
    assert!(size(&large) > 9 * size(&small), "{} vs {} bytes", size(&large), size(&small));
    let peak = |input: &std::path::Path| {
        peak_rss_kib(&["convert".as_ref(), "--quiet".as_ref(), input.as_os_str(), "-o".as_ref(), "/dev/null".as_ref()])
    };
    let (s, l) = (peak(&small), peak(&large));
    let (sz, lz) = (peak(&small_zst), peak(&large_zst));
    eprintln!(
        "peak RSS of convert: {s} KiB for {} MB, {l} KiB for {} MB; as zstd {sz} and {lz} KiB",
        size(&small) / 1_000_000,
        size(&large) / 1_000_000
    );
    assert!(l <= s + 2048, "memory grows with the input: {s} KiB for 10 MB, {l} KiB for 100 MB");
    assert!(lz <= sz + 2048, "memory grows with zstd input: {sz} KiB for 10 MB, {lz} KiB for 100 MB");
    assert!(l.max(lz) < 32 * 1024, "peak RSS {} KiB is over the 32 MiB target", l.max(lz));
}

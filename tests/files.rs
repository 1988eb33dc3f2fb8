//! The file → syslog path (`convert`, `replay`): inputs are read line by
//! line whatever their first line holds, and no record is lost to the
//! shape of the input (issue 9).

use crate::util::sink::SinkProcess;
use crate::util::{cefwire, json_u64, run, stderr, stdout, wait_or_kill, write_file};
use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

fn activity(n: usize) -> String {
    format!(
        r#"{{"_id":"a{n}","timestamp":1511373004000,"eventTypeName":"EVENT_CATEGORY_LOGIN","description":"ok {n}"}}"#
    )
}

/// `count` good NDJSON records, one per line.
fn good_lines(count: usize) -> String {
    (0..count).map(|n| activity(n) + "\n").collect()
}

#[test]
fn a_bad_first_line_is_one_reject_and_the_rest_converts() {
    for (what, first) in [
        ("truncated", r#"{"_id":"cut","timestamp":15113730"#.to_owned()),
        ("trailing garbage", format!("{} garbage", activity(9999))),
        ("half an object", "{\"_id\": \"x\",".to_owned()),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let file = write_file(&dir, "in.ndjson", format!("{first}\n{}", good_lines(1000)).as_bytes());
        let rejects = dir.path().join("rejects.ndjson");
        let out = run(&["convert", &file, "--rejects", rejects.to_str().unwrap()], b"");
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(3), "{what}: one rejected record gives exit 3\n{err}");
        assert_eq!(stdout(&out).lines().count(), 1000, "{what}: every good line converts\n{err}");
        assert!(err.lines().any(|l| l.starts_with(&format!("{file}:1: "))), "{what}: reject located at line 1:\n{err}");
        assert!(err.contains("converted 1000 of 1001 records"), "{what}: {err}");
        assert_eq!(std::fs::read_to_string(&rejects).unwrap(), format!("{first}\n"), "{what}: kept verbatim");
    }
}

#[test]
fn a_byte_order_mark_is_skipped_by_convert_and_replay() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(&dir, "bom.ndjson", format!("\u{FEFF}{}", good_lines(50)).as_bytes());
    let out = run(&["convert", &file], b"");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), 50);

    let received = dir.path().join("received");
    let sink = SinkProcess::start(
        "tcp://127.0.0.1:0",
        &["--expect", "50", "--timeout", "120s", "--out", received.to_str().unwrap()],
    );
    let mut replay = cefwire()
        .args(["replay", &file, "--to", &sink.url, "--no-progress", "--report", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_or_kill(&mut replay, Duration::from_secs(120), "cefwire replay");
    assert!(status.success(), "replay of a BOM-prefixed NDJSON");
    let (status, report) = sink.report(Duration::from_secs(150));
    assert!(status.success(), "sink: {report}");
    assert_eq!(json_u64(&report, "messages"), 50, "{report}");
    let text = std::fs::read_to_string(&received).unwrap();
    for line in text.lines() {
        assert!(line.contains("CEF:0|") && !line.contains("\"_id\""), "raw JSON sent as if it were CEF: {line}");
    }
}

/// Writes `data` to cefwire's stdin in two writes with a pause between
/// them, the first holding only `split` bytes (a pipe hands them over
/// separately).
fn convert_from_split_pipe(data: &[u8], split: usize) -> std::process::Output {
    let mut child = cefwire()
        .args(["convert", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = data.to_vec();
    let feeder = std::thread::spawn(move || {
        stdin.write_all(&data[..split]).unwrap();
        stdin.flush().unwrap();
        std::thread::sleep(Duration::from_millis(500));
        let _ = stdin.write_all(&data[split..]);
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    out
}

#[test]
fn compression_magic_split_across_pipe_writes_is_detected() {
    let plain = good_lines(200);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(plain.as_bytes()).unwrap();
    let gz = gz.finish().unwrap();
    let zst = zstd::encode_all(plain.as_bytes(), 3).unwrap();
    for (what, data, split) in [("gzip", &gz, 1), ("zstd", &zst, 1), ("zstd", &zst, 3)] {
        let out = convert_from_split_pipe(data, split);
        assert_eq!(out.status.code(), Some(0), "{what} split after {split} bytes: {}", stderr(&out));
        assert_eq!(stdout(&out).lines().count(), 200, "{what} split after {split} bytes");
    }
}

#[test]
fn a_line_over_the_document_limit_is_one_reject_and_memory_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let long = format!(r#"{{"_id":"big","timestamp":1,"description":"{}"}}"#, "x".repeat(3 << 20));
    let file = write_file(&dir, "in.ndjson", format!("{}{long}\n{}", good_lines(10), good_lines(10)).as_bytes());
    let out = run(&["convert", &file, "--max-document-mb", "1"], b"");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert_eq!(stdout(&out).lines().count(), 20, "{err}");
    assert!(err.contains(&format!("{file}:11: line longer than the limit of 1 MiB")), "{err}");
}

#[test]
fn binary_input_ends_with_a_clear_error() {
    let out = run(&["convert", "/dev/zero", "--max-document-mb", "1"], b"");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("holds a NUL byte: the input is binary"), "{err}");
}

#[test]
fn a_decompression_bomb_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bomb.zst");
    let mut encoder = zstd::stream::write::Encoder::new(std::fs::File::create(&path).unwrap(), 19).unwrap();
    let chunk = vec![b'\n'; 1 << 20];
    for _ in 0..200 {
        encoder.write_all(&chunk).unwrap();
    }
    encoder.finish().unwrap();
    let out = run(&["convert", path.to_str().unwrap()], b"");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("refused as a decompression bomb"), "{err}");
}

#[test]
fn an_output_or_rejects_file_that_is_an_input_is_refused_before_opening() {
    let dir = tempfile::tempdir().unwrap();
    let content = good_lines(20);
    let file = write_file(&dir, "in.ndjson", content.as_bytes());
    let link = dir.path().join("link.ndjson");
    std::fs::hard_link(&file, &link).unwrap();
    let link = link.to_str().unwrap();
    let dotted = format!("{}/./in.ndjson", dir.path().display());
    for args in [
        vec!["convert", &file, "-o", &file],
        vec!["convert", &file, "-o", link],
        vec!["convert", &file, "-o", &dotted],
        vec!["convert", &file, "--rejects", &file],
        vec!["convert", "-", &file, "--rejects", link, "-o", "/dev/null"],
    ] {
        let out = run(&args, b"");
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("writing it would destroy the records being read"), "{args:?}: {err}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), content, "{args:?}: the input was changed");
    }
    // Stdin redirected from the file that -o names.
    let out = cefwire().args(["convert", "-o", &file]).stdin(std::fs::File::open(&file).unwrap()).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    // Stdout appended to the input file (`>>`).
    let appended = std::fs::OpenOptions::new().append(true).open(&file).unwrap();
    let out = cefwire().args(["convert", &file]).stdout(appended).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), content, "the input was changed");
}

#[test]
fn flag_values_are_validated_and_contradictions_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(&dir, "in.ndjson", good_lines(3).as_bytes());
    for (args, reason) in [
        (vec!["replay", &file, "--to", "udp://127.0.0.1:9", "--rate", "1e-20"], "--rate must be"),
        (vec!["replay", &file, "--to", "udp://127.0.0.1:9", "--rate", "1e300"], "--rate must be"),
        (vec!["convert", "--hostname", &file], "is a file, not a name"),
        (vec!["replay", "--to", "udp://127.0.0.1:9", "--hostname", &file], "is a file, not a name"),
        (vec!["convert", &file, "--header", "rfc5424", "--no-pri"], "--no-pri: contradicts --header rfc5424"),
    ] {
        let out = run(&args, b"");
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(reason), "{args:?}: expected {reason:?} in {err}");
        assert!(stdout(&out).is_empty(), "{args:?}: nothing converted");
    }
}

/// One way of sending to a receiver: cefwire's arguments (without `--to`),
/// the messages the receiver must then hold, in order, and whether they go
/// octet-counted (syslog-ng takes that framing on another source).
struct Sending {
    what: &'static str,
    args: Vec<String>,
    expected: Vec<String>,
    octet: bool,
}

fn lines_of(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap().lines().map(str::to_owned).collect()
}

/// Sends, then waits for the receiver's file to hold the expected number
/// of messages and to stop growing, and compares message by message.
fn send_and_compare(sending: &Sending, receiver: &str, url: &str, out: &std::path::Path, log: &dyn Fn() -> String) {
    let context = format!("{receiver}, {}", sending.what);
    let output = cefwire().args(&sending.args).args(["--to", url]).output().unwrap();
    assert!(output.status.success(), "{context}: cefwire failed: {}", stderr(&output));
    let count = || std::fs::read(out).map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count());
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while count() < sending.expected.len() {
        assert!(
            std::time::Instant::now() < deadline,
            "{context}: {} of {} messages arrived\n{}",
            count(),
            sending.expected.len(),
            log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    crate::util::rsyslog::Rsyslog::wait_until_quiet(out, Duration::from_secs(1), Duration::from_secs(60));
    let got = std::fs::read_to_string(out).unwrap();
    crate::util::assert_same_lines(&context, &(sending.expected.join("\n") + "\n"), &got);
}

#[test]
fn rsyslog_and_syslog_ng_receive_exactly_the_messages_sent() {
    use crate::util::rsyslog::Rsyslog;
    use crate::util::syslog_ng::SyslogNg;
    let (with_rsyslog, with_syslog_ng) = (Rsyslog::available(), SyslogNg::available());
    if !with_rsyslog && !with_syslog_ng {
        return;
    }
    let dir = crate::util::Scratch::new("frames");
    let ndjson = dir.join("in.ndjson");
    std::fs::write(&ndjson, good_lines(300)).unwrap();
    let ndjson = ndjson.to_str().unwrap().to_owned();
    let render = |name: &str, extra: &[&str]| {
        let path = dir.join(name);
        crate::util::run_ok(cefwire().args(["convert", &ndjson, "-q", "-o"]).arg(&path).args(extra));
        path
    };
    let default = render("default.cef", &[]);
    let no_pri = render("no-pri.cef", &["--no-pri", "--hostname=h1"]);
    let rfc3164 = render("rfc3164.cef", &["--time-format", "rfc3164"]);
    let raw = dir.join("raw.cef");
    let raw_lines: Vec<String> = lines_of(&default).iter().map(|l| l[l.find("CEF:0|").unwrap()..].to_owned()).collect();
    std::fs::write(&raw, raw_lines.join("\n") + "\n").unwrap();
    let with_pri = |path: &std::path::Path| lines_of(path).iter().map(|l| format!("<134>{l}")).collect::<Vec<_>>();
    let replay = |path: &std::path::Path, extra: &[&str]| {
        let mut args: Vec<String> = ["replay", path.to_str().unwrap(), "--no-progress", "--facility", "local0"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(["--severity".to_owned(), "info".to_owned()]);
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    let sendings = [
        Sending {
            what: "convert's default output",
            args: replay(&default, &[]),
            expected: with_pri(&default),
            octet: false,
        },
        Sending {
            what: "convert --no-pri",
            args: ["convert", &ndjson, "-q", "--no-pri", "--hostname=h1"].iter().map(|s| s.to_string()).collect(),
            expected: lines_of(&no_pri),
            octet: true,
        },
        Sending {
            what: "--time-format rfc3164 output",
            args: replay(&rfc3164, &[]),
            expected: with_pri(&rfc3164),
            octet: false,
        },
        Sending { what: "raw CEF lines", args: replay(&raw, &[]), expected: with_pri(&raw), octet: false },
        Sending {
            what: "raw CEF lines, --raw-lines",
            args: replay(&raw, &["--raw-lines"]),
            expected: raw_lines.clone(),
            octet: true,
        },
        Sending {
            what: "--no-pri output, --raw-lines",
            args: replay(&no_pri, &["--raw-lines"]),
            expected: lines_of(&no_pri),
            octet: true,
        },
    ];
    for (n, sending) in sendings.iter().enumerate() {
        if with_rsyslog {
            let rsyslog = Rsyslog::start(&dir.join(format!("rsyslog-{n}")));
            send_and_compare(sending, "rsyslog", &rsyslog.tcp_url(), &rsyslog.out, &|| rsyslog.stderr_text());
        }
        if with_syslog_ng {
            let syslog_ng = SyslogNg::start(&dir.join(format!("syslog-ng-{n}")));
            let (url, out) = syslog_ng.source(sending.octet);
            send_and_compare(sending, "syslog-ng", &url, out, &|| syslog_ng.internal_log());
        }
    }
}

/// Runs `cefwire replay` with stderr a pipe (not a terminal): exit status,
/// JSON report, stderr. Killed after a generous limit (a run that never
/// gives up fails the test there).
fn replay_to(file: &str, to: &str, extra: &[&str]) -> (std::process::ExitStatus, String, String) {
    use std::io::Read;
    let mut child = cefwire()
        .args(["replay", file, "--to", to, "--no-progress", "--report", "json"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let err_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = err.read_to_string(&mut text);
        text
    });
    let status = wait_or_kill(&mut child, Duration::from_secs(120), "cefwire replay");
    let mut report = String::new();
    let _ = out.read_to_string(&mut report);
    (status, report, err_reader.join().unwrap())
}

#[test]
fn a_refused_client_certificate_is_a_failure_with_its_cause() {
    let dir = crate::util::Scratch::new("refused-cert");
    let pki = crate::util::tls::test_pki(&dir);
    let file = dir.join("lines.ndjson");
    std::fs::write(&file, good_lines(2)).unwrap();
    let p = |path: &std::path::Path| path.to_str().unwrap().to_owned();
    let sink_args = [
        "--cert".to_owned(),
        p(&pki.server_cert),
        "--key".to_owned(),
        p(&pki.server_key),
        "--client-ca".to_owned(),
        p(&pki.ca),
    ];
    let sink = SinkProcess::start("tls://127.0.0.1:0", &sink_args.iter().map(String::as_str).collect::<Vec<_>>());
    let to = format!("tls://localhost:{}", sink.port());
    let (status, report, err) = replay_to(&p(&file), &to, &["--ca", &p(&pki.ca), "--give-up-after", "5s"]);
    let received = sink.stop();
    assert_eq!(json_u64(&received, "messages"), 0, "{received}");
    assert_eq!(status.code(), Some(1), "nothing arrived: not a success\nreport: {report}\nstderr: {err}");
    assert!(report.contains("\"failure\":\"") && report.contains("CertificateRequired"), "{report}");
    assert!(report.contains("\"first_error\":\"") && report.contains("\"last_error\":\""), "{report}");
    assert!(err.contains("CertificateRequired"), "the error is printed with stderr a pipe: {err}");
}

#[test]
fn tls_handshake_failures_count_toward_give_up_after() {
    // A "receiver" that answers every connection with bytes that are not
    // TLS: each connect succeeds, each handshake fails.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let server = {
        let done = std::sync::Arc::clone(&done);
        std::thread::spawn(move || {
            let deadline = std::time::Instant::now() + Duration::from_secs(180);
            while !done.load(std::sync::atomic::Ordering::Relaxed) && std::time::Instant::now() < deadline {
                match listener.accept() {
                    Ok((mut stream, _)) => {
                        let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\nnot a TLS server\r\n");
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        })
    };
    let dir = crate::util::Scratch::new("handshake");
    let pki = crate::util::tls::test_pki(&dir);
    let file = dir.join("lines.ndjson");
    std::fs::write(&file, good_lines(100)).unwrap();
    let to = format!("tls://localhost:{port}");
    let ca = pki.ca.to_str().unwrap();
    let (status, report, err) =
        replay_to(file.to_str().unwrap(), &to, &["--ca", ca, "--give-up-after", "2s", "--drain-timeout", "600s"]);
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    server.join().unwrap();
    assert_eq!(status.code(), Some(1), "report: {report}\nstderr: {err}");
    assert!(report.contains("giving up"), "gave up after --give-up-after: {report}");
    assert!(!err.is_empty(), "errors printed with stderr a pipe");
}

/// `cefwire sink` with stderr in a file (read whole at the end): the child
/// and its URL once it listens.
fn sink_logging_to(stderr: &std::path::Path, extra: &[&str]) -> (std::process::Child, String) {
    let child = cefwire()
        .args(["sink", "--listen", "tcp://127.0.0.1:0", "--report", "json", "--no-progress"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(stderr).unwrap())
        .spawn()
        .unwrap();
    let mut url = String::new();
    crate::util::wait_until(Duration::from_secs(60), "sink banner", || {
        let text = std::fs::read_to_string(stderr).unwrap_or_default();
        let banner = text.lines().find(|l| l.contains("listening on"));
        url = banner.map_or_else(String::new, |b| b.rsplit(' ').next().unwrap().to_owned());
        !url.is_empty()
    });
    (child, url)
}

#[test]
fn a_sink_out_write_error_ends_with_a_message_and_a_failure_exit() {
    let dir = crate::util::Scratch::new("sink-full");
    let file = dir.join("lines.ndjson");
    std::fs::write(&file, good_lines(1000)).unwrap();
    let log = dir.join("sink.stderr");
    let (mut sink, url) = sink_logging_to(&log, &["--out", "/dev/full", "--expect", "1000", "--timeout", "120s"]);
    let _ = replay_to(file.to_str().unwrap(), &url, &["--give-up-after", "5s", "--drain-timeout", "5s"]);
    let status = wait_or_kill(&mut sink, Duration::from_secs(150), "cefwire sink");
    let err = std::fs::read_to_string(&log).unwrap();
    assert!(!status.success(), "a full --out is not a success: {status}\n{err}");
    assert!(err.contains("writing /dev/full") && err.contains("No space left"), "{err}");
}

#[test]
fn a_sink_caps_its_connections_and_counts_refusals() {
    use std::io::Read;
    let sink = SinkProcess::start("tcp://127.0.0.1:0", &["--max-connections", "2"]);
    let addr = sink.url.trim_start_matches("tcp://").to_owned();
    let held: Vec<_> = (0..2).map(|_| std::net::TcpStream::connect(&addr).unwrap()).collect();
    // The held ones are served (a message through each proves it) ...
    for mut stream in &held {
        stream.write_all(b"<134>held\n").unwrap();
    }
    // ... the third is closed unserved: it reads the end of the stream.
    let mut third = std::net::TcpStream::connect(&addr).unwrap();
    third.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut byte = [0u8; 1];
    let read = third.read(&mut byte);
    assert!(
        matches!(read, Ok(0)) || read.as_ref().is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "the connection over the cap is closed: {read:?}"
    );
    drop(held);
    let report = sink.stop();
    assert!(json_u64(&report, "refused_connections") >= 1, "{report}");
    assert_eq!(json_u64(&report, "connections"), 2, "{report}");
}

/// A number from `/proc/PID/status` (`Threads`, or `VmHWM` in KiB).
fn proc_status(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status:\n{status}"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Lifts this process's soft limit on open files to the hard one (the
/// test holds thousands of connections).
fn raise_own_open_file_limit() -> u64 {
    // SAFETY: get/setrlimit with a valid pointer to a plain C struct.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max;
        let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur
    }
}

/// Peak RSS the sink may reach in the tests below, in KiB: its code and one
/// read buffer fit many times over; a buffer or thread per connection does
/// not.
const SINK_PEAK_RSS_KIB: u64 = 64 * 1024;

#[test]
fn a_sink_holds_5000_idle_connections_on_a_few_threads_and_bounded_memory() {
    const CONNECTIONS: usize = 5000;
    let limit = raise_own_open_file_limit();
    assert!(limit > CONNECTIONS as u64 + 500, "the test needs {CONNECTIONS}+ open files; the limit is {limit}");
    let dir = crate::util::Scratch::new("sink-idle");
    let out = dir.join("received.log");
    let sink = SinkProcess::start("tcp://127.0.0.1:0", &["--max-connections", "6000", "--out", out.to_str().unwrap()]);
    let addr = sink.url.trim_start_matches("tcp://").to_owned();
    // Each connection sends one message (proof that it is served), then
    // stays open and idle.
    let mut held = Vec::with_capacity(CONNECTIONS);
    for i in 0..CONNECTIONS {
        let mut stream = std::net::TcpStream::connect(&addr).unwrap();
        stream.write_all(format!("<134>idle connection {i}\n").as_bytes()).unwrap();
        held.push(stream);
    }
    let mut lines = 0;
    crate::util::wait_until(Duration::from_secs(300), "a message through every connection", || {
        lines = std::fs::read(&out).map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count());
        lines == CONNECTIONS
    });
    let pid = sink.child.id();
    let (threads, peak_kib) = (proc_status(pid, "Threads"), proc_status(pid, "VmHWM"));
    let report = sink.stop();
    drop(held);
    assert!(threads <= 8, "{threads} threads for {CONNECTIONS} connections (a thread per connection?)");
    assert!(peak_kib < SINK_PEAK_RSS_KIB, "peak RSS {peak_kib} KiB with {CONNECTIONS} idle connections");
    assert_eq!(json_u64(&report, "connections"), CONNECTIONS as u64, "{report}");
    assert_eq!(json_u64(&report, "messages"), CONNECTIONS as u64, "{report}");
    assert_eq!(json_u64(&report, "refused_connections"), 0, "{report}");
}

#[test]
fn a_sink_receives_frames_split_at_every_byte_from_many_connections() {
    const CONNECTIONS: usize = 40;
    const MESSAGES: usize = 12;
    // Octet-counted frames, newline frames that start with digits, CRLF
    // frames: auto framing decides per frame.
    let mut streams = Vec::new();
    let mut expected = Vec::new();
    for c in 0..CONNECTIONS {
        let mut bytes = Vec::new();
        for m in 0..MESSAGES {
            let message = match m % 3 {
                0 => format!("<134>c{c} m{m} octet counted, with 12 34 digits and spaces"),
                1 => format!("2017-11-22T17:50:{m:02}.000Z c{c} m{m} newline after a bare timestamp"),
                _ => format!("<134>c{c} m{m} ends in CR LF"),
            };
            match m % 3 {
                0 => bytes.extend_from_slice(format!("{} {message}", message.len()).as_bytes()),
                1 => bytes.extend_from_slice(format!("{message}\n").as_bytes()),
                _ => bytes.extend_from_slice(format!("{message}\r\n").as_bytes()),
            }
            expected.push(message);
        }
        streams.push(bytes);
    }
    let dir = crate::util::Scratch::new("sink-split");
    let out = dir.join("received.log");
    let total = (CONNECTIONS * MESSAGES).to_string();
    let sink = SinkProcess::start(
        "tcp://127.0.0.1:0",
        &["--expect", &total, "--timeout", "300s", "--out", out.to_str().unwrap()],
    );
    let addr = sink.url.trim_start_matches("tcp://").to_owned();
    let mut connections: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let stream = std::net::TcpStream::connect(&addr).unwrap();
            stream.set_nodelay(true).unwrap();
            stream
        })
        .collect();
    // One byte at a time, round robin: every frame is cut at every byte
    // (as far as the kernel keeps the writes apart), and the sink sees
    // the connections' pieces interleaved.
    let longest = streams.iter().map(Vec::len).max().unwrap();
    for at in 0..longest {
        for (stream, bytes) in connections.iter_mut().zip(&streams) {
            if let Some(byte) = bytes.get(at) {
                stream.write_all(std::slice::from_ref(byte)).unwrap();
            }
        }
    }
    let (status, report) = sink.report(Duration::from_secs(330));
    drop(connections);
    assert!(status.success(), "sink: {report}");
    assert_eq!(json_u64(&report, "messages"), (CONNECTIONS * MESSAGES) as u64, "{report}");
    assert_eq!(json_u64(&report, "framing_errors"), 0, "{report}");
    expected.sort();
    let mut got: Vec<String> = std::fs::read_to_string(&out).unwrap().lines().map(str::to_owned).collect();
    got.sort();
    let first_difference = expected.iter().zip(&got).position(|(e, g)| e != g);
    assert!(
        got == expected,
        "received {} messages, sent {}; first difference: {:?}",
        got.len(),
        expected.len(),
        first_difference.map(|i| (&expected[i], &got[i]))
    );
}

#[test]
fn a_sink_closes_a_connection_that_floods_without_frame_boundaries() {
    let sink = SinkProcess::start("tcp://127.0.0.1:0", &["--max-message-bytes", "65536", "--expect", "1"]);
    let addr = sink.url.trim_start_matches("tcp://").to_owned();
    let mut flood = std::net::TcpStream::connect(&addr).unwrap();
    flood.set_write_timeout(Some(Duration::from_secs(120))).unwrap();
    // Far more than the sink may hold; it must hang up long before.
    const LIMIT: usize = 64 << 20;
    let chunk = vec![b'x'; 64 * 1024];
    let mut written = 0;
    let closed = loop {
        if written >= LIMIT {
            break None;
        }
        match flood.write(&chunk) {
            Ok(n) => written += n,
            Err(err) => break Some(err),
        }
    };
    let closed =
        closed.unwrap_or_else(|| panic!("the sink still reads after {written} bytes without a frame boundary"));
    assert!(
        matches!(
            closed.kind(),
            std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::BrokenPipe
                | std::io::ErrorKind::ConnectionAborted
        ),
        "closed by the sink, not timed out: {closed}"
    );
    let peak_kib = proc_status(sink.child.id(), "VmHWM");
    // The other connections are still served.
    let mut good = std::net::TcpStream::connect(&addr).unwrap();
    good.write_all(b"<134>after the flood\n").unwrap();
    let (status, report) = sink.report(Duration::from_secs(150));
    assert!(status.success(), "sink: {report}");
    assert_eq!(json_u64(&report, "messages"), 1, "{report}");
    assert_eq!(json_u64(&report, "framing_errors"), 1, "the flood is one counted error: {report}");
    assert!(peak_kib < SINK_PEAK_RSS_KIB, "peak RSS {peak_kib} KiB while flooded");
}

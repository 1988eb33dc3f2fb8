//! Sending over real sockets on 127.0.0.1: `cefwire replay`/`convert --to`
//! into `cefwire sink` (or a test listener) over TCP, UDP and TLS.
//!
//! Every test has bounded counts and time limits and checks content, not
//! speed.

use crate::util::ports;
use crate::util::sink::SinkProcess;
use crate::util::tls::test_pki;
use crate::util::{Scratch, assert_same_file, cefwire, json_u64 as field, run_ok, signal, wait_or_kill, wait_until};
use std::fs;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

fn temp_dir(name: &str) -> Scratch {
    Scratch::new(&format!("send-{name}"))
}

/// `count` generated records, and the CEF lines `convert` makes of them with
/// the header the sender uses (PRI and a fixed hostname).
fn records(dir: &Path, count: u64) -> (PathBuf, PathBuf) {
    let ndjson = dir.join("records.ndjson");
    let cef = dir.join("expected.cef");
    run_ok(cefwire().args(["generate", "--kind", "mixed", "--count", &count.to_string(), "-o"]).arg(&ndjson));
    run_ok(cefwire().arg("convert").arg(&ndjson).args(["--pri", "--hostname", "testhost", "-q", "-o"]).arg(&cef));
    (ndjson, cef)
}

fn stdout_of(child: &mut Child) -> String {
    let mut text = String::new();
    child.stdout.take().unwrap().read_to_string(&mut text).unwrap();
    text
}

fn replay(input: &Path, to: &str, extra: &[&str]) -> (ExitStatus, String) {
    let mut child = cefwire()
        .arg("replay")
        .arg(input)
        .args(["--to", to, "--hostname", "testhost", "--report", "json", "--no-progress"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let status = wait_or_kill(&mut child, Duration::from_secs(300), "cefwire replay");
    (status, stdout_of(&mut child))
}

#[test]
fn tcp_replay_arrives_exactly_once_and_in_order() {
    let dir = temp_dir("tcp");
    let (ndjson, expected) = records(&dir, 20_000);
    let out = dir.join("received.cef");
    let sink = SinkProcess::start(
        "tcp://127.0.0.1:0",
        &["--expect", "20000", "--timeout", "120s", "--out", out.to_str().unwrap()],
    );
    let (status, report) = replay(&ndjson, &sink.url, &[]);
    assert!(status.success(), "replay: {report}");
    assert_eq!(field(&report, "messages_written"), 20_000, "{report}");
    let (status, received) = sink.report(Duration::from_secs(150));
    assert!(status.success(), "sink: {received}");
    assert_eq!(field(&received, "messages"), 20_000);
    assert_eq!(field(&received, "framing_errors"), 0);
    assert_same_file("received", &expected, &out);
}

#[test]
fn convert_to_sends_instead_of_writing_a_file() {
    let dir = temp_dir("convert-to");
    let (ndjson, expected) = records(&dir, 3_000);
    let out = dir.join("received.cef");
    let sink = SinkProcess::start(
        "tcp://127.0.0.1:0",
        &["--expect", "3000", "--timeout", "120s", "--out", out.to_str().unwrap()],
    );
    run_ok(cefwire().arg("convert").arg(&ndjson).args(["--hostname", "testhost", "-q", "--to", &sink.url]));
    let (status, _) = sink.report(Duration::from_secs(150));
    assert!(status.success());
    assert_same_file("received", &expected, &out);
}

#[test]
fn tls_with_a_client_certificate() {
    let dir = temp_dir("mtls");
    let (_, expected) = records(&dir, 1_000);
    let pki = test_pki(&dir);
    let (ca, cert, key, client_cert, client_key) =
        (pki.ca, pki.server_cert, pki.server_key, pki.client_cert, pki.client_key);
    let path = |p: &PathBuf| p.to_str().unwrap().to_owned();
    let sink_args = |expect: &str| {
        vec![
            "--cert".to_owned(),
            path(&cert),
            "--key".to_owned(),
            path(&key),
            "--client-ca".to_owned(),
            path(&ca),
            "--expect".to_owned(),
            expect.to_owned(),
            "--timeout".to_owned(),
            "120s".to_owned(),
        ]
    };
    let args = sink_args("1000");
    let sink = SinkProcess::start("tls://127.0.0.1:0", &args.iter().map(String::as_str).collect::<Vec<_>>());
    let to = format!("tls://localhost:{}", sink.port());
    let (status, report) = replay(
        &expected,
        &to,
        &["--ca", &path(&ca), "--client-cert", &path(&client_cert), "--client-key", &path(&client_key)],
    );
    assert!(status.success(), "{report}");
    let (status, received) = sink.report(Duration::from_secs(150));
    assert!(status.success(), "{received}");
    assert_eq!(field(&received, "messages"), 1000);

    // Without a client certificate the receiver refuses the session and
    // takes nothing. In TLS 1.3 a client learns that only after its part of
    // the handshake, when it has already written: the report must say the
    // session broke and that those messages may be lost.
    let args = sink_args("1");
    let sink = SinkProcess::start("tls://127.0.0.1:0", &args.iter().map(String::as_str).collect::<Vec<_>>());
    let to = format!("tls://localhost:{}", sink.port());
    let (_, report) = replay(&expected, &to, &["--ca", &path(&ca), "--give-up-after", "1s", "--drain-timeout", "1s"]);
    assert!(field(&report, "errors") >= 1, "{report}");
    assert!(field(&report, "possibly_lost") > 0, "{report}");
    let received = sink.stop();
    assert_eq!(field(&received, "messages"), 0);
}

#[test]
fn tls_replay_arrives_exactly_once_and_in_order() {
    let dir = temp_dir("tls");
    let (ndjson, expected) = records(&dir, 10_000);
    let pki = test_pki(&dir);
    let (ca, cert, key) = (pki.ca, pki.server_cert, pki.server_key);
    let out = dir.join("received.cef");
    let sink = SinkProcess::start(
        "tls://127.0.0.1:0",
        &[
            "--cert",
            cert.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
            "--framing",
            "octet",
            "--expect",
            "10000",
            "--timeout",
            "60s",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    let to = format!("tls://localhost:{}", sink.port());
    let (status, report) = replay(&ndjson, &to, &["--ca", ca.to_str().unwrap()]);
    assert!(status.success(), "replay: {report}");
    let (status, received) = sink.report(Duration::from_secs(150));
    assert!(status.success(), "sink: {received}");
    assert_eq!(field(&received, "framing_errors"), 0);
    assert_same_file("received", &expected, &out);

    // A server the CA did not sign is refused, and the run gives up.
    let other_dir = temp_dir("tls-other");
    let other_ca = test_pki(&other_dir).ca;
    let sink = SinkProcess::start(
        "tls://127.0.0.1:0",
        &["--cert", cert.to_str().unwrap(), "--key", key.to_str().unwrap(), "--timeout", "120s"],
    );
    let to = format!("tls://localhost:{}", sink.port());
    let (status, report) =
        replay(&expected, &to, &["--ca", other_ca.to_str().unwrap(), "--give-up-after", "1s", "--drain-timeout", "1s"]);
    assert!(!status.success(), "{report}");
    assert_eq!(field(&report, "messages_written"), 0, "{report}");
    assert!(report.contains("certificate"), "{report}");
    let received = sink.stop();
    assert_eq!(field(&received, "messages"), 0);
}

#[test]
fn udp_replay_at_a_paced_rate_measures_loss() {
    let dir = temp_dir("udp");
    let (_, expected) = records(&dir, 5_000);
    let sink = SinkProcess::start("udp://127.0.0.1:0", &["--expect", "5000", "--timeout", "120s"]);
    let started = Instant::now();
    let (status, report) = replay(&expected, &sink.url, &["--rate", "5000"]);
    let took = started.elapsed();
    assert!(status.success(), "replay: {report}");
    assert_eq!(field(&report, "messages_written"), 5_000);
    // Paced, not a burst: 5000 messages at 5000/s take about a second.
    assert!(took >= Duration::from_millis(800), "took {took:?}");
    let (_, received) = sink.report(Duration::from_secs(150));
    let arrived = field(&received, "messages");
    eprintln!("UDP at 5000 msgs/s: sent 5000, received {arrived}, lost {}", 5000 - arrived);
    assert!(arrived <= 5000);
    // Bytes are what went on the wire: the payloads, without the newline a
    // datagram does not carry (before: one byte a message too many).
    let payload_bytes: u64 = fs::read(&expected).unwrap().split(|&b| b == b'\n').map(|l| l.len() as u64).sum();
    assert_eq!(field(&report, "bytes_written"), payload_bytes, "{report}");
    if arrived == 5000 {
        assert_eq!(field(&received, "bytes"), payload_bytes, "the sink counted the same bytes: {received}");
    }
    // The sink's seconds add up to what it received, the last partial one
    // included (before: it was left out, and a short run had none).
    let seconds = received.split("\"per_second\":[").nth(1).unwrap().split(']').next().unwrap();
    let total: u64 = seconds.split(',').filter(|n| !n.is_empty()).map(|n| n.parse::<u64>().unwrap()).sum();
    assert_eq!(total, arrived, "per_second: [{seconds}]");
    // UDP loss on a loaded machine depends on the receiver's scheduling, not
    // on cefwire; the bound only catches a sender that sends a fraction.
    assert!(arrived >= 2500, "lost more than half on loopback: {received}");
}

#[test]
fn fan_out_reaches_every_destination_and_failover_skips_a_dead_one() {
    let dir = temp_dir("fanout");
    let (_, expected) = records(&dir, 2_000);
    let a = SinkProcess::start("tcp://127.0.0.1:0", &["--expect", "2000", "--timeout", "120s"]);
    let b = SinkProcess::start("udp://127.0.0.1:0", &["--expect", "2000", "--timeout", "120s"]);
    let (status, report) = replay(&expected, &a.url, &["--to", &b.url]);
    assert!(status.success(), "{report}");
    let (ra, rb) = (a.report(Duration::from_secs(150)).1, b.report(Duration::from_secs(150)).1);
    assert_eq!(field(&ra, "messages"), 2000);
    assert_eq!(field(&rb, "messages"), 2000);
    let hash = |r: &str| r.split("\"content_hash\":\"").nth(1).unwrap()[..16].to_owned();
    assert_eq!(hash(&ra), hash(&rb), "both got the same messages");

    // Nothing listens on a reserved port: failover uses the second.
    let reserved = ports::reserve();
    let closed = reserved.port();
    let c = SinkProcess::start("tcp://127.0.0.1:0", &["--expect", "2000", "--timeout", "120s"]);
    let dead = format!("tcp://127.0.0.1:{closed}");
    let (status, report) = replay(&expected, &dead, &["--to", &c.url, "--failover"]);
    assert!(status.success(), "{report}");
    assert_eq!(field(&c.report(Duration::from_secs(150)).1, "messages"), 2000);
}

/// Index of `needle` among `lines`.
fn position(lines: &[&[u8]], needle: &[u8]) -> Option<usize> {
    lines.iter().position(|l| *l == needle)
}

#[test]
fn receiver_killed_and_restarted_mid_stream() {
    let dir = temp_dir("restart");
    let (_, expected) = records(&dir, 60_000);
    let (out1, out2) = (dir.join("first.cef"), dir.join("second.cef"));
    // A reserved port: the second receiver comes back on the same one.
    let reserved = ports::reserve();
    let url = format!("tcp://127.0.0.1:{}", reserved.port());
    let first = SinkProcess::start(&url, &["--out", out1.to_str().unwrap()]);
    // About three seconds of sending.
    let mut sender = cefwire()
        .arg("replay")
        .arg(&expected)
        .args(["--to", &url, "--rate", "20000", "--report", "json", "--no-progress", "--give-up-after", "120s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = |path: &Path| fs::read(path).map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count());
    wait_until(Duration::from_secs(60), "the first receiver to get 2000 messages", || lines(&out1) >= 2000);
    first.kill();
    let second = SinkProcess::start(&url, &["--out", out2.to_str().unwrap()]);
    let status = wait_or_kill(&mut sender, Duration::from_secs(300), "cefwire replay");
    let report = stdout_of(&mut sender);
    // Sent in order: the second receiver has everything once it has the
    // last message.
    let last = fs::read(&expected).unwrap().split(|&b| b == b'\n').rfind(|l| !l.is_empty()).unwrap().to_vec();
    wait_until(Duration::from_secs(60), "the last message at the second receiver", || {
        let got = fs::read(&out2).unwrap_or_default();
        got.split(|&b| b == b'\n').rfind(|l| !l.is_empty()) == Some(&last[..])
    });
    second.stop();
    assert!(status.success(), "{report}");
    assert!(field(&report, "reconnects") >= 1, "{report}");
    assert_eq!(field(&report, "messages_written"), 60_000, "{report}");

    let want = fs::read(&expected).unwrap();
    let want: Vec<&[u8]> = want.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect();
    let got1 = fs::read(&out1).unwrap();
    let got2 = fs::read(&out2).unwrap();
    // The first receiver was SIGKILLed: its file can end inside a line it
    // was writing (its own buffered write cut short), which says nothing
    // about the sender. Only its whole lines count.
    let whole = got1.iter().rposition(|&b| b == b'\n').map_or(0, |end| end + 1);
    let got1: Vec<&[u8]> = got1[..whole].split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect();
    let got2: Vec<&[u8]> = got2.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect();
    // The first receiver got a prefix, the second a suffix: in order, no
    // duplicates, the gap between them is what was lost.
    assert_eq!(got1[..], want[..got1.len()], "first receiver: a prefix, in order");
    assert!(!got2.is_empty(), "the sender continued after the restart");
    let resumed = position(&want, got2[0]).expect("second receiver's first message was sent");
    assert_eq!(got2[..], want[resumed..], "second receiver: the rest, in order");
    assert!(resumed >= got1.len(), "no duplicates");
    let lost = (resumed - got1.len()) as u64;
    let estimate = field(&report, "possibly_lost");
    eprintln!("receiver restart: lost {lost}, sender's estimate of possible loss {estimate}");
    assert!(estimate >= lost, "the estimate ({estimate}) must cover the actual loss ({lost})");
    assert!(estimate > 0, "a broken connection always risks loss: {report}");
}

/// CPU time (user + system) of a process, from /proc.
fn cpu_time(pid: u32) -> Duration {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap().split_whitespace().collect();
    // utime and stime are fields 14 and 15 (1-based) of the whole line.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

fn resident_kib(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn stalled_receiver_gets_backpressure_bounded_memory_and_no_busy_loop() {
    let dir = temp_dir("stall");
    let (_, expected) = records(&dir, 20_000);
    stall_and_stop(&expected, &expected, &[]);
}

/// The same with NDJSON converted on two threads: the reader and the
/// workers stop with the writer, memory stays bounded, SIGTERM ends it.
#[test]
fn a_stalled_receiver_stops_parallel_conversion_too() {
    let dir = temp_dir("stall-parallel");
    let (ndjson, expected) = records(&dir, 20_000);
    stall_and_stop(&ndjson, &expected, &["--threads", "2"]);
}

/// Replays `input` (`--loop 1000`) into a peer that accepts and never
/// reads; checks that the sender blocks without spinning or growing, and
/// that SIGTERM ends it with a report. `expected` holds the input's
/// messages as rendered lines (for the size of the shortest).
fn stall_and_stop(input: &Path, expected: &Path, extra: &[&str]) {
    if !Path::new("/proc/self/stat").exists() {
        eprintln!("skipped: needs /proc");
        return;
    }
    // Accepts and never reads.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let to = format!("tcp://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let mut sender = cefwire()
        .arg("replay")
        .arg(input)
        .args(["--to", &to, "--loop", "1000", "--report", "json", "--no-progress", "--drain-timeout", "1s"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (_connection, _) = listener.accept().unwrap();
    let pid = sender.id();
    // Blocked once its buffers are full: wait until its CPU time stands
    // (nearly) still for a second — a sender that spins never gets there.
    let mut last = cpu_time(pid);
    wait_until(Duration::from_secs(120), "the sender to block on the stalled receiver", || {
        std::thread::sleep(Duration::from_secs(1));
        let now = cpu_time(pid);
        let settled = now - last < Duration::from_millis(100);
        last = now;
        settled
    });
    let (cpu_before, rss_before) = (cpu_time(pid), resident_kib(pid));
    std::thread::sleep(Duration::from_millis(2000));
    let (cpu_after, rss_after) = (cpu_time(pid), resident_kib(pid));
    let busy = cpu_after - cpu_before;
    eprintln!("stalled peer: {busy:?} CPU in 2 s, RSS {rss_before} → {rss_after} KiB");
    assert!(busy < Duration::from_millis(300), "sender spins while blocked: {busy:?} CPU in 2 s");
    assert!(rss_after < 200 * 1024, "memory must stay bounded: {rss_after} KiB");
    assert!(rss_after <= rss_before + 8 * 1024, "memory grows while blocked: {rss_before} → {rss_after} KiB");
    // A signal ends it promptly, with a report, however dead the peer is.
    let stopped = Instant::now();
    signal(&sender, libc::SIGTERM);
    let status = wait_or_kill(&mut sender, Duration::from_secs(60), "replay after SIGTERM");
    let report = stdout_of(&mut sender);
    eprintln!("stopped in {:?}: {report}", stopped.elapsed());
    assert!(!status.success(), "unsent messages make the exit status a failure");
    assert!(field(&report, "messages_unsent") > 0, "{report}");
    assert!(report.contains("\"interrupted\":true"), "{report}");
    // A stop is not a failure of the run (it is told apart from errors).
    assert!(report.contains("\"failure\":null"), "{report}");
    // Reading stopped when the writer blocked: what was taken in but not
    // written fits in the batch pool (32 × 256 KiB by default), counted
    // in the shortest messages of the input.
    let shortest =
        fs::read(expected).unwrap().split(|&b| b == b'\n').map(<[u8]>::len).filter(|&n| n > 0).min().unwrap();
    let pool_messages = (32 * 256 * 1024 / (shortest + 1)) as u64;
    let (accepted, written) = (field(&report, "messages_accepted"), field(&report, "messages_written"));
    assert_eq!(
        field(&report, "converted") + field(&report, "passed_through"),
        accepted,
        "every message the sender took in is counted as converted or passed through: {report}"
    );
    assert!(
        accepted - written <= pool_messages,
        "{accepted} messages taken in, {written} written: more than the pool holds ({pool_messages})"
    );
    assert!(
        field(&report, "bytes_written") < 256 << 20,
        "the kernel buffers of one stalled connection hold far less than 256 MiB: {report}"
    );
}

#[test]
fn several_connections_deliver_everything_once() {
    let dir = temp_dir("connections");
    let (_, expected) = records(&dir, 6_000);
    let single = SinkProcess::start("tcp://127.0.0.1:0", &["--expect", "6000", "--timeout", "120s"]);
    let (status, report) = replay(&expected, &single.url, &[]);
    assert!(status.success(), "{report}");
    let single = single.report(Duration::from_secs(150)).1;
    let several = SinkProcess::start("tcp://127.0.0.1:0", &["--expect", "6000", "--timeout", "120s"]);
    let (status, report) = replay(&expected, &several.url, &["--connections", "3", "--batch-kib", "16"]);
    assert!(status.success(), "{report}");
    assert_eq!(field(&report, "connects"), 3, "{report}");
    let several = several.report(Duration::from_secs(150)).1;
    assert_eq!(field(&several, "connections"), 3);
    assert_eq!(field(&several, "messages"), 6000);
    let hash = |r: &str| r.split("\"content_hash\":\"").nth(1).unwrap()[..16].to_owned();
    assert_eq!(hash(&single), hash(&several), "the same messages, each once");
}

#[test]
fn time_warp_restamps_header_times_and_nothing_else() {
    let dir = temp_dir("time-warp");
    let (_, expected) = records(&dir, 500);
    let out = dir.join("received.cef");
    let sink = SinkProcess::start(
        "tcp://127.0.0.1:0",
        &["--expect", "500", "--timeout", "120s", "--out", out.to_str().unwrap()],
    );
    let before = cefwire::time::now_ms();
    let (status, report) = replay(&expected, &sink.url, &["--time-warp", "now"]);
    let after = cefwire::time::now_ms();
    assert!(status.success(), "{report}");
    assert_eq!(field(&report, "not_restamped"), 0, "{report}");
    let (status, received) = sink.report(Duration::from_secs(150));
    assert!(status.success(), "{received}");
    let (got, want) = (fs::read_to_string(&out).unwrap(), fs::read_to_string(&expected).unwrap());
    assert_eq!(got.lines().count(), 500);
    // `<134>` then a 24-byte RFC 3339 time: only those bytes change, to
    // the time of sending — between the start and the end of the run (to
    // the millisecond the header holds).
    for (g, w) in got.lines().zip(want.lines()) {
        assert_eq!(g.len(), w.len());
        assert_eq!((&g[..5], &g[29..]), (&w[..5], &w[29..]));
        let stamped = cefwire::time::parse_time_ms(&g[5..29]).unwrap_or_else(|e| panic!("{e}: {g}"));
        assert!(
            (before - 1..=after + 1).contains(&stamped),
            "re-stamped to {} but the run lasted from {before} to {after}: {g}",
            &g[5..29]
        );
        assert_ne!(&g[5..29], &w[5..29], "re-stamped: {g}");
    }
}

#[test]
fn loop_and_duration_bound_the_run() {
    let dir = temp_dir("loop");
    let (_, expected) = records(&dir, 300);
    let sink = SinkProcess::start("tcp://127.0.0.1:0", &["--expect", "900", "--timeout", "120s"]);
    let (status, report) = replay(&expected, &sink.url, &["--loop", "3"]);
    assert!(status.success(), "{report}");
    assert_eq!(field(&report, "messages_written"), 900);
    assert_eq!(field(&sink.report(Duration::from_secs(150)).1, "messages"), 900);

    // Without --loop, --duration loops until time is up; paced, so bounded.
    let out = dir.join("received.cef");
    let sink = SinkProcess::start("tcp://127.0.0.1:0", &["--timeout", "120s", "--out", out.to_str().unwrap()]);
    let (status, report) = replay(&expected, &sink.url, &["--duration", "3s", "--rate", "500"]);
    assert!(status.success(), "{report}");
    let sent = field(&report, "messages_written");
    // The pacer never runs ahead of its schedule (the first message goes
    // at once): at most 3 s × 500 + 1. More than the 300 records of the
    // input: it looped. (No lower bound near 1,500: a loaded machine can
    // stall the process at the end of the 3 s, and this is no timing test.)
    assert!((301..=1501).contains(&sent), "3 s at 500/s of 300 records sent {sent}");
    wait_until(Duration::from_secs(60), "the sink to receive every message sent", || {
        fs::read(&out).map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count() as u64) >= sent
    });
    assert_eq!(field(&sink.stop(), "messages"), sent);
}

/// Sets SO_LINGER 0: closing then discards unread data and sends a reset,
/// like a receiver that crashes with a full buffer.
fn close_abruptly(stream: std::net::TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: setting a plain struct option on a valid socket.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    drop(stream);
}

#[test]
fn a_dying_receiver_loses_at_most_what_it_acknowledged_and_never_read() {
    use cefwire::records::MessageSink;
    use cefwire::send::{Destination, SendConfig, SyslogSender};
    use std::io::Read as _;

    const MESSAGES: usize = 100_000;
    let line = |i: usize| {
        format!(
            "<134>2026-01-01T00:00:00.000Z host CEF:0|MCAS|SIEM_Agent|1|SIG|Name|0|externalId={i:07} msg={}",
            "x".repeat(300)
        )
    };
    // A reserved port: the replacement receiver binds the same one.
    let reserved = ports::reserve();
    let listener = TcpListener::bind(("127.0.0.1", reserved.port())).unwrap();
    let addr = listener.local_addr().unwrap();

    // The first receiver reads slowly, then dies with data unread.
    let first = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut got = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        while got.len() < 4 << 20 {
            let n = stream.read(&mut buf).unwrap();
            got.extend_from_slice(&buf[..n]);
            std::thread::sleep(Duration::from_millis(2));
        }
        close_abruptly(stream);
        drop(listener);
        got
    });
    let mut config = SendConfig::new(vec![Destination::parse(&format!("tcp://{addr}")).unwrap()]);
    config.backoff.initial = Duration::from_millis(20);
    let mut sender = SyslogSender::start(&config).unwrap();
    let producer = std::thread::spawn(move || {
        for i in 0..MESSAGES {
            let buffer = sender.buffer();
            let start = buffer.len();
            buffer.extend_from_slice(line(i).as_bytes());
            sender.commit(start).unwrap();
        }
        sender.finish().unwrap()
    });
    let got1 = first.join().unwrap();
    // The replacement receiver, on the same port, reads to the end.
    let listener = TcpListener::bind(addr).unwrap();
    let (mut stream, _) = listener.accept().unwrap();
    let mut got2 = Vec::new();
    stream.read_to_end(&mut got2).unwrap();
    let report = producer.join().unwrap();

    let complete = |bytes: &[u8]| -> Vec<String> {
        let end = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
        String::from_utf8_lossy(&bytes[..end]).lines().map(str::to_owned).collect()
    };
    let (lines1, lines2) = (complete(&got1), complete(&got2));
    assert!(!lines2.is_empty(), "sending continued after the reconnect");
    let id = |l: &str| l.split("externalId=").nth(1).unwrap()[..7].parse::<usize>().unwrap();
    for (i, l) in lines1.iter().enumerate() {
        assert_eq!(id(l), i, "first receiver: in order from the start");
    }
    let resumed = id(&lines2[0]);
    for (k, l) in lines2.iter().enumerate() {
        assert_eq!(id(l), resumed + k, "second receiver: in order, no gaps");
    }
    assert_eq!(resumed + lines2.len(), MESSAGES, "everything after the gap arrived");
    assert!(resumed >= lines1.len(), "no duplicates");
    let lost = (resumed - lines1.len()) as u64;
    eprintln!(
        "receiver died with unread data: lost {lost}, estimate {}, reconnects {}",
        report.possibly_lost, report.reconnects
    );
    assert!(report.reconnects >= 1);
    assert!(report.possibly_lost >= lost, "estimate {} must cover the loss {lost}", report.possibly_lost);
    // Only what the receiver's TCP acknowledged and it never read can be
    // lost: a slow reader's buffer, far less than the megabytes our kernel
    // held unacknowledged when it died (those are written again).
    let line_bytes = line(0).len() as u64 + 1;
    assert!(
        lost * line_bytes <= 1 << 20,
        "lost {lost} messages ({} bytes): more than the receiver could have held unread",
        lost * line_bytes
    );
    assert_eq!(report.messages_written, MESSAGES as u64);
}

#[test]
fn rendered_lines_pass_through_byte_for_byte_whatever_their_line_ends() {
    let dir = temp_dir("passthrough");
    // Plain lines (the block fast path), a CRLF line and an empty line
    // (the line-by-line fallback), and a last line without a newline.
    let mut input = String::new();
    for i in 0..3000 {
        input.push_str(&format!(
            "<134>2026-01-01T00:00:00.000Z h CEF:0|MCAS|SIEM_Agent|1|S|N|0|externalId={i} msg=a\\=b\tc\n"
        ));
    }
    input.push_str("<134>crlf line\r\n\n<134>after blank\n");
    for i in 0..3000 {
        input.push_str(&format!("<134>tail {i}\n"));
    }
    input.push_str("<134>no newline at the end");
    let file = dir.join("lines.cef");
    fs::write(&file, &input).unwrap();
    let want: String = input.replace("\r\n", "\n").replace("\n\n", "\n") + "\n";
    let out = dir.join("received.cef");
    let sink = SinkProcess::start(
        "tcp://127.0.0.1:0",
        &["--expect", "6003", "--timeout", "120s", "--out", out.to_str().unwrap()],
    );
    let (status, report) = replay(&file, &sink.url, &[]);
    assert!(status.success(), "{report}");
    assert_eq!(field(&report, "passed_through"), 6003, "{report}");
    sink.report(Duration::from_secs(150));
    assert_eq!(fs::read_to_string(&out).unwrap(), want);
}

#[test]
fn oversize_messages_are_cut_at_a_character_boundary_and_counted() {
    let dir = temp_dir("truncate");
    let file = dir.join("lines.cef");
    // 18 bytes of ASCII then two-byte characters: a cut at 41 bytes would
    // split one, so 40 are kept; a short line is left alone.
    let long = format!("<134>CEF:0|MCAS|x|{}", "é".repeat(40));
    fs::write(&file, format!("{long}\n<134>short\n{long}\n")).unwrap();
    let out = dir.join("received.cef");
    let sink = SinkProcess::start(
        "udp://127.0.0.1:0",
        &["--expect", "3", "--timeout", "120s", "--out", out.to_str().unwrap()],
    );
    let (status, report) = replay(&file, &sink.url, &["--max-message-bytes", "41"]);
    assert!(status.success(), "{report}");
    assert_eq!(field(&report, "truncated"), 2, "{report}");
    sink.report(Duration::from_secs(150));
    let cut = &long[..40];
    let mut got: Vec<String> = fs::read_to_string(&out).unwrap().lines().map(str::to_owned).collect();
    got.sort();
    assert_eq!(got, vec![cut.to_owned(), cut.to_owned(), "<134>short".to_owned()]);
}

#[test]
fn failover_goes_back_to_the_first_destination_once_it_is_up() {
    use cefwire::records::MessageSink;
    use cefwire::send::{DeliveryMode, Destination, SendConfig, SyslogSender};
    use std::io::Read as _;

    // The first destination is down at the start (a reserved port nobody
    // listens on yet); the second is up.
    let reserved = ports::reserve();
    let first_port = reserved.port();
    let second = TcpListener::bind("127.0.0.1:0").unwrap();
    let second_addr = second.local_addr().unwrap();
    let first_connected = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let count_lines = |listener: TcpListener, connected: std::sync::Arc<std::sync::atomic::AtomicBool>| {
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            connected.store(true, std::sync::atomic::Ordering::SeqCst);
            let mut all = Vec::new();
            stream.read_to_end(&mut all).unwrap();
            all.iter().filter(|&&b| b == b'\n').count()
        })
    };
    let second_lines = count_lines(second, Default::default());
    let mut config = SendConfig::new(vec![
        Destination::parse(&format!("tcp://127.0.0.1:{first_port}")).unwrap(),
        Destination::parse(&format!("tcp://{second_addr}")).unwrap(),
    ]);
    config.mode = DeliveryMode::Failover;
    config.failback_after = Duration::from_millis(500);
    let mut sender = SyslogSender::start(&config).unwrap();
    let send = |sender: &mut SyslogSender, n: usize| {
        for i in 0..n {
            let buffer = sender.buffer();
            let start = buffer.len();
            buffer.extend_from_slice(format!("<134>message {i}").as_bytes());
            sender.commit(start).unwrap();
        }
        sender.flush(Duration::from_secs(60)).unwrap();
    };
    send(&mut sender, 100);
    // Now the first comes up; after failback_after the sender returns to
    // it, at the latest with the next message it sends.
    let first = TcpListener::bind(("127.0.0.1", first_port)).unwrap();
    let first_lines = count_lines(first, first_connected.clone());
    let mut probes = 0;
    wait_until(Duration::from_secs(60), "the sender to fail back to the first destination", || {
        std::thread::sleep(Duration::from_millis(100));
        send(&mut sender, 1);
        probes += 1;
        first_connected.load(std::sync::atomic::Ordering::SeqCst)
    });
    send(&mut sender, 100);
    let report = sender.finish().unwrap();
    let (to_first, to_second) = (first_lines.join().unwrap(), second_lines.join().unwrap());
    assert_eq!(to_first + to_second, 200 + probes, "every message once: {report:?}");
    assert!(to_second >= 100, "the first messages went to the second destination");
    assert!(to_first >= 100, "after failing back, the first destination got the rest");
}

/// `sink --expect N --timeout T` exits 5 when fewer than N arrive in time
/// (README, exit codes), and 0 when they do.
#[test]
fn sink_exits_5_when_the_expected_messages_do_not_arrive_in_time() {
    let dir = temp_dir("exit5");
    let file = dir.join("three.cef");
    fs::write(&file, "<134>one\n<134>two\n<134>three\n").unwrap();
    let sink = SinkProcess::start("tcp://127.0.0.1:0", &["--expect", "4", "--timeout", "10s"]);
    let (status, report) = replay(&file, &sink.url, &[]);
    assert!(status.success(), "{report}");
    let (status, received) = sink.report(Duration::from_secs(150));
    assert_eq!(status.code(), Some(5), "{received}");
    assert_eq!(field(&received, "messages"), 3, "{received}");
    let sink = SinkProcess::start("tcp://127.0.0.1:0", &["--expect", "3", "--timeout", "120s"]);
    let (status, report) = replay(&file, &sink.url, &[]);
    assert!(status.success(), "{report}");
    let (status, received) = sink.report(Duration::from_secs(150));
    assert_eq!(status.code(), Some(0), "{received}");
}

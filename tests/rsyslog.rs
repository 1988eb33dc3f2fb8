//! End to end against a real rsyslog: `cefwire replay` sends 1,000,000
//! generated records over TCP to an rsyslogd started here (config in
//! `tests/rsyslog/cef.conf`, a free port, raw-message template), and its
//! output file must hold every message byte for byte as `cefwire convert`
//! renders the same input (rsyslog writes the message as received, header
//! included). Over UDP at a paced rate, the loss is measured and printed.
//! Skips with a note when rsyslogd is not installed, unless
//! `CEFWIRE_REQUIRE_RSYSLOG=1` (then it fails).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const RSYSLOGD: &str = "/usr/sbin/rsyslogd";
const RECORDS: u64 = 1_000_000;

fn cefwire() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cefwire"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Rsyslog {
    child: Child,
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start_rsyslog(dir: &Path, port: u16, out: &Path) -> Rsyslog {
    let template = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/rsyslog/cef.conf")).unwrap();
    let config = template
        .replace("@WORKDIR@", dir.to_str().unwrap())
        .replace("@PORT@", &port.to_string())
        .replace("@OUT@", out.to_str().unwrap())
        .replace("@UDPPORT@", &free_udp_port().to_string())
        .replace("@UDPOUT@", dir.join("received-udp.log").to_str().unwrap());
    let config_path = dir.join("rsyslog.conf");
    std::fs::write(&config_path, config).unwrap();
    let child = Command::new(RSYSLOGD)
        .arg("-n")
        .arg("-f")
        .arg(&config_path)
        .arg("-i")
        .arg(dir.join("rsyslogd.pid"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let rsyslog = Rsyslog { child };
    // Ready when the port accepts connections.
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "rsyslogd did not start listening on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    rsyslog
}

/// Whether rsyslogd is there; when it is not, a skip with a note, or a
/// failure with `CEFWIRE_REQUIRE_RSYSLOG=1`.
fn rsyslog_or_skip() -> bool {
    if Path::new(RSYSLOGD).exists() {
        return true;
    }
    assert!(
        std::env::var("CEFWIRE_REQUIRE_RSYSLOG").as_deref() != Ok("1"),
        "{RSYSLOGD} is not installed and CEFWIRE_REQUIRE_RSYSLOG=1"
    );
    eprintln!(
        "skipped: {RSYSLOGD} is not installed (apt-get install rsyslog; CEFWIRE_REQUIRE_RSYSLOG=1 makes this fail)"
    );
    false
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn one_million_records_through_rsyslog_arrive_byte_identical() {
    if !rsyslog_or_skip() {
        return;
    }
    let started = Instant::now();
    let dir: PathBuf = std::env::temp_dir().join(format!("cefwire-rsyslog-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (ndjson, expected, out) = (dir.join("records.ndjson.zst"), dir.join("expected.cef"), dir.join("received.log"));
    run_ok(cefwire().args(["generate", "--kind", "mixed", "--count", &RECORDS.to_string(), "-o"]).arg(&ndjson));

    let port = free_port();
    let rsyslog = start_rsyslog(&dir, port, &out);
    // The reference rendering runs beside the replay (2 cores).
    let mut reference = cefwire()
        .arg("convert")
        .arg(&ndjson)
        .args(["--pri", "--hostname", "e2e-host", "-q", "-o"])
        .arg(&expected)
        .spawn()
        .unwrap();
    let report = run_ok(cefwire().arg("replay").arg(&ndjson).args([
        "--to",
        &format!("tcp://127.0.0.1:{port}"),
        "--hostname",
        "e2e-host",
        "--report",
        "json",
        "--no-progress",
    ]));
    assert!(reference.wait().unwrap().success());
    assert!(report.contains(&format!("\"messages_written\":{RECORDS},")), "{report}");

    // rsyslog writes asynchronously to the sender: wait for all bytes.
    let want_len = std::fs::metadata(&expected).unwrap().len();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = std::fs::metadata(&out).map_or(0, |m| m.len());
        if got >= want_len {
            break;
        }
        if Instant::now() >= deadline {
            let mut rsyslog = rsyslog;
            let _ = rsyslog.child.kill();
            let mut errors = String::new();
            if let Some(mut stderr) = rsyslog.child.stderr.take() {
                let _ = stderr.read_to_string(&mut errors);
            }
            panic!("rsyslog wrote {got} of {want_len} bytes within 60 s; its stderr:\n{errors}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(rsyslog);

    let got = std::fs::read(&out).unwrap();
    let want = std::fs::read(&expected).unwrap();
    let lines = got.iter().filter(|&&b| b == b'\n').count();
    assert_eq!(lines as u64, RECORDS, "rsyslog's output holds every message");
    if got != want {
        let first = got.split(|&b| b == b'\n').zip(want.split(|&b| b == b'\n')).position(|(a, b)| a != b);
        panic!("rsyslog's output differs from `cefwire convert`, first at line {first:?}");
    }
    eprintln!("1,000,000 records through rsyslog, byte-identical, in {:?}", started.elapsed());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Reads the UDP port the config was given.
fn udp_port_of(dir: &Path) -> u16 {
    let config = std::fs::read_to_string(dir.join("rsyslog.conf")).unwrap();
    let line = config.lines().find(|l| l.contains("imudp\" address")).unwrap();
    let at = line.find("port=\"").unwrap() + 6;
    line[at..].split('"').next().unwrap().parse().unwrap()
}

#[test]
fn udp_through_rsyslog_at_a_paced_rate_reports_measured_loss() {
    if !rsyslog_or_skip() {
        return;
    }
    const MESSAGES: u64 = 20_000;
    let dir: PathBuf = std::env::temp_dir().join(format!("cefwire-rsyslog-udp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let ndjson = dir.join("records.ndjson");
    run_ok(cefwire().args(["generate", "--kind", "mixed", "--count", &MESSAGES.to_string(), "-o"]).arg(&ndjson));
    let rsyslog = start_rsyslog(&dir, free_port(), &dir.join("received.log"));
    let udp_port = udp_port_of(&dir);
    let out = dir.join("received-udp.log");
    let report = run_ok(cefwire().arg("replay").arg(&ndjson).args([
        "--to",
        &format!("udp://127.0.0.1:{udp_port}"),
        "--rate",
        "10000",
        "--report",
        "json",
        "--no-progress",
    ]));
    assert!(report.contains(&format!("\"messages_written\":{MESSAGES},")), "{report}");
    // Wait until the count stops growing (UDP gives no end marker).
    let mut last = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let lines = std::fs::read(&out).map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count() as u64);
        if lines == MESSAGES || (lines == last && lines > 0) || Instant::now() >= deadline {
            last = lines;
            break;
        }
        last = lines;
    }
    drop(rsyslog);
    eprintln!("UDP at 10,000 msgs/s into rsyslog: sent {MESSAGES}, arrived {last}, lost {}", MESSAGES - last);
    assert!(last <= MESSAGES);
    assert!(last >= MESSAGES * 9 / 10, "lost more than 10% on loopback at a modest rate");
    let _ = std::fs::remove_dir_all(&dir);
}

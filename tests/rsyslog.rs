//! End to end against a real rsyslog: `cefwire replay` sends 1,000,000
//! generated records over TCP to an rsyslogd started here (config in
//! `tests/rsyslog/cef.conf`, a free port, raw-message template), and its
//! output file must hold every message byte for byte as `cefwire convert`
//! renders the same input (rsyslog writes the message as received, header
//! included). Skips with a note when rsyslogd is not installed.

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

fn start_rsyslog(dir: &Path, port: u16, out: &Path) -> Rsyslog {
    let template = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/rsyslog/cef.conf")).unwrap();
    let config = template
        .replace("@WORKDIR@", dir.to_str().unwrap())
        .replace("@PORT@", &port.to_string())
        .replace("@OUT@", out.to_str().unwrap());
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

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn one_million_records_through_rsyslog_arrive_byte_identical() {
    if !Path::new(RSYSLOGD).exists() {
        eprintln!("skipped: {RSYSLOGD} is not installed (apt-get install rsyslog)");
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

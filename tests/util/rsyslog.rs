//! A real rsyslogd as the SIEM: one instance per test, its own config
//! (`tests/rsyslog/cef.conf`: one queue worker, so one connection's
//! messages are written in arrival order), reserved TCP and UDP ports held
//! for its whole life (it can be killed and started again on the same
//! ports), and every message written raw to a file.
//!
//! Whether rsyslogd must be there is read in one place
//! ([`Rsyslog::available`]): a missing rsyslogd skips the test with a note,
//! or fails it when `CEFWIRE_REQUIRE_RSYSLOG` is set (as CI does).

use super::ports::{self, Protocol, ReservedPort};
use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const RSYSLOGD: &str = "/usr/sbin/rsyslogd";

pub struct Rsyslog {
    dir: PathBuf,
    tcp: ReservedPort,
    udp: ReservedPort,
    /// What arrived over TCP, raw, one message per line.
    pub out: PathBuf,
    /// What arrived over UDP.
    pub udp_out: PathBuf,
    child: Option<Child>,
}

impl Rsyslog {
    /// Whether rsyslog tests can run (see the module doc).
    pub fn available() -> bool {
        super::external_part(
            Path::new(RSYSLOGD).exists(),
            RSYSLOGD,
            "CEFWIRE_REQUIRE_RSYSLOG",
            "apt-get install rsyslog",
        )
    }

    /// Writes the config into `dir` and starts rsyslogd; returns once this
    /// rsyslogd listens on both ports.
    pub fn start(dir: &Path) -> Rsyslog {
        fs::create_dir_all(dir).unwrap();
        let (tcp, udp) = (ports::reserve(), ports::reserve());
        let (out, udp_out) = (dir.join("received.log"), dir.join("received-udp.log"));
        let template = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/rsyslog/cef.conf")).unwrap();
        let config = template
            .replace("@WORKDIR@", dir.to_str().unwrap())
            .replace("@PORT@", &tcp.port().to_string())
            .replace("@OUT@", out.to_str().unwrap())
            .replace("@UDPPORT@", &udp.port().to_string())
            .replace("@UDPOUT@", udp_out.to_str().unwrap());
        fs::write(dir.join("rsyslog.conf"), config).unwrap();
        let mut rsyslog = Rsyslog { dir: dir.to_owned(), tcp, udp, out, udp_out, child: None };
        rsyslog.launch();
        rsyslog
    }

    pub fn port(&self) -> u16 {
        self.tcp.port()
    }

    pub fn udp_port(&self) -> u16 {
        self.udp.port()
    }

    pub fn tcp_url(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port())
    }

    pub fn udp_url(&self) -> String {
        format!("udp://127.0.0.1:{}", self.udp_port())
    }

    /// Starts (again) on the same ports; its output file is appended to.
    pub fn launch(&mut self) {
        assert!(self.child.is_none(), "rsyslogd is already running");
        let _ = fs::remove_file(self.dir.join("rsyslogd.pid"));
        let stderr = OpenOptions::new().create(true).append(true).open(self.dir.join("rsyslogd.stderr")).unwrap();
        let mut child = Command::new(RSYSLOGD)
            .arg("-n")
            .arg("-f")
            .arg(self.dir.join("rsyslog.conf"))
            .arg("-i")
            .arg(self.dir.join("rsyslogd.pid"))
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let (pid, tcp, udp) = (child.id(), self.port(), self.udp_port());
        let deadline = Instant::now() + Duration::from_secs(60);
        while !(ports::listening_owned_by(pid, tcp, Protocol::Tcp)
            && ports::listening_owned_by(pid, udp, Protocol::Udp))
        {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("rsyslogd exited ({status}) before listening; its stderr:\n{}", self.stderr_text());
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("rsyslogd did not listen on {tcp}/tcp and {udp}/udp within 60 s:\n{}", self.stderr_text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child = Some(child);
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn stderr_text(&self) -> String {
        fs::read_to_string(self.dir.join("rsyslogd.stderr")).unwrap_or_default()
    }

    /// SIGKILL: whatever it has not written yet is lost, and a line it was
    /// writing is cut; that torn line is dropped (it is a lost message, not
    /// a delivered one, and the next rsyslogd appends after it).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let Ok(bytes) = fs::read(&self.out) else { return };
        let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
        if whole < bytes.len() {
            eprintln!("rsyslogd died in the middle of a line: dropping its {} bytes", bytes.len() - whole);
            OpenOptions::new().write(true).open(&self.out).unwrap().set_len(whole as u64).unwrap();
        }
    }

    /// SIGTERM: it writes what it has and exits.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            super::signal(&child, libc::SIGTERM);
            if super::wait_child(&mut child, Duration::from_secs(30)).is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    /// Waits until the TCP output holds at least `bytes` bytes; fails
    /// after `timeout` with rsyslogd's stderr.
    pub fn wait_for_bytes(&self, bytes: u64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let got = fs::metadata(&self.out).map_or(0, |m| m.len());
            if got >= bytes {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "rsyslogd wrote {got} of {bytes} bytes within {timeout:?}; its stderr:\n{}",
                self.stderr_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Returns once `file` has not grown for `quiet` (nothing more is on
    /// its way), at most `timeout`.
    pub fn wait_until_quiet(file: &Path, quiet: Duration, timeout: Duration) {
        let size = || fs::metadata(file).map_or(0, |m| m.len());
        let deadline = Instant::now() + timeout;
        let (mut last, mut since) = (size(), Instant::now());
        while since.elapsed() < quiet {
            assert!(Instant::now() < deadline, "{} kept growing for {timeout:?}", file.display());
            std::thread::sleep(Duration::from_millis(100));
            let now = size();
            if now != last {
                (last, since) = (now, Instant::now());
            }
        }
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

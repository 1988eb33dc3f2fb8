//! A real rsyslogd as the SIEM: one instance per test, its own config
//! (`tests/rsyslog/cef.conf`: one queue worker, so one connection's
//! messages are written in arrival order), reserved TCP and UDP ports held
//! for its whole life (it can be killed and started again on the same
//! ports), and every message written raw to a file.
//!
//! Whether rsyslogd must be there is read in one place
//! ([`Rsyslog::available`]): a missing rsyslogd skips the test with a note,
//! or fails it when `CEFWIRE_REQUIRE_RSYSLOG` is set (as CI does).
//!
//! [`Inputs`] adds, on their own reserved ports and output files, a RELP
//! input (`imrelp`, optionally TLS) and a syslog-over-TLS input (`imtcp`
//! with the `ossl` stream driver), and can make every ruleset write each
//! message before it is acknowledged (Direct queues: `imrelp` answers `200`
//! only after the message is in the output file's kernel buffers, so a
//! SIGKILL loses nothing it acknowledged).

use super::ports::{self, Protocol, ReservedPort};
use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const RSYSLOGD: &str = "/usr/sbin/rsyslogd";

/// Server certificate files for the TLS inputs.
#[derive(Clone, Debug)]
pub struct ServerTls {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Inputs beyond the plain TCP and UDP ones, and how messages are queued.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    /// An `imrelp` input ([`Rsyslog::relp_url`], written to `relp_out`).
    pub relp: bool,
    /// The RELP input speaks TLS (needs `tls`).
    pub relp_tls: bool,
    /// Certificates for the TLS inputs; with them, an `imtcp` TLS input
    /// ([`Rsyslog::tls_url`], written to `tls_out`).
    pub tls: Option<ServerTls>,
    /// Direct queues: each message is written out before its input takes
    /// the next (and, for RELP, before it is acknowledged).
    pub direct: bool,
}

pub struct Rsyslog {
    dir: PathBuf,
    tcp: ReservedPort,
    udp: ReservedPort,
    relp: Option<ReservedPort>,
    relp_tls: bool,
    tls: Option<ReservedPort>,
    /// What arrived over RELP.
    pub relp_out: PathBuf,
    /// What arrived over TLS.
    pub tls_out: PathBuf,
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
        Self::start_with(dir, &Inputs::default())
    }

    /// Like [`start`](Self::start), with the extra `inputs`.
    pub fn start_with(dir: &Path, inputs: &Inputs) -> Rsyslog {
        fs::create_dir_all(dir).unwrap();
        let (tcp, udp) = (ports::reserve(), ports::reserve());
        let (out, udp_out) = (dir.join("received.log"), dir.join("received-udp.log"));
        let (relp_out, tls_out) = (dir.join("received-relp.log"), dir.join("received-tls.log"));
        let template = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/rsyslog/cef.conf")).unwrap();
        let mut config = template
            .replace("@WORKDIR@", dir.to_str().unwrap())
            .replace("@PORT@", &tcp.port().to_string())
            .replace("@OUT@", out.to_str().unwrap())
            .replace("@UDPPORT@", &udp.port().to_string())
            .replace("@UDPOUT@", udp_out.to_str().unwrap());
        let queue =
            if inputs.direct { r#"queue.type="Direct""# } else { r#"queue.type="LinkedList" queue.workerThreads="1""# };
        if inputs.direct {
            config = config.replace(r#"queue.type="LinkedList" queue.workerThreads="1""#, queue);
        }
        let output = |file: &Path| {
            format!(
                r#"action(type="omfile" file="{}" template="raw" ioBufferSize="1m" flushOnTXEnd="on")"#,
                file.display()
            )
        };
        let relp = inputs.relp.then(ports::reserve);
        if let Some(port) = &relp {
            let tls = match (&inputs.tls, inputs.relp_tls) {
                (Some(files), true) => format!(
                    r#" tls="on" tls.cacert="{}" tls.mycert="{}" tls.myprivkey="{}" tls.authmode="certvalid""#,
                    files.ca.display(),
                    files.cert.display(),
                    files.key.display()
                ),
                (None, true) => panic!("a RELP TLS input needs the certificate files"),
                _ => String::new(),
            };
            config.push_str(&format!(
                "module(load=\"imrelp\")\nruleset(name=\"cef-relp\" {queue}) {{\n  {}\n}}\n\
                 input(type=\"imrelp\" address=\"127.0.0.1\" port=\"{}\" ruleset=\"cef-relp\"{tls})\n",
                output(&relp_out),
                port.port()
            ));
        }
        let tls = inputs.tls.as_ref().map(|_| ports::reserve());
        if let (Some(port), Some(files)) = (&tls, &inputs.tls) {
            config.push_str(&format!(
                "ruleset(name=\"cef-tls\" {queue}) {{\n  {}\n}}\n\
                 input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{}\" ruleset=\"cef-tls\" \
                 streamDriver.name=\"ossl\" streamDriver.mode=\"1\" streamDriver.authMode=\"anon\" \
                 streamDriver.CAFile=\"{}\" streamDriver.CertFile=\"{}\" streamDriver.KeyFile=\"{}\")\n",
                output(&tls_out),
                port.port(),
                files.ca.display(),
                files.cert.display(),
                files.key.display()
            ));
        }
        fs::write(dir.join("rsyslog.conf"), config).unwrap();
        let mut rsyslog = Rsyslog {
            dir: dir.to_owned(),
            tcp,
            udp,
            relp,
            relp_tls: inputs.relp_tls,
            tls,
            relp_out,
            tls_out,
            out,
            udp_out,
            child: None,
        };
        rsyslog.launch();
        rsyslog
    }

    /// `relp://127.0.0.1:PORT` (or `relp+tls://localhost:PORT`) of the RELP input.
    pub fn relp_url(&self) -> String {
        let port = self.relp.as_ref().expect("started with a RELP input").port();
        if self.relp_tls { format!("relp+tls://localhost:{port}") } else { format!("relp://127.0.0.1:{port}") }
    }

    /// `tls://localhost:PORT` of the TLS input (the certificate's name).
    pub fn tls_url(&self) -> String {
        format!("tls://localhost:{}", self.tls.as_ref().expect("started with a TLS input").port())
    }

    pub fn port(&self) -> u16 {
        self.tcp.port()
    }

    pub fn udp_port(&self) -> u16 {
        self.udp.port()
    }

    /// How often each `externalId` arrived so far.
    pub fn external_ids(&self) -> HashMap<String, u32> {
        let bytes = fs::read(&self.out).unwrap_or_default();
        let mut seen = HashMap::new();
        for line in bytes.split(|&b| b == b'\n') {
            if let Some(id) = super::external_id(line) {
                *seen.entry(String::from_utf8_lossy(id).into_owned()).or_insert(0) += 1;
            }
        }
        seen
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
        let extra: Vec<u16> = self.relp.iter().chain(&self.tls).map(ReservedPort::port).collect();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !(ports::listening_owned_by(pid, tcp, Protocol::Tcp)
            && ports::listening_owned_by(pid, udp, Protocol::Udp)
            && extra.iter().all(|&port| ports::listening_owned_by(pid, port, Protocol::Tcp)))
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
        for out in [&self.out, &self.relp_out, &self.tls_out] {
            let Ok(bytes) = fs::read(out) else { continue };
            let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
            if whole < bytes.len() {
                eprintln!("rsyslogd died in the middle of a line: dropping its {} bytes", bytes.len() - whole);
                OpenOptions::new().write(true).open(out).unwrap().set_len(whole as u64).unwrap();
            }
        }
    }

    /// SIGSTOP: a receiver that stalls with its connections open (the
    /// sender's writes block once the socket buffers are full).
    pub fn pause(&self) {
        super::signal(self.child.as_ref().expect("rsyslogd runs"), libc::SIGSTOP);
    }

    /// SIGCONT after [`pause`](Self::pause).
    pub fn resume(&self) {
        super::signal(self.child.as_ref().expect("rsyslogd runs"), libc::SIGCONT);
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
        self.wait_for_file_bytes(&self.out, bytes, timeout)
    }

    /// Waits until output `file` holds at least `bytes` bytes.
    pub fn wait_for_file_bytes(&self, file: &Path, bytes: u64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let got = fs::metadata(file).map_or(0, |m| m.len());
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

//! A real syslog-ng as a second receiver: one instance per test, its own
//! config, two TCP sources on reserved ports — `network()` (newline
//! framing) and `syslog()` (RFC 6587 octet counting; syslog-ng takes each
//! framing on its own source) — and every message written as received
//! (`flags(no-parse)`: `$MSG` is the whole frame, PRI included), one per
//! line, to one file per source.
//!
//! Where syslog-ng is: `CEFWIRE_SYSLOG_NG` (the `syslog-ng` binary, e.g.
//! one unpacked with `dpkg -x` under a ROOT: `ROOT/usr/sbin/syslog-ng`,
//! its libraries and modules are found under `ROOT/usr/lib/syslog-ng`), or
//! `/usr/sbin/syslog-ng`. A missing one skips the test with a note, or
//! fails it when `CEFWIRE_REQUIRE_SYSLOG_NG` is set (as CI does).

use super::ports::{self, Protocol, ReservedPort};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct SyslogNg {
    dir: PathBuf,
    newline: ReservedPort,
    octet: ReservedPort,
    /// What arrived on the newline-framed source.
    pub newline_out: PathBuf,
    /// What arrived on the octet-counted source.
    pub octet_out: PathBuf,
    child: Option<Child>,
}

fn binary() -> PathBuf {
    std::env::var_os("CEFWIRE_SYSLOG_NG").map_or_else(|| PathBuf::from("/usr/sbin/syslog-ng"), PathBuf::from)
}

impl SyslogNg {
    /// Whether syslog-ng tests can run (see the module doc).
    pub fn available() -> bool {
        let path = binary();
        super::external_part(
            path.exists(),
            &path.display().to_string(),
            "CEFWIRE_REQUIRE_SYSLOG_NG",
            "set CEFWIRE_SYSLOG_NG to a syslog-ng binary (.ci/run unpacks syslog-ng-core)",
        )
    }

    /// Writes the config into `dir` and starts syslog-ng; returns once it
    /// listens on both ports.
    pub fn start(dir: &Path) -> SyslogNg {
        fs::create_dir_all(dir).unwrap();
        let (newline, octet) = (ports::reserve(), ports::reserve());
        let (newline_out, octet_out) = (dir.join("received-newline.log"), dir.join("received-octet.log"));
        let config = format!(
            r#"@version: 3.38
options {{ keep-hostname(yes); chain-hostnames(no); log-msg-size(262144); stats-freq(0); }};
source s_newline {{ network(ip("127.0.0.1") port({}) transport("tcp") flags(no-parse)); }};
source s_octet {{ syslog(ip("127.0.0.1") port({}) transport("tcp") flags(no-parse)); }};
source s_internal {{ internal(); }};
destination d_newline {{ file("{}" template("$MSG\n")); }};
destination d_octet {{ file("{}" template("$MSG\n")); }};
destination d_internal {{ file("{}"); }};
log {{ source(s_newline); destination(d_newline); }};
log {{ source(s_octet); destination(d_octet); }};
log {{ source(s_internal); destination(d_internal); }};
"#,
            newline.port(),
            octet.port(),
            newline_out.display(),
            octet_out.display(),
            dir.join("internal.log").display(),
        );
        fs::write(dir.join("syslog-ng.conf"), config).unwrap();
        let binary = binary();
        // ROOT/usr/sbin/syslog-ng → ROOT/usr/lib/syslog-ng[/3.x for modules].
        let lib = binary.parent().and_then(Path::parent).unwrap().join("lib/syslog-ng");
        let modules = fs::read_dir(&lib)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.is_dir() && p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('3')))
            .unwrap_or_else(|| panic!("no module directory 3.x in {}", lib.display()));
        let stderr = fs::File::create(dir.join("syslog-ng.stderr")).unwrap();
        let mut child = Command::new(&binary)
            .env("LD_LIBRARY_PATH", &lib)
            .arg(format!("--module-path={}", modules.display()))
            .arg("-F")
            .arg("-f")
            .arg(dir.join("syslog-ng.conf"))
            .arg(format!("--persist-file={}", dir.join("syslog-ng.persist").display()))
            .arg(format!("--pidfile={}", dir.join("syslog-ng.pid").display()))
            .arg(format!("--control={}", dir.join("syslog-ng.ctl").display()))
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let (pid, a, b) = (child.id(), newline.port(), octet.port());
        let deadline = Instant::now() + Duration::from_secs(60);
        while !(ports::listening_owned_by(pid, a, Protocol::Tcp) && ports::listening_owned_by(pid, b, Protocol::Tcp)) {
            let log = || fs::read_to_string(dir.join("syslog-ng.stderr")).unwrap_or_default();
            if let Some(status) = child.try_wait().unwrap() {
                panic!("syslog-ng exited ({status}) before listening; its stderr:\n{}", log());
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("syslog-ng did not listen on {a} and {b} within 60 s:\n{}", log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        SyslogNg { dir: dir.to_owned(), newline, octet, newline_out, octet_out, child: Some(child) }
    }

    /// The URL of the source for this framing and the file it writes.
    pub fn source(&self, octet: bool) -> (String, &Path) {
        let (port, out) = if octet { (&self.octet, &self.octet_out) } else { (&self.newline, &self.newline_out) };
        (format!("tcp://127.0.0.1:{}", port.port()), out)
    }

    /// What syslog-ng said about itself (framing errors and the like).
    pub fn internal_log(&self) -> String {
        fs::read_to_string(self.dir.join("internal.log")).unwrap_or_default()
    }
}

impl Drop for SyslogNg {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            super::signal(&child, libc::SIGTERM);
            if super::wait_child(&mut child, Duration::from_secs(30)).is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

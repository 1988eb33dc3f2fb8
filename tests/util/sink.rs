//! `cefwire sink` as a receiver: started on port 0 (or a reserved port when
//! it must come back on the same one), it prints the address it bound, so
//! the test talks to this sink and no other process.

use super::{cefwire, first_line, signal, wait_or_kill};
use std::io::Read;
use std::process::{Child, ExitStatus, Stdio};
use std::time::Duration;

pub struct SinkProcess {
    pub child: Child,
    /// `tcp://127.0.0.1:PORT` etc., as the sink reported it.
    pub url: String,
}

impl SinkProcess {
    /// `cefwire sink --listen LISTEN --report json` plus `extra`.
    pub fn start(listen: &str, extra: &[&str]) -> SinkProcess {
        let mut child = cefwire()
            .args(["sink", "--listen", listen, "--report", "json", "--no-progress"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let banner = first_line(child.stderr.take().unwrap(), Duration::from_secs(60), "cefwire sink");
        let url = banner.rsplit(' ').next().unwrap().to_owned();
        assert!(banner.contains("listening on") && url.contains("://"), "unexpected sink banner {banner:?}");
        SinkProcess { child, url }
    }

    pub fn port(&self) -> u16 {
        self.url.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// Waits for the sink to stop by itself (`--expect`/`--timeout`):
    /// its exit status and JSON report.
    pub fn report(mut self, limit: Duration) -> (ExitStatus, String) {
        let status = wait_or_kill(&mut self.child, limit, "cefwire sink");
        (status, self.stdout())
    }

    /// Stops the sink with SIGTERM and returns its report.
    pub fn stop(mut self) -> String {
        signal(&self.child, libc::SIGTERM);
        wait_or_kill(&mut self.child, Duration::from_secs(30), "cefwire sink after SIGTERM");
        self.stdout()
    }

    /// SIGKILL, like a receiver that crashes.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn stdout(&mut self) -> String {
        let mut text = String::new();
        self.child.stdout.take().unwrap().read_to_string(&mut text).unwrap();
        text
    }
}

impl Drop for SinkProcess {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

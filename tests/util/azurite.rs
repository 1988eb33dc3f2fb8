//! A real Azurite (Microsoft's Azure Storage emulator, npm `azurite`) for
//! the tests: started on a free port with in-memory storage. Starting Node
//! is what costs, so the plain-HTTP one is shared by every test of the
//! process ([`shared`]; each test uses its own containers) and ends with
//! the process; the HTTPS one a test starts itself ends when dropped. A
//! missing `azurite-blob` skips the test with a note, unless
//! `CEFWIRE_REQUIRE_AZURITE=1` (as `.ci/run` sets) makes it a failure.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{OnceLock, mpsc};
use std::time::Duration;

/// A running `azurite-blob`.
pub struct Azurite {
    child: Child,
    /// `http(s)://127.0.0.1:PORT/devstoreaccount1`.
    pub endpoint: String,
}

/// Whether `azurite-blob` can be started (see the module docs).
pub fn available() -> bool {
    let found = Command::new("azurite-blob").arg("--version").output().is_ok_and(|o| o.status.success());
    super::external_part(found, "azurite-blob", "CEFWIRE_REQUIRE_AZURITE", "npm install -g azurite")
}

/// The endpoint of this process's plain-HTTP Azurite (Shared Key and SAS),
/// started on first use.
pub fn shared() -> Option<&'static str> {
    static SHARED: OnceLock<Option<String>> = OnceLock::new();
    let endpoint = SHARED.get_or_init(|| {
        if !available() {
            return None;
        }
        // The death signal goes with the thread that started the child:
        // start it from one that lives as long as the process.
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("azurite".into())
            .spawn(move || {
                let azurite = Azurite::start_with(&[], "http").expect("available");
                let _ = tx.send(azurite.endpoint.clone());
                loop {
                    std::thread::park();
                }
            })
            .unwrap();
        Some(rx.recv().expect("Azurite started"))
    });
    endpoint.as_deref()
}

impl Azurite {
    /// HTTPS with `cert`/`key` (PEM) and basic OAuth: bearer tokens are
    /// checked for audience, issuer and lifetime (not for a signature).
    pub fn start_https_oauth(cert: &Path, key: &Path) -> Option<Self> {
        let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
        Self::start_with(&["--oauth", "basic", "--cert", cert, "--key", key], "https")
    }

    fn start_with(extra: &[&str], scheme: &str) -> Option<Self> {
        if !available() {
            return None;
        }
        // CEFWIRE_AZURITE_DEBUG=FILE keeps Azurite's debug log (it shows the
        // string it signed when a signature does not match).
        let debug: Vec<String> =
            std::env::var("CEFWIRE_AZURITE_DEBUG").map(|file| vec!["--debug".to_owned(), file]).unwrap_or_default();
        let mut command = Command::new("azurite-blob");
        command
            .args(["--inMemoryPersistence", "--silent", "--disableTelemetry", "--skipApiVersionCheck"])
            .args(["--blobHost", "127.0.0.1", "--blobPort", "0"])
            .args(extra)
            .args(&debug)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            command.pre_exec(|| {
                // Azurite ends when the test process (the starting thread) does.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = command.spawn().expect("azurite-blob starts");
        // It prints the port it got: "… successfully listens on http://127.0.0.1:PORT".
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.split("listens on ").nth(1) {
                    let _ = tx.send(url.trim().to_owned());
                }
            }
        });
        let Ok(url) = rx.recv_timeout(Duration::from_secs(120)) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("azurite-blob did not report its port within 120 s");
        };
        let port = url.rsplit(':').next().unwrap().trim_end_matches('/');
        let host = if scheme == "https" { "localhost" } else { "127.0.0.1" };
        Some(Self { child, endpoint: format!("{scheme}://{host}:{port}/devstoreaccount1") })
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! A real Azurite (Microsoft's Azure Storage emulator, npm `azurite`) for
//! the tests: started on a free port with in-memory storage, stopped when
//! dropped. A missing `azurite-blob` skips the test with a note, unless
//! `CEFWIRE_REQUIRE_AZURITE=1` (as `.ci/run` sets) makes it a failure.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
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

impl Azurite {
    /// Plain HTTP, Shared Key and SAS.
    pub fn start() -> Option<Self> {
        Self::start_with(&[], "http")
    }

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
        let mut child = Command::new("azurite-blob")
            .args(["--inMemoryPersistence", "--silent", "--disableTelemetry", "--skipApiVersionCheck"])
            .args(["--blobHost", "127.0.0.1", "--blobPort", "0"])
            .args(extra)
            .args(&debug)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("azurite-blob starts");
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

//! Helpers shared by the test binaries (`tests.rs`, `agent.rs`, `alloc.rs`):
//! running the real binary, scratch directories that are kept when a test
//! fails, waiting on conditions with generous deadlines, reserved ports,
//! the rsyslog and sink harnesses, test certificates, and the independent
//! CEF parser. They own no production logic and never import test data
//! into the library. Each binary uses a part of them, hence the
//! `dead_code` allowance.
#![allow(dead_code)]

pub mod agent_process;
pub mod archive;
pub mod azurite;
pub mod cef_contract;
pub mod cef_parser;
pub mod counting_alloc;
pub mod graph;
pub mod ports;
pub mod rsyslog;
pub mod sink;
pub mod syslog_ng;
pub mod tansu;
pub mod tls;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// The `cefwire` binary built for these tests.
pub fn cefwire() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cefwire"))
}

/// Runs `cefwire` with `args`, feeding `stdin`, and returns its output.
pub fn run(args: &[&str], stdin: &[u8]) -> Output {
    use std::io::Write;
    let mut child = cefwire()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cefwire starts");
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let output = child.wait_with_output().expect("cefwire runs");
    feeder.join().expect("stdin writer");
    output
}

/// Runs `command`; it must exit 0. Returns its stdout.
pub fn run_ok(command: &mut Command) -> String {
    let out = command.output().unwrap();
    assert!(out.status.success(), "{command:?} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The repository's `testdata` directory.
/// Writes `bytes` to `name` in `dir`; the file's path as a string, for a command line.
pub fn write_file(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    path.to_str().unwrap().to_owned()
}

pub fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

/// Asserts two texts are equal line by line, printing the first difference
/// in full (CEF lines are long; a plain assert_eq is unreadable).
pub fn assert_same_lines(context: &str, expected: &str, got: &str) {
    let (e, g): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), got.lines().collect());
    for (n, (want, have)) in e.iter().zip(&g).enumerate() {
        if want != have {
            let at = want.bytes().zip(have.bytes()).take_while(|(a, b)| a == b).count();
            panic!(
                "{context}: line {} differs at byte {at}\nexpected: {want}\n     got: {have}\n          {}^",
                n + 1,
                " ".repeat(at)
            );
        }
    }
    assert_eq!(e.len(), g.len(), "{context}: expected {} lines, got {}\n--- got:\n{got}", e.len(), g.len());
    assert_eq!(expected, got, "{context}: same lines but different line endings");
}

/// Asserts two files hold the same bytes; on a difference prints the
/// first differing line of each (the files are kept by [`Scratch`]).
pub fn assert_same_file(context: &str, expected: &Path, got: &Path) {
    let (want, have) = (std::fs::read(expected).unwrap(), std::fs::read(got).unwrap());
    if want == have {
        return;
    }
    let (w, h): (Vec<&[u8]>, Vec<&[u8]>) =
        (want.split(|&b| b == b'\n').collect(), have.split(|&b| b == b'\n').collect());
    match w.iter().zip(&h).position(|(a, b)| a != b) {
        Some(n) => panic!(
            "{context}: {} and {} differ first at line {}\nexpected: {}\n     got: {}",
            expected.display(),
            got.display(),
            n + 1,
            String::from_utf8_lossy(w[n]),
            String::from_utf8_lossy(h[n])
        ),
        None => panic!(
            "{context}: {} has {} lines, {} has {} (one is a prefix of the other)",
            expected.display(),
            w.len(),
            got.display(),
            h.len()
        ),
    }
}

/// stdout of a finished command as UTF-8.
pub fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("stdout is UTF-8")
}

/// stderr of a finished command as UTF-8 (lossy).
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Whether the environment variable `name` asks for something to be
/// required (`CEFWIRE_REQUIRE_RSYSLOG=1`): set, not empty and not `0`.
/// The one reading of every `CEFWIRE_REQUIRE_*` variable.
pub fn required(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// An external part that may be missing: `true` when it is there; when it
/// is not, a failure if `require_var` is set, else a note and `false`
/// (the caller returns, skipping the test).
pub fn external_part(available: bool, what: &str, require_var: &str, hint: &str) -> bool {
    if available {
        return true;
    }
    assert!(!required(require_var), "{what} is required ({require_var} is set) but missing: {hint}");
    eprintln!("note: skipped: {what} is missing ({hint}; {require_var}=1 makes this a failure)");
    false
}

/// A scratch directory, removed when dropped — unless the thread is
/// panicking (the test failed): then it is kept and its path printed, so
/// the logs and received files can be looked at.
pub struct Scratch(Option<tempfile::TempDir>);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let dir = tempfile::Builder::new().prefix(&format!("cefwire-{name}-")).tempdir().expect("temp dir");
        Scratch(Some(dir))
    }

    pub fn path(&self) -> &Path {
        self.0.as_ref().expect("present until dropped").path()
    }
}

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        self.path()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let dir = self.0.take().expect("dropped once");
        if std::thread::panicking() {
            eprintln!("test failed: files kept in {}", dir.keep().display());
        }
    }
}

/// Polls `done` every 50 ms until it holds; fails after `timeout`, naming
/// `what`. Deadlines are generous: a loaded 2-core machine is the norm.
pub fn wait_until(timeout: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits for `child` to exit, at most `timeout`.
pub fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for `child` to exit; kills it and fails after `timeout`.
pub fn wait_or_kill(child: &mut Child, timeout: Duration, what: &str) -> ExitStatus {
    match wait_child(child, timeout) {
        Some(status) => status,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not end within {timeout:?}");
        }
    }
}

/// Sends `signal` (e.g. `libc::SIGTERM`) to a child that has not been
/// reaped yet.
pub fn signal(child: &Child, signal: i32) {
    // SAFETY: kill(2) on the pid of a child we own and have not reaped, so
    // the pid cannot have been reused.
    let result = unsafe { libc::kill(child.id() as libc::pid_t, signal) };
    assert_eq!(result, 0, "kill({}, {signal}): {}", child.id(), std::io::Error::last_os_error());
}

/// Reads the first line a child writes to `pipe` (its bound address), with
/// a deadline, so a child that dies early fails the test instead of
/// hanging it.
pub fn first_line(pipe: impl std::io::Read + Send + 'static, timeout: Duration, what: &str) -> String {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = std::io::BufReader::new(pipe);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let _ = tx.send(line);
        // Keep draining so the child never blocks on a full pipe.
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
    });
    let line = rx.recv_timeout(timeout).unwrap_or_else(|_| panic!("{what}: no first line within {timeout:?}"));
    assert!(!line.is_empty(), "{what}: exited before writing its first line");
    line.trim_end().to_owned()
}

/// A number field of a flat JSON report (`"key":123`).
pub fn json_u64(json: &str, key: &str) -> u64 {
    let value: serde_json::Value =
        serde_json::from_str(json.trim()).unwrap_or_else(|e| panic!("not a JSON report ({e}): {json}"));
    value[key].as_u64().unwrap_or_else(|| panic!("no number {key:?} in {json}"))
}

/// `externalId` of a CEF line, if it has one.
pub fn external_id(line: &[u8]) -> Option<&[u8]> {
    const KEY: &[u8] = b"|externalId=";
    let at = line.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let rest = &line[at..];
    Some(&rest[..rest.iter().position(|&b| b == b' ').unwrap_or(rest.len())])
}

//! Helpers shared by the integration tests: running the real binary,
//! temporary files, and comparisons that print expected vs got.

pub mod cef_parser;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

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

/// The repository's `testdata` directory.
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

/// stdout of a finished command as UTF-8.
pub fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("stdout is UTF-8")
}

/// stderr of a finished command as UTF-8 (lossy).
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

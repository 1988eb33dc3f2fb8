//! The README's "whole pipeline on one machine" block, run as pasted but
//! scaled down (2,000 records instead of 20,000, free ports instead of
//! 8443 and 5140, the test build's binary on `PATH` instead of a release
//! build), so the README cannot drift from what works.

use crate::util::Scratch;
use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

/// The shell block that follows `marker` in the README.
fn readme_block(marker: &str) -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let after = &readme[readme.find(marker).unwrap_or_else(|| panic!("the README lost {marker:?}"))..];
    let start = after.find("```sh\n").expect("a sh block after the marker") + "```sh\n".len();
    let end = start + after[start..].find("```").expect("the block ends");
    after[start..end].to_owned()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn the_readme_pipeline_block_runs_as_pasted_and_delivers_every_record() {
    let block = readme_block("The whole pipeline on one machine");
    let build_line = "cargo build --release && export PATH=$PWD/target/release:$PATH";
    assert!(block.starts_with(build_line), "the block's first line changed:\n{block}");
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_cefwire")).parent().unwrap();
    let (api_port, syslog_port) = (free_port().to_string(), free_port().to_string());
    let script = block
        .replacen(build_line, &format!("export PATH={}:$PATH", bin_dir.display()), 1)
        .replace("20000", "2000")
        .replace("8443", &api_port)
        .replace("5140", &syslog_port);
    assert!(script.contains("--expect 2000") && script.contains(&api_port), "{script}");
    let dir = Scratch::new("readme");
    // Each line as a user's shell runs it: no `-e` (status exits non-zero
    // while a check is due), jobs for `kill %1 %2`.
    let out = Command::new("timeout")
        .args(["600", "bash", "-c"])
        .arg(&script)
        .current_dir(dir.path())
        .env_remove("CEFWIRE_STATE_DIR")
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let context = format!("script:\n{script}\nstdout:\n{stdout}\nstderr (end):\n{}", tail(&stderr, 40));
    assert!(out.status.code() != Some(124), "the block did not end within 600 s\n{context}");
    let received = std::fs::read_to_string(dir.join("received.cef")).unwrap_or_default();
    let lines: Vec<&str> = received.lines().collect();
    assert_eq!(lines.len(), 2000, "every record arrived, once\n{context}");
    let unique: std::collections::HashSet<&str> = lines.iter().copied().collect();
    assert_eq!(unique.len(), 2000, "no message twice\n{context}");
    assert!(lines.iter().all(|l| l.contains("CEF:0|")), "CEF lines\n{context}");
    assert!(stdout.contains("Connected"), "status after the run\n{context}");
    // Nothing left running: the block's last line stopped both jobs.
    std::thread::sleep(Duration::from_millis(200));
    let left = Command::new("pgrep").args(["-f", &format!("127.0.0.1:{api_port}")]).output().unwrap();
    assert!(left.stdout.is_empty(), "left running: {}", String::from_utf8_lossy(&left.stdout));
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

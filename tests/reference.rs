//! The generated reference: shell completions and man pages come from the
//! clap definitions, parse in their shells and render without warnings.

use crate::util::{Scratch, cefwire};
use std::process::Command;

#[test]
fn completions_parse_in_bash_and_know_every_command() {
    let out = cefwire().args(["completions", "bash"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let script = String::from_utf8(out.stdout).unwrap();
    for word in ["agent", "backfill", "convert", "replay", "sink", "status", "--state-dir", "--rate-limit"] {
        assert!(script.contains(word), "the bash completion lacks {word}");
    }
    let dir = Scratch::new("completions");
    let file = dir.join("cefwire.bash");
    std::fs::write(&file, &script).unwrap();
    let check = Command::new("bash").arg("-n").arg(&file).output().unwrap();
    assert!(check.status.success(), "bash -n: {}", String::from_utf8_lossy(&check.stderr));
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let out = cefwire().args(["completions", shell]).output().unwrap();
        assert!(out.status.success() && !out.stdout.is_empty(), "{shell}");
    }
    let refused = cefwire().args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(refused.status.code(), Some(2), "an unknown shell is a usage error");
}

#[test]
fn man_pages_exist_for_every_command_and_render_without_warnings() {
    let dir = Scratch::new("manpages");
    let out = cefwire().arg("manpages").arg(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for command in ["", "-agent", "-backfill", "-convert", "-emulate", "-generate", "-replay", "-sink", "-status"] {
        let page = dir.join(format!("cefwire{command}.1"));
        assert!(page.exists(), "{} is missing", page.display());
        let rendered =
            Command::new("man").arg("--warnings").arg("-l").arg(&page).env("MANWIDTH", "100").output().unwrap();
        let warnings = String::from_utf8_lossy(&rendered.stderr);
        assert!(rendered.status.success() && warnings.trim().is_empty(), "{}: {warnings}", page.display());
        assert!(!rendered.stdout.is_empty());
    }
    assert!(!dir.join("cefwire-manpages.1").exists(), "the hidden generator has no page");
}

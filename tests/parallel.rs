//! `cefwire convert --threads N` through the real binary: for every thread
//! count the output, the rejects file, the reject messages, the summary's
//! counts and the exit code are those of `--threads 1`, byte for byte —
//! over the golden inputs, a generated mixed set (plain, gzip, zstd, stdin)
//! and inputs with rejects; and a failing worker ends the run with an
//! error instead of silently leaving records out.

use crate::util::sink::SinkProcess;
use crate::util::{assert_same_lines, run, stderr, testdata, write_file};
use std::io::Write;
use std::process::Output;
use std::time::Duration;

const THREADS: [&str; 3] = ["2", "3", "4"];

/// What a run produced that must not depend on the number of threads.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    code: Option<i32>,
    output: Vec<u8>,
    rejects: Vec<u8>,
    /// Stderr with the summary's timing and speed cut out.
    messages: String,
}

/// The summary line without `in 0.21 s: … MB/s in` (the only part that
/// changes from run to run).
fn without_timing(stderr: &str) -> String {
    stderr
        .lines()
        .map(|line| match (line.find(" in "), line.find(" MB/s in")) {
            (Some(from), Some(to)) if line.starts_with("cefwire: converted") => {
                format!("{}{}", &line[..from], &line[to + " MB/s in".len()..])
            }
            _ => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs `convert --threads THREADS ARGS…` writing into `dir`; stdin is `stdin`.
fn convert(dir: &tempfile::TempDir, threads: &str, args: &[&str], stdin: &[u8]) -> Outcome {
    let output = dir.path().join(format!("out-{threads}.cef"));
    let rejects = dir.path().join(format!("rejects-{threads}.ndjson"));
    let mut all = vec![
        "convert",
        "--no-progress",
        "--threads",
        threads,
        "-o",
        output.to_str().unwrap(),
        "--rejects",
        rejects.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    let out: Output = run(&all, stdin);
    Outcome {
        code: out.status.code(),
        output: std::fs::read(&output).unwrap_or_default(),
        rejects: std::fs::read(&rejects).unwrap_or_default(),
        messages: without_timing(&stderr(&out)),
    }
}

/// Converts with one thread, then with 2, 3 and 4, and compares; returns
/// the one-thread outcome.
fn same_for_every_thread_count(what: &str, args: &[&str], stdin: &[u8]) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let one = convert(&dir, "1", args, stdin);
    assert!(!one.output.is_empty() || !one.rejects.is_empty(), "{what}: nothing converted: {}", one.messages);
    for threads in THREADS {
        let many = convert(&dir, threads, args, stdin);
        let context = format!("{what}, --threads {threads} against --threads 1");
        assert_same_lines(
            &format!("{context}: output"),
            &String::from_utf8_lossy(&one.output),
            &String::from_utf8_lossy(&many.output),
        );
        assert_same_lines(
            &format!("{context}: rejects file"),
            &String::from_utf8_lossy(&one.rejects),
            &String::from_utf8_lossy(&many.rejects),
        );
        assert_same_lines(&format!("{context}: stderr"), &one.messages, &many.messages);
        assert_eq!(one, many, "{context}: byte for byte");
    }
    one
}

/// Generated records of every kind, several MiB (many chunks per thread).
fn generated_mixed_set() -> Vec<u8> {
    let mut all = Vec::new();
    for (kind, count, seed) in
        [("mixed", "2500", "7"), ("alerts", "500", "8"), ("cloudappevents", "1500", "9"), ("graph-alerts", "500", "10")]
    {
        let out = run(&["generate", "--kind", kind, "-n", count, "--seed", seed], b"");
        assert!(out.status.success(), "generate {kind}: {}", stderr(&out));
        all.extend_from_slice(&out.stdout);
    }
    all
}

#[test]
fn golden_inputs_convert_the_same_on_every_thread_count() {
    let golden = testdata().join("golden");
    let mut checked = 0;
    for entry in std::fs::read_dir(&golden).unwrap() {
        let input = entry.unwrap().path();
        if !matches!(input.extension().and_then(|e| e.to_str()), Some("json" | "ndjson")) {
            continue;
        }
        let args_text = std::fs::read_to_string(input.with_extension("args")).unwrap_or_default();
        let mut args: Vec<&str> = args_text.lines().collect();
        args.push(input.to_str().unwrap());
        let one = same_for_every_thread_count(&input.display().to_string(), &args, b"");
        let expected = std::fs::read(input.with_extension("cef")).unwrap();
        assert_same_lines(
            &format!("{} (--threads 1 against its golden file)", input.display()),
            &String::from_utf8_lossy(&expected),
            &String::from_utf8_lossy(&one.output),
        );
        checked += 1;
    }
    let expected_files = std::fs::read_dir(&golden)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "cef"))
        .count();
    assert!(checked > 0 && checked == expected_files, "{checked} inputs for {expected_files} golden files");
}

#[test]
fn a_generated_mixed_set_converts_the_same_on_every_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    let records = generated_mixed_set();
    assert!(records.len() > 4 << 20, "the set spans many chunks ({} bytes)", records.len());
    let plain = write_file(&dir, "mixed.ndjson", &records);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&records).unwrap();
    let gzip = write_file(&dir, "mixed.ndjson.gz", &gz.finish().unwrap());
    let zst = write_file(&dir, "mixed.ndjson.zst", &zstd::encode_all(&records[..], 1).unwrap());
    let sample = testdata().join("sample").join("mixed-1000.ndjson.zst");

    let one = same_for_every_thread_count("generated set", &[&plain, &gzip, &zst, sample.to_str().unwrap()], b"");
    assert_eq!(one.code, Some(0), "{}", one.messages);
    let lines = one.output.iter().filter(|&&b| b == b'\n').count();
    assert!(lines > 3 * 5000, "every record converted: {lines} lines");
    same_for_every_thread_count("generated set on stdin", &["-"], &records);
}

/// The generated set with bad records spread over it, a blank line, CRLF,
/// a line over 1 MiB (the limit the tests set), and a last line without `\n`.
fn input_with_rejects() -> Vec<u8> {
    let records = generated_mixed_set();
    let mut input = Vec::new();
    let too_long = format!("{{\"_id\":\"long\",\"timestamp\":1,\"eventType\":1,\"blob\":\"{}\"}}", "x".repeat(3 << 20));
    for (n, line) in records.split(|&b| b == b'\n').filter(|l| !l.is_empty()).enumerate() {
        input.extend_from_slice(line);
        input.extend_from_slice(if n % 7 == 0 { b"\r\n" } else { b"\n" });
        match n % 97 {
            5 => input.extend_from_slice(b"this is not JSON {\n"),
            17 => input.extend_from_slice(b"{\"timestamp\":1700000000000,\"eventType\":1}\n"),
            33 => input.extend_from_slice(b"   \n\n"),
            51 => input.extend_from_slice(b"{\"data\":[{\"_id\":\"p\",\"eventType\":1},3]}\n"),
            _ => {}
        }
        if n == 3000 {
            input.extend_from_slice(too_long.as_bytes());
            input.push(b'\n');
        }
    }
    input.extend_from_slice(br#"{"_id":"last","timestamp":"soon","eventType":1}"#);
    input
}

#[test]
fn inputs_with_rejects_convert_the_same_on_every_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    let input = input_with_rejects();
    let file = write_file(&dir, "with-rejects.ndjson", &input);

    let one = same_for_every_thread_count(
        "inputs with rejects",
        &["--max-document-mb", "1", "--show-rejects", "1000", &file],
        b"",
    );
    assert_eq!(one.code, Some(3), "rejected records give exit code 3: {}", one.messages);
    assert!(one.messages.contains("longer than the limit of 1 MiB"), "{}", one.messages);
    assert!(one.messages.contains(&format!("{file}:")), "rejects are located as FILE:LINE: {}", one.messages);
    assert!(one.rejects.len() > 100, "rejected records are kept");
}

/// A worker that panics (fault hook) ends the run with exit code 1 and a
/// message naming the input and the chunk; the output holds exactly the
/// records before that chunk, in order, and nothing after.
#[test]
fn a_failing_worker_ends_the_run_with_an_error_not_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    let records = generated_mixed_set();
    let file = write_file(&dir, "mixed.ndjson", &records);
    let full = convert(&dir, "1", &[&file], b"").output;
    let lines = records.iter().filter(|&&b| b == b'\n').count();
    let out = dir.path().join("out.cef");
    let run = crate::util::cefwire()
        .args(["convert", "--no-progress", "--threads", "2", "-o", out.to_str().unwrap(), &file])
        .env("CEFWIRE_FAULT_WORKER_PANIC_LINE", (lines / 2).to_string())
        .output()
        .unwrap();
    let err = stderr(&run);
    assert_eq!(run.status.code(), Some(1), "a failed worker fails the run: {err}");
    assert!(err.contains("mixed.ndjson: a conversion thread failed on the chunk from line"), "{err}");
    let written = std::fs::read(&out).unwrap_or_default();
    assert!(written.len() < full.len(), "the run stopped: {} of {} bytes", written.len(), full.len());
    assert!(full.starts_with(&written), "what was written is the one-thread output's beginning, in order");
}

/// `replay` of NDJSON files into a real receiver: the messages it gets (in
/// order, one connection), the report's counts and the exit code are the
/// same for every thread count — sent as fast as possible (blocks handed
/// to the sender whole) and paced (message by message).
#[test]
fn replay_sends_the_same_messages_on_every_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(&dir, "with-rejects.ndjson", &input_with_rejects());
    let converted = convert(&dir, "1", &["--max-document-mb", "1", &file], b"");
    let expected = converted.output.iter().filter(|&&b| b == b'\n').count();
    assert!(expected >= 5000, "the set converts: {}", converted.messages);
    let mut first: Option<(String, Vec<u8>, Option<i32>, String)> = None;
    let runs: [(&str, &[&str]); 4] = [("1", &[]), ("2", &[]), ("3", &[]), ("2", &["--rate", "1000000"])];
    for (n, (threads, extra)) in runs.into_iter().enumerate() {
        let received = dir.path().join(format!("received-{n}.cef"));
        let sink = SinkProcess::start(
            "tcp://127.0.0.1:0",
            &["--expect", &expected.to_string(), "--timeout", "300s", "--out", received.to_str().unwrap()],
        );
        let mut args = vec!["replay", "--no-progress", "--report", "json", "--threads", threads];
        args.extend_from_slice(&["--max-document-mb", "1", "--hostname", "replay-test", "--to", &sink.url]);
        args.extend_from_slice(extra);
        args.push(&file);
        let out = run(&args, b"");
        let (status, sink_report) = sink.report(Duration::from_secs(330));
        let what = format!("replay --threads {threads} {}", extra.join(" "));
        assert!(status.success(), "{what}: the sink got {expected} messages: {sink_report}; {}", stderr(&out));
        let report = String::from_utf8_lossy(&out.stdout).into_owned();
        let counts = ["\"converted\":", "\"rejected\":", "\"other_tables\":"]
            .map(|key| report.split(key).nth(1).and_then(|rest| rest.split([',', '}']).next()).unwrap_or("?"))
            .join(" ");
        let outcome = (counts, std::fs::read(&received).unwrap(), out.status.code(), what);
        match &first {
            None => {
                assert_eq!(outcome.2, Some(3), "{}: rejected records give exit code 3: {report}", outcome.3);
                first = Some(outcome);
            }
            Some(one) => {
                assert_eq!(one.0, outcome.0, "{} against {}: report counts", outcome.3, one.3);
                assert_eq!(one.2, outcome.2, "{} against {}: exit code", outcome.3, one.3);
                assert_same_lines(
                    &format!("{} against {}: messages received", outcome.3, one.3),
                    &String::from_utf8_lossy(&one.1),
                    &String::from_utf8_lossy(&outcome.1),
                );
            }
        }
    }
}

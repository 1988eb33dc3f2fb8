//! Golden files: each input in `testdata/golden/` (with its `.args`) must
//! convert to its `.cef` byte for byte. Together they hold every sample
//! line of the vendor document, and every row and fallback of the
//! successor sources' tables (`cloudappevents_*`, `graph_alerts_*`; their
//! expected lines were written by hand from `successor-sources.md`). One test per golden file; the last test
//! makes sure no golden file goes untested.

use crate::util::{assert_same_lines, run, stderr, stdout, testdata};
use std::io::Write;
use std::path::PathBuf;

fn golden_dir() -> PathBuf {
    testdata().join("golden")
}

fn input_of(stem: &str) -> PathBuf {
    ["json", "ndjson"]
        .iter()
        .map(|ext| golden_dir().join(format!("{stem}.{ext}")))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("no input for golden file {stem}"))
}

fn args_of(stem: &str) -> Vec<String> {
    let text = std::fs::read_to_string(golden_dir().join(format!("{stem}.args"))).expect("args file");
    text.lines().map(str::to_owned).collect()
}

/// Converts the golden input from a file, from stdin, gzip- and
/// zstd-compressed, and compares each result with the expected lines.
fn check(stem: &str) {
    let expected = std::fs::read_to_string(golden_dir().join(format!("{stem}.cef"))).expect("expected file");
    let input = input_of(stem);
    let raw = std::fs::read(&input).unwrap();
    let args = args_of(stem);
    let mut base: Vec<&str> = vec!["convert", "--quiet"];
    base.extend(args.iter().map(String::as_str));

    let mut from_file = base.clone();
    from_file.push(input.to_str().unwrap());
    let out = run(&from_file, b"");
    assert!(out.status.success(), "{stem}: {}", stderr(&out));
    assert_same_lines(&format!("{stem} (file)"), &expected, &stdout(&out));

    let out = run(&base, &raw);
    assert!(out.status.success(), "{stem}: {}", stderr(&out));
    assert_same_lines(&format!("{stem} (stdin)"), &expected, &stdout(&out));

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&raw).unwrap();
    let out = run(&base, &gz.finish().unwrap());
    assert!(out.status.success(), "{stem} (gzip): {}", stderr(&out));
    assert_same_lines(&format!("{stem} (gzip)"), &expected, &stdout(&out));

    let out = run(&base, &zstd::encode_all(&raw[..], 3).unwrap());
    assert!(out.status.success(), "{stem} (zstd): {}", stderr(&out));
    assert_same_lines(&format!("{stem} (zstd)"), &expected, &stdout(&out));
}

macro_rules! golden_tests {
    ($($test:ident => $stem:literal,)*) => {
        $(
            #[test]
            fn $test() {
                check($stem);
            }
        )*

        const STEMS: &[&str] = &[$($stem),*];
    };
}

golden_tests! {
    activity_logout_ndjson => "activity_logout_0.111.85",
    activities_pretty_page => "activities_page_0.112.68",
    activities_compact_page_crlf_and_string_timestamp => "activities_users_0.112.49",
    activity_with_hostname => "activity_with_hostname_0.112.68",
    alerts_page => "alerts_page_0.102.17",
    cloudappevents_one_record_per_line_crlf_case_insensitive => "cloudappevents_lines_1.0.0",
    cloudappevents_envelope_skips_other_tables => "cloudappevents_envelope_1.0.0",
    graph_alerts_page_with_next_link => "graph_alerts_page_1.0.0",
    graph_alerts_one_per_line => "graph_alerts_1.0.0",
}

#[test]
fn every_golden_file_has_a_test() {
    let mut stems: Vec<String> = std::fs::read_dir(golden_dir())
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".cef").map(str::to_owned)
        })
        .collect();
    stems.sort();
    let mut tested: Vec<String> = STEMS.iter().map(|s| s.to_string()).collect();
    tested.sort();
    assert_eq!(stems, tested);
}

/// The golden outputs hold every sample line of the vendor document.
#[test]
fn golden_files_cover_every_seed_sample_line() {
    let seed = std::fs::read_to_string(testdata().join("seed-samples.txt")).expect("seed samples");
    let mut golden = String::new();
    for stem in STEMS {
        golden.push_str(&std::fs::read_to_string(golden_dir().join(format!("{stem}.cef"))).unwrap());
    }
    let golden_lines: Vec<&str> = golden.lines().collect();
    let mut count = 0;
    for line in seed.lines().filter(|l| !l.is_empty()) {
        assert!(golden_lines.contains(&line), "seed line not reproduced by any golden file:\n{line}");
        count += 1;
    }
    assert_eq!(count, 12, "the vendor document has 6 activity and 6 alert samples");
}

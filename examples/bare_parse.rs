//! The baseline of `scripts/bench-parallel.sh`: a bare simd-json tape parse
//! of every line of an NDJSON file, on N threads, nothing converted or
//! written. The file is read into memory first (not timed) and cut into N
//! parts at line ends; each thread parses its part's lines in place with
//! its own reused `Tape` and `Buffers`, as the converter's parser does.
//! Prints `SECONDS RECORDS` on stdout.
//!
//!   cargo run --release --example bare_parse -- FILE THREADS

use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: bare_parse FILE THREADS");
    let threads: usize = args.next().map_or(1, |t| t.parse().expect("THREADS is a number"));
    let data = std::fs::read(&path).expect("the input file can be read");
    let parts = split_at_lines(&data, threads.max(1));
    let mut padded: Vec<Vec<u8>> = parts
        .iter()
        .map(|part| {
            let mut bytes = part.to_vec();
            bytes.resize(part.len() + simd_json::INPUT_PADDING, 0);
            bytes
        })
        .collect();
    let started = Instant::now();
    let records: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = padded
            .iter_mut()
            .zip(&parts)
            .map(|(bytes, part)| scope.spawn(move || parse_lines(bytes, part.len())))
            .collect();
        handles.into_iter().map(|h| h.join().expect("a parsing thread")).sum()
    });
    println!("{:.4} {records}", started.elapsed().as_secs_f64());
}

/// `threads` parts of about equal size, each ending at a line end.
fn split_at_lines(data: &[u8], threads: usize) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let mut start = 0;
    for i in 1..=threads {
        let target = (data.len() * i / threads).max(start);
        let end = if i == threads {
            data.len()
        } else {
            memchr::memchr(b'\n', &data[target..]).map_or(data.len(), |p| target + p + 1)
        };
        parts.push(&data[start..end]);
        start = end;
    }
    parts
}

/// Parses each non-blank line of `bytes[..len]` in place; returns how many.
fn parse_lines(bytes: &mut [u8], len: usize) -> usize {
    let mut buffers = simd_json::Buffers::new(1 << 16);
    let mut tape = simd_json::Tape(Vec::new());
    let mut records = 0;
    let mut at = 0;
    while at < len {
        let end = memchr::memchr(b'\n', &bytes[at..len]).map_or(len, |p| at + p);
        if end > at {
            let mut local = std::mem::replace(&mut tape, simd_json::Tape(Vec::new())).reset();
            simd_json::fill_tape_padded(&mut bytes[at..], end - at, &mut buffers, &mut local).expect("valid JSON");
            std::hint::black_box(local.0.len());
            tape = local.reset();
            records += 1;
        }
        at = end + 1;
    }
    records
}

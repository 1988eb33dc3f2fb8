//! Conversion throughput against its own baseline, in one group each:
//! - `ndjson`: bare simd-json tape parse of every line vs parse + CEF
//!   conversion of the same lines (the `convert` hot loop);
//! - `page`: the same for API pages of 500 records (what backfill and the
//!   agent receive);
//! - `sources`: parse + CEF conversion of each source's records, side by
//!   side: MDA activities vs Defender XDR streaming `CloudAppEvents`
//!   records (Storage archive lines), MDA alerts vs Graph `alerts_v2`
//!   alerts, in records/s (each input is 10,000 generated records, one per
//!   line);
//! - `escape`: the SWAR escaper vs its naive twin.
//!
//! Throughput is reported in bytes of JSON input; the `records` groups
//! repeat the measurement per element. Both sides of a group restore the
//! input from a pristine copy before parsing (parsing is in place), so the
//! copy costs the same on both sides.

use cefwire::cef::CefOptions;
use cefwire::cef::escape::{escape_extension, naive};
use cefwire::generate::{GenerateConfig, GenerateKind, RecordGenerator};
use cefwire::json::INPUT_PADDING;
use cefwire::records::{MessageSink, Origin, RecordConverter};
use cefwire::rejects::RejectLog;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Duration;

/// Discards messages, keeping the buffer warm.
struct NullSink(Vec<u8>);

impl MessageSink for NullSink {
    fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }

    fn commit(&mut self, _start: usize) -> std::io::Result<()> {
        if self.0.len() > 1 << 20 {
            self.0.clear();
        }
        Ok(())
    }
}

/// Generated records (activities with 5 % alerts), one per line.
fn records(count: u64) -> Vec<Vec<u8>> {
    records_of(GenerateKind::Mixed, count)
}

fn records_of(kind: GenerateKind, count: u64) -> Vec<Vec<u8>> {
    let mut generator = RecordGenerator::new(GenerateConfig {
        kind,
        count,
        seed: 11,
        late_ratio: 0.1,
        start_ms: 1_700_000_000_000,
        span_ms: 172_800_000,
    });
    let mut out = Vec::new();
    let mut buf = Vec::new();
    while generator.write_next(&mut buf) {
        out.push(std::mem::take(&mut buf));
    }
    out
}

/// Documents packed back to back in one buffer with padding after the last,
/// the way the line reader hands them to the parser.
struct Packed {
    pristine: Vec<u8>,
    work: Vec<u8>,
    spans: Vec<(usize, usize)>,
    json_bytes: u64,
}

impl Packed {
    fn new(documents: &[Vec<u8>]) -> Self {
        let mut pristine = Vec::new();
        let mut spans = Vec::new();
        for doc in documents {
            spans.push((pristine.len(), doc.len()));
            pristine.extend_from_slice(doc);
            pristine.push(b'\n');
        }
        let json_bytes = pristine.len() as u64;
        pristine.resize(pristine.len() + INPUT_PADDING, b' ');
        Self { work: pristine.clone(), pristine, spans, json_bytes }
    }

    fn restore(&mut self) {
        self.work.copy_from_slice(&self.pristine);
    }
}

fn bare_parse(packed: &mut Packed, buffers: &mut simd_json::Buffers, tape: &mut simd_json::Tape<'static>) {
    packed.restore();
    for &(start, len) in &packed.spans {
        let mut local = std::mem::replace(tape, simd_json::Tape(Vec::new())).reset();
        simd_json::fill_tape_padded(&mut packed.work[start..], len, buffers, &mut local).unwrap();
        black_box(local.0.len());
        *tape = local.reset();
    }
}

fn convert(packed: &mut Packed, converter: &mut RecordConverter, sink: &mut NullSink, rejects: &mut RejectLog) {
    packed.restore();
    for &(start, len) in &packed.spans {
        let origin = Origin { file: "bench", line: 1, multi_line: false };
        converter.convert_document(origin, &mut packed.work[start..], len, sink, rejects).unwrap();
    }
}

fn compare(c: &mut Criterion, group_name: &str, documents: &[Vec<u8>], records: u64) {
    let mut packed = Packed::new(documents);
    let mut buffers = simd_json::Buffers::new(1 << 20);
    let mut tape = simd_json::Tape(Vec::new());
    let mut converter = RecordConverter::new(&CefOptions::default());
    let mut sink = NullSink(Vec::with_capacity(2 << 20));
    let mut rejects = RejectLog::new(0);

    for (suffix, throughput) in
        [("bytes", Throughput::Bytes(packed.json_bytes)), ("records", Throughput::Elements(records))]
    {
        let mut group = c.benchmark_group(format!("{group_name}/{suffix}"));
        group.throughput(throughput);
        group.measurement_time(Duration::from_secs(4));
        group.bench_function("simd-json tape parse (baseline)", |b| {
            b.iter(|| bare_parse(&mut packed, &mut buffers, &mut tape))
        });
        group.bench_function("parse + convert to CEF", |b| {
            b.iter(|| convert(&mut packed, &mut converter, &mut sink, &mut rejects))
        });
        group.finish();
    }
}

fn ndjson(c: &mut Criterion) {
    let lines = records(10_000);
    compare(c, "ndjson", &lines, 10_000);
}

fn pages(c: &mut Criterion) {
    let lines = records(10_000);
    let pages: Vec<Vec<u8>> = lines
        .chunks(500)
        .map(|chunk| {
            let mut page = b"{\"data\":[".to_vec();
            page.extend_from_slice(&chunk.join(&b","[..]));
            page.extend_from_slice(b"],\"hasNext\":true,\"nextQueryFilters\":{\"created\":{\"gte\":1}}}");
            page
        })
        .collect();
    compare(c, "page", &pages, 10_000);
}

/// Each source's records through the same loop, in one group so the
/// figures sit side by side.
fn sources(c: &mut Criterion) {
    let mut group = c.benchmark_group("sources/records");
    group.measurement_time(Duration::from_secs(4));
    for (name, kind) in [
        ("MDA activities", GenerateKind::Activities),
        ("CloudAppEvents streaming records", GenerateKind::CloudAppEvents),
        ("MDA alerts", GenerateKind::Alerts),
        ("Graph alerts_v2", GenerateKind::GraphAlerts),
    ] {
        let lines = records_of(kind, 10_000);
        let mut packed = Packed::new(&lines);
        let mut converter = RecordConverter::new(&CefOptions::default());
        let mut sink = NullSink(Vec::with_capacity(2 << 20));
        let mut rejects = RejectLog::new(0);
        group.throughput(Throughput::Elements(lines.len() as u64));
        group.bench_function(format!("{name} ({} B/record)", packed.json_bytes / lines.len() as u64), |b| {
            b.iter(|| convert(&mut packed, &mut converter, &mut sink, &mut rejects))
        });
        assert_eq!(converter.counts.rejected, 0, "{name}");
    }
    group.finish();
}

fn escaping(c: &mut Criterion) {
    let clean = "admin@contoso.com Delete object: ServiceNow Object f5122008db360300906ff34ebf96198a ".repeat(20);
    let dirty = "C:\\Users\\a=b|c\r\nline two\u{1} ünï ".repeat(40);
    let mut group = c.benchmark_group("escape");
    for (name, text) in [("clean", &clean), ("dirty", &dirty)] {
        group.throughput(Throughput::Bytes(text.len() as u64));
        let mut out = Vec::with_capacity(text.len() * 2);
        group.bench_with_input(BenchmarkId::new("swar", name), text, |b, t| {
            b.iter(|| {
                out.clear();
                escape_extension(black_box(t.as_bytes()), &mut out);
                black_box(out.len())
            })
        });
        group.bench_with_input(BenchmarkId::new("naive", name), text, |b, t| {
            b.iter(|| black_box(naive::escape_extension(black_box(t)).len()))
        });
    }
    group.finish();
}

criterion_group!(benches, ndjson, pages, sources, escaping);
criterion_main!(benches);

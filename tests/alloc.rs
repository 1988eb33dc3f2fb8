//! Proof that converting and sending allocate nothing per record once warm.
//!
//! A counting global allocator wraps the system one. Each scenario runs the
//! real loop over thousands of varied records (activities, alerts, escapes,
//! nested values, large `rawDataJson`): a first pass grows the reused
//! buffers, the next must not allocate at all. The send path (rendering
//! into the sender's batch, framing, handing batches over, writing them
//! over TCP and UDP with sendmmsg, getting them back from the pool) is
//! measured the same way, and so is the agent's path: API pages through the
//! agent's gate (`_id` de-duplication, the sent ids, the resend window),
//! and the successor sources' records (streaming `CloudAppEvents`, Graph
//! alerts) as lines, streaming envelopes and Graph pages; and the parallel
//! `convert` (reader, workers, ordered writer).
//! Runs without the test harness (its own `main`) so no other thread
//! allocates while it measures.

use cefwire::agent::gate::SendOnceGate;
use cefwire::agent::resend::ResendWindow;
use cefwire::agent::state::SeenIds;
use cefwire::api::TimeKey;
use cefwire::cef::{CefOptions, KindChoice};
use cefwire::generate::{GenerateConfig, GenerateKind, RecordGenerator};
use cefwire::input::DocumentReader;
use cefwire::input::source::InputPath;
use cefwire::json::INPUT_PADDING;
use cefwire::output::{LineWriter, OutputPath};
use cefwire::parallel::{ParallelConverter, Parallelism};
use cefwire::progress::Progress;
use cefwire::records::{MessageSink, Origin, RecordConverter};
use cefwire::rejects::RejectLog;
use cefwire::send::{Destination, SendConfig, SyslogSender};
use cefwire::storage::lines::ChunkLines;
use std::io::{self, Read, Write};
use std::path::Path;
use std::time::Duration;

mod util;

use util::counting_alloc::{CountingAllocator, allocations};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// A sink that keeps only a checksum, reusing one buffer.
struct ChecksumSink {
    buffer: Vec<u8>,
    messages: u64,
    bytes: u64,
}

impl MessageSink for ChecksumSink {
    fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.buffer
    }

    fn commit(&mut self, start: usize) -> io::Result<()> {
        self.messages += 1;
        self.bytes += (self.buffer.len() - start) as u64;
        if self.buffer.len() > 1 << 16 {
            self.buffer.clear();
        }
        Ok(())
    }
}

/// Varied NDJSON from `seed`: generated activities and alerts (awkward
/// values, 3 % with a large blob), hand-made records with nested values,
/// numbers as strings, IPv6, floats and every escape, and 2 % records that
/// are rejected (not JSON, no `_id`, no `timestamp`, neither kind).
fn varied_ndjson(count: u64, seed: u64) -> Vec<u8> {
    varied_records(count, seed, true)
}

/// The same without the rejected records.
fn valid_ndjson(count: u64, seed: u64) -> Vec<u8> {
    varied_records(count, seed, false)
}

fn varied_records(count: u64, seed: u64, with_rejects: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for kind in [GenerateKind::Mixed, GenerateKind::Alerts] {
        let mut generator = RecordGenerator::new(GenerateConfig {
            kind,
            count,
            seed,
            late_ratio: 0.2,
            start_ms: 1_700_000_000_000,
            span_ms: 86_400_000,
        });
        let mut n = 0u64;
        while generator.write_next(&mut out) {
            out.push(b'\n');
            n += 1;
            if with_rejects && n.is_multiple_of(50) {
                let bad: &[u8] = match (n / 50 + seed) % 4 {
                    0 => b"this is not JSON {",
                    1 => br#"{"timestamp":1700000000000,"eventType":1}"#,
                    2 => br#"{"_id":"no-time","eventType":1}"#,
                    _ => br#"{"_id":"what","timestamp":1700000000000}"#,
                };
                out.extend_from_slice(bad);
                out.push(b'\n');
            }
        }
    }
    for n in 0..200 {
        let n = n + seed;
        out.extend_from_slice(
            format!(
                r#"{{"_id":"h{n}","timestamp":"{}","eventTypeName":"EVENT_CATEGORY_X|{n}","description":{{"k":["a=b\\c",{n}.5,null,true]}},"user":{{"userName":"u\r\n{n}"}},"device":{{"clientIP":"2001:db8::{n:x}","userAgent":1e{}}},"matchingRules":[{{"id":"r{n}"}},"s{n}"],"rawDataJson":{{"Big":"{}"}}}}"#,
                1_600_000_000_000u64 + n,
                n % 300,
                "x".repeat(100 * (n % 200) as usize)
            )
            .as_bytes(),
        );
        out.push(b'\n');
    }
    out
}

/// The longest line of `data` (a record the warm-up must have seen, so
/// that only per-record allocation can show in the measured pass).
fn longest_line(data: &[u8]) -> Vec<u8> {
    data.split(|&b| b == b'\n').max_by_key(|l| l.len()).unwrap().to_vec()
}

/// Runs `data` through the real reader and converter into `sink`; returns
/// the allocations made while doing so.
fn ndjson_through_the_reader(
    data: &[u8],
    converter: &mut RecordConverter,
    sink: &mut dyn MessageSink,
    rejects: &mut RejectLog,
) -> u64 {
    let mut reader = DocumentReader::from_reader("mem", Box::new(io::Cursor::new(data.to_vec())));
    let before = allocations();
    while let Some(doc) = reader.next_document().unwrap() {
        let origin = Origin { file: "mem", line: doc.line, multi_line: doc.whole_input };
        converter.convert_document(origin, doc.bytes, doc.len, sink, rejects).unwrap();
    }
    allocations() - before
}

/// API pages of up to 500 records, built outside the measurement.
fn pages_of(data: &[u8]) -> Vec<Vec<u8>> {
    let mut pages = Vec::new();
    let records: Vec<&[u8]> =
        data.split(|&b| b == b'\n').filter(|l| l.starts_with(b"{") && l.ends_with(b"}")).collect();
    for chunk in records.chunks(500) {
        let mut text = b"{\"data\":[".to_vec();
        text.extend_from_slice(&chunk.join(&b","[..]));
        text.extend_from_slice(b"],\"hasNext\":true,\"total\":1}");
        pages.push(text);
    }
    pages
}

fn page_documents(
    pages: &[Vec<u8>],
    converter: &mut RecordConverter,
    sink: &mut ChecksumSink,
    page: &mut Vec<u8>,
) -> u64 {
    let mut rejects = RejectLog::with_messages(0, Box::new(io::sink()));
    let before = allocations();
    for text in pages {
        page.clear();
        page.extend_from_slice(text);
        let len = page.len();
        page.resize(len + INPUT_PADDING, 0);
        converter
            .convert_document(Origin { file: "page", line: 1, multi_line: false }, page, len, sink, &mut rejects)
            .unwrap();
    }
    allocations() - before
}

/// Converts a compressed file (reader opened outside the measurement) and
/// returns the allocations of reading and converting all of it.
fn compressed_file(path: &Path, converter: &mut RecordConverter, sink: &mut ChecksumSink) -> u64 {
    let mut rejects = RejectLog::with_messages(0, Box::new(io::sink()));
    let mut reader = DocumentReader::open(&InputPath::File(path.to_path_buf())).unwrap();
    let before = allocations();
    while let Some(doc) = reader.next_document().unwrap() {
        let origin = Origin { file: "file", line: doc.line, multi_line: doc.whole_input };
        converter.convert_document(origin, doc.bytes, doc.len, sink, &mut rejects).unwrap();
    }
    allocations() - before
}

/// The agent's path: each page through the shared loop's page entry with
/// the agent's gate, the kind forced as for the activities stream.
fn agent_pages(
    pages: &[Vec<u8>],
    converter: &mut RecordConverter,
    sink: &mut ChecksumSink,
    page: &mut Vec<u8>,
    seen: &mut SeenIds,
    resend: &mut ResendWindow,
) -> u64 {
    let mut rejects = RejectLog::new(0);
    converter.set_kind(KindChoice::Activities);
    let before = allocations();
    for (number, text) in pages.iter().enumerate() {
        page.clear();
        page.extend_from_slice(text);
        let len = page.len();
        page.resize(len + INPUT_PADDING, 0);
        let origin = Origin { file: "activities", line: number as u64 + 1, multi_line: false };
        let mut gate = SendOnceGate::new(seen, resend, TimeKey::Created);
        converter.convert_page(origin, page, len, sink, &mut rejects, &mut gate, |_| Some(())).unwrap();
    }
    allocations() - before
}

/// The agent's gate over pages: every record sent once and remembered,
/// sent again once its id was forgotten, skipped while it is remembered;
/// no allocation once warm. A 1 MiB resend window cycles many times per
/// pass.
fn agent_path_allocates_nothing_once_warm(pages: &[Vec<u8>], records: u64) {
    let mut converter = RecordConverter::new(&CefOptions::default());
    let mut sink = ChecksumSink { buffer: Vec::new(), messages: 0, bytes: 0 };
    let mut page = Vec::new();
    let mut seen = SeenIds::default();
    let mut resend = ResendWindow::new(1 << 20);
    let warm = agent_pages(pages, &mut converter, &mut sink, &mut page, &mut seen, &mut resend);
    assert_eq!(converter.counts.converted(), records, "every record sent once");
    assert_eq!(seen.len() as u64, records, "every id remembered");
    // A slice ends: the ids fall out of the overlap, the same records come again as new ones.
    seen.prune(i64::MAX);
    let steady = agent_pages(pages, &mut converter, &mut sink, &mut page, &mut seen, &mut resend);
    assert_eq!(converter.counts.converted(), 2 * records, "sent again after the ids were forgotten");
    println!("agent pages: {records} records; allocations: first pass {warm}, second pass {steady}");
    assert_eq!(steady, 0, "the agent's path allocated {steady} times for {records} records once warm");
    // An overlap re-read: every record is a duplicate.
    let repeat = agent_pages(pages, &mut converter, &mut sink, &mut page, &mut seen, &mut resend);
    assert_eq!(converter.counts.converted(), 2 * records, "nothing sent twice");
    assert_eq!(converter.counts.skipped, records, "every repeated id skipped");
    println!("agent pages, all seen before: allocations {repeat}");
    assert_eq!(repeat, 0, "skipping duplicates allocated {repeat} times");
    assert_eq!(resend.pushed(), 2 * records);
    assert_eq!(sink.messages, 2 * records);
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    // Two different data sets: the warm-up pass runs over one (and the
    // longest record of the other), the measured pass over the other.
    let measured = varied_ndjson(3000, 43);
    let mut warm = varied_ndjson(3000, 42);
    warm.extend_from_slice(&longest_line(&measured));
    warm.push(b'\n');
    let mut converter = RecordConverter::new(&CefOptions::default());
    let mut sink = ChecksumSink { buffer: Vec::new(), messages: 0, bytes: 0 };
    // Rejected records are kept in a file, as `--rejects FILE` does.
    let mut rejects = RejectLog::with_messages(0, Box::new(io::sink()));
    rejects.keep_records_in(&dir.path().join("rejects.ndjson")).unwrap();

    let warmed = ndjson_through_the_reader(&warm, &mut converter, &mut sink, &mut rejects);
    let before = (sink.messages, rejects.total());
    let steady = ndjson_through_the_reader(&measured, &mut converter, &mut sink, &mut rejects);
    let (records, rejected) = (sink.messages - before.0, rejects.total() - before.1);
    assert!(records > 6000 && rejected > 100, "{records} records converted, {rejected} rejected");
    println!(
        "NDJSON: {records} records and {rejected} rejects (kept in a file); allocations: warm-up {warmed}, \
         other data {steady}"
    );
    assert_eq!(steady, 0, "NDJSON conversion allocated {steady} times for {records} records once warm");

    let mut page = Vec::new();
    let warmed = page_documents(&pages_of(&warm), &mut converter, &mut sink, &mut page);
    let steady = page_documents(&pages_of(&measured), &mut converter, &mut sink, &mut page);
    println!("pages of 500: allocations: warm-up {warmed}, other data {steady}");
    assert_eq!(steady, 0, "page conversion allocated {steady} times once warm");
    assert!(sink.bytes > 0);

    // The file writer of `convert -o FILE`.
    let mut writer = LineWriter::create(&OutputPath::File(dir.path().join("out.cef"))).unwrap();
    let mut no_rejects = RejectLog::with_messages(0, Box::new(io::sink()));
    let warmed = ndjson_through_the_reader(&warm, &mut converter, &mut writer, &mut no_rejects);
    let steady = ndjson_through_the_reader(&measured, &mut converter, &mut writer, &mut no_rejects);
    writer.finish().unwrap();
    println!("file writer: allocations: warm-up {warmed}, other data {steady}");
    assert_eq!(steady, 0, "writing CEF to a file allocated {steady} times once warm");

    // gzip and zstd files: a new reader per file has its own buffers to
    // grow, so the proof is that a file three times as long (more, and
    // different, records; the same longest record first) costs not one
    // allocation more.
    let longest = longest_line(&[measured.clone(), varied_ndjson(3000, 44), varied_ndjson(3000, 45)].concat());
    let small = [&longest[..], b"\n", &measured].concat();
    let large = [&small[..], &varied_ndjson(3000, 44), &varied_ndjson(3000, 45)].concat();
    for (name, compress) in [
        (
            "gzip",
            (|data: &[u8]| {
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                gz.write_all(data).unwrap();
                gz.finish().unwrap()
            }) as fn(&[u8]) -> Vec<u8>,
        ),
        ("zstd", |data: &[u8]| zstd::encode_all(data, 1).unwrap()),
    ] {
        let (small_path, large_path) =
            (dir.path().join(format!("small.{name}")), dir.path().join(format!("large.{name}")));
        std::fs::write(&small_path, compress(&small)).unwrap();
        std::fs::write(&large_path, compress(&large)).unwrap();
        compressed_file(&small_path, &mut converter, &mut sink);
        let messages = sink.messages;
        let for_small = compressed_file(&small_path, &mut converter, &mut sink);
        let small_records = sink.messages - messages;
        let for_large = compressed_file(&large_path, &mut converter, &mut sink);
        let large_records = sink.messages - messages - small_records;
        println!(
            "{name} input: allocations {for_small} for {small_records} records, {for_large} for {large_records} \
             records"
        );
        assert!(large_records > 2 * small_records);
        assert_eq!(for_large, for_small, "{name}: more records, more allocations: per-record allocation");
    }

    parallel_convert_allocates_nothing_per_record(&small, &large);

    // The agent's path, over records that all convert.
    let valid = valid_ndjson(3000, 46);
    let valid_records = valid.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count() as u64;
    agent_path_allocates_nothing_once_warm(&pages_of(&valid), valid_records);

    successor_records_allocate_nothing_once_warm();
    storage_chunks_allocate_nothing_once_warm();

    sending_allocates_nothing_per_message_once_warm();
    println!("alloc: ok");
}

/// `convert --threads 2`: the reader, the two workers (each its own
/// converter, output and reject buffers, reused chunk by chunk) and the
/// ordered writer. Each input starts its threads and channels, a fixed
/// cost; which worker gets which chunk varies from run to run, so each
/// size runs five times (after six warm-up runs) and the fewest allocations count. The proof is
/// that three times the records cost no more allocations than the fixed
/// per-thread ones.
fn parallel_convert_allocates_nothing_per_record(small: &[u8], large: &[u8]) {
    let mut rejects = RejectLog::with_messages(0, Box::new(io::sink()));
    let mut converter = ParallelConverter::new(Parallelism::threads(2), &CefOptions::default(), &rejects);
    let mut sink = ChecksumSink { buffer: Vec::new(), messages: 0, bytes: 0 };
    let mut run = |data: &[u8], sink: &mut ChecksumSink| {
        let mut reader = DocumentReader::from_reader("mem", Box::new(io::Cursor::new(data.to_vec())));
        let before = allocations();
        converter.convert_input(&mut reader, sink, &mut rejects, &Progress::hidden(), 0).unwrap();
        allocations() - before
    };
    for _ in 0..6 {
        run(large, &mut sink);
    }
    let messages = sink.messages;
    let for_small = (0..5).map(|_| run(small, &mut sink)).min().unwrap();
    let small_records = (sink.messages - messages) / 5;
    let messages = sink.messages;
    let for_large = (0..5).map(|_| run(large, &mut sink)).min().unwrap();
    let large_records = (sink.messages - messages) / 5;
    println!(
        "parallel convert (2 threads): allocations {for_small} for {small_records} records, {for_large} for \
         {large_records} records"
    );
    assert!(large_records > 2 * small_records);
    // Waiting on a crossbeam channel allocates, once per input, a thread's
    // waiting context (4 threads: reader, 2 workers, writer) and room in
    // the channel's lists of waiting senders and receivers (3 channels × 2
    // lists, at most twice each); whether a thread ever waits depends on
    // timing. Those are the only allocations allowed to differ, against
    // 12 000 more records.
    let timing_dependent = 4 + 3 * 2 * 2;
    assert!(
        for_large <= for_small + timing_dependent,
        "parallel convert: more records, more allocations ({for_small} → {for_large}): per-record allocation"
    );
}

/// Generated streaming records and Graph alerts, one per line.
fn successor_ndjson(count: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for kind in [GenerateKind::CloudAppEvents, GenerateKind::GraphAlerts] {
        let mut generator = RecordGenerator::new(GenerateConfig {
            kind,
            count,
            seed: 43,
            late_ratio: 0.2,
            start_ms: 1_700_000_000_000,
            span_ms: 86_400_000,
        });
        while generator.write_next(&mut out) {
            out.push(b'\n');
        }
    }
    out
}

/// Streaming envelopes (Event Hubs bodies, `{"records":[…]}`) and Graph
/// pages (`{"value":[…]}`) of up to 500 records.
fn wrapped_pages_of(data: &[u8]) -> Vec<Vec<u8>> {
    let wrappers: [(&[u8], &[u8]); 2] = [
        (b"{\"records\":[", b"]}"),
        (b"{\"@odata.context\":\"x\",\"value\":[", b"],\"@odata.nextLink\":\"https://graph.microsoft.com/v1.0/x\"}"),
    ];
    let lines: Vec<&[u8]> = data.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect();
    let mut pages = Vec::new();
    for (n, chunk) in lines.chunks(500).enumerate() {
        let (open, close) = wrappers[n % 2];
        let mut text = open.to_vec();
        text.extend_from_slice(&chunk.join(&b","[..]));
        text.extend_from_slice(close);
        pages.push(text);
    }
    pages
}

/// Streaming records and Graph alerts, as lines and in their wrappings,
/// detected per record: no allocation once warm.
fn successor_records_allocate_nothing_once_warm() {
    let data = successor_ndjson(3000);
    let mut converter = RecordConverter::new(&CefOptions::default());
    let mut sink = ChecksumSink { buffer: Vec::new(), messages: 0, bytes: 0 };
    let mut rejects = RejectLog::with_messages(0, Box::new(io::sink()));
    let warm = ndjson_through_the_reader(&data, &mut converter, &mut sink, &mut rejects);
    let steady = ndjson_through_the_reader(&data, &mut converter, &mut sink, &mut rejects);
    let counts = converter.counts;
    assert_eq!((counts.cloud_app_events, counts.graph_alerts, counts.rejected), (6000, 6000, 0), "{counts:?}");
    println!("successor lines: 6000 records; allocations: first pass {warm}, second pass {steady}");
    assert_eq!(steady, 0, "streaming/Graph conversion allocated {steady} times once warm");

    let pages = wrapped_pages_of(&data);
    let mut page = Vec::new();
    let warm = page_documents(&pages, &mut converter, &mut sink, &mut page);
    let steady = page_documents(&pages, &mut converter, &mut sink, &mut page);
    assert_eq!((converter.counts.cloud_app_events, converter.counts.graph_alerts), (12_000, 12_000));
    println!("successor envelopes and pages: allocations: first pass {warm}, second pass {steady}");
    assert_eq!(steady, 0, "streaming envelopes / Graph pages allocated {steady} times once warm");
}

/// The Storage source's path: chunks of archive lines (CRLF ends among
/// them) through `ChunkLines` and the agent's `ReportId` gate, as
/// `agent/storage.rs` runs them. Sent once and remembered, sent again
/// once the ids were forgotten, skipped while remembered: no allocation
/// once warm.
fn storage_chunks_allocate_nothing_once_warm() {
    let mut data = Vec::new();
    let mut generator = RecordGenerator::new(GenerateConfig {
        kind: GenerateKind::CloudAppEvents,
        count: 3000,
        seed: 47,
        late_ratio: 0.0,
        start_ms: 1_700_000_000_000,
        span_ms: 86_400_000,
    });
    let mut line = 0;
    while generator.write_next(&mut data) {
        line += 1;
        data.extend_from_slice(if line % 3 == 0 { b"\r\n" } else { b"\n" });
    }
    // Chunks of about 64 KiB, each ending at a line end, as the reader cuts them.
    let mut chunks = Vec::new();
    let mut start = 0;
    while start < data.len() {
        let end = (start + (64 << 10)).min(data.len());
        let end = start + memchr::memrchr(b'\n', &data[start..end]).map_or(end - start, |n| n + 1);
        let position = cefwire::azure::archive::ChunkPosition {
            blob: "y=2026/m=12/d=05/h=10/m=00/PT1H.json".to_owned(),
            start: start as u64,
            end: end as u64,
        };
        chunks.push((position, data[start..end].to_vec()));
        start = end;
    }
    let mut converter = RecordConverter::new(&CefOptions::default());
    let mut sink = ChecksumSink { buffer: Vec::new(), messages: 0, bytes: 0 };
    let mut rejects = RejectLog::with_messages(0, Box::new(io::sink()));
    let mut lines = ChunkLines::default();
    let mut seen = SeenIds::default();
    let mut resend = ResendWindow::new(1 << 20);
    let mut pass = |seen: &mut SeenIds, converter: &mut RecordConverter, sink: &mut ChecksumSink| {
        let before = allocations();
        for (position, chunk) in &chunks {
            let mut gate = SendOnceGate::new(seen, &mut resend, TimeKey::Date);
            lines.convert(position, chunk, converter, sink, &mut rejects, &mut gate).unwrap();
        }
        allocations() - before
    };
    let warm = pass(&mut seen, &mut converter, &mut sink);
    assert_eq!((converter.counts.converted(), converter.counts.rejected), (3000, 0), "{:?}", converter.counts);
    seen.prune(i64::MAX);
    let steady = pass(&mut seen, &mut converter, &mut sink);
    assert_eq!(converter.counts.converted(), 6000, "sent again once the ids were forgotten");
    let repeat = pass(&mut seen, &mut converter, &mut sink);
    assert_eq!((converter.counts.converted(), converter.counts.skipped), (6000, 3000), "every repeat skipped");
    println!(
        "storage chunks ({} chunks, 3000 records): allocations: first pass {warm}, second pass {steady}, all seen \
         before {repeat}",
        chunks.len()
    );
    assert_eq!(steady, 0, "the Storage path allocated {steady} times once warm");
    assert_eq!(repeat, 0, "skipping repeated ReportIds allocated {repeat} times");
}

// ------------------------------------------------------------ send path

const MESSAGE: &[u8] = b"<134>2026-01-01T00:00:00.821Z testhost CEF:0|MCAS|SIEM_Agent|0.1.0|EVENT_CATEGORY_DELETE_OBJECT|Delete object|0|externalId=1767225602913_32e8516b-c76b-122e-934b-aa3a279a6011 rt=1767225600821 start=1767225600821 end=1767225600821 msg=Delete object: GitHub suser=grace@test15-adallom.com destinationServiceName=GitHub dvc=23.252.73.108";

fn send(sender: &mut SyslogSender, count: usize) {
    for i in 0..count {
        let buffer = sender.buffer();
        let start = buffer.len();
        buffer.extend_from_slice(MESSAGE);
        // Vary the length a little, as real messages do.
        buffer.truncate(buffer.len() - i % 7);
        sender.commit(start).unwrap();
    }
}

/// A small pool, so that the producer waits for free batches (the
/// backpressure path is part of what is measured).
fn small_pool(mut config: SendConfig) -> SendConfig {
    config.batches = 2;
    config.batch_bytes = 64 * 1024;
    config
}

fn allocations_while_sending(sender: &mut SyslogSender) -> u64 {
    // Warm up: every pooled batch used at least once at full size, and
    // the producer has waited for the writer.
    send(sender, 60_000);
    sender.flush(Duration::from_secs(30)).unwrap();
    let before = allocations();
    send(sender, 200_000);
    sender.flush(Duration::from_secs(30)).unwrap();
    allocations() - before
}

fn sending_allocates_nothing_per_message_once_warm() {
    // TCP: a receiver thread that reads into a fixed buffer.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let reader = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0u64;
        loop {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => return total,
                Ok(n) => total += n as u64,
            }
        }
    });
    let config = small_pool(SendConfig::new(vec![Destination::parse(&format!("tcp://{addr}")).unwrap()]));
    let mut sender = SyslogSender::start(&config).unwrap();
    let tcp = allocations_while_sending(&mut sender);
    let report = sender.finish().unwrap();
    assert_eq!(report.messages_written, 260_000);
    let received = reader.join().unwrap();
    assert_eq!(received, report.bytes_written);

    // UDP with sendmmsg: nobody needs to read (datagrams may be dropped).
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let config = small_pool(SendConfig::new(vec![
        Destination::parse(&format!("udp://{}", socket.local_addr().unwrap())).unwrap(),
    ]));
    let mut sender = SyslogSender::start(&config).unwrap();
    let udp = allocations_while_sending(&mut sender);
    drop(sender.finish().unwrap());

    // TLS (rustls), into `cefwire sink` in its own process.
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = util::tls::test_pki(pki_dir.path());
    let receiver = util::sink::SinkProcess::start(
        "tls://127.0.0.1:0",
        &["--cert", pki.server_cert.to_str().unwrap(), "--key", pki.server_key.to_str().unwrap()],
    );
    let mut config =
        small_pool(SendConfig::new(vec![Destination::parse(&format!("tls://localhost:{}", receiver.port())).unwrap()]));
    config.tls.ca = Some(pki.ca.clone());
    let mut sender = SyslogSender::start(&config).unwrap();
    let tls = allocations_while_sending(&mut sender);
    let report = sender.finish().unwrap();
    assert_eq!(report.messages_written, 260_000, "{report:?}");
    let received = receiver.stop();
    assert_eq!(util::json_u64(&received, "messages"), 260_000, "{received}");

    println!("allocations while sending 200,000 messages: TCP {tcp}, UDP {udp}, TLS {tls}");
    assert_eq!((tcp, udp), (0, 0), "allocations while sending 200,000 messages (TCP, UDP)");
    // rustls encrypts each TLS record (at most 16 KiB of plaintext) into a
    // new buffer: TLS costs an allocation or two per TLS record (measured:
    // about 1.2), never one per message (a record carries about 50).
    let tls_records = (200_000 * (MESSAGE.len() as u64 + 4)).div_ceil(16 * 1024);
    assert!(
        tls <= 2 * tls_records,
        "TLS allocated {tls} times for 200,000 messages: more than two per TLS record ({tls_records})"
    );

    relp_allocates_nothing_per_message_once_warm();

    // The whole job: NDJSON records converted straight into the sender.
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let config = small_pool(SendConfig::new(vec![
        Destination::parse(&format!("udp://{}", socket.local_addr().unwrap())).unwrap(),
    ]));
    let mut sender = SyslogSender::start(&config).unwrap();
    let converting = allocations_while_converting(&mut sender);
    let report = sender.finish().unwrap();
    assert_eq!(report.messages_written, 2 * 2001 + 20 * 2000);
    println!("allocations while converting and sending 40,000 other records: {converting}");
    assert_eq!(converting, 0, "allocations while converting and sending 40,000 records");
}

/// RELP to a real rsyslog `imrelp`: encoding commands, reading and
/// parsing its answers, moving the window and confirming batches.
fn relp_allocates_nothing_per_message_once_warm() {
    if !util::rsyslog::Rsyslog::available() {
        return;
    }
    let dir = tempfile::Builder::new().prefix("cefwire-alloc-relp-").tempdir().unwrap();
    let inputs = util::rsyslog::Inputs { relp: true, ..Default::default() };
    let rsyslog = util::rsyslog::Rsyslog::start_with(dir.path(), &inputs);
    let config = small_pool(SendConfig::new(vec![Destination::parse(&rsyslog.relp_url()).unwrap()]));
    let mut sender = SyslogSender::start(&config).unwrap();
    let relp = allocations_while_sending(&mut sender);
    let report = sender.finish().unwrap();
    drop(rsyslog);
    assert_eq!(report.messages_written, 260_000, "every message acknowledged: {report:?}");
    eprintln!("allocations while sending 200,000 messages over RELP: {relp}");
    assert_eq!(relp, 0, "allocations while sending 200,000 messages over RELP");
}

fn generated_records(seed: u64) -> Vec<Vec<u8>> {
    let mut generator = RecordGenerator::new(GenerateConfig {
        kind: GenerateKind::Mixed,
        count: 2000,
        seed,
        late_ratio: 0.1,
        start_ms: 1_767_225_600_000,
        span_ms: 86_400_000,
    });
    let mut records = Vec::new();
    let mut record = Vec::new();
    while generator.write_next(&mut record) {
        records.push(std::mem::take(&mut record));
    }
    records
}

/// Warms up on one data set (and the longest record of the other), then
/// measures 20 passes over 2,000 different records.
fn allocations_while_converting(sender: &mut SyslogSender) -> u64 {
    let measured = generated_records(4);
    let mut warm = generated_records(3);
    warm.push(measured.iter().max_by_key(|r| r.len()).unwrap().clone());
    let longest = warm.iter().map(Vec::len).max().unwrap();
    let mut padded = vec![b' '; longest + INPUT_PADDING];
    let mut converter = RecordConverter::new(&CefOptions::default());
    let mut rejects = RejectLog::new(0);
    let mut pass = |sender: &mut SyslogSender, records: &[Vec<u8>]| {
        for (line, record) in records.iter().enumerate() {
            padded[..record.len()].copy_from_slice(record);
            padded[record.len()..].fill(b' ');
            let origin = Origin { file: "memory", line: line as u64 + 1, multi_line: false };
            converter.convert_document(origin, &mut padded, record.len(), sender, &mut rejects).unwrap();
        }
    };
    pass(sender, &warm);
    pass(sender, &warm);
    sender.flush(Duration::from_secs(30)).unwrap();
    let before = allocations();
    for _ in 0..20 {
        pass(sender, &measured);
    }
    sender.flush(Duration::from_secs(30)).unwrap();
    assert_eq!(converter.counts.rejected, 0);
    allocations() - before
}

//! Proof that converting records allocates nothing per record once warm.
//!
//! A counting global allocator wraps the system one. Each scenario runs the
//! real conversion loop twice over thousands of varied records
//! (activities, alerts, escapes, nested values, large `rawDataJson`): the
//! first pass grows the reused buffers, the second must not allocate at
//! all. Runs without the test harness so no other thread allocates.

use cefwire::cef::CefOptions;
use cefwire::generate::{GenerateConfig, GenerateKind, RecordGenerator};
use cefwire::input::DocumentReader;
use cefwire::json::INPUT_PADDING;
use cefwire::records::{MessageSink, Origin, RecordConverter};
use cefwire::rejects::RejectLog;
use std::io;

#[path = "util/counting_alloc.rs"]
mod counting_alloc;

use counting_alloc::{CountingAllocator, allocations};

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

/// Varied NDJSON: generated activities and alerts (awkward values, 3 % with
/// a large blob) plus hand-made records with nested values, numbers as
/// strings, IPv6, floats and every escape.
fn varied_ndjson(count: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for kind in [GenerateKind::Mixed, GenerateKind::Alerts] {
        let mut generator = RecordGenerator::new(GenerateConfig {
            kind,
            count,
            seed: 42,
            late_ratio: 0.2,
            start_ms: 1_700_000_000_000,
            span_ms: 86_400_000,
        });
        while generator.write_next(&mut out) {
            out.push(b'\n');
        }
    }
    for n in 0..200 {
        out.extend_from_slice(
            format!(
                r#"{{"_id":"h{n}","timestamp":"{}","eventTypeName":"EVENT_CATEGORY_X|{n}","description":{{"k":["a=b\\c",{n}.5,null,true]}},"user":{{"userName":"u\r\n{n}"}},"device":{{"clientIP":"2001:db8::{n:x}","userAgent":1e{n}}},"matchingRules":[{{"id":"r{n}"}},"s{n}"],"rawDataJson":{{"Big":"{}"}}}}"#,
                1_600_000_000_000u64 + n,
                "x".repeat(100 * n as usize)
            )
            .as_bytes(),
        );
        out.push(b'\n');
    }
    out
}

fn ndjson_through_the_reader(data: &[u8], converter: &mut RecordConverter, sink: &mut ChecksumSink) -> u64 {
    let mut rejects = RejectLog::new(0);
    let mut reader = DocumentReader::from_reader("mem", Box::new(io::Cursor::new(data.to_vec())));
    let before = allocations();
    while let Some(doc) = reader.next_document().unwrap() {
        let origin = Origin { file: "mem", line: doc.line, multi_line: doc.whole_input };
        converter.convert_document(origin, doc.bytes, doc.len, sink, &mut rejects).unwrap();
    }
    allocations() - before
}

fn page_documents(data: &[u8], converter: &mut RecordConverter, sink: &mut ChecksumSink, page: &mut Vec<u8>) -> u64 {
    let mut rejects = RejectLog::new(0);
    // Build pages of up to 500 records first (outside the measurement).
    let mut pages = Vec::new();
    for chunk in data.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect::<Vec<_>>().chunks(500) {
        let mut text = b"{\"data\":[".to_vec();
        text.extend_from_slice(&chunk.join(&b","[..]));
        text.extend_from_slice(b"],\"hasNext\":true,\"total\":1}");
        pages.push(text);
    }
    let before = allocations();
    for text in &pages {
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

fn main() {
    let data = varied_ndjson(3000);
    let mut converter = RecordConverter::new(&CefOptions::default());
    let mut sink = ChecksumSink { buffer: Vec::new(), messages: 0, bytes: 0 };

    let warm = ndjson_through_the_reader(&data, &mut converter, &mut sink);
    let records = sink.messages;
    let steady = ndjson_through_the_reader(&data, &mut converter, &mut sink);
    assert_eq!(sink.messages, 2 * records, "every record converted both times");
    assert_eq!(converter.counts.rejected, 0);
    println!("NDJSON: {records} records; allocations: first pass {warm}, second pass {steady}");
    assert_eq!(steady, 0, "NDJSON conversion allocated {steady} times for {records} records once warm");

    let mut page = Vec::new();
    let warm = page_documents(&data, &mut converter, &mut sink, &mut page);
    let steady = page_documents(&data, &mut converter, &mut sink, &mut page);
    println!("pages: {records} records; allocations: first pass {warm}, second pass {steady}");
    assert_eq!(steady, 0, "page conversion allocated {steady} times for {records} records once warm");
    assert!(sink.bytes > 0);
    println!("alloc: ok");
}

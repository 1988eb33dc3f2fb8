//! Proof that converting and sending allocate nothing per record once warm.
//!
//! A counting global allocator wraps the system one. Each scenario runs the
//! real loop over thousands of varied records (activities, alerts, escapes,
//! nested values, large `rawDataJson`): a first pass grows the reused
//! buffers, the next must not allocate at all. The send path (rendering
//! into the sender's batch, framing, handing batches over, writing them
//! over TCP and UDP with sendmmsg, getting them back from the pool) is
//! measured the same way, and so is the agent's path: API pages through the
//! agent's gate (`_id` de-duplication, the sent ids, the resend window).
//! Runs without the test harness (its own `main`) so no other thread
//! allocates while it measures.

use cefwire::agent::gate::SendOnceGate;
use cefwire::agent::resend::ResendWindow;
use cefwire::agent::state::SeenIds;
use cefwire::api::TimeKey;
use cefwire::cef::{CefOptions, KindChoice};
use cefwire::generate::{GenerateConfig, GenerateKind, RecordGenerator};
use cefwire::input::DocumentReader;
use cefwire::json::INPUT_PADDING;
use cefwire::records::{MessageSink, Origin, RecordConverter};
use cefwire::rejects::RejectLog;
use cefwire::send::{Destination, SendConfig, SyslogSender};
use std::io::{self, Read};
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

/// Pages of up to 500 records, the way the API sends them.
fn pages_of(data: &[u8]) -> Vec<Vec<u8>> {
    let mut pages = Vec::new();
    for chunk in data.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect::<Vec<_>>().chunks(500) {
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
    let mut rejects = RejectLog::new(0);
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

    let pages = pages_of(&data);
    let mut page = Vec::new();
    let warm = page_documents(&pages, &mut converter, &mut sink, &mut page);
    let steady = page_documents(&pages, &mut converter, &mut sink, &mut page);
    println!("pages: {records} records; allocations: first pass {warm}, second pass {steady}");
    assert_eq!(steady, 0, "page conversion allocated {steady} times for {records} records once warm");
    assert!(sink.bytes > 0);

    agent_path_allocates_nothing_once_warm(&pages, records);

    sending_allocates_nothing_per_message_once_warm();
    println!("alloc: ok");
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

    eprintln!("allocations while sending 200,000 messages: TCP {tcp}, UDP {udp}");
    assert_eq!((tcp, udp), (0, 0), "allocations while sending 200,000 messages (TCP, UDP)");

    // The whole job: NDJSON records converted straight into the sender.
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let config = small_pool(SendConfig::new(vec![
        Destination::parse(&format!("udp://{}", socket.local_addr().unwrap())).unwrap(),
    ]));
    let mut sender = SyslogSender::start(&config).unwrap();
    let converting = allocations_while_converting(&mut sender);
    let report = sender.finish().unwrap();
    assert_eq!(report.messages_written, 22 * 2000);
    eprintln!("allocations while converting and sending 40,000 records: {converting}");
    assert_eq!(converting, 0, "allocations while converting and sending 40,000 records");
}

fn allocations_while_converting(sender: &mut SyslogSender) -> u64 {
    let mut generator = RecordGenerator::new(GenerateConfig {
        kind: GenerateKind::Mixed,
        count: 2000,
        seed: 3,
        late_ratio: 0.1,
        start_ms: 1_767_225_600_000,
        span_ms: 86_400_000,
    });
    let mut records = Vec::new();
    let mut record = Vec::new();
    while generator.write_next(&mut record) {
        records.push(std::mem::take(&mut record));
    }
    let longest = records.iter().map(Vec::len).max().unwrap();
    let mut padded = vec![b' '; longest + INPUT_PADDING];
    let mut converter = RecordConverter::new(&CefOptions::default());
    let mut rejects = RejectLog::new(0);
    let mut pass = |sender: &mut SyslogSender| {
        for (line, record) in records.iter().enumerate() {
            padded[..record.len()].copy_from_slice(record);
            padded[record.len()..].fill(b' ');
            let origin = Origin { file: "memory", line: line as u64 + 1, multi_line: false };
            converter.convert_document(origin, &mut padded, record.len(), sender, &mut rejects).unwrap();
        }
    };
    pass(sender);
    pass(sender);
    sender.flush(Duration::from_secs(30)).unwrap();
    let before = allocations();
    for _ in 0..20 {
        pass(sender);
    }
    sender.flush(Duration::from_secs(30)).unwrap();
    assert_eq!(converter.counts.rejected, 0);
    allocations() - before
}

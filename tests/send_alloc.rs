//! The send path allocates nothing per message once warm: rendering into
//! the sender's batch, framing, handing batches over, writing them (TCP
//! and UDP with sendmmsg) and getting them back from the pool, and the same
//! with NDJSON records converted straight into the sender. Proved with
//! a counting global allocator (its own test binary, so nothing else runs
//! in the process).

use cefwire::records::MessageSink;
use cefwire::send::{Destination, SendConfig, SyslogSender};
use std::io::Read;
use std::time::Duration;

#[path = "util/counting_alloc.rs"]
mod counting_alloc;

use counting_alloc::{CountingAllocator, allocations};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

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

#[test]
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
    use cefwire::generate::{GenerateConfig, GenerateKind, RecordGenerator};
    use cefwire::records::{Origin, RecordConverter};
    use cefwire::rejects::RejectLog;
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
    let mut padded = vec![b' '; longest + cefwire::json::INPUT_PADDING];
    let mut converter = RecordConverter::new(&cefwire::cef::CefOptions::default());
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

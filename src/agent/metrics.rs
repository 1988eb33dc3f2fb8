//! Optional Prometheus endpoint (`--metrics 127.0.0.1:9100`): a tiny HTTP
//! server on its own thread answering `GET /metrics` with the agent's
//! counters in the text exposition format. It reads a snapshot of the
//! health report; it never touches the pipeline.

use super::health::{EventHubsHealth, GraphHealth, HealthReport, HealthState, StorageHealth};
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Renders a report in the Prometheus text format, judged at `now_ms`.
pub fn render(report: &HealthReport, now_ms: i64) -> String {
    let status = report.classify(now_ms);
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, samples: &[(&str, f64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let streams = |f: fn(&super::health::StreamHealth) -> u64| {
        [("{stream=\"activities\"}", f(&report.activities) as f64), ("{stream=\"alerts\"}", f(&report.alerts) as f64)]
    };
    family("cefwire_records_fetched_total", "counter", "Records fetched from the API.", &streams(|s| s.fetched));
    family("cefwire_records_sent_total", "counter", "Records written to syslog.", &streams(|s| s.sent));
    family(
        "cefwire_records_rejected_total",
        "counter",
        "Records that could not be converted.",
        &streams(|s| s.rejected),
    );
    family(
        "cefwire_records_duplicate_total",
        "counter",
        "Records skipped because they were already sent (overlap re-reads).",
        &streams(|s| s.duplicates_skipped),
    );
    let c = &report.api_counters;
    family("cefwire_api_requests_total", "counter", "API requests made.", &[("", c.requests as f64)]);
    family("cefwire_api_retries_total", "counter", "API requests retried after an error.", &[("", c.retries as f64)]);
    family(
        "cefwire_api_throttled_total",
        "counter",
        "API responses 429 Too Many Requests.",
        &[("", c.throttled_429 as f64)],
    );
    if let Some(lag) = status.lag_ms {
        family(
            "cefwire_lag_seconds",
            "gauge",
            "Now minus the time of the newest record sent.",
            &[("", lag as f64 / 1000.0)],
        );
    }
    if let Some(e) = &report.eventhubs {
        render_eventhubs(e, &mut family);
    }
    if let Some(g) = &report.graph {
        render_graph(g, now_ms, &mut family);
    }
    if let Some(s) = &report.storage {
        render_storage(s, &mut family);
    }
    let states = [HealthState::Connected, HealthState::ConnectionError, HealthState::Disconnected];
    let labels: Vec<String> = states.iter().map(|s| format!("{{state=\"{}\"}}", s.as_str())).collect();
    let samples: Vec<(&str, f64)> =
        states.iter().zip(&labels).map(|(s, l)| (l.as_str(), f64::from(u8::from(*s == status.state)))).collect();
    family("cefwire_health", "gauge", "1 for the agent's current health state.", &samples);
    out
}

/// The Graph source's families: its requests by outcome, whether it is
/// failing and how long ago a page last came.
fn render_graph(g: &GraphHealth, now_ms: i64, family: &mut impl FnMut(&str, &str, &str, &[(&str, f64)])) {
    for (name, help, value) in [
        ("cefwire_graph_requests_total", "Graph alerts_v2 requests made.", g.requests),
        ("cefwire_graph_pages_total", "Graph alerts_v2 pages read.", g.pages),
        ("cefwire_graph_throttled_total", "Graph answers 429 Too Many Requests.", g.throttled_429),
        ("cefwire_graph_server_errors_total", "Graph answers 5xx.", g.server_errors),
        ("cefwire_graph_network_errors_total", "Graph requests failed on the network.", g.network_errors),
        ("cefwire_graph_tokens_total", "Entra ID tokens fetched for Graph.", g.tokens_fetched),
    ] {
        family(name, "counter", help, &[("", value as f64)]);
    }
    let failing = f64::from(u8::from(g.api.failing_since_ms.is_some()));
    family("cefwire_graph_failing", "gauge", "1 while Graph (or its token endpoint) is failing.", &[("", failing)]);
    if let Some(last) = g.api.last_success_ms {
        let ago = (now_ms - last).max(0) as f64 / 1000.0;
        family(
            "cefwire_graph_last_success_seconds",
            "gauge",
            "Seconds since Graph last answered a page.",
            &[("", ago)],
        );
    }
}

/// The Event Hubs source's families: totals, and lag and records per partition.
fn render_eventhubs(e: &EventHubsHealth, family: &mut impl FnMut(&str, &str, &str, &[(&str, f64)])) {
    let totals = [
        ("cefwire_eventhubs_records_total", "Streaming records read from Event Hubs.", e.records),
        ("cefwire_eventhubs_records_sent_total", "Streaming records written to syslog.", e.sent),
        (
            "cefwire_eventhubs_duplicates_total",
            "Records read again after a rebalance and dropped by ReportId.",
            e.duplicates_skipped,
        ),
        ("cefwire_eventhubs_other_tables_total", "Streaming records of other tables, skipped.", e.skipped_other),
        ("cefwire_eventhubs_commits_total", "Offsets committed (per partition and commit).", e.commits),
        ("cefwire_eventhubs_rebalances_total", "Consumer group rebalances seen.", e.rebalances),
    ];
    for (name, help, value) in totals {
        family(name, "counter", help, &[("", value as f64)]);
    }
    family(
        "cefwire_eventhubs_paused",
        "gauge",
        "1 while consumption is paused (syslog not taking records).",
        &[("", f64::from(u8::from(e.paused)))],
    );
    family(
        "cefwire_eventhubs_stalled",
        "gauge",
        "1 while partitions with messages waiting fetch nothing (for stall_after at least).",
        &[("", f64::from(u8::from(e.stalled.is_some())))],
    );
    family(
        "cefwire_eventhubs_stalls_total",
        "counter",
        "Stalls seen (fetching stopped with messages waiting).",
        &[("", e.stalls as f64)],
    );
    let labels: Vec<String> = e.partitions.iter().map(|p| format!("{{partition=\"{}\"}}", p.partition)).collect();
    let lag: Vec<(&str, f64)> =
        e.partitions.iter().zip(&labels).filter_map(|(p, l)| Some((l.as_str(), p.lag? as f64))).collect();
    family("cefwire_eventhubs_lag_messages", "gauge", "High watermark minus committed offset, per partition.", &lag);
    let records: Vec<(&str, f64)> =
        e.partitions.iter().zip(&labels).map(|(p, l)| (l.as_str(), p.records as f64)).collect();
    family(
        "cefwire_eventhubs_partition_records",
        "gauge",
        "Records read from a partition since it was assigned.",
        &records,
    );
}

/// The Storage source's families.
fn render_storage(s: &StorageHealth, family: &mut impl FnMut(&str, &str, &str, &[(&str, f64)])) {
    let totals = [
        ("cefwire_storage_records_total", "Streaming records read from the storage archive.", s.records),
        ("cefwire_storage_records_sent_total", "Storage records written to syslog.", s.sent),
        ("cefwire_storage_duplicates_total", "Records whose ReportId was sent already, dropped.", s.duplicates_skipped),
        ("cefwire_storage_other_tables_total", "Streaming records of other tables, skipped.", s.skipped_other),
        ("cefwire_storage_rejected_total", "Storage records rejected (long lines included).", s.rejected),
        ("cefwire_storage_bytes_read_total", "Bytes of complete lines read from blobs.", s.bytes_read),
        ("cefwire_storage_listings_total", "Blob listings made.", s.listings),
        ("cefwire_storage_checkpoints_total", "Storage checkpoints saved.", s.checkpoints),
        (
            "cefwire_storage_restarted_blobs_total",
            "Blobs read again from their start (truncated, or created again).",
            s.restarted_blobs,
        ),
        ("cefwire_storage_gone_blobs_total", "Blobs deleted after they were listed, skipped.", s.gone_blobs),
    ];
    for (name, help, value) in totals {
        family(name, "counter", help, &[("", value as f64)]);
    }
    family("cefwire_storage_behind_bytes", "gauge", "Bytes listed but not yet read.", &[("", s.behind_bytes as f64)]);
    family("cefwire_storage_blobs", "gauge", "Blobs within the look-back.", &[("", s.blobs as f64)]);
    let failing = f64::from(u8::from(s.account.failing_since_ms.is_some()));
    family("cefwire_storage_failing", "gauge", "1 while the storage account fails.", &[("", failing)]);
}

/// Serves `/metrics` until the process ends.
pub struct MetricsServer {
    pub local_addr: SocketAddr,
}

impl MetricsServer {
    /// Binds `addr` and answers on a background thread with `render` of the
    /// latest report in `source`.
    pub fn start(addr: SocketAddr, source: Arc<Mutex<HealthReport>>) -> io::Result<Self> {
        let listener = TcpListener::bind(addr)?;
        let local_addr = listener.local_addr()?;
        let active = Arc::new(AtomicUsize::new(0));
        std::thread::Builder::new().name("metrics".into()).spawn(move || {
            for stream in listener.incoming().flatten() {
                // Each scrape on its own thread, a few at a time: a slow or
                // silent client holds only its own connection.
                if active.load(Ordering::Acquire) >= MAX_CLIENTS {
                    continue;
                }
                active.fetch_add(1, Ordering::AcqRel);
                let (source, done) = (Arc::clone(&source), Arc::clone(&active));
                let spawned = std::thread::Builder::new().name("metrics-client".into()).spawn(move || {
                    let _ = answer(stream, &source);
                    done.fetch_sub(1, Ordering::AcqRel);
                });
                if spawned.is_err() {
                    active.fetch_sub(1, Ordering::AcqRel);
                }
            }
        })?;
        Ok(Self { local_addr })
    }
}

/// Scrapes served at once; more connections are closed unanswered.
const MAX_CLIENTS: usize = 8;
/// A request (line and headers) longer than this is refused.
const MAX_REQUEST_BYTES: usize = 8 << 10;
/// A request must be complete within this long, however it trickles in.
const REQUEST_DEADLINE: Duration = Duration::from_secs(5);

/// Reads the request head: up to the blank line, at most
/// [`MAX_REQUEST_BYTES`], within [`REQUEST_DEADLINE`] in all.
fn read_request(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let deadline = Instant::now() + REQUEST_DEADLINE;
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > MAX_REQUEST_BYTES {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "request head too long"));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "request not complete in time"));
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut chunk)? {
            0 => break,
            n => head.extend_from_slice(&chunk[..n]),
        }
    }
    Ok(head)
}

fn answer(mut stream: TcpStream, source: &Mutex<HealthReport>) -> io::Result<()> {
    let head = read_request(&mut stream)?;
    let report = source.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let request_line = String::from_utf8_lossy(head.split(|&b| b == b'\n').next().unwrap_or_default());
    let path = request_line.split_whitespace().nth(1).unwrap_or("/");
    let (status, body) = if path == "/metrics" || path == "/" {
        ("200 OK", render(&report, crate::time::now_ms()))
    } else {
        ("404 Not Found", "not found; try /metrics\n".to_owned())
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_the_text_format() {
        let mut report = HealthReport { updated_ms: crate::time::now_ms(), ..Default::default() };
        report.activities.sent = 41;
        report.api_counters.throttled_429 = 2;
        let server = MetricsServer::start("127.0.0.1:0".parse().unwrap(), Arc::new(Mutex::new(report))).unwrap();
        let mut conn = TcpStream::connect(server.local_addr).unwrap();
        conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut text = String::new();
        conn.read_to_string(&mut text).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
        assert!(text.contains("cefwire_records_sent_total{stream=\"activities\"} 41\n"), "{text}");
        assert!(text.contains("cefwire_api_throttled_total 2\n"), "{text}");
        assert!(text.contains("cefwire_health{state=\"Connected\"} 1\n"), "{text}");
        assert!(text.contains("cefwire_health{state=\"Disconnected\"} 0\n"), "{text}");
    }

    /// The request line was read without a limit (2 GiB without a newline
    /// took the agent past 2 GiB) and one slow client blocked every scrape.
    #[test]
    fn a_flood_is_cut_off_and_a_trickling_client_blocks_no_one() {
        let report = HealthReport { updated_ms: crate::time::now_ms(), ..Default::default() };
        let server = MetricsServer::start("127.0.0.1:0".parse().unwrap(), Arc::new(Mutex::new(report))).unwrap();
        // A flood without a line end: the server hangs up after 8 KiB.
        let mut flood = TcpStream::connect(server.local_addr).unwrap();
        let chunk = [b'x'; 64 << 10];
        let mut sent = 0usize;
        while flood.write_all(&chunk).is_ok() {
            sent += chunk.len();
            assert!(sent < 256 << 20, "the server kept reading a request line of {sent} bytes");
        }
        // A client that sends one byte at a time and never finishes.
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let trickle = {
            let (addr, stop) = (server.local_addr, Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut slow = TcpStream::connect(addr).unwrap();
                while !stop.load(Ordering::Relaxed) && slow.write_all(b"G").is_ok() {
                    std::thread::sleep(Duration::from_millis(200));
                }
            })
        };
        std::thread::sleep(Duration::from_millis(300));
        // Meanwhile a real scrape is answered.
        let mut conn = TcpStream::connect(server.local_addr).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut text = String::new();
        conn.read_to_string(&mut text).unwrap();
        stop.store(true, Ordering::Relaxed);
        trickle.join().unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    }
}

//! The API side end to end on 127.0.0.1: the emulator (in process, or the
//! built binary) and the client, backfill and its CLI. Every network wait
//! is bounded; no assertion is about speed.

use crate::util::sink::SinkProcess;
use crate::util::{Scratch, cefwire, first_line, signal, wait_or_kill};
use cefwire::api::{
    ApiAuth, ApiClient, ApiConfig, ApiError, ClientCredentials, Endpoint, RateLimit, RetryPolicy, TimeKey, TimeWindow,
};
use cefwire::backfill::{self, BackfillConfig, BackfillReport};
use cefwire::cef::CefOptions;
use cefwire::emulate::{self, EmulatorConfig, EmulatorHandle, FaultConfig, RecordStore, StoreBuilder};
use cefwire::generate::{GenerateConfig, GenerateKind};
use cefwire::output::{LineWriter, OutputPath};
use cefwire::send::{Destination, SendConfig, SyslogSender};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

const TOKEN: &str = "test-token";
const HOUR: i64 = 3_600_000;

/// A generous limit for tests that are not about the limit.
const FAST: RateLimit = RateLimit { requests: 100_000, per: Duration::from_secs(60) };

/// Records spread over 48 h ending an hour ago (so even late ones, stored
/// up to 60 minutes after they happened, are visible), one alert per 20.
fn generated_store(count: u64, seed: u64) -> (Arc<RecordStore>, TimeWindow) {
    let now = cefwire::time::now_ms();
    let start = now - 49 * HOUR;
    let mut builder = StoreBuilder::new();
    builder.add_generated(GenerateConfig {
        kind: GenerateKind::Mixed,
        count,
        seed,
        late_ratio: 0.1,
        start_ms: start,
        span_ms: 48 * HOUR,
    });
    assert_eq!(builder.counts.skipped, 0);
    (Arc::new(builder.build()), TimeWindow { from: start, until: now })
}

/// The 200,000-record window, generated once for all tests that use it.
fn big_store() -> &'static (Arc<RecordStore>, TimeWindow) {
    static STORE: OnceLock<(Arc<RecordStore>, TimeWindow)> = OnceLock::new();
    STORE.get_or_init(|| generated_store(200_000, 42))
}

fn emulator(store: &Arc<RecordStore>, tune: impl FnOnce(&mut EmulatorConfig)) -> EmulatorHandle {
    let mut config = EmulatorConfig::new("127.0.0.1:0".parse().unwrap(), TOKEN);
    config.rate_limit = Some(FAST);
    tune(&mut config);
    emulate::start(config, Arc::clone(store)).expect("emulator starts")
}

fn api_config(url: &str) -> ApiConfig {
    let mut config = ApiConfig::new(url, ApiAuth::Token(TOKEN.to_owned()));
    config.rate_limit = FAST;
    config.retry =
        RetryPolicy { first_delay: Duration::from_millis(5), max_delay: Duration::from_millis(100), max_attempts: 20 };
    config.request_timeout = Duration::from_secs(60);
    config
}

fn backfill_config(api: ApiConfig, window: TimeWindow) -> BackfillConfig {
    BackfillConfig {
        api,
        window,
        types: vec![Endpoint::Alerts, Endpoint::Activities],
        activity_key: TimeKey::Date,
        extra_filters: Vec::new(),
        scan_limit: 5000,
        cef: CefOptions::default(),
        archive_dir: None,
        rejects_file: None,
        show_rejects: 10,
        progress: false,
        stop: None,
    }
}

/// Runs a backfill into `path`.
fn backfill_to_file(config: &BackfillConfig, path: &Path) -> Result<BackfillReport, backfill::BackfillError> {
    let mut writer = LineWriter::create(&OutputPath::File(path.to_path_buf())).unwrap();
    let report = backfill::run(config, &mut writer)?;
    writer.finish().unwrap();
    Ok(report)
}

/// `_id` of every stored record whose time lies in the window.
fn expected_ids(store: &RecordStore, window: TimeWindow) -> HashMap<String, u32> {
    let mut ids = HashMap::new();
    for set in [&store.activities, &store.alerts] {
        for position in 0..set.ordered_len() {
            let record = set.at(emulate::store::TimeField::Date, position);
            if !(window.from..window.until).contains(&record.timestamp) {
                continue;
            }
            let json = std::str::from_utf8(set.json(record)).unwrap();
            let id = json.strip_prefix("{\"_id\":\"").and_then(|rest| rest.split('"').next()).expect("_id first");
            *ids.entry(id.to_owned()).or_default() += 1;
        }
    }
    ids
}

/// `externalId` of every CEF line in `path`, with how often it came.
fn delivered_ids(path: &Path) -> HashMap<String, u32> {
    let mut ids = HashMap::new();
    let file = std::fs::File::open(path).unwrap();
    for line in BufReader::new(file).split(b'\n') {
        let line = line.unwrap();
        let text = String::from_utf8_lossy(&line);
        let start = text.find("externalId=").expect("every line has an externalId") + "externalId=".len();
        let id = text[start..].split(' ').next().unwrap();
        *ids.entry(id.to_owned()).or_default() += 1;
    }
    ids
}

/// Compares id multisets and prints a readable difference.
fn assert_same_ids(expected: &HashMap<String, u32>, got: &HashMap<String, u32>) {
    let missing: Vec<_> = expected.keys().filter(|id| !got.contains_key(*id)).take(5).collect();
    let unexpected: Vec<_> = got.keys().filter(|id| !expected.contains_key(*id)).take(5).collect();
    let twice: Vec<_> = got.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(
        missing.is_empty() && unexpected.is_empty() && twice.is_empty(),
        "expected {} ids, got {}; missing e.g. {missing:?}; unexpected e.g. {unexpected:?}; duplicated e.g. {twice:?}",
        expected.len(),
        got.len()
    );
    assert_eq!(expected.len(), got.len());
}

#[test]
fn backfill_of_200k_records_delivers_every_record_exactly_once() {
    let (store, window) = big_store();
    let emulator = emulator(store, |_| {});
    let dir = Scratch::new("clean");
    let out = dir.join("out.cef");
    let config = backfill_config(api_config(&emulator.base_url()), *window);
    let report = backfill_to_file(&config, &out).expect("backfill succeeds");
    let expected = expected_ids(store, *window);
    assert_eq!(expected.len(), 200_000);
    assert_same_ids(&expected, &delivered_ids(&out));
    assert_eq!(report.counts.converted(), 200_000);
    assert_eq!((report.activities.records, report.alerts.records), (190_000, 10_000));
    let stats = emulator.shutdown();
    assert_eq!(stats.throttled, 0, "{stats:?}");
    assert_eq!(stats.pages, report.activities.pages + report.alerts.pages);
    // Scan pages of 5000 for activities; alerts in pages of 100, with the
    // time bound moved after 5000.
    assert_eq!(report.activities.pages, 38);
    assert_eq!(report.alerts.pages, 100);
}

/// The same window backfilled into `cefwire sink` over TCP through the
/// real syslog sender: every record arrives once (the sink's capture is
/// checked id by id) and the sink counts exactly 200,000 messages.
#[test]
fn backfill_of_200k_records_to_the_sink_over_tcp_arrives_exactly_once() {
    let (store, window) = big_store();
    let emulator = emulator(store, |_| {});
    let dir = Scratch::new("to-sink");
    let captured = dir.join("sink.log");
    let sink = SinkProcess::start(
        "tcp://127.0.0.1:0",
        &["--expect", "200000", "--timeout", "300s", "--out", captured.to_str().unwrap()],
    );
    let url = sink.url.clone();
    let mut sender = SyslogSender::start(&SendConfig::new(vec![Destination::parse(&url).unwrap()])).unwrap();
    let mut config = backfill_config(api_config(&emulator.base_url()), *window);
    // As when sending from the command line: a PRI first, so no line starts
    // with a digit (receivers read that as an octet count).
    config.cef.header.pri = Some(134);
    let report = backfill::run(&config, &mut sender).expect("backfill succeeds");
    let sent = sender.finish().unwrap();
    assert_eq!((sent.messages_written, sent.messages_unsent), (200_000, 0), "{sent:?}");
    let (status, received) = sink.report(Duration::from_secs(300));
    assert!(status.success(), "the sink got all it expected: {received}");
    assert_eq!(crate::util::json_u64(&received, "messages"), 200_000, "{received}");
    assert_same_ids(&expected_ids(store, *window), &delivered_ids(&captured));
    assert_eq!(report.counts.converted(), 200_000);
    assert_eq!(emulator.shutdown().throttled, 0);
}

#[test]
fn backfill_with_injected_5xx_drops_and_short_pages_delivers_the_same() {
    let (store, window) = big_store();
    let emulator = emulator(store, |c| {
        c.faults = FaultConfig { error_5xx: 0.05, drop: 0.05, short_pages: 0.1, ..FaultConfig::default() };
        c.seed = 7;
    });
    let dir = Scratch::new("faults");
    let out = dir.join("out.cef");
    let config = backfill_config(api_config(&emulator.base_url()), *window);
    let report = backfill_to_file(&config, &out).expect("backfill succeeds despite faults");
    assert_same_ids(&expected_ids(store, *window), &delivered_ids(&out));
    let stats = emulator.shutdown();
    assert!(stats.injected_5xx > 0 && stats.injected_drops > 0 && stats.injected_short_pages > 0, "{stats:?}");
    assert_eq!(report.client.server_errors, stats.injected_5xx);
    assert_eq!(report.client.network_errors, stats.injected_drops);
    assert_eq!(stats.throttled, 0);
}

#[test]
fn the_limiter_keeps_the_client_under_the_emulators_throttle() {
    // 3000 records: 150 alerts (2 pages) + 2850 activities in scan pages of
    // 250 (12 pages): 14 requests against 4 per second.
    let (store, window) = generated_store(3000, 5);
    let limit = RateLimit { requests: 4, per: Duration::from_secs(1) };
    let emulator = emulator(&store, |c| c.rate_limit = Some(limit));
    let dir = Scratch::new("limit");
    let mut api = api_config(&emulator.base_url());
    api.rate_limit = limit;
    let mut config = backfill_config(api, window);
    config.scan_limit = 250;
    let report = backfill_to_file(&config, &dir.join("out.cef")).unwrap();
    assert_same_ids(&expected_ids(&store, window), &delivered_ids(&dir.join("out.cef")));
    let stats = emulator.shutdown();
    assert_eq!(stats.throttled, 0, "the client must never be throttled: {stats:?}");
    assert_eq!(report.client.requests, 14);
    assert!(report.client.limiter_wait > Duration::ZERO, "the limiter had to wait: {:?}", report.client);
}

/// Two backfills back to back against a throttle of 4 requests a second:
/// each process began with the whole allowance while the service's window
/// still held the other's last requests (6 and 12 × 429 in the issue).
/// Now the answers are shared through the portal's ledger and the second
/// run waits for the window: 0 × 429 over both runs. The control (each
/// run on its own, no ledger) is throttled.
#[test]
fn back_to_back_backfills_share_the_rate_limit_and_see_no_429() {
    let (store, window) = generated_store(3000, 5);
    let limit = RateLimit { requests: 4, per: Duration::from_secs(1) };
    let run_twice = |ledger: Option<PathBuf>| {
        let emulator = emulator(&store, |c| c.rate_limit = Some(limit));
        let dir = Scratch::new("back-to-back");
        for run in 0..2 {
            let mut api = api_config(&emulator.base_url());
            api.rate_limit = limit;
            api.rate_ledger_dir = ledger.clone();
            api.retry.first_delay = Duration::from_millis(200);
            api.retry.max_delay = Duration::from_millis(400);
            let mut config = backfill_config(api, window);
            config.scan_limit = 250;
            let out = dir.join(format!("out-{run}.cef"));
            backfill_to_file(&config, &out).unwrap();
            assert_same_ids(&expected_ids(&store, window), &delivered_ids(&out));
        }
        emulator.shutdown().throttled
    };
    let ledgers = Scratch::new("ledgers");
    assert_eq!(run_twice(Some(ledgers.join("rate"))), 0, "a shared ledger: never throttled");
    // The control, tried up to three times: on a loaded machine the gap
    // between the runs may once be longer than the window.
    assert!((0..3).any(|_| run_twice(None) > 0), "the control: without the ledger the second run bursts into 429s");
}

#[test]
fn a_client_faster_than_the_throttle_gets_429s_and_still_completes() {
    // The control for the test above: the same run with the client's own
    // limit set too high meets the emulator's 429s (and retries them).
    let (store, window) = generated_store(3000, 5);
    let emulator = emulator(&store, |c| c.rate_limit = Some(RateLimit { requests: 4, per: Duration::from_secs(1) }));
    let dir = Scratch::new("no-limit");
    let mut api = api_config(&emulator.base_url());
    api.retry.first_delay = Duration::from_millis(200);
    api.retry.max_delay = Duration::from_millis(400);
    let mut config = backfill_config(api, window);
    config.scan_limit = 250;
    let report = backfill_to_file(&config, &dir.join("out.cef")).unwrap();
    assert_same_ids(&expected_ids(&store, window), &delivered_ids(&dir.join("out.cef")));
    let stats = emulator.shutdown();
    assert!(stats.throttled > 0, "{stats:?}");
    assert_eq!(report.client.throttled, stats.throttled);
}

#[test]
fn wrong_or_missing_credentials_stop_at_once_with_a_clear_error() {
    let (store, window) = generated_store(100, 1);
    let emulator = emulator(&store, |_| {});
    let mut page = Vec::new();
    for (auth, status) in [(ApiAuth::Token("wrong".into()), 403), (ApiAuth::Token(String::new()), 401)] {
        let mut config = api_config(&emulator.base_url());
        config.auth = auth;
        let mut client = ApiClient::new(&config).unwrap();
        let err = client.fetch_page(Endpoint::Alerts, b"{}", &mut page).unwrap_err();
        assert!(matches!(err, ApiError::Unauthorized { status: s, .. } if s == status), "{err:?}");
        assert!(err.to_string().contains("check --token"), "{err}");
        assert!(err.is_permanent());
    }
    // Through backfill: the run stops, nothing is retried.
    let mut api = api_config(&emulator.base_url());
    api.auth = ApiAuth::Token("wrong".into());
    let dir = Scratch::new("auth");
    let err = backfill_to_file(&backfill_config(api, window), &dir.join("out.cef")).unwrap_err();
    assert!(err.to_string().contains("refused the credentials"), "{err}");
    let stats = emulator.shutdown();
    assert_eq!((stats.api_requests, stats.unauthorized), (3, 3), "one request each, no retries: {stats:?}");
    // Without any Authorization header: 401.
    let bare = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
    let emulator = self::emulator(&store, |_| {});
    let response = bare.post(format!("{}/api/v1/alerts/", emulator.base_url())).send("{}").unwrap();
    assert_eq!(response.status().as_u16(), 401);
    // The counters are served as JSON for tests and scripts.
    let mut stats = bare.get(format!("{}/stats", emulator.base_url())).call().unwrap();
    let text = stats.body_mut().read_to_string().unwrap();
    assert!(text.contains("\"apiRequests\":1,") && text.contains("\"unauthorized\":1,"), "{text}");
}

#[test]
fn client_credentials_get_a_bearer_token_and_refresh_it_before_expiry() {
    let (store, _) = generated_store(100, 1);
    // Refresh is due at 80 % of the lifetime (4 s): the two first fetches
    // are far inside it, the third far past it.
    let lifetime = Duration::from_secs(5);
    let emulator = emulator(&store, |c| {
        c.auth.client = Some(("app-id".into(), "app-secret".into()));
        c.auth.token_lifetime = lifetime;
    });
    let credentials = |secret: &str| {
        ApiAuth::ClientCredentials(ClientCredentials {
            tenant_id: "tenant-1".into(),
            client_id: "app-id".into(),
            client_secret: secret.into(),
            token_url: format!("{}/tenant-1/oauth2/v2.0/token", emulator.base_url()),
            scope: cefwire::api::DEFAULT_SCOPE.into(),
        })
    };
    let mut config = api_config(&emulator.base_url());
    config.auth = credentials("app-secret");
    let mut client = ApiClient::new(&config).unwrap();
    let mut page = Vec::new();
    let before_first = Instant::now();
    client.fetch_page(Endpoint::Alerts, b"{}", &mut page).unwrap();
    client.fetch_page(Endpoint::Alerts, b"{}", &mut page).unwrap();
    if before_first.elapsed() < lifetime * 7 / 10 {
        assert_eq!(client.stats().tokens_fetched, 1, "the token is reused while fresh");
    }
    std::thread::sleep((lifetime * 9 / 10).saturating_sub(before_first.elapsed()));
    client.fetch_page(Endpoint::Alerts, b"{}", &mut page).unwrap();
    assert!(client.stats().tokens_fetched >= 2, "refreshed after 80 % of its lifetime");
    // Before expiry: the emulator never saw an expired token (a 401 would
    // have been retried with a new one and counted here).
    let stats = emulator.stats();
    assert_eq!((stats.tokens_issued, stats.unauthorized), (client.stats().tokens_fetched, 0), "{stats:?}");

    config.auth = credentials("wrong-secret");
    let err = ApiClient::new(&config).unwrap().fetch_page(Endpoint::Alerts, b"{}", &mut page).unwrap_err();
    assert!(matches!(err, ApiError::TokenRefused { status: 401, .. }), "{err:?}");
    assert!(err.to_string().contains("--client-secret"), "{err}");
}

#[test]
fn https_with_the_emulators_certificate() {
    let (store, window) = generated_store(2000, 3);
    let dir = Scratch::new("tls");
    let cert = dir.join("emulator.pem");
    let emulator = emulator(&store, |c| {
        c.tls = true;
        c.tls_cert_out = Some(cert.clone());
    });
    assert!(emulator.base_url().starts_with("https://localhost:"));
    assert_eq!(std::fs::read_to_string(&cert).unwrap(), emulator.cert_pem().unwrap());
    let mut api = api_config(&emulator.base_url());
    api.ca_file = Some(cert.clone());
    backfill_to_file(&backfill_config(api, window), &dir.join("out.cef")).unwrap();
    assert_same_ids(&expected_ids(&store, window), &delivered_ids(&dir.join("out.cef")));

    // Without --api-ca the self-signed certificate is refused, once, clearly.
    let mut page = Vec::new();
    let err = ApiClient::new(&api_config(&emulator.base_url()))
        .unwrap()
        .fetch_page(Endpoint::Alerts, b"{}", &mut page)
        .unwrap_err();
    assert!(matches!(err, ApiError::Setup { .. }), "{err:?}");
    assert!(err.to_string().contains("--api-ca"), "{err}");
}

/// Slow answers (30 s away) time out after the request timeout and are
/// retried. The timeout (3 s) is far from both a normal answer and the
/// slow one, so a loaded machine cannot blur them; a normal answer that
/// still times out only adds a retry, which the count allows.
#[test]
fn slow_responses_time_out_and_are_retried() {
    let (store, window) = generated_store(2000, 6);
    let emulator = emulator(&store, |c| {
        c.faults = FaultConfig { slow: 0.3, slow_delay: Duration::from_secs(30), ..FaultConfig::default() };
    });
    let dir = Scratch::new("slow");
    let mut api = api_config(&emulator.base_url());
    api.request_timeout = Duration::from_secs(3);
    let mut config = backfill_config(api, window);
    config.scan_limit = 200;
    let report = backfill_to_file(&config, &dir.join("out.cef")).unwrap();
    assert_same_ids(&expected_ids(&store, window), &delivered_ids(&dir.join("out.cef")));
    let stats = emulator.shutdown();
    assert!(stats.injected_slow > 0, "{stats:?}");
    assert!(
        report.client.network_errors >= stats.injected_slow,
        "each slow answer timed out: {} timeouts for {} slow answers",
        report.client.network_errors,
        stats.injected_slow
    );
}

/// A small HTTP CONNECT proxy on std threads that records what it saw.
struct ConnectProxy {
    port: u16,
    seen: Arc<Mutex<Vec<String>>>,
}

fn start_connect_proxy() -> ConnectProxy {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            let log = Arc::clone(&log);
            std::thread::spawn(move || tunnel(client, &log));
        }
    });
    ConnectProxy { port, seen }
}

fn tunnel(client: TcpStream, log: &Mutex<Vec<String>>) {
    client.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut reader = BufReader::new(client.try_clone().unwrap());
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    log.lock().unwrap().push(head.clone());
    let target = head.split_whitespace().nth(1).unwrap().to_owned();
    let mut client = client;
    let Ok(upstream) = TcpStream::connect(&target) else {
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n");
        return;
    };
    client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").unwrap();
    // Bytes the reader buffered past the head belong to the tunnel.
    let buffered = reader.buffer().to_vec();
    let mut up_write = upstream.try_clone().unwrap();
    up_write.write_all(&buffered).unwrap();
    let mut up_read = upstream;
    let mut down_write = client.try_clone().unwrap();
    let upward = std::thread::spawn(move || {
        let _ = std::io::copy(&mut reader, &mut up_write);
        let _ = up_write.shutdown(std::net::Shutdown::Write);
    });
    let _ = std::io::copy(&mut up_read, &mut down_write);
    let _ = down_write.shutdown(std::net::Shutdown::Write);
    let _ = upward.join();
}

fn base64(input: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, b)| acc | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn https_through_an_http_connect_proxy_with_credentials() {
    let (store, window) = generated_store(2000, 4);
    let dir = Scratch::new("proxy");
    let cert = dir.join("emulator.pem");
    let emulator = emulator(&store, |c| {
        c.tls = true;
        c.tls_cert_out = Some(cert.clone());
    });
    let proxy = start_connect_proxy();
    let mut api = api_config(&emulator.base_url());
    api.ca_file = Some(cert);
    api.proxy = Some(format!("http://alice:s%3Dcret@127.0.0.1:{}", proxy.port));
    backfill_to_file(&backfill_config(api, window), &dir.join("out.cef")).unwrap();
    assert_same_ids(&expected_ids(&store, window), &delivered_ids(&dir.join("out.cef")));
    let seen = proxy.seen.lock().unwrap().clone();
    assert!(!seen.is_empty(), "the requests went through the proxy");
    let port = emulator.local_addr().port();
    let credentials = format!("Basic {}", base64(b"alice:s=cret"));
    for head in &seen {
        assert!(head.starts_with(&format!("CONNECT localhost:{port} HTTP/1.1")), "{head}");
        assert!(head.contains(&credentials), "proxy credentials sent: {head}");
    }
}

#[test]
fn the_archive_converts_back_to_the_same_lines() {
    let (store, window) = generated_store(6000, 8);
    let emulator = emulator(&store, |_| {});
    let dir = Scratch::new("archive");
    let mut config = backfill_config(api_config(&emulator.base_url()), window);
    config.archive_dir = Some(dir.join("raw"));
    let report = backfill_to_file(&config, &dir.join("out.cef")).unwrap();
    assert_eq!(report.archives.len(), 2);
    let inputs: Vec<_> = report.archives.iter().map(|p| cefwire::input::source::InputPath::File(p.clone())).collect();
    let mut writer = LineWriter::create(&OutputPath::File(dir.join("again.cef"))).unwrap();
    let mut rejects = cefwire::rejects::RejectLog::new(10);
    let config = cefwire::convert::ConvertConfig {
        inputs,
        output: OutputPath::File(dir.join("again.cef")),
        cef: CefOptions::default(),
        rejects_file: None,
        show_rejects: 10,
        progress: false,
        max_document_bytes: cefwire::input::DEFAULT_MAX_DOCUMENT_BYTES,
        parallelism: cefwire::parallel::Parallelism::single(),
    };
    let converted = cefwire::convert::convert_inputs(&config, &mut writer, &mut rejects).unwrap();
    writer.finish().unwrap();
    assert_eq!(converted.counts.converted(), 6000);
    assert!(converted.failed_inputs.is_empty());
    let sorted = |path: PathBuf| {
        let mut lines: Vec<String> = std::fs::read_to_string(path).unwrap().lines().map(str::to_owned).collect();
        lines.sort();
        lines
    };
    assert_eq!(sorted(dir.join("out.cef")), sorted(dir.join("again.cef")));
}

#[test]
fn the_binaries_backfill_from_the_emulator_and_report_on_sigterm() {
    let dir = Scratch::new("binary");
    let mut emulator = cefwire()
        .args(["emulate", "--listen", "127.0.0.1:0", "--generate", "3000", "--span", "47h"])
        .args(["--token", TOKEN, "--rate-limit", "1000/min", "--fault", "5xx:0.2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let url = first_line(emulator.stdout.take().unwrap(), Duration::from_secs(60), "cefwire emulate");
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let run = |extra: &[&str]| {
        cefwire()
            .args(["backfill", "--since", "48h", "--portal-url", &url, "--rate-limit", "1000/min"])
            .args(["--retry-delay", "10ms"])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = dir.join("out.cef");
    let done = run(&["--token", TOKEN, "-o", out.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert!(done.status.success(), "{stderr}");
    assert!(stderr.contains("backfilled 3000 records"), "{stderr}");
    assert_eq!(delivered_ids(&out).len(), 3000);

    let preview = run(&["--token", TOKEN, "--dry-run"]);
    let text = String::from_utf8_lossy(&preview.stdout);
    assert!(preview.status.success(), "{}", String::from_utf8_lossy(&preview.stderr));
    assert!(text.contains("alerts: 150 records") && text.contains("activities: 2850 records"), "{text}");
    assert!(text.contains("first record as CEF: "), "{text}");

    let refused = run(&["--token", "nope", "-o", dir.join("x.cef").to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("refused the credentials"));

    // Straight to syslog: a TCP receiver in the test counts the lines.
    let receiver = TcpListener::bind("127.0.0.1:0").unwrap();
    let to = format!("tcp://{}", receiver.local_addr().unwrap());
    let counter = std::thread::spawn(move || {
        let (mut conn, _) = receiver.accept().unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut text = String::new();
        conn.read_to_string(&mut text).unwrap();
        text
    });
    let sent = run(&["--token", TOKEN, "--to", &to]);
    assert!(sent.status.success(), "{}", String::from_utf8_lossy(&sent.stderr));
    assert!(String::from_utf8_lossy(&sent.stderr).contains("sent 3000 of 3000 messages"));
    let received = counter.join().unwrap();
    assert_eq!(received.lines().count(), 3000);
    let distinct: std::collections::HashSet<_> =
        received.lines().map(|l| crate::util::external_id(l.as_bytes()).expect("an externalId")).collect();
    assert_eq!(distinct.len(), 3000, "every record once");
    assert!(received.lines().all(|l| l.starts_with("<134>") && l.contains(" CEF:0|MCAS|SIEM_Agent|")));

    let both = run(&["--token", TOKEN, "--to", &to, "-o", dir.join("z.cef").to_str().unwrap()]);
    assert_eq!(both.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&both.stderr).contains("exclude each other"));

    let no_credentials = run(&["-o", dir.join("y.cef").to_str().unwrap()]);
    assert_eq!(no_credentials.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_credentials.stderr).contains("--token"));

    // SIGTERM ends the emulator with its summary.
    signal(&emulator, libc::SIGTERM);
    let status = wait_or_kill(&mut emulator, Duration::from_secs(30), "the emulator after SIGTERM");
    assert!(status.success(), "{status}");
    let mut summary = String::new();
    emulator.stderr.take().unwrap().read_to_string(&mut summary).unwrap();
    assert!(summary.contains("0 throttled (429)") && summary.contains("5xx"), "{summary}");
}

// ------------------------------------------- a hostile API (issue 10)

/// A small window for the hostile-server tests: several scan pages of
/// activities, a few alert pages.
fn small_store() -> &'static (Arc<RecordStore>, TimeWindow) {
    static STORE: OnceLock<(Arc<RecordStore>, TimeWindow)> = OnceLock::new();
    STORE.get_or_init(|| generated_store(12_000, 11))
}

/// Backfills from an emulator with `faults` into a file; the error, the
/// ids delivered and the emulator's counters.
fn backfill_against(faults: FaultConfig, tune: impl FnOnce(&mut ApiConfig)) -> (String, HashMap<String, u32>, u64) {
    let (store, window) = small_store();
    let emulator = emulator(store, |c| c.faults = faults);
    let dir = Scratch::new("hostile");
    let out = dir.join("out.cef");
    let mut api = api_config(&emulator.base_url());
    tune(&mut api);
    let mut config = backfill_config(api, *window);
    config.scan_limit = 1000;
    let err = match backfill_to_file(&config, &out) {
        Ok(report) => panic!("the backfill should have failed; it reported {report:?}"),
        Err(err) => err.to_string(),
    };
    let stats = emulator.shutdown();
    (err, delivered_ids(&out), stats.api_requests)
}

/// `"hasNext": "true"` was read as false: backfill stopped after page 1
/// and exited 0. Now it is an error naming the field, on the first page.
#[test]
fn a_has_next_that_is_not_a_boolean_is_an_error_not_the_end() {
    let faults = FaultConfig { has_next_as_string: true, ..FaultConfig::default() };
    let (err, _, requests) = backfill_against(faults, |_| {});
    assert!(err.contains("hasNext is neither true nor false"), "{err}");
    assert!(requests <= 2, "the error comes at the first page, not after {requests} requests");
}

/// A scan whose `nextQueryFilters` repeats the request's cursor with
/// `hasNext: true` made backfill read the same page for ever (each record
/// sent hundreds of times). Now the second identical cursor stops it: a
/// handful of requests, and the page read twice is written once (backfill
/// skips an id it sent already, as the agent does).
#[test]
fn a_scan_that_does_not_move_stops_with_an_error_instead_of_looping() {
    let faults = FaultConfig { stuck_scan: true, ..FaultConfig::default() };
    let (err, delivered, requests) = backfill_against(faults, |_| {});
    assert!(err.contains("the scan does not move"), "{err}");
    assert!(requests <= 10, "{requests} requests: the pager kept asking");
    let most = delivered.values().copied().max().unwrap_or(0);
    assert_eq!(most, 1, "a record was written {most} times");
}

/// Pages over the limit are refused with the URL and the limit in the
/// error, before they fill memory: a padded page, and a server that
/// announces a huge body and never stops sending.
#[test]
fn pages_over_the_size_limit_are_refused_with_the_url_and_the_limit() {
    let padded = FaultConfig { page_padding_bytes: 3 << 20, ..FaultConfig::default() };
    let (err, delivered, _) = backfill_against(padded, |api| api.max_page_bytes = 2 << 20);
    assert!(err.contains("larger than 2097152 bytes") && err.contains("/api/v1/"), "{err}");
    assert!(delivered.is_empty(), "nothing of a refused page is written");
    let endless = FaultConfig { endless_body: true, ..FaultConfig::default() };
    let (err, _, requests) = backfill_against(endless, |api| api.max_page_bytes = 8 << 20);
    assert!(err.contains("larger than 8388608 bytes"), "{err}");
    assert_eq!(requests, 1, "a page too large is not retried");
}

/// SIGTERM in the middle of a backfill was ignored (it kept fetching), and
/// a second signal left the output empty and the zstd archive invalid.
/// Now the first signal stops fetching, writes out what was fetched, ends
/// the archive's zstd streams, prints the summary marked INCOMPLETE and
/// exits 1; the output and the archive hold exactly the records the
/// summary counts, each once.
#[test]
fn sigterm_mid_backfill_finishes_the_output_and_says_incomplete() {
    let (store, window) = small_store();
    // Four requests at once, then one every 2.5 s: the run would take more
    // than a minute; the signal comes after the third page.
    let emulator = emulator(store, |c| c.rate_limit = None);
    let dir = Scratch::new("backfill-sigterm");
    let out = dir.join("out.cef");
    let archive = dir.join("archive");
    let mut child = cefwire()
        .args(["backfill", "--since", "49h", "--portal-url", &emulator.base_url(), "--token", TOKEN])
        .args(["--rate-limit", "4/10s", "--scan-limit", "500", "--no-progress", "--archive"])
        .arg(&archive)
        .arg("-o")
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while emulator.stats().pages < 3 {
        assert!(Instant::now() < deadline, "the backfill did not fetch 3 pages in 120 s");
        assert!(child.try_wait().unwrap().is_none(), "the backfill ended before the signal");
        std::thread::sleep(Duration::from_millis(20));
    }
    signal(&child, libc::SIGTERM);
    let status = wait_or_kill(&mut child, Duration::from_secs(60), "the backfill after one SIGTERM");
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("INCOMPLETE") && stderr.contains("stopped by a signal"), "{stderr}");
    let counted: u64 = stderr
        .split("backfilled ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.replace(',', "").parse().ok())
        .unwrap_or_else(|| panic!("a summary with the count: {stderr}"));
    let delivered = delivered_ids(&out);
    let mut archived = 0;
    for file in std::fs::read_dir(&archive).unwrap() {
        let path = file.unwrap().path();
        let raw = zstd::decode_all(std::fs::File::open(&path).unwrap())
            .unwrap_or_else(|e| panic!("{} is not a complete zstd stream: {e}", path.display()));
        archived += raw.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count() as u64;
    }
    assert_eq!(archived, counted, "the archive holds the raw records of what was converted");
    assert!(counted > 0 && counted < expected_ids(store, *window).len() as u64, "stopped early: {counted}");
    assert_eq!(delivered.len() as u64, counted, "the file holds what the summary counts");
    assert!(delivered.values().all(|&n| n == 1), "each record once");
}

/// `backfill` took its credentials only as arguments (visible in `ps`).
/// Now a file or the environment works as well, and a refused token is
/// never echoed.
#[test]
fn backfill_takes_the_token_from_a_file_or_the_environment_and_never_echoes_it() {
    let (store, _) = small_store();
    let emulator = emulator(store, |_| {});
    let dir = Scratch::new("token-file");
    let token_file = dir.join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let backfill = |extra: &[&str], env: Option<&str>, out: &str| {
        let mut command = cefwire();
        command
            .args(["backfill", "--since", "50h", "--portal-url", &emulator.base_url(), "--no-progress", "-o"])
            .arg(dir.join(out))
            .args(extra)
            .env_remove("CEFWIRE_TOKEN");
        if let Some(token) = env {
            command.env("CEFWIRE_TOKEN", token);
        }
        command.output().unwrap()
    };
    let from_file = backfill(&["--token-file", token_file.to_str().unwrap()], None, "a.cef");
    assert!(from_file.status.success(), "{}", String::from_utf8_lossy(&from_file.stderr));
    let from_env = backfill(&[], Some(TOKEN), "b.cef");
    assert!(from_env.status.success(), "{}", String::from_utf8_lossy(&from_env.stderr));
    let expected = expected_ids(store, TimeWindow { from: 0, until: i64::MAX }).len();
    assert_eq!(delivered_ids(&dir.join("a.cef")).len(), expected);
    assert_eq!(delivered_ids(&dir.join("b.cef")).len(), expected);
    let secret = "wrong-s3cr3t-value";
    std::fs::write(&token_file, secret).unwrap();
    let refused = backfill(&["--token-file", token_file.to_str().unwrap()], None, "c.cef");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("refused the credentials") && !stderr.contains(secret), "{stderr}");
    // A run refused before it fetched anything leaves no empty output file.
    assert!(!dir.join("c.cef").exists(), "an empty c.cef was left behind");
    let both = backfill(&["--token", TOKEN, "--token-file", token_file.to_str().unwrap()], None, "d.cef");
    assert_eq!(both.status.code(), Some(2), "{}", String::from_utf8_lossy(&both.stderr));
}

/// `Retry-After: 99999999999` on 429s: the client parked for ever, the
/// agent "Connected". Now the wait is capped (`max_retry_after`, 120 s by
/// default; 200 ms here), the throttled requests are retried and the
/// backfill completes with every record. Without the cap this test would
/// wait out its deadline.
#[test]
fn an_absurd_retry_after_is_capped_and_the_backfill_completes() {
    let (store, window) = small_store();
    let faults = FaultConfig { error_429: 0.3, retry_after_secs: Some(99_999_999_999), ..FaultConfig::default() };
    let emulator = emulator(store, |c| c.faults = faults);
    let dir = Scratch::new("retry-after");
    let out = dir.join("out.cef");
    let mut api = api_config(&emulator.base_url());
    api.max_retry_after = Duration::from_millis(200);
    let mut config = backfill_config(api, *window);
    config.scan_limit = 1000;
    let (done, finished) = std::sync::mpsc::channel();
    let thread_out = out.clone();
    std::thread::spawn(move || {
        let _ = done.send(backfill_to_file(&config, &thread_out).map_err(|e| e.to_string()));
    });
    let report = finished
        .recv_timeout(Duration::from_secs(300))
        .expect("the backfill still waits on Retry-After after 300 s")
        .expect("the backfill completes");
    let stats = emulator.shutdown();
    assert!(report.client.throttled > 0 && stats.injected_429 > 0, "429s were answered: {report:?}");
    assert_same_ids(&expected_ids(store, *window), &delivered_ids(&out));
}

/// An `https://` portal URL on a plain-HTTP server: the agent said nothing
/// for 45 s, then "first start" though it never reached the API. Now the
/// TLS handshake is bounded by the connect timeout and every failed
/// attempt is told as it happens, naming the URL and the likely cause.
#[test]
fn an_https_url_on_a_plain_http_server_is_told_at_every_attempt() {
    let (store, _) = small_store();
    let emulator = emulator(store, |_| {});
    let url = emulator.base_url().replace("http://", "https://");
    let mut api = api_config(&url);
    api.retry.max_attempts = 2;
    let mut client = ApiClient::new(&api).unwrap();
    let told = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = Arc::clone(&told);
    client.on_failed_attempt(move |failure| sink.lock().unwrap().push(failure.to_owned()));
    let mut page = Vec::new();
    let err = client.fetch_page(Endpoint::Alerts, b"{\"filters\":{},\"limit\":1}", &mut page).unwrap_err();
    assert!(matches!(err, ApiError::GaveUp { attempts: 2, .. }), "{err}");
    let told = told.lock().unwrap();
    assert_eq!(told.len(), 2, "{told:?}");
    for (n, line) in told.iter().enumerate() {
        assert!(line.starts_with(&format!("POST {url}/api/v1/alerts/: attempt {} of 2 failed: ", n + 1)), "{line}");
        assert!(line.contains("TLS handshake included") && line.contains("https://"), "{line}");
    }
}

/// `--dry-run` said "about 89 requests" for a window the real run needed
/// 144 for: the API reports alert totals only up to 5,000 ("more than").
/// Now the estimate halves such windows until the totals are exact; on the
/// emulator it is within 20 % of the requests the real run makes.
#[test]
fn the_dry_run_estimate_is_within_a_fifth_of_the_real_run() {
    let (store, window) = big_store();
    let emulator = emulator(store, |_| {});
    let dir = Scratch::new("dry-run");
    let config = backfill_config(api_config(&emulator.base_url()), *window);
    let preview = backfill::preview(&config).unwrap();
    let last = preview.lines.iter().find(|l| l.starts_with("about ")).expect("an estimate line");
    let estimated: f64 = last.split_whitespace().nth(1).unwrap().parse().unwrap();
    let alerts = preview.lines.iter().find(|l| l.starts_with("alerts: ")).unwrap();
    assert!(!alerts.contains("more than"), "the alerts are counted, not capped: {alerts}");
    let report = backfill_to_file(&config, &dir.join("out.cef")).unwrap();
    let real = report.client.requests as f64;
    assert!(
        (estimated - real).abs() <= real * 0.2,
        "estimated {estimated} requests, the run made {real}:\n{}",
        preview.lines.join("\n")
    );
}

/// Backfill's progress on a terminal (`script` gives it one): one line per
/// record type, each counting its own records and showing as its total
/// only what the API said for that type. Before: one bar for both, whose
/// "alerts" total stayed at 5,000 while it counted activities too
/// ("9,700/5,000").
#[test]
fn backfill_progress_has_a_line_per_type_counting_only_its_own_records() {
    // util-linux `script` (Debian's essential bsdutils) gives it a terminal.
    let script = "script";
    let (store, _) = small_store();
    let emulator = emulator(store, |c| c.rate_limit = None);
    let dir = Scratch::new("backfill-progress");
    let out = dir.join("out.cef");
    // About 25 pages at 10 a second: frames of both lines get drawn.
    let command = format!(
        "{} backfill --since 49h --portal-url {} --token {TOKEN} --rate-limit 10/1s --scan-limit 500 -o {}",
        env!("CARGO_BIN_EXE_cefwire"),
        emulator.base_url(),
        out.display()
    );
    let run = std::process::Command::new(script)
        .args(["-qfec", &command, "/dev/null"])
        .env("TERM", "xterm")
        .env("COLUMNS", "160")
        .stdin(Stdio::null())
        .output()
        .expect("util-linux `script` runs");
    let screen = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(run.status.success(), "backfill under a terminal: {screen}");
    let written = std::fs::read_to_string(&out).unwrap();
    let alerts = written.lines().filter(|l| l.contains("cn1Label=riskScore")).count() as u64;
    let activities = written.lines().count() as u64 - alerts;
    assert!(alerts > 0 && activities > alerts, "{alerts} alerts, {activities} activities");

    let frames = terminal_lines(&screen);
    for (name, delivered) in [("activities", activities), ("alerts", alerts)] {
        let counts: Vec<(u64, Option<u64>)> =
            frames.iter().filter_map(|line| counter_of(line, &format!("{name} page "))).collect();
        assert!(!counts.is_empty(), "no {name} line was drawn: {frames:#?}");
        for &(count, total) in &counts {
            assert!(count <= delivered, "the {name} line counts {count}, more than its {delivered} records");
            if let Some(total) = total {
                assert_eq!(total, delivered, "the {name} line's total is its own type's");
            }
        }
    }
}

/// What a terminal showed, line by line, without escape sequences.
fn terminal_lines(screen: &str) -> Vec<String> {
    let mut plain = String::new();
    let mut chars = screen.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters final-letter.
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        plain.push(c);
    }
    plain.split(['\r', '\n']).map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect()
}

/// `activities page 3 ⠁ 1,500/11,400 120/s` → (1500, Some(11400)).
fn counter_of(line: &str, label: &str) -> Option<(u64, Option<u64>)> {
    let rest = &line[line.find(label)? + label.len()..];
    let count = rest.split_whitespace().nth(2)?;
    let number = |text: &str| text.replace(',', "").parse::<u64>().ok();
    match count.split_once('/') {
        Some((done, total)) => Some((number(done)?, Some(number(total)?))),
        None => Some((number(count)?, None)),
    }
}

/// Secrets never show: not in an error, a verbose log line, the agent's
/// log files (at `-v`), its health file, `status`, nor `--help` with the
/// secret in the environment. Each run uses a secret of its own: wrong
/// ones (the paths that print the most) and a right one.
#[test]
fn secrets_never_appear_in_messages_logs_health_or_help() {
    let (store, _) = generated_store(200, 5);
    let emulator = emulator(&store, |c| c.auth.client = Some(("app-id".into(), "right-client-s3cret".into())));
    let url = emulator.base_url();
    let dir = Scratch::new("secrets");
    let secret_file = |name: &str, secret: &str| {
        let path = dir.join(name);
        std::fs::write(&path, format!("{secret}\n")).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let mut seen = Vec::new();
    let mut check = |what: &str, secret: &str, text: &str| {
        assert!(!text.contains(secret), "{what}: the secret {secret:?} shows in:\n{text}");
        seen.push(what.to_owned());
    };
    let output = |command: &mut std::process::Command| {
        let out = command.stdin(Stdio::null()).output().unwrap();
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    };
    let backfill = |extra: &[&str]| {
        let mut command = cefwire();
        command.args(["backfill", "--since", "2h", "--portal-url", &url, "--no-progress", "-o"]);
        command.arg(dir.join("out.cef")).args(extra).env_remove("CEFWIRE_TOKEN");
        command
    };

    let wrong_token = "wrong-t0ken-from-a-file";
    let text = output(&mut backfill(&["--token-file", &secret_file("token", wrong_token)]));
    assert!(text.contains("401") || text.to_lowercase().contains("token"), "a refused token is said: {text}");
    check("backfill, wrong --token-file", wrong_token, &text);

    let env_token = "wrong-t0ken-from-the-env";
    check("backfill, wrong CEFWIRE_TOKEN", env_token, &output(backfill(&[]).env("CEFWIRE_TOKEN", env_token)));
    check(
        "backfill --help, CEFWIRE_TOKEN set",
        env_token,
        &output(cefwire().args(["backfill", "--help"]).env("CEFWIRE_TOKEN", env_token)),
    );

    let token_url = format!("{url}/tenant-1/oauth2/v2.0/token");
    let client = |secret_path: &str| {
        let mut command = backfill(&["--tenant-id", "tenant-1", "--client-id", "app-id", "--token-url", &token_url]);
        command.args(["--client-secret-file", secret_path]);
        command
    };
    let wrong_secret = "wrong-client-s3cret";
    check("backfill, wrong client secret", wrong_secret, &output(&mut client(&secret_file("wrong", wrong_secret))));
    let right = output(&mut client(&secret_file("right", "right-client-s3cret")));
    assert!(right.contains("backfilled"), "the right secret works: {right}");
    check("backfill, right client secret", "right-client-s3cret", &right);
    check("backfill, right client secret: no bearer token", "Bearer ", &right);

    // The agent, refused by the API: its stderr, log files, health file and status.
    let state = dir.join("state");
    let agent_token = "wrong-agent-t0ken";
    let config = dir.join("cefwire.toml");
    std::fs::write(
        &config,
        format!(
            "portal_url = \"{url}\"\nstate_directory = \"{}\"\nlogs_directory = \"{}\"\n\
             [auth]\ntoken_file = \"{}\"\n[syslog]\nto = [\"tcp://127.0.0.1:9\"]\n",
            state.display(),
            state.join("logs").display(),
            secret_file("agent-token", agent_token)
        ),
    )
    .unwrap();
    let text = output(cefwire().args(["agent", "--once", "-v", "--config"]).arg(&config).env_remove("CEFWIRE_TOKEN"));
    check("agent --once stderr", agent_token, &text);
    let mut files = 0;
    for entry in walk(&state) {
        let content = String::from_utf8_lossy(&std::fs::read(&entry).unwrap()).into_owned();
        check(&format!("agent file {}", entry.display()), agent_token, &content);
        files += 1;
    }
    assert!(files >= 2, "the agent wrote its log and health files: {text}");
    check("status", agent_token, &output(cefwire().args(["status", "--state-dir"]).arg(&state)));
    assert!(seen.len() >= 9, "{seen:?}");
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

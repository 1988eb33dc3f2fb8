//! The Graph `alerts_v2` client and pager against the emulator (in
//! process, real HTTP on 127.0.0.1): every alert of a window read through
//! injected 429s, 5xx and dropped connections, with the throttle kept on
//! both sides, bearer tokens refreshed when they run out, and errors that
//! say what to fix.

use cefwire::api::RateLimit;
use cefwire::azure::entra::ClientCredentials;
use cefwire::emulate::{self, EmulatorAuth, EmulatorConfig, EmulatorHandle, FaultConfig, RecordStore};
use cefwire::graph::{AlertPager, GraphClient, GraphConfig, GraphError, GraphPageInfo};
use cefwire::http::RetryPolicy;
use cefwire::json::JsonParser;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

const HOUR: i64 = 3_600_000;
const CLIENT: (&str, &str) = ("graph-app", "graph-secret");

/// `count` generated alerts over the 24 h ending an hour ago; the window
/// around them, and the ids of those from Defender for Cloud Apps.
fn store(count: u64) -> (Arc<RecordStore>, i64, i64, HashSet<String>) {
    let end = cefwire::time::now_ms() - HOUR;
    let start = end - 24 * HOUR;
    let (store, mut ids) = crate::util::graph::graph_store_keyed(&[(count, 3, start, 24 * HOUR)], "id");
    (store, start - HOUR, end + HOUR, ids.pop().unwrap())
}

fn emulator(store: &Arc<RecordStore>, tune: impl FnOnce(&mut EmulatorConfig)) -> EmulatorHandle {
    let mut config = EmulatorConfig::new("127.0.0.1:0".parse().unwrap(), "unused");
    config.auth = EmulatorAuth {
        api_token: None,
        client: Some((CLIENT.0.to_owned(), CLIENT.1.to_owned())),
        token_lifetime: Duration::from_secs(3600),
    };
    tune(&mut config);
    emulate::start(config, Arc::clone(store)).expect("emulator starts")
}

fn client_config(base: &str, limit: RateLimit, secret: &str) -> GraphConfig {
    let credentials = ClientCredentials {
        tenant_id: "tenant-1".into(),
        client_id: CLIENT.0.into(),
        client_secret: secret.into(),
        token_url: format!("{base}/tenant-1/oauth2/v2.0/token"),
        scope: cefwire::graph::GRAPH_SCOPE.into(),
    };
    let mut config = GraphConfig::new(base, credentials);
    config.rate_limit = limit;
    config.retry =
        RetryPolicy { first_delay: Duration::from_millis(20), max_delay: Duration::from_millis(200), max_attempts: 30 };
    config
}

/// Reads every page of the window; returns how often each alert `id` came
/// and what the client counted.
fn read_window(config: &GraphConfig, since: i64, until: i64) -> Result<(HashMap<String, u32>, u64), GraphError> {
    let mut client = GraphClient::new(config)?;
    let mut pager = AlertPager::new(since, Some(until));
    let mut parser = JsonParser::new();
    let mut page = Vec::new();
    let mut seen: HashMap<String, u32> = HashMap::new();
    let mut pages = 0;
    while let Some(url) = pager.next_url(&client) {
        let len = client.fetch(&url, &mut page)?;
        let info = parser
            .parse(&mut page, len, |root| {
                for alert in root.get("value").and_then(|v| v.array()).into_iter().flatten() {
                    let id = alert.get("id").and_then(|v| v.as_str()).unwrap().to_owned();
                    let source = alert.get("serviceSource").and_then(|v| v.as_str()).unwrap();
                    assert_eq!(source, "microsoftDefenderForCloudApps", "the default filter keeps MDCA alerts only");
                    *seen.entry(id).or_default() += 1;
                }
                GraphPageInfo::from_page(root)
            })
            .unwrap()
            .expect("a Graph page");
        pager.page_done(&info, config.top)?;
        pages += 1;
        assert!(pages < 10_000, "the pager does not end");
    }
    Ok((seen, client.stats().requests))
}

#[test]
fn every_alert_through_faults_and_the_throttle() {
    let (store, since, until, expected) = store(3000);
    let limit = RateLimit { requests: 20, per: Duration::from_secs(2) };
    let graph = emulator(&store, |c| {
        c.graph_rate_limit = Some(limit);
        c.faults = FaultConfig { error_5xx: 0.05, error_429: 0.05, drop: 0.02, ..FaultConfig::default() };
    });
    let base = graph.base_url();
    // Pages of 100: next links are followed up to $skip=500, then the
    // time bound moves.
    let mut config = client_config(&base, limit, CLIENT.1);
    config.top = 100;
    let (seen, requests) = read_window(&config, since, until).unwrap();
    let stats = graph.stats();
    eprintln!("graph pager: {} alerts, {} requests; emulator: {}", seen.len(), requests, stats.summary());
    assert!(expected.len() > 2500, "{}", expected.len());
    assert_eq!(
        seen.keys().cloned().collect::<HashSet<_>>(),
        expected,
        "every Defender for Cloud Apps alert, and no other"
    );
    let repeats: u32 = seen.values().map(|n| n - 1).sum();
    assert!(repeats <= 100, "alerts fetched again are only those at a moved time bound: {repeats}");
    assert!(stats.injected_5xx + stats.injected_429 + stats.injected_drops > 0, "{stats:?}");
    assert_eq!(stats.graph_throttled, 0, "the client keeps the limit: the throttle never had to act");
    assert!(stats.graph_most_per_window <= 20, "at most 20 requests in any 2 s: {stats:?}");
    assert_eq!(stats.graph_requests, requests);
}

#[test]
fn tokens_are_refreshed_and_bad_credentials_say_so() {
    let (store, since, until, expected) = store(3000);
    let graph = emulator(&store, |c| {
        c.graph_rate_limit = None;
        c.auth.token_lifetime = Duration::from_secs(2);
    });
    let base = graph.base_url();
    let fast = RateLimit { requests: 5, per: Duration::from_secs(1) };
    let mut config = client_config(&base, fast, CLIENT.1);
    config.top = 50;
    let (seen, _) = read_window(&config, since, until).unwrap();
    assert_eq!(seen.keys().cloned().collect::<HashSet<_>>(), expected);
    assert!(graph.stats().tokens_issued >= 3, "a 2 s token is refreshed during a run of several seconds");

    let config = client_config(&base, fast, "wrong secret");
    let err = read_window(&config, since, until).unwrap_err();
    assert!(err.to_string().contains("refused the client credentials"), "{err}");

    // A filter the service refuses is reported with the URL.
    let mut config = client_config(&base, fast, CLIENT.1);
    config.filter = Some("title eq 'x'".into());
    let err = read_window(&config, since, until).unwrap_err();
    assert!(matches!(err, GraphError::BadRequest { .. }) && err.to_string().contains("alerts_v2"), "{err}");
}

//! The emulator's Graph `alerts_v2` loaded with generated alerts, for the
//! Graph source's tests (`backfill --source graph`, the agent's stream):
//! the store, the window around it and the `externalId` (the
//! `providerAlertId`) of every alert the default filter keeps.

use cefwire::emulate::{self, EmulatorAuth, EmulatorConfig, EmulatorHandle, FaultConfig, RecordStore, StoreBuilder};
use cefwire::generate::{GenerateConfig, GenerateKind, RecordGenerator};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

const HOUR: i64 = 3_600_000;
pub const CLIENT: (&str, &str) = ("graph-backfill-app", "graph-backfill-secret");

/// Generated alerts over the 24 h ending an hour ago, the window around
/// them, and the `providerAlertId` (the CEF `externalId`) of each alert
/// from Defender for Cloud Apps (the default filter's).
pub fn graph_store(count: u64, seed: u64) -> (Arc<RecordStore>, i64, i64, HashSet<String>) {
    let end = cefwire::time::now_ms() - HOUR;
    let start = end - 24 * HOUR;
    let (store, expected) = graph_store_over(count, seed, start, 24 * HOUR);
    (store, start - HOUR, end + HOUR, expected)
}

/// `count` generated alerts created over `start_ms..start_ms + span_ms` (the
/// emulator serves each only once its `createdDateTime` has come), and the
/// `providerAlertId` of each from Defender for Cloud Apps.
pub fn graph_store_over(count: u64, seed: u64, start_ms: i64, span_ms: i64) -> (Arc<RecordStore>, HashSet<String>) {
    let (store, mut expected) = graph_store_of(&[(count, seed, start_ms, span_ms)]);
    (store, expected.pop().unwrap())
}

/// One store of several generated sets, each `(count, seed, start_ms,
/// span_ms)` as in [`graph_store_over`], and the ids of each set apart.
pub fn graph_store_of(parts: &[(u64, u64, i64, i64)]) -> (Arc<RecordStore>, Vec<HashSet<String>>) {
    graph_store_keyed(parts, "providerAlertId")
}

/// [`graph_store_of`], each set's Defender for Cloud Apps alerts named by
/// their `key` (`providerAlertId`, the CEF `externalId`; or Graph's `id`).
pub fn graph_store_keyed(parts: &[(u64, u64, i64, i64)], key: &str) -> (Arc<RecordStore>, Vec<HashSet<String>>) {
    let mut builder = StoreBuilder::new();
    let mut all = HashSet::new();
    let mut sets = Vec::new();
    for &(count, seed, start_ms, span_ms) in parts {
        let config =
            GenerateConfig { kind: GenerateKind::GraphAlerts, count, seed, late_ratio: 0.0, start_ms, span_ms };
        builder.graph_alerts.add_generated(config.clone());
        assert_eq!(builder.graph_alerts.skipped, 0);
        let mut generator = RecordGenerator::new(config);
        let mut expected = HashSet::new();
        let mut buf = Vec::new();
        while generator.write_next(&mut buf) {
            let alert: serde_json::Value = serde_json::from_slice(&buf).unwrap();
            if alert["serviceSource"] == "microsoftDefenderForCloudApps" {
                let id = alert[key].as_str().unwrap().to_owned();
                assert!(all.insert(id.clone()), "unique ids");
                expected.insert(id);
            }
            buf.clear();
        }
        sets.push(expected);
    }
    (Arc::new(builder.build()), sets)
}

/// The emulator with Graph's own throttle (150/min) and `faults`.
pub fn graph_emulator(store: &Arc<RecordStore>, faults: FaultConfig) -> EmulatorHandle {
    let mut config = EmulatorConfig::new("127.0.0.1:0".parse().unwrap(), "unused");
    config.auth = EmulatorAuth {
        api_token: None,
        client: Some((CLIENT.0.to_owned(), CLIENT.1.to_owned())),
        token_lifetime: Duration::from_secs(3600),
    };
    config.faults = faults;
    emulate::start(config, Arc::clone(store)).expect("emulator starts")
}

//! Records per second from a Kafka-protocol broker (tansu) through
//! `cefwire agent` (Event Hubs source) to a syslog receiver (`cefwire
//! sink`), with one and with two instances in the consumer group, next to
//! the baseline of a bare librdkafka consumer reading the same messages
//! without converting or sending anything.
//!
//! `cargo bench --bench eventhubs` (a plain program: `harness = false`).
//! It needs tansu (see `.ci/run`); without it, it says so and exits.
//! `CEFWIRE_BENCH_RECORDS` sets the record count (default 400,000, in
//! messages of 20 records on 4 partitions, produced one per batch).

#[path = "../tests/util/mod.rs"]
mod util;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message};
use std::fs;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use util::sink::SinkProcess;
use util::tansu::{Tansu, produce_round_robin, producer_for};

const TOPIC: &str = "insights-logs-advancedhunting-cloudappevents";
const PARTITIONS: i32 = 4;
const PER_MESSAGE: u64 = 20;

fn body(first: u64) -> Vec<u8> {
    let mut body = String::from("{\"data\":[");
    for n in first..first + PER_MESSAGE {
        body.push_str(&format!(
            concat!(
                "{{\"_id\":\"r-{}\",\"timestamp\":{},\"eventTypeName\":\"EVENT_CATEGORY_DOWNLOAD_FILE\",",
                "\"description\":\"Download file: report-{}.docx\",\"user\":{{\"userName\":\"user{}@contoso.com\"}},",
                "\"appName\":\"Microsoft SharePoint Online\",\"appId\":20892,",
                "\"device\":{{\"clientIP\":\"10.1.{}.{}\",\"userAgent\":\"Mozilla/5.0 (Windows NT 10.0; Win64; x64)\"}},",
                "\"mainInfo\":{{\"eventObjects\":[{{\"name\":\"report-{}.docx\"}}]}}}},"
            ),
            n,
            1_764_410_000_000 + n as i64,
            n,
            n % 97,
            n % 250,
            n % 97,
            n
        ));
    }
    body.pop();
    body.push_str("]}");
    body.into_bytes()
}

fn agent(dir: &Path, name: &str, bootstrap: &str, group: &str, to: &str) -> Child {
    let config = dir.join(format!("{name}.toml"));
    fs::write(
        &config,
        format!(
            "state_directory = \"{}\"\n[activities]\nsource = \"eventhubs\"\n[alerts]\nenabled = false\n\
             [eventhubs]\nbootstrap_servers = \"{bootstrap}\"\nauth = \"none\"\nevent_hub = \"{TOPIC}\"\n\
             consumer_group = \"{group}\"\n[syslog]\nto = [\"{to}\"]\n",
            dir.join(format!("{name}-state")).display()
        ),
    )
    .unwrap();
    let log = fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    util::cefwire().args(["agent", "--config"]).arg(&config).stdout(Stdio::null()).stderr(log).spawn().unwrap()
}

/// Reads every message once with a bare consumer: the broker's own pace.
fn baseline(bootstrap: &str, messages: u64) -> f64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "baseline")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[TOPIC]).unwrap();
    let (mut seen, mut bytes, mut first) = (0u64, 0usize, None);
    let deadline = Instant::now() + Duration::from_secs(600);
    while seen < messages && Instant::now() < deadline {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
            first.get_or_insert_with(Instant::now);
            seen += 1;
            bytes += message.payload().map_or(0, <[u8]>::len);
        }
    }
    assert_eq!(seen, messages, "the baseline consumer read everything");
    let elapsed = first.unwrap().elapsed().as_secs_f64();
    std::hint::black_box(bytes);
    (seen * PER_MESSAGE) as f64 / elapsed
}

/// Runs `instances` agents in a fresh group until the sink has every
/// record: (records/s while records arrive, seconds from start to the last).
fn run(dir: &Path, bootstrap: &str, instances: usize, records: u64) -> (f64, f64) {
    let sink = SinkProcess::start("tcp://127.0.0.1:0", &["--expect", &records.to_string(), "--timeout", "900s"]);
    let group = format!("bench-{instances}");
    let started = Instant::now();
    let mut agents: Vec<Child> =
        (0..instances).map(|n| agent(dir, &format!("{group}-{n}"), bootstrap, &group, &sink.url)).collect();
    let (status, report) = sink.report(Duration::from_secs(1000));
    let total = started.elapsed().as_secs_f64();
    for child in &mut agents {
        util::signal(child, libc::SIGTERM);
        let _ = util::wait_child(child, Duration::from_secs(60));
    }
    assert!(status.success(), "the sink did not get every record: {report}");
    let report: serde_json::Value = serde_json::from_str(report.trim()).unwrap();
    let active = report["active_s"].as_f64().expect("active_s in the sink's report");
    (records as f64 / active.max(1e-9), total)
}

fn main() {
    if std::env::args().any(|a| a == "--list") || std::env::args().any(|a| a == "--test") {
        return;
    }
    if util::tansu::binary().is_none() {
        eprintln!("tansu is not installed (cargo install tansu --locked --features dynostore): nothing measured");
        return;
    }
    let records: u64 = std::env::var("CEFWIRE_BENCH_RECORDS").ok().and_then(|v| v.parse().ok()).unwrap_or(400_000);
    let messages = records / PER_MESSAGE;
    let records = messages * PER_MESSAGE;
    let scratch = tempfile::Builder::new().prefix("cefwire-bench-eventhubs-").tempdir().unwrap();
    let dir = scratch.path();
    let tansu = Tansu::start(&dir.join("tansu"));
    tansu.create_topic(TOPIC, PARTITIONS as u32);
    let produced = Instant::now();
    let bodies: Vec<Vec<u8>> = (0..messages).map(|m| body(m * PER_MESSAGE)).collect();
    let bytes: usize = bodies.iter().map(Vec::len).sum();
    produce_round_robin(&producer_for(&tansu.bootstrap()), TOPIC, PARTITIONS, bodies);
    println!(
        "produced {records} records in {messages} messages ({:.1} MB JSON) on {PARTITIONS} partitions in {:.1} s",
        bytes as f64 / 1e6,
        produced.elapsed().as_secs_f64()
    );
    let base = baseline(&tansu.bootstrap(), messages);
    println!("baseline: bare librdkafka consumer          {base:>10.0} records/s");
    for instances in [1, 2] {
        let (rate, total) = run(dir, &tansu.bootstrap(), instances, records);
        println!(
            "cefwire agent ×{instances} → cefwire sink (TCP)      {rate:>10.0} records/s while sending ({:.0} % of the baseline); \
             {total:.1} s from start to the last record",
            100.0 * rate / base
        );
    }
}

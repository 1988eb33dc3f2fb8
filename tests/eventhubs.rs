//! The Event Hubs source against real parts: a Kafka-protocol broker
//! (tansu) holding messages of records, `cefwire agent`
//! processes in one consumer group, and a real rsyslogd counting every
//! `ReportId` that arrives. Records are produced one message per batch
//! (see `util::tansu`). Each test skips with a note when rsyslogd or tansu
//! is missing, unless `CEFWIRE_REQUIRE_RSYSLOG` / `CEFWIRE_REQUIRE_TANSU`
//! is set (as `.ci/run` does). They run as scenarios of the agent test
//! binary (`cargo test --test agent eventhubs`), in its bounded pool.

use crate::util::agent_process::AgentProcess;
use crate::util::rsyslog::Rsyslog;
use crate::util::tansu::Tansu;
use crate::util::wait_until;
use cefwire::agent::health::HealthReport;
use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::time::Duration;

const TOPIC: &str = "insights-logs-advancedhunting-cloudappevents";

/// One message of `count` records with ids `r-<first>`….
fn envelope(first: u64, count: u64) -> Vec<u8> {
    // Until the CloudAppEvents mapping is on main, the bodies are API pages
    // of activities (`_id` = the id): the consumer, its commits and its
    // de-duplication do not depend on the record layout.
    let mut body = String::from("{\"data\":[");
    for n in first..first + count {
        body.push_str(&format!(
            concat!(
                "{{\"_id\":\"r-{}\",\"timestamp\":{},\"eventTypeName\":\"EVENT_CATEGORY_DOWNLOAD_FILE\",",
                "\"description\":\"Download file: report-{}.docx\",\"user\":{{\"userName\":\"user{}@contoso.com\"}},",
                "\"appName\":\"Microsoft SharePoint Online\",\"appId\":20892,",
                "\"device\":{{\"clientIP\":\"10.1.{}.{}\",\"userAgent\":\"Mozilla/5.0\"}},",
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

/// Messages of `per_message` records with ids `first..first + messages × per_message`.
fn messages(first: u64, messages: u64, per_message: u64) -> Vec<Vec<u8>> {
    (0..messages).map(|m| envelope(first + m * per_message, per_message)).collect()
}

/// Produces `bodies` spread over `partitions` partitions, round robin.
fn produce_spread(tansu: &Tansu, bodies: Vec<Vec<u8>>, partitions: i32) {
    crate::util::tansu::produce_round_robin(&tansu.producer(), TOPIC, partitions, bodies);
}

/// One `cefwire agent` named `name` with the Event Hubs source, in
/// `group`, with `lines` added to its `[eventhubs]` section.
fn eventhubs_agent(dir: &Path, name: &str, bootstrap: &str, group: &str, syslog: &str, lines: &str) -> AgentProcess {
    let settings = format!(
        r#"portal_url = "https://contoso.portal.cloudappsecurity.com"

[activities]
source = "eventhubs"

[alerts]
enabled = false

[eventhubs]
bootstrap_servers = "{bootstrap}"
auth = "none"
event_hub = "{TOPIC}"
consumer_group = "{group}"
session_timeout = "6s"
{lines}
[syslog]
to = ["{syslog}"]
"#
    );
    AgentProcess::new(dir, name, &settings)
}

/// Every expected id arrived, nothing else did; returns the duplicates.
fn check_complete(seen: &HashMap<String, u32>, total: u64) -> u64 {
    let missing: Vec<u64> = (0..total).filter(|n| !seen.contains_key(&format!("r-{n}"))).collect();
    let unexpected: Vec<&String> = seen
        .keys()
        .filter(|id| id.strip_prefix("r-").and_then(|n| n.parse::<u64>().ok()).is_none_or(|n| n >= total))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {total} ids never arrived, first: {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    assert!(unexpected.is_empty(), "ids that were not produced arrived: {:?}", &unexpected[..unexpected.len().min(10)]);
    seen.values().map(|&n| u64::from(n) - 1).sum()
}

fn unique(rsyslog: &Rsyslog) -> usize {
    rsyslog.external_ids().len()
}

fn parts() -> bool {
    Rsyslog::available() && Tansu::available()
}

/// Scenario `eventhubs_two_agents_in_a_group_deliver_every_report_id_through_sigkills`.
pub fn group_through_sigkills(dir: &Path) {
    if !parts() {
        return;
    }
    const PARTITIONS: i32 = 4;
    const PER_MESSAGE: u64 = 20;
    const MESSAGES: u64 = 10_000;
    const TOTAL: u64 = PER_MESSAGE * MESSAGES;
    let tansu = Tansu::start(&dir.join("tansu"));
    tansu.create_topic(TOPIC, PARTITIONS as u32);
    let rsyslog = Rsyslog::start(&dir.join("rsyslog"));
    let group = "cefwire-test";
    let mut a = eventhubs_agent(dir, "a", &tansu.bootstrap(), group, &rsyslog.tcp_url(), "");
    let mut b = eventhubs_agent(dir, "b", &tansu.bootstrap(), group, &rsyslog.tcp_url(), "");
    a.start();
    b.start();
    // Produced in four parts while the agents run, so the kills land mid-stream.
    let producer = {
        let tansu_bootstrap = tansu.bootstrap();
        std::thread::spawn(move || {
            let client = crate::util::tansu::producer_for(&tansu_bootstrap);
            for part in 0..4 {
                let first = part * TOTAL / 4;
                let bodies = messages(first, MESSAGES / 4, PER_MESSAGE);
                crate::util::tansu::produce_round_robin(&client, TOPIC, PARTITIONS, bodies);
            }
        })
    };
    let long = Duration::from_secs(600);
    wait_until(long, "both agents hold partitions", || a.partitions() > 0 && b.partitions() > 0);
    wait_until(long, "a quarter of the records at rsyslog", || unique(&rsyslog) as u64 >= TOTAL / 4);
    a.kill();
    wait_until(long, "the survivor to take every partition", || b.partitions() == PARTITIONS as usize);
    a.start();
    wait_until(long, "the partitions to be shared again", || {
        a.partitions() > 0 && b.partitions() < PARTITIONS as usize
    });
    wait_until(long, "60 % of the records at rsyslog", || unique(&rsyslog) as u64 >= TOTAL * 6 / 10);
    a.kill();
    a.start();
    producer.join().expect("producer");
    wait_until(long, "every record at rsyslog", || unique(&rsyslog) as u64 >= TOTAL);
    let observer = tansu.observer(group);
    let ends = Tansu::ends(&observer, TOPIC, PARTITIONS);
    wait_until(long, "every offset committed", || {
        Tansu::committed(&observer, TOPIC, PARTITIONS).iter().zip(&ends).all(|(c, e)| *c == Some(*e))
    });
    a.stop();
    b.stop();
    Rsyslog::wait_until_quiet(&rsyslog.out, Duration::from_secs(2), Duration::from_secs(120));
    let seen = rsyslog.external_ids();
    let duplicates = check_complete(&seen, TOTAL);
    eprintln!("{TOTAL} records over 2 SIGKILLs and 4 rebalances: {duplicates} duplicates at rsyslog");
    // Each kill may re-send what the victim wrote but had not committed
    // (at most a commit interval's worth) plus its resend window after a
    // reconnection; far below a tenth of the stream per kill.
    assert!(duplicates <= TOTAL / 5, "{duplicates} duplicates for 2 kills");
    let health = b.eventhubs().expect("b's health");
    assert!(health.rebalances >= 3, "b saw {} rebalances", health.rebalances);
}

/// Scenario `eventhubs_offsets_are_not_committed_while_syslog_is_down`.
pub fn no_commit_while_syslog_is_down(dir: &Path) {
    if !parts() {
        return;
    }
    const PARTITIONS: i32 = 2;
    let tansu = Tansu::start(&dir.join("tansu"));
    tansu.create_topic(TOPIC, PARTITIONS as u32);
    let mut rsyslog = Rsyslog::start(&dir.join("rsyslog"));
    let group = "cefwire-down";
    let mut agent = eventhubs_agent(dir, "agent", &tansu.bootstrap(), group, &rsyslog.tcp_url(), "");
    agent.start();
    let observer = tansu.observer(group);
    let long = Duration::from_secs(600);

    produce_spread(&tansu, messages(0, 500, 10), PARTITIONS);
    wait_until(long, "the first 5,000 records at rsyslog", || unique(&rsyslog) >= 5_000);
    let ends = Tansu::ends(&observer, TOPIC, PARTITIONS);
    wait_until(long, "their offsets committed", || {
        Tansu::committed(&observer, TOPIC, PARTITIONS).iter().zip(&ends).all(|(c, e)| *c == Some(*e))
    });
    Rsyslog::wait_until_quiet(&rsyslog.out, Duration::from_secs(2), Duration::from_secs(60));

    rsyslog.stop();
    // More than the sender's pool holds (64 × 256 KiB): the agent must pause.
    produce_spread(&tansu, messages(5_000, 1_000, 50), PARTITIONS);
    wait_until(long, "the agent to pause consumption", || agent.eventhubs().is_some_and(|e| e.paused));
    // Well past the session timeout (6 s): nothing committed, still a member.
    for _ in 0..15 {
        assert_eq!(
            Tansu::committed(&observer, TOPIC, PARTITIONS),
            ends.iter().map(|&e| Some(e)).collect::<Vec<_>>(),
            "an offset moved while syslog was down"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    assert_eq!(agent.partitions(), PARTITIONS as usize, "the agent left the group while paused");

    rsyslog.launch();
    let total = 5_000 + 50_000;
    wait_until(long, "every record at rsyslog after the outage", || unique(&rsyslog) >= total);
    let ends = Tansu::ends(&observer, TOPIC, PARTITIONS);
    wait_until(long, "every offset committed after the outage", || {
        Tansu::committed(&observer, TOPIC, PARTITIONS).iter().zip(&ends).all(|(c, e)| *c == Some(*e))
    });
    wait_until(long, "consumption resumed", || agent.eventhubs().is_some_and(|e| !e.paused));
    agent.stop();
    Rsyslog::wait_until_quiet(&rsyslog.out, Duration::from_secs(2), Duration::from_secs(120));
    let duplicates = check_complete(&rsyslog.external_ids(), total as u64);
    eprintln!(
        "syslog down with 50,000 records waiting: {duplicates} duplicates (the resend window after reconnecting)"
    );
}

/// Scenario `eventhubs_a_consumer_fetching_nothing_while_records_wait_is_stalled_in_status`: the
/// group coordinator that never ended a dead member's session (docs/reliability.md) left
/// partitions fetching nothing while every link looked fine. Here the test-only fault
/// `CEFWIRE_FAULT_EVENTHUBS_NO_FETCH` makes the agent fetch nothing (every partition paused,
/// the membership kept) while records wait: `status` must say stalled — the partitions, their
/// lag — and exit 9, the log must say it once; when fetching resumes, `status` is Connected
/// again (exit 0), the log says so, and every record arrives once.
pub fn stall_is_reported(dir: &Path) {
    if !parts() {
        return;
    }
    const PARTITIONS: i32 = 2;
    let tansu = Tansu::start(&dir.join("tansu"));
    tansu.create_topic(TOPIC, PARTITIONS as u32);
    let rsyslog = Rsyslog::start(&dir.join("rsyslog"));
    let group = "cefwire-stall";
    let lines = "stall_after = \"3s\"\n";
    let mut agent = eventhubs_agent(dir, "agent", &tansu.bootstrap(), group, &rsyslog.tcp_url(), lines);
    let flag = dir.join("no-fetch");
    agent.env.push(("CEFWIRE_FAULT_EVENTHUBS_NO_FETCH", flag.clone()));
    agent.start();
    let long = Duration::from_secs(600);

    produce_spread(&tansu, messages(0, 100, 10), PARTITIONS);
    wait_until(long, "the first 1,000 records at rsyslog", || unique(&rsyslog) >= 1_000);
    wait_until(long, "status Connected, exit 0", || agent.status().0 == Some(0));

    fs::write(&flag, b"").unwrap();
    wait_until(long, "the agent to stop fetching", || agent.log_text().contains("test fault: fetching nothing"));
    // 25 messages more per partition, which the agent does not fetch.
    produce_spread(&tansu, messages(1_000, 50, 10), PARTITIONS);
    let mut last = (None, String::new());
    wait_until(Duration::from_secs(300), "status to say the partitions are stalled, exit 9", || {
        last = agent.status();
        last.0 == Some(9) && last.1.contains("Event Hubs stalled: partitions 0, 1 have 50 messages waiting")
    });
    assert!(last.1.starts_with("status:   Connected\nreason:   Event Hubs stalled: partitions 0, 1"), "{}", last.1);
    assert_eq!(unique(&rsyslog), 1_000, "records arrived while nothing was fetched");
    eprintln!("stalled: {}", last.1.lines().nth(1).unwrap_or_default());
    // Said once, however long it lasts: wait until it lasted 4 × stall_after.
    wait_until(long, "the stall to last 12 s", || {
        HealthReport::load(&agent.state).ok().and_then(|h| Some(h.updated_ms - h.eventhubs?.stalled?.idle_since_ms))
            >= Some(12_000)
    });
    let stall_lines = |text: &str| text.lines().filter(|l| l.contains("stalled: ")).count();
    assert_eq!(stall_lines(&agent.log_text()), 1, "the stall is logged once:\n{}", agent.log_text());

    fs::remove_file(&flag).unwrap();
    wait_until(long, "every record at rsyslog after the stall", || unique(&rsyslog) >= 1_500);
    wait_until(long, "status Connected again, exit 0", || agent.status().0 == Some(0));
    assert!(agent.log_text().contains("no longer stalled (fetching again)"), "{}", agent.log_text());
    let observer = tansu.observer(group);
    let ends = Tansu::ends(&observer, TOPIC, PARTITIONS);
    wait_until(long, "every offset committed", || {
        Tansu::committed(&observer, TOPIC, PARTITIONS).iter().zip(&ends).all(|(c, e)| *c == Some(*e))
    });
    let health = agent.eventhubs().expect("health");
    assert_eq!((health.stalls, health.stalled), (1, None));
    agent.stop();
    Rsyslog::wait_until_quiet(&rsyslog.out, Duration::from_secs(2), Duration::from_secs(120));
    assert_eq!(stall_lines(&agent.log_text()), 1, "{}", agent.log_text());
    for line in agent.log_text().lines().filter(|l| l.contains("stalled")) {
        eprintln!("log: {line}");
    }
    let duplicates = check_complete(&rsyslog.external_ids(), 1_500);
    assert_eq!(duplicates, 0, "a pause and resume of fetching sends nothing twice");
}

//! The agent's Storage source against real parts: the emulator's archive
//! writer filling Azurite with 200,000 `CloudAppEvents` (append blobs over
//! several hours, late appends to earlier hours, duplicates, records of
//! other tables) while `cefwire agent` reads it, SIGKILLed three times
//! (once while rsyslogd is stalled, so records read are not yet written)
//! and restarted, and a real rsyslogd counting every `ReportId`. And an
//! account nobody answers for: the agent keeps trying and says so in its
//! health and `status`. They run as scenarios of the agent test binary
//! (`cargo test --test agent storage`), in its bounded pool; each skips
//! with a note when azurite-blob or rsyslogd is missing, unless
//! `CEFWIRE_REQUIRE_AZURITE` / `CEFWIRE_REQUIRE_RSYSLOG` is set.

use crate::util::agent_process::AgentProcess;
use crate::util::archive::{ArchiveWriter, check_every_id, first_duplicates, received_ids, unique_ids};
use crate::util::rsyslog::Rsyslog;
use crate::util::{azurite, cefwire, wait_until};
use cefwire::agent::health::HealthReport;
use cefwire::azure::shared_key::AZURITE_KEY;
use std::fs;
use std::path::Path;
use std::time::Duration;

const RECORDS: u64 = 200_000;
const SEED: u64 = 31;

/// One `cefwire agent` with the Storage source, its account key in a file.
fn storage_agent(dir: &Path, endpoint: &str, container: &str, syslog: &str) -> AgentProcess {
    let key = dir.join("account-key");
    fs::write(&key, format!("{AZURITE_KEY}\n")).unwrap();
    let settings = format!(
        r#"poll_interval = "1s"

[activities]
source = "storage"

[alerts]
enabled = false

[storage]
account_url = "{endpoint}"
container = "{container}"
account_key_file = "{}"

[syslog]
to = ["{syslog}"]
"#,
        key.display()
    );
    AgentProcess::new(dir, "agent", &settings)
}

/// Scenario `storage_agent_delivers_every_report_id_while_the_archive_grows_through_three_sigkills`.
pub fn every_report_id_through_sigkills(dir: &Path) {
    let Some(endpoint) = azurite::shared() else { return };
    if !Rsyslog::available() {
        return;
    }
    let container = "agent-storage";
    let rsyslog = Rsyslog::start(&dir.join("rsyslog"));
    let mut agent = storage_agent(dir, endpoint, container, &rsyslog.tcp_url());
    // Written over two minutes while the agent reads; 5 hours of records.
    let mut writer = ArchiveWriter::start(endpoint, container, RECORDS, SEED, "5h", "120s");
    agent.start();
    let long = Duration::from_secs(900);
    let mut kills_while_writing = 0;
    for quarter in 1..=3 {
        let target = RECORDS * quarter / 4;
        wait_until(long, &format!("{target} ReportIds at rsyslog"), || unique_ids(&rsyslog.out) as u64 >= target);
        if !writer.done() {
            kills_while_writing += 1;
        }
        if quarter == 2 {
            // The second kill lands while syslog stalls: the agent has read
            // (and handed to its sender) records syslog does not have yet.
            // A checkpoint covering them would lose them with the kill.
            rsyslog.pause();
            wait_until(long, "the agent to read ahead of the stalled syslog", || {
                agent.storage().is_some_and(|s| s.records >= s.sent + 5_000)
            });
            agent.kill();
            rsyslog.resume();
            eprintln!("[storage] SIGKILL {quarter} while syslog stalled");
            agent.start();
            continue;
        }
        agent.kill();
        eprintln!(
            "[storage] SIGKILL {quarter} with {} ReportIds at rsyslog, {} written",
            unique_ids(&rsyslog.out),
            writer.written()
        );
        agent.start();
    }
    writer.wait_done(long);
    // Caught up: listings made after the archive was complete found nothing
    // new (a loss then shows as missing ids at once, not as a timeout).
    let health = || HealthReport::load(&agent.state).ok().and_then(|h| Some((h.pid, h.storage?)));
    let (pid, listings) = health().map_or((0, 0), |(pid, s)| (pid, s.listings));
    wait_until(long, "the agent to be caught up with the whole archive", || {
        health().is_some_and(|(now_pid, s)| {
            let listed_since = now_pid != pid || s.listings > listings + 2;
            listed_since && s.behind_bytes == 0 && s.account.failing_since_ms.is_none()
        })
    });
    agent.stop();
    writer.stop();
    Rsyslog::wait_until_quiet(&rsyslog.out, Duration::from_secs(2), Duration::from_secs(120));
    let received = received_ids(&rsyslog.out);
    let duplicates = check_every_id(&received, &writer.report_ids(), "agent with the Storage source");
    eprintln!(
        "[storage] {RECORDS} ReportIds over 3 SIGKILLs ({kills_while_writing} while the archive was being written): \
         {duplicates} duplicates at rsyslog (first: {:?})",
        first_duplicates(&received)
    );
    // A kill re-sends at most what was read after the last checkpoint that
    // syslog had caught up with: the sender's pool (16 MiB, about 24,000
    // of these messages) and a checkpoint interval's reading. The
    // archive's own duplicates must never arrive twice.
    assert!(duplicates <= 3 * 30_000, "{duplicates} duplicates for 3 kills: {:?}", first_duplicates(&received));
    let health = agent.storage().expect("the health has the Storage source");
    assert!(health.duplicates_skipped > 0, "the archive's duplicates were seen and dropped: {health:?}");
    assert!(health.skipped_other > 0, "records of other tables were skipped: {health:?}");
    let status = cefwire().args(["status", "--state-dir"]).arg(&agent.state).output().unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains(&format!("storage    {container}/")), "status shows the Storage source:\n{text}");
    // The checkpoint lost while the health shows records were sent: a start
    // would send the whole look-back again, so it is refused.
    fs::remove_file(agent.state.join("storage-state.bin")).unwrap();
    let refused = cefwire().args(["agent", "--config"]).arg(&agent.config).output().unwrap();
    let text = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{text}");
    assert!(text.contains("the checkpoint (storage-state.bin) is missing") && text.contains("--reset-state"), "{text}");
}

/// Scenario `storage_agent_keeps_trying_an_account_nobody_answers_and_says_so`.
pub fn unreachable_account(dir: &Path) {
    if !Rsyslog::available() {
        return;
    }
    let rsyslog = Rsyslog::start(&dir.join("rsyslog"));
    let port = crate::util::ports::reserve();
    let nowhere = format!("http://127.0.0.1:{}/devstoreaccount1", port.port());
    let mut agent = storage_agent(dir, &nowhere, "nowhere", &rsyslog.tcp_url());
    agent.start();
    let long = Duration::from_secs(300);
    wait_until(long, "the health to show the account failing", || {
        agent.storage().is_some_and(|s| s.account.failing_since_ms.is_some() && s.listings == 0)
    });
    let status = cefwire().args(["status", "--state-dir"]).arg(&agent.state).output().unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert_eq!(status.status.code(), Some(9), "failing now:\n{text}");
    assert!(text.contains("storage failing: giving up on the listing of container nowhere"), "{text}");
    assert!(agent.log_text().contains("storage: giving up on the listing"), "{}", agent.log_text());
    agent.stop();
}

//! The Kafka consumer of the Event Hubs source: one librdkafka consumer in
//! a consumer group, polled on the caller's thread (no async runtime).
//!
//! [`GroupConsumer`] owns the librdkafka client. Its context forwards the
//! group's rebalances to a [`PartitionHandler`] *inside* the poll call
//! that runs them, before partitions change hands, so the handler can
//! finish the records it holds and commit what syslog took while the
//! partitions are still its own. The handler lives in the context behind a
//! mutex: the poll loop takes it between polls, the rebalance callback
//! during one — never both at once, as both run on the polling thread.
//! OAUTHBEARER tokens come from a [`TokenSource`] called by librdkafka
//! before the current token expires. Client log lines and errors go to a
//! [`ClientLog`] with secrets never in them (librdkafka does not log
//! passwords). What the broker refuses (a commit, a pause, a seek) comes
//! back as a [`BrokerError`], in librdkafka's words. This module knows
//! nothing of CEF or syslog.

use super::settings::{ClientSetting, EventHubsSettings, KafkaAuth};
use rdkafka::client::OAuthToken;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::BorrowedMessage;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::{ClientConfig, ClientContext};
use std::error::Error;
use std::ffi::CString;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Hears the group's rebalances, on the polling thread.
pub trait PartitionHandler: Send + Sized + 'static {
    /// `partitions` are about to be taken away. Whatever is committed now
    /// (through `broker`) is the last this instance commits for them.
    fn revoking(&mut self, broker: &Broker<'_, Self>, partitions: &[i32]);
    /// `partitions` were given to this instance.
    fn assigned(&mut self, broker: &Broker<'_, Self>, partitions: &[i32]);
    /// A commit finished (asynchronous commits report here).
    fn committed(&mut self, offsets: &[(i32, i64)], result: Result<(), BrokerError>);
}

/// Where the client's own log lines go.
pub trait ClientLog: Send + Sync + 'static {
    fn warn(&self, message: &str);
    fn error(&self, message: &str);
}

/// Fetches an Entra ID access token for OAUTHBEARER: `(token, expires at
/// in ms since the epoch)`.
pub trait TokenSource: Send + Sync + 'static {
    fn token(&self) -> Result<(String, i64), String>;
}

/// The librdkafka context: the handler, the log and the token source.
pub struct GroupContext<H: PartitionHandler> {
    topic: String,
    handler: Mutex<H>,
    log: Arc<dyn ClientLog>,
    tokens: Option<Arc<dyn TokenSource>>,
}

impl<H: PartitionHandler> GroupContext<H> {
    fn handler(&self) -> MutexGuard<'_, H> {
        self.handler.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<H: PartitionHandler> ClientContext for GroupContext<H> {
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        log_line(&*self.log, level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.log.warn(&format!("kafka: {error}: {reason}"));
    }

    fn generate_oauth_token(&self, _config: Option<&str>) -> Result<OAuthToken, Box<dyn Error>> {
        oauth_token(self.tokens.as_deref())
    }
}

/// A librdkafka log line to `log`: warnings and worse only.
pub(crate) fn log_line(log: &dyn ClientLog, level: RDKafkaLogLevel, facility: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Error => {
            log.error(&format!("kafka: {facility}: {message}"));
        }
        RDKafkaLogLevel::Warning => log.warn(&format!("kafka: {facility}: {message}")),
        _ => {}
    }
}

/// The OAUTHBEARER token librdkafka asks for, from `tokens`.
pub(crate) fn oauth_token(tokens: Option<&dyn TokenSource>) -> Result<OAuthToken, Box<dyn Error>> {
    let source = tokens.ok_or("no token source: OAUTHBEARER is not configured")?;
    let (token, lifetime_ms) = source.token()?;
    // Event Hubs identifies the application by the token itself.
    Ok(OAuthToken { token, principal_name: "cefwire".to_owned(), lifetime_ms })
}

impl<H: PartitionHandler> ConsumerContext for GroupContext<H> {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            let partitions = partitions_of(list, &self.topic);
            let broker = Broker { consumer, topic: &self.topic };
            self.handler().revoking(&broker, &partitions);
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(list) => {
                let partitions = partitions_of(list, &self.topic);
                let broker = Broker { consumer, topic: &self.topic };
                self.handler().assigned(&broker, &partitions);
            }
            Rebalance::Error(err) => self.log.warn(&format!("kafka: rebalance failed: {err}")),
            Rebalance::Revoke(_) => {}
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        let list = offsets_of(offsets, &self.topic);
        self.handler().committed(&list, result.map_err(BrokerError));
    }
}

fn partitions_of(list: &TopicPartitionList, topic: &str) -> Vec<i32> {
    list.elements_for_topic(topic).iter().map(|e| e.partition()).collect()
}

fn offsets_of(list: &TopicPartitionList, topic: &str) -> Vec<(i32, i64)> {
    list.elements_for_topic(topic).iter().filter_map(|e| Some((e.partition(), e.offset().to_raw()?))).collect()
}

/// What a handler may ask of the broker, for one topic.
pub struct Broker<'a, H: PartitionHandler> {
    consumer: &'a BaseConsumer<GroupContext<H>>,
    topic: &'a str,
}

impl<H: PartitionHandler> Broker<'_, H> {
    /// Commits `offsets` (`(partition, next offset)`). `sync` waits for the
    /// broker's answer (rebalances, shutdown); otherwise the answer comes
    /// to [`PartitionHandler::committed`] from a later poll.
    pub fn commit(&self, offsets: &[(i32, i64)], sync: bool) -> Result<(), BrokerError> {
        if offsets.is_empty() {
            return Ok(());
        }
        let list = self.list(offsets)?;
        let mode = if sync { CommitMode::Sync } else { CommitMode::Async };
        Ok(self.consumer.commit(&list, mode)?)
    }

    /// Stops fetching from `partitions`; the group membership stays.
    pub fn pause(&self, partitions: &[i32]) -> Result<(), BrokerError> {
        let list = self.list(&partitions.iter().map(|&p| (p, -1)).collect::<Vec<_>>())?;
        Ok(self.consumer.pause(&list)?)
    }

    /// Fetches from `partitions` again, from where reading stopped.
    pub fn resume(&self, partitions: &[i32]) -> Result<(), BrokerError> {
        let list = self.list(&partitions.iter().map(|&p| (p, -1)).collect::<Vec<_>>())?;
        Ok(self.consumer.resume(&list)?)
    }

    /// Reads `partition` again from `offset` (a message that could not be
    /// taken yet is fetched again later).
    pub fn rewind(&self, partition: i32, offset: i64) -> Result<(), BrokerError> {
        Ok(self.consumer.seek(self.topic, partition, Offset::Offset(offset), Duration::from_secs(5))?)
    }

    /// The group's committed offsets of `partitions` (asks the broker).
    pub fn committed(&self, partitions: &[i32], timeout: Duration) -> Result<Vec<(i32, Option<i64>)>, BrokerError> {
        let list = self.list(&partitions.iter().map(|&p| (p, -1)).collect::<Vec<_>>())?;
        let answer = self.consumer.committed_offsets(list, timeout)?;
        Ok(answer.elements_for_topic(self.topic).iter().map(|e| (e.partition(), e.offset().to_raw())).collect())
    }

    /// The last high watermark librdkafka learnt for `partition` (from
    /// fetch answers; no request), when it knows one.
    pub fn high_watermark(&self, partition: i32) -> Option<i64> {
        let topic = CString::new(self.topic).ok()?;
        let (mut low, mut high) = (-1i64, -1i64);
        // SAFETY: the client pointer is valid for the consumer's life, the
        // topic string outlives the call, and librdkafka only reads its
        // cached offsets under its own lock.
        let err = unsafe {
            rdkafka::bindings::rd_kafka_get_watermark_offsets(
                self.consumer.client().native_ptr(),
                topic.as_ptr(),
                partition,
                &mut low,
                &mut high,
            )
        };
        (err == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0).then_some(high)
    }

    /// `partition`'s low and high watermarks asked of the broker now (a
    /// request; waits up to `timeout`): the cached high watermark only
    /// moves with fetch answers, so a partition that fetches nothing keeps
    /// an old one.
    pub fn watermarks(&self, partition: i32, timeout: Duration) -> Result<(i64, i64), BrokerError> {
        Ok(self.consumer.fetch_watermarks(self.topic, partition, timeout)?)
    }

    fn list(&self, offsets: &[(i32, i64)]) -> Result<TopicPartitionList, BrokerError> {
        let mut list = TopicPartitionList::with_capacity(offsets.len());
        for &(partition, offset) in offsets {
            let offset = if offset < 0 { Offset::Invalid } else { Offset::Offset(offset) };
            list.add_partition_offset(self.topic, partition, offset)?;
        }
        Ok(list)
    }
}

/// What the broker or the client refused (a commit, a pause or resume, a
/// seek, a question about committed offsets): librdkafka's error, shown as
/// librdkafka words it.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct BrokerError(#[from] KafkaError);

/// Why the consumer could not be created.
#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    #[error("the Kafka client refused setting {key}: {reason}")]
    Setting { key: &'static str, reason: String },
    #[error("the Kafka client could not start: {0}")]
    Create(String),
    #[error("subscribing to event hub {topic}: {reason}")]
    Subscribe { topic: String, reason: String },
}

/// A consumer in the group, subscribed to the event hub.
pub struct GroupConsumer<H: PartitionHandler> {
    consumer: BaseConsumer<GroupContext<H>>,
    topic: String,
}

impl<H: PartitionHandler> GroupConsumer<H> {
    /// Creates the client with the settings' exact properties and
    /// subscribes; joining the group happens in the first polls.
    pub fn start(
        settings: &EventHubsSettings,
        handler: H,
        log: Arc<dyn ClientLog>,
        tokens: Option<Arc<dyn TokenSource>>,
    ) -> Result<Self, ConsumerError> {
        let client_settings = settings.client_settings();
        let tokens = if matches!(settings.auth, KafkaAuth::EntraApp(_)) { tokens } else { None };
        let context = GroupContext { topic: settings.event_hub.clone(), handler: Mutex::new(handler), log, tokens };
        let consumer: BaseConsumer<GroupContext<H>> = create(&client_settings, context)?;
        consumer
            .subscribe(&[settings.event_hub.as_str()])
            .map_err(|e| ConsumerError::Subscribe { topic: settings.event_hub.clone(), reason: e.to_string() })?;
        Ok(Self { consumer, topic: settings.event_hub.clone() })
    }

    /// Waits up to `timeout` for the next message; runs rebalances and
    /// commit answers (through the handler) on the way. `None`: nothing
    /// arrived; `Some(Err)`: a consumption error (the caller counts it).
    pub fn poll(&self, timeout: Duration) -> Option<KafkaResult<BorrowedMessage<'_>>> {
        self.consumer.poll(timeout)
    }

    /// The handler, between polls.
    pub fn handler(&self) -> MutexGuard<'_, H> {
        self.consumer.context().handler()
    }

    /// The handler together with the broker operations, between polls.
    pub fn with_handler<R>(&self, work: impl FnOnce(&mut H, &Broker<'_, H>) -> R) -> R {
        let broker = Broker { consumer: &self.consumer, topic: &self.topic };
        let mut handler = self.consumer.context().handler();
        work(&mut handler, &broker)
    }

    /// Leaves the group: the revoke runs through the handler (which
    /// commits what was delivered) before this returns.
    pub fn close(&self) {
        self.consumer.unsubscribe();
        // Polling runs the revoke; bounded, so a dead broker cannot hold the exit.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            let assigned = self.consumer.assignment().map(|a| a.count()).unwrap_or(0);
            if assigned == 0 {
                break;
            }
            let _ = self.consumer.poll(Duration::from_millis(100));
        }
    }
}

/// A consumer with exactly `settings` (and librdkafka's warnings on).
pub(crate) fn create<C: ConsumerContext>(
    settings: &[ClientSetting],
    context: C,
) -> Result<BaseConsumer<C>, ConsumerError> {
    let mut config = ClientConfig::new();
    for setting in settings {
        config.set(setting.key, setting.value());
    }
    config.set_log_level(RDKafkaLogLevel::Warning);
    config.create_with_context(context).map_err(|e| creation_error(e, settings))
}

/// librdkafka names the property it refused; map that back to our setting
/// without echoing any value (a refused password must not be printed).
fn creation_error(err: KafkaError, settings: &[ClientSetting]) -> ConsumerError {
    let text = err.to_string();
    for setting in settings {
        if text.contains(setting.key) {
            let reason = if setting.is_secret() { "refused".to_owned() } else { text.clone() };
            return ConsumerError::Setting { key: setting.key, reason };
        }
    }
    ConsumerError::Create(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eventhubs::settings::every_auth;

    struct Quiet;

    impl PartitionHandler for Quiet {
        fn revoking(&mut self, _: &Broker<'_, Self>, _: &[i32]) {}
        fn assigned(&mut self, _: &Broker<'_, Self>, _: &[i32]) {}
        fn committed(&mut self, _: &[(i32, i64)], _: Result<(), BrokerError>) {}
    }

    struct Lines(Mutex<Vec<String>>);

    impl ClientLog for Lines {
        fn warn(&self, message: &str) {
            self.0.lock().unwrap().push(message.to_owned());
        }
        fn error(&self, message: &str) {
            self.0.lock().unwrap().push(message.to_owned());
        }
    }

    struct FixedToken;

    impl TokenSource for FixedToken {
        fn token(&self) -> Result<(String, i64), String> {
            Ok(("token".to_owned(), crate::time::now_ms() + 3_600_000))
        }
    }

    /// librdkafka itself accepts every property the settings produce, for
    /// each way of signing in (no broker speaks SASL_SSL here: the client
    /// is created and dropped before it could connect anywhere useful).
    #[test]
    fn librdkafka_accepts_the_settings_of_every_auth() {
        for settings in every_auth() {
            let log = Arc::new(Lines(Mutex::new(Vec::new())));
            let tokens: Option<Arc<dyn TokenSource>> = Some(Arc::new(FixedToken));
            let consumer = GroupConsumer::start(&settings, Quiet, log.clone(), tokens);
            assert!(consumer.is_ok(), "{:?}: {:?}", settings.auth, consumer.err());
            drop(consumer);
            let lines = log.0.lock().unwrap().join("\n");
            assert!(!lines.contains("c2VjcmV0"), "a secret in the client's log: {lines}");
        }
    }

    #[test]
    fn a_refused_setting_is_named() {
        let mut settings = EventHubsSettings::new("127.0.0.1:9", KafkaAuth::Plaintext);
        settings.timeouts.request = Duration::from_millis(1);
        let err = GroupConsumer::start(&settings, Quiet, Arc::new(Lines(Mutex::new(Vec::new()))), None).err().unwrap();
        assert!(matches!(err, ConsumerError::Setting { key: "socket.timeout.ms", .. }), "{err}");
    }
}

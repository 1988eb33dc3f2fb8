//! The bounded reader of `cefwire backfill --source eventhubs`: a Kafka
//! consumer that is *assigned* its partitions (no group membership, no
//! offset commits — the agent's group is never touched), reads each one
//! from a start offset to an end offset fixed when it opens, and says
//! when every partition is done.
//!
//! [`PartitionReader::open`] asks the broker once for the partitions and
//! their watermarks, turns the start (`--from-beginning`, `--offsets`,
//! `--at` through Kafka's ListOffsets by time) into offsets, takes each
//! partition's high watermark as its end, and assigns the partitions that
//! have something to read. [`Bounds`] is the bookkeeping without I/O:
//! which message is inside its partition's span, when a partition is done
//! (its end offset, the end of the partition, or a message enqueued at or
//! after `--until`). This module knows nothing of CEF, sinks or progress
//! bars; the job loop is `crate::eventhubs_backfill`.

use super::consumer::{self, ClientLog, ConsumerError, TokenSource};
use super::settings::{EventHubsSettings, KafkaAuth};
use crate::stop::Stop;
use rdkafka::client::OAuthToken;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::BorrowedMessage;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::{ClientContext, Message};
use std::error::Error;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where a backfill starts reading.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadFrom {
    /// Every partition, from the oldest event the hub still keeps.
    Beginning,
    /// Only these partitions, each from its offset.
    Offsets(Vec<(i32, i64)>),
    /// Every partition, from its first event enqueued at or after this
    /// time (ms since the epoch; Kafka's ListOffsets by time).
    Time(i64),
}

/// The part `[start, end)` of one partition a backfill reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionSpan {
    pub partition: i32,
    pub start: i64,
    /// The high watermark when the backfill opened: the run ends here.
    pub end: i64,
}

/// Why the reader could not open or went on no further.
#[derive(Debug, thiserror::Error)]
pub enum ReaderError {
    #[error("{0}")]
    Client(#[from] ConsumerError),
    #[error("eventhubs OAUTHBEARER: {0}")]
    Token(String),
    #[error(
        "the broker at {servers} did not answer within {wait:?} ({reason}): is it reachable, and are the address and sign-in right?"
    )]
    Unreachable { servers: String, wait: Duration, reason: String },
    #[error("event hub {topic} does not exist at {servers} ({reason})")]
    NoSuchHub { topic: String, servers: String, reason: String },
    #[error("--offsets: event hub {topic} has no partition {partition} (it has {count}: 0-{})", count - 1)]
    NoSuchPartition { topic: String, partition: i32, count: usize },
    #[error("{what} of partition {partition}: {reason}")]
    Offsets { what: &'static str, partition: i32, reason: String },
    #[error("assigning the partitions: {0}")]
    Assign(String),
    #[error("nothing arrived for {0:?} with partitions still to read (last client error: {1})")]
    Stalled(Duration, String),
    #[error("stopped by a signal")]
    Stopped,
}

/// What [`PartitionReader::next`] found.
pub enum Next<'a> {
    /// A message inside its partition's span: convert it.
    Message(BorrowedMessage<'a>),
    /// Nothing to convert this time (a wait ran out, a partition ended).
    Idle,
    /// Every partition reached its end.
    Done,
}

/// How one partition stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionState {
    pub span: PartitionSpan,
    /// The offset after the last message taken (`start` before any).
    pub next: i64,
    /// Messages taken (inside the span and before `--until`).
    pub messages: u64,
    pub done: bool,
}

/// Which messages are inside their partition's span, and when each
/// partition is done. No I/O.
#[derive(Clone, Debug)]
pub struct Bounds {
    partitions: Vec<PartitionState>,
    until_ms: Option<i64>,
}

impl Bounds {
    /// A partition whose span is empty is done from the start.
    pub fn new(spans: &[PartitionSpan], until_ms: Option<i64>) -> Self {
        let partitions = spans
            .iter()
            .map(|&span| PartitionState { span, next: span.start, messages: 0, done: span.start >= span.end })
            .collect();
        Self { partitions, until_ms }
    }

    /// Whether the message at `offset` of `partition`, enqueued at
    /// `timestamp_ms`, is to be converted. A message at or past the end, or
    /// enqueued at or after `--until`, is not, and ends its partition; so
    /// does the message at the last offset of the span, after it is taken.
    pub fn take(&mut self, partition: i32, offset: i64, timestamp_ms: Option<i64>) -> bool {
        let until = self.until_ms;
        let Some(state) = self.partitions.iter_mut().find(|s| s.span.partition == partition) else { return false };
        if state.done || offset < state.next {
            // After the end, or read again (a fetch that began mid-batch).
            return false;
        }
        if offset >= state.span.end || until.is_some_and(|u| timestamp_ms.is_some_and(|t| t >= u)) {
            state.done = true;
            return false;
        }
        state.next = offset + 1;
        state.messages += 1;
        state.done = state.next >= state.span.end;
        true
    }

    /// The consumer reached the partition's current end: the high watermark
    /// is at or past the end fixed at the start, so the span is read.
    pub fn end_of_partition(&mut self, partition: i32) {
        if let Some(state) = self.partitions.iter_mut().find(|s| s.span.partition == partition) {
            state.done = true;
        }
    }

    pub fn is_done(&self) -> bool {
        self.partitions.iter().all(|s| s.done)
    }

    pub fn partitions(&self) -> &[PartitionState] {
        &self.partitions
    }

    fn is_partition_done(&self, partition: i32) -> bool {
        self.partitions.iter().any(|s| s.span.partition == partition && s.done)
    }
}

/// The librdkafka context of the reader: its log lines and tokens, and
/// the client's last error (a stalled run names it).
struct ReaderContext {
    log: Arc<dyn ClientLog>,
    tokens: Option<Arc<dyn TokenSource>>,
    last_error: Mutex<Option<String>>,
}

impl ReaderContext {
    fn new(log: Arc<dyn ClientLog>, tokens: Option<Arc<dyn TokenSource>>) -> Self {
        Self { log, tokens, last_error: Mutex::new(None) }
    }

    fn last_error(&self) -> String {
        let last = self.last_error.lock().unwrap_or_else(|p| p.into_inner());
        last.clone().unwrap_or_else(|| "none".to_owned())
    }
}

impl ClientContext for ReaderContext {
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        consumer::log_line(&*self.log, level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let text = format!("kafka: {error}: {reason}");
        self.log.warn(&text);
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(text);
    }

    fn generate_oauth_token(&self, _config: Option<&str>) -> Result<OAuthToken, Box<dyn Error>> {
        consumer::oauth_token(self.tokens.as_deref())
    }
}

impl ConsumerContext for ReaderContext {}

/// The questions the reader asks the broker before it reads: together
/// bounded by one deadline, asked in short slices so that a stop is heard
/// within [`QUESTION_SLICE`] and a connection still being set up (TLS,
/// SASL) is waited for, not failed.
struct Questions<'a> {
    deadline: Instant,
    stop: Option<&'a Stop>,
}

/// One attempt of a question waits at most this long.
const QUESTION_SLICE: Duration = Duration::from_secs(2);
/// Attempts start at most this often.
const RETRY_PAUSE: Duration = Duration::from_millis(250);

impl Questions<'_> {
    /// Asks until an answer, the deadline (the last error) or a stop.
    fn ask<T>(&self, mut question: impl FnMut(Duration) -> KafkaResult<T>) -> Result<T, Asked> {
        loop {
            if self.stop.is_some_and(Stop::is_requested) {
                return Err(Asked::Stopped);
            }
            let asked = Instant::now();
            let left = self.deadline.saturating_duration_since(asked);
            match question(left.min(QUESTION_SLICE)) {
                Ok(answer) => return Ok(answer),
                Err(err) if left <= QUESTION_SLICE => return Err(Asked::Failed(err.to_string())),
                // A refused connection fails at once: ask again, not in a busy loop.
                Err(_) => std::thread::sleep(RETRY_PAUSE.saturating_sub(asked.elapsed())),
            }
        }
    }
}

/// Why a question got no answer.
enum Asked {
    Stopped,
    Failed(String),
}

impl Asked {
    fn or(self, error: impl FnOnce(String) -> ReaderError) -> ReaderError {
        match self {
            Asked::Stopped => ReaderError::Stopped,
            Asked::Failed(reason) => error(reason),
        }
    }
}

/// Reads the assigned partitions up to their ends.
pub struct PartitionReader {
    consumer: BaseConsumer<ReaderContext>,
    topic: String,
    bounds: Bounds,
    /// Since when polls have found nothing at all (no message, no end of
    /// a partition).
    idle_since: Option<Instant>,
}

/// Every event a backfill reads is on the broker already: when nothing
/// at all arrives for this long, the broker is gone and the run ends.
const STALL_LIMIT: Duration = Duration::from_secs(120);

impl PartitionReader {
    /// Connects, fixes every partition's span and assigns the partitions
    /// with something to read. `wait` bounds the questions to the broker
    /// together; `stop` ends them early.
    pub fn open(
        settings: &EventHubsSettings,
        from: &ReadFrom,
        until_ms: Option<i64>,
        log: Arc<dyn ClientLog>,
        wait: Duration,
        stop: Option<&Stop>,
    ) -> Result<Self, ReaderError> {
        let tokens = match settings.auth {
            KafkaAuth::EntraApp(_) => super::token::token_source(settings).map_err(ReaderError::Token)?,
            _ => None,
        };
        let consumer = consumer::create(&settings.reader_settings(), ReaderContext::new(log, tokens))?;
        let topic = settings.event_hub.clone();
        let questions = Questions { deadline: Instant::now() + wait, stop };
        let partitions = partitions_of(&consumer, settings, &questions, wait)?;
        let spans = spans(&consumer, &topic, &partitions, from, &questions)?;
        let mut list = TopicPartitionList::new();
        for span in spans.iter().filter(|s| s.start < s.end) {
            list.add_partition_offset(&topic, span.partition, Offset::Offset(span.start))
                .map_err(|e| ReaderError::Assign(e.to_string()))?;
        }
        consumer.assign(&list).map_err(|e| ReaderError::Assign(e.to_string()))?;
        let bounds = Bounds::new(&spans, until_ms);
        Ok(Self { consumer, topic, bounds, idle_since: None })
    }

    /// Waits up to `timeout` for the next message inside a span.
    pub fn next(&mut self, timeout: Duration) -> Result<Next<'_>, ReaderError> {
        if self.bounds.is_done() {
            return Ok(Next::Done);
        }
        let Self { consumer, topic, bounds, idle_since } = self;
        let polled = consumer.poll(timeout);
        if polled.is_some() {
            *idle_since = None;
        }
        let partition = match polled {
            None => {
                let since = *idle_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= STALL_LIMIT {
                    return Err(ReaderError::Stalled(STALL_LIMIT, consumer.context().last_error()));
                }
                return Ok(Next::Idle);
            }
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                bounds.end_of_partition(partition);
                partition
            }
            Some(Err(err)) => {
                consumer.context().log.warn(&format!("kafka: {err}"));
                *consumer.context().last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(err.to_string());
                return Ok(Next::Idle);
            }
            Some(Ok(message)) => {
                let partition = message.partition();
                let timestamp = message.timestamp().to_millis();
                if bounds.take(partition, message.offset(), timestamp) {
                    if bounds.is_partition_done(partition) {
                        pause(consumer, topic, partition);
                    }
                    return Ok(Next::Message(message));
                }
                partition
            }
        };
        if bounds.is_partition_done(partition) {
            pause(consumer, topic, partition);
        }
        Ok(if bounds.is_done() { Next::Done } else { Next::Idle })
    }

    /// Every partition's span and progress.
    pub fn partitions(&self) -> &[PartitionState] {
        self.bounds.partitions()
    }
}

/// A done partition fetches no more (a failure only costs traffic).
fn pause(consumer: &BaseConsumer<ReaderContext>, topic: &str, partition: i32) {
    let mut list = TopicPartitionList::new();
    if list.add_partition(topic, partition).set_offset(Offset::Invalid).is_ok() {
        let _ = consumer.pause(&list);
    }
}

/// The event hub's partition ids, in order.
fn partitions_of(
    consumer: &BaseConsumer<ReaderContext>,
    settings: &EventHubsSettings,
    questions: &Questions<'_>,
    wait: Duration,
) -> Result<Vec<i32>, ReaderError> {
    let topic = &settings.event_hub;
    let servers = || settings.bootstrap_servers.clone();
    let metadata = questions
        .ask(|t| consumer.fetch_metadata(Some(topic), t))
        .map_err(|e| e.or(|reason| ReaderError::Unreachable { servers: servers(), wait, reason }))?;
    let Some(found) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return Err(ReaderError::NoSuchHub { topic: topic.clone(), servers: servers(), reason: "not listed".into() });
    };
    if let Some(err) = found.error() {
        let reason = rdkafka::types::RDKafkaErrorCode::from(err).to_string();
        return Err(ReaderError::NoSuchHub { topic: topic.clone(), servers: servers(), reason });
    }
    let mut partitions: Vec<i32> = found.partitions().iter().map(|p| p.id()).collect();
    partitions.sort_unstable();
    if partitions.is_empty() {
        return Err(ReaderError::NoSuchHub {
            topic: topic.clone(),
            servers: servers(),
            reason: "no partitions".into(),
        });
    }
    Ok(partitions)
}

/// Each partition's span: its start from `from`, its end the high
/// watermark now. A start below what the hub still keeps is moved up to
/// the oldest kept event; one past the end reads nothing.
fn spans(
    consumer: &BaseConsumer<ReaderContext>,
    topic: &str,
    partitions: &[i32],
    from: &ReadFrom,
    questions: &Questions<'_>,
) -> Result<Vec<PartitionSpan>, ReaderError> {
    let wanted: Vec<(i32, Option<i64>)> = match from {
        ReadFrom::Beginning | ReadFrom::Time(_) => partitions.iter().map(|&p| (p, None)).collect(),
        ReadFrom::Offsets(offsets) => {
            for &(partition, _) in offsets {
                if !partitions.contains(&partition) {
                    let (topic, count) = (topic.to_owned(), partitions.len());
                    return Err(ReaderError::NoSuchPartition { topic, partition, count });
                }
            }
            offsets.iter().map(|&(p, o)| (p, Some(o))).collect()
        }
    };
    let at_time = match from {
        ReadFrom::Time(ms) => Some(offsets_at(consumer, topic, partitions, *ms, questions)?),
        _ => None,
    };
    let mut spans = Vec::with_capacity(wanted.len());
    for (partition, offset) in wanted {
        let (low, high) = questions
            .ask(|t| consumer.fetch_watermarks(topic, partition, t))
            .map_err(|e| e.or(|reason| ReaderError::Offsets { what: "the watermarks", partition, reason }))?;
        let start = match (offset, &at_time) {
            (Some(offset), _) => offset,
            (None, Some(found)) => found.iter().find(|(p, _)| *p == partition).and_then(|(_, o)| *o).unwrap_or(high),
            (None, None) => low,
        };
        spans.push(PartitionSpan { partition, start: start.clamp(low, high.max(low)), end: high });
    }
    Ok(spans)
}

/// The first offset of each partition enqueued at or after `ms`
/// (`None`: nothing that late yet).
fn offsets_at(
    consumer: &BaseConsumer<ReaderContext>,
    topic: &str,
    partitions: &[i32],
    ms: i64,
    questions: &Questions<'_>,
) -> Result<Vec<(i32, Option<i64>)>, ReaderError> {
    let mut list = TopicPartitionList::new();
    for &partition in partitions {
        list.add_partition_offset(topic, partition, Offset::Offset(ms)).map_err(|e| ReaderError::Offsets {
            what: "the offset for --at",
            partition,
            reason: e.to_string(),
        })?;
    }
    let first = partitions.first().copied().unwrap_or_default();
    let found = questions
        .ask(|t| consumer.offsets_for_times(list.clone(), t))
        .map_err(|e| e.or(|reason| ReaderError::Offsets { what: "the offset for --at", partition: first, reason }))?;
    let mut offsets = Vec::with_capacity(partitions.len());
    for element in found.elements_for_topic(topic) {
        let partition = element.partition();
        if let Err(err) = element.error() {
            return Err(ReaderError::Offsets { what: "the offset for --at", partition, reason: err.to_string() });
        }
        offsets.push((partition, element.offset().to_raw().filter(|&o| o >= 0)));
    }
    Ok(offsets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eventhubs::settings::every_auth;

    struct Quiet;

    impl ClientLog for Quiet {
        fn warn(&self, _: &str) {}
        fn error(&self, _: &str) {}
    }

    /// librdkafka itself accepts the reader's properties, for each way of
    /// signing in (created and dropped before it could reach a broker).
    #[test]
    fn librdkafka_accepts_the_reader_settings_of_every_auth() {
        for settings in every_auth() {
            let context = ReaderContext::new(Arc::new(Quiet), None);
            let created = consumer::create(&settings.reader_settings(), context);
            assert!(created.is_ok(), "{:?}: {:?}", settings.auth, created.err());
        }
    }

    fn span(partition: i32, start: i64, end: i64) -> PartitionSpan {
        PartitionSpan { partition, start, end }
    }

    #[test]
    fn a_partition_is_done_after_its_last_offset() {
        let mut bounds = Bounds::new(&[span(0, 5, 8), span(1, 3, 3)], None);
        assert!(!bounds.is_done());
        assert!(bounds.partitions()[1].done, "an empty span is done from the start");
        assert!(!bounds.take(0, 4, None), "before the start");
        assert!(bounds.take(0, 5, None));
        assert!(!bounds.take(0, 5, None), "read again");
        assert!(bounds.take(0, 6, None));
        assert!(!bounds.is_done());
        assert!(bounds.take(0, 7, None), "the last offset is taken");
        assert!(bounds.is_done(), "and ends the partition");
        assert!(!bounds.take(0, 8, None), "past the end");
        assert_eq!(bounds.partitions()[0].messages, 3);
        assert_eq!(bounds.partitions()[0].next, 8);
        assert!(!bounds.take(7, 0, None), "a partition not read");
    }

    #[test]
    fn gaps_past_the_end_and_the_end_of_a_partition_end_it() {
        // Offsets need not be dense (a hub's retention, transactions).
        let mut bounds = Bounds::new(&[span(0, 0, 10), span(1, 0, 10)], None);
        assert!(bounds.take(0, 3, None));
        assert!(!bounds.take(0, 12, None), "past the end");
        assert!(bounds.partitions()[0].done);
        bounds.end_of_partition(1);
        assert!(bounds.is_done());
        assert_eq!(bounds.partitions()[1].messages, 0);
    }

    #[test]
    fn a_message_enqueued_at_or_after_until_ends_its_partition() {
        let mut bounds = Bounds::new(&[span(0, 0, 100), span(1, 0, 100)], Some(1_000));
        assert!(bounds.take(0, 0, Some(999)));
        assert!(bounds.take(0, 1, None), "no timestamp: only the end offset bounds it");
        assert!(!bounds.take(0, 2, Some(1_000)), "enqueued at --until");
        assert!(bounds.partitions()[0].done);
        assert!(!bounds.take(0, 3, Some(500)), "nothing after it");
        assert!(!bounds.is_done(), "partition 1 goes on");
        assert!(!bounds.take(1, 0, Some(5_000)));
        assert!(bounds.is_done());
        assert_eq!(bounds.partitions()[0].messages, 2);
    }
}

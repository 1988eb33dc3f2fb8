//! A real Kafka-protocol broker for the Event Hubs tests: `tansu` (from
//! the Rust package registry; `.ci/run` installs it) with in-memory
//! storage, one per test, on a reserved 127.0.0.1 port. Topics are made
//! with `tansu topic create`; records are produced with librdkafka (the
//! crate cefwire links), **one message per produce batch**: tansu can skip
//! or repeat records when a fetch starts in the middle of a batch.
//!
//! Whether tansu must be there is read in one place ([`Tansu::available`]):
//! missing, the test is skipped with a note, or fails when
//! `CEFWIRE_REQUIRE_TANSU` is set (as CI does).

use super::ports::{self, Protocol, ReservedPort};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Tansu {
    port: ReservedPort,
    dir: PathBuf,
    child: Option<Child>,
}

/// The tansu binary: `$CEFWIRE_TANSU`, else `tansu` in `~/.cargo/bin` or on the PATH.
pub fn binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CEFWIRE_TANSU") {
        return Some(PathBuf::from(path));
    }
    let home = std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo/bin/tansu"));
    let path = std::env::var_os("PATH").unwrap_or_default();
    home.into_iter().chain(std::env::split_paths(&path).map(|d| d.join("tansu"))).find(|p| p.is_file())
}

impl Tansu {
    /// Whether Kafka tests can run (see the module doc).
    pub fn available() -> bool {
        super::external_part(
            binary().is_some(),
            "tansu (Kafka-protocol broker)",
            "CEFWIRE_REQUIRE_TANSU",
            "cargo install tansu --locked --features dynostore",
        )
    }

    /// Starts a broker; returns once it listens.
    pub fn start(dir: &Path) -> Tansu {
        fs::create_dir_all(dir).unwrap();
        let port = ports::reserve();
        let url = format!("tcp://127.0.0.1:{}", port.port());
        let log = File::create(dir.join("tansu.log")).unwrap();
        let mut child = Command::new(binary().expect("tansu is available"))
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("tansu starts");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !ports::listening_owned_by(child.id(), port.port(), Protocol::Tcp) {
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "tansu exited ({status}) before listening:\n{}",
                    fs::read_to_string(dir.join("tansu.log")).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "tansu did not listen on {} within 60 s", port.port());
            std::thread::sleep(Duration::from_millis(50));
        }
        Tansu { port, dir: dir.to_owned(), child: Some(child) }
    }

    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port.port())
    }

    /// Creates `topic` with `partitions` partitions.
    pub fn create_topic(&self, topic: &str, partitions: u32) {
        let out = Command::new(binary().unwrap())
            .args(["topic", "create", "--broker", &format!("tcp://{}", self.bootstrap())])
            .args(["--partitions", &partitions.to_string(), topic])
            .output()
            .unwrap();
        assert!(out.status.success(), "tansu topic create {topic}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// A producer that sends every message in its own batch.
    pub fn producer(&self) -> BaseProducer {
        producer_for(&self.bootstrap())
    }

    /// Produces `bodies` to `partition` of `topic`, one per batch, and
    /// waits until the broker acknowledged all of them.
    pub fn produce(producer: &BaseProducer, topic: &str, partition: i32, bodies: &[Vec<u8>]) {
        for body in bodies {
            let mut record = BaseRecord::<(), [u8]>::to(topic).partition(partition).payload(body.as_slice());
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((err, back)) => {
                        // Queue full: let deliveries finish, then retry.
                        assert!(
                            matches!(
                                err,
                                rdkafka::error::KafkaError::MessageProduction(
                                    rdkafka::types::RDKafkaErrorCode::QueueFull
                                )
                            ),
                            "produce: {err}"
                        );
                        record = back;
                        producer.poll(Duration::from_millis(50));
                    }
                }
            }
            producer.poll(Duration::ZERO);
        }
        producer.flush(Duration::from_secs(120)).expect("the broker took every message");
    }

    /// A client for looking at the group from outside (it never joins it).
    pub fn observer(&self, group: &str) -> BaseConsumer {
        ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()
            .expect("observer")
    }

    /// The group's committed offset of each partition (`None`: none yet).
    pub fn committed(observer: &BaseConsumer, topic: &str, partitions: i32) -> Vec<Option<i64>> {
        let mut list = TopicPartitionList::new();
        for p in 0..partitions {
            list.add_partition_offset(topic, p, Offset::Invalid).unwrap();
        }
        let answer = observer.committed_offsets(list, Duration::from_secs(20)).expect("committed offsets");
        (0..partitions)
            .map(|p| answer.find_partition(topic, p).and_then(|e| e.offset().to_raw()).filter(|&o| o >= 0))
            .collect()
    }

    /// The end (high watermark) of each partition.
    pub fn ends(observer: &BaseConsumer, topic: &str, partitions: i32) -> Vec<i64> {
        (0..partitions)
            .map(|p| observer.fetch_watermarks(topic, p, Duration::from_secs(20)).expect("watermarks").1)
            .collect()
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(self.dir.join("tansu.log")).unwrap_or_default()
    }
}

/// A producer for a broker at `bootstrap` that sends every message in its own batch.
pub fn producer_for(bootstrap: &str) -> BaseProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "0")
        .set("batch.num.messages", "1")
        .set("enable.idempotence", "false")
        .set("compression.type", "none")
        .set("acks", "all")
        .create()
        .expect("producer")
}

/// Produces `bodies` over `partitions` partitions in turn, one per batch.
pub fn produce_round_robin(producer: &BaseProducer, topic: &str, partitions: i32, bodies: Vec<Vec<u8>>) {
    let mut per_partition: Vec<Vec<Vec<u8>>> = vec![Vec::new(); partitions as usize];
    for (n, body) in bodies.into_iter().enumerate() {
        per_partition[n % partitions as usize].push(body);
    }
    for (partition, bodies) in per_partition.iter().enumerate() {
        Tansu::produce(producer, topic, partition as i32, bodies);
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

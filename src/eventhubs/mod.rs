//! The Event Hubs source: Defender XDR streaming records read over the
//! Kafka protocol by a consumer group that any number of cefwire instances
//! share.
//!
//! [`settings`] turns validated settings into the exact Kafka client
//! properties (SASL PLAIN with `$ConnectionString`, or OAUTHBEARER;
//! Event Hubs' recommended timeouts); [`consumer`] runs the librdkafka
//! consumer and hands rebalances to a handler on the polling thread;
//! [`token`] fetches OAUTHBEARER tokens;
//! [`offsets`] decides which offsets may be committed — only those whose
//! records syslog has taken; [`stall`] notices partitions that fetch
//! nothing while records wait; [`backfill`] is `cefwire backfill`'s bounded
//! reader, assigned its partitions, which joins no group and commits
//! nothing. The agent's loop over them, which converts
//! and sends, is `agent::eventhubs`; this module knows nothing of CEF or
//! syslog. Without the `eventhubs` feature (the fuzz targets) only the
//! settings and the offset bookkeeping are built, not the client.

#[cfg(feature = "eventhubs")]
pub mod backfill;
#[cfg(feature = "eventhubs")]
pub mod consumer;
pub mod offsets;
pub mod settings;
pub mod stall;
#[cfg(feature = "eventhubs")]
pub mod token;

#[cfg(feature = "eventhubs")]
pub use consumer::{Broker, BrokerError, ClientLog, ConsumerError, GroupConsumer, PartitionHandler, TokenSource};
pub use offsets::{OffsetTracker, PartitionProgress};
pub use settings::{
    ClientSetting, ClientTimeouts, ConnectionString, ConnectionStringError, EntraApp, EventHubsSettings, KafkaAuth,
    Secret, StartAt,
};
pub use stall::{Stall, StallChange, StallWatch};

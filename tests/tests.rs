//! Integration tests: one binary, one module per area (ripgrep's layout),
//! over the shared helpers in `util`. Only tests that need their own
//! global allocator (`alloc.rs`) or their own `main` (`agent.rs`, a
//! bounded pool of long fault scenarios) are separate binaries.

mod api;
mod archive_reader;
mod azure_blob;
mod convert_cli;
#[cfg(feature = "eventhubs")]
mod eventhubs_backfill;
mod files;
mod golden;
mod graph_backfill;
mod graph_pager;
mod mapping;
mod parallel;
mod readme;
mod reference;
mod relp;
mod roundtrip;
mod rsyslog;
mod send;
mod settings;
mod status_cli;
mod storage_source;
mod streaming_archive;
mod successor_records;
mod util;

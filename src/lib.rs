//! cefwire: Microsoft Defender for Cloud Apps events → CEF over syslog.
//!
//! The binary (`src/main.rs`) is a thin shell over this library so that
//! tests, benchmarks and fuzz targets call the same code. Data flows
//! input → [`json`] tape → [`cef`] line → [`records::MessageSink`]
//! (a file, or a syslog batch).

pub mod agent;
pub mod api;
pub mod azure;
pub mod backfill;
pub mod cef;
pub mod cli;
pub mod convert;
pub mod emulate;
pub mod eventhubs;
#[cfg(feature = "eventhubs")]
pub mod eventhubs_backfill;
pub mod exit;
pub mod fault_hooks;
pub mod generate;
pub mod graph;
pub mod graph_backfill;
pub mod http;
pub mod input;
pub mod json;
pub mod output;
pub mod pages;
pub mod parallel;
pub mod progress;
pub mod records;
pub mod rejects;
pub mod replay;
pub mod rng;
pub mod send;
pub mod settings;
pub mod sink;
pub mod stop;
pub mod storage;
pub mod syslog;
pub mod time;

//! The long-running agent (`cefwire agent`): its loop and policy ([`run`]),
//! the per-record gate that sends each record once ([`gate`]), the resend
//! after a broken syslog connection ([`resend`]), the checkpoint
//! ([`state`]), when failures are logged ([`outage`]), health and
//! `cefwire status` ([`health`], written by [`health_writer`]), the
//! rotating log ([`logfile`]), the Prometheus endpoint ([`metrics`]) and
//! the configuration ([`config`], [`config_file`]). Pages come from
//! [`crate::pages`]; records are converted by [`crate::records`]. The
//! other sources have their own loops beside them: Graph `alerts_v2`
//! ([`graph_alerts`]), Event Hubs ([`eventhubs`]) and the archive in Azure
//! Storage ([`storage`], its checkpoint [`storage_state`]).

pub mod config;
pub mod config_file;
#[cfg(feature = "eventhubs")]
pub mod eventhubs;
pub mod gate;
pub mod graph_alerts;
pub mod health;
pub mod health_writer;
pub mod logfile;
pub mod metrics;
pub mod outage;
pub mod rejects_file;
pub mod resend;
pub mod run;
pub mod state;
pub mod state_lock;
pub mod storage;
pub mod storage_state;

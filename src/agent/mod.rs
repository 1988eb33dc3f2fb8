//! The long-running agent (`cefwire agent`) and its companions: the
//! checkpoint ([`state`]), health and `cefwire status` ([`health`]), the
//! rotating log ([`logfile`]) and the Prometheus endpoint ([`metrics`]).

pub mod config;
pub mod config_file;
pub mod gate;
pub mod health;
pub mod logfile;
pub mod metrics;
pub mod resend;
pub mod run;
pub mod state;

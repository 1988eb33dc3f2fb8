//! The Defender XDR streaming archive as a source of records: the lines of
//! the archive's chunks through the shared record loop ([`lines`]), and
//! `cefwire backfill --source storage` over the blobs of a time window
//! ([`backfill`]). The agent's loop over the same reader is
//! `agent/storage.rs`. Reading blobs is [`crate::azure::archive`]; nothing
//! here lists or reads storage itself.

pub mod backfill;
pub mod lines;

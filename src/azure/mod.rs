//! Azure, client side: Entra ID application tokens ([`entra`]), Shared Key
//! and SAS signing ([`shared_key`]), the Blob service ([`blob`]) that the
//! Defender XDR streaming archive lives in, and the reader of that archive
//! ([`archive`]: new complete lines per blob, positions to checkpoint).
//!
//! Nothing here converts or sends records: blob bytes come back in
//! caller-owned buffers.

pub mod archive;
pub mod blob;
pub mod entra;
pub mod shared_key;

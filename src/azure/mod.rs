//! Azure, client side: Entra ID application tokens ([`entra`]), Shared Key
//! and SAS signing ([`shared_key`]) and the Blob service ([`blob`]) that the
//! Defender XDR streaming archive lives in.
//!
//! Nothing here converts or sends records: blob bytes come back in
//! caller-owned buffers.

pub mod blob;
pub mod entra;
pub mod shared_key;

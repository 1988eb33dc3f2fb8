//! The syslog side of a message that does not depend on a transport: the
//! header before the CEF text and the framing of messages on a stream.

pub mod frame;
pub mod header;

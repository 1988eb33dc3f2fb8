//! What the sender ([`crate::send`]) and the receiver ([`crate::sink`])
//! share about syslog: the header before the CEF text, the framing of
//! messages on a stream, destination URLs and TLS settings. Nothing here
//! touches a socket.

pub mod destination;
pub mod frame;
pub mod header;
pub mod tls;

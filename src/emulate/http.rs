//! A small HTTP/1.1 server side for the emulator: reads requests (request
//! line, headers, `Content-Length` body, keep-alive) from any byte stream
//! and writes responses. Hand-written rather than a server crate so that
//! faults (a connection dropped mid-body, a stalled response) are a line
//! of code each.
//!
//! It owns framing only: no routing, no auth, no JSON. Request bodies are
//! kept padded for in-place JSON parsing.

use crate::json::INPUT_PADDING;
use std::io::{self, ErrorKind, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};

/// Largest request head (request line + headers) accepted.
const MAX_HEAD: usize = 16 * 1024;
/// Largest request body accepted.
const MAX_BODY: usize = 1 << 20;

/// One parsed request; reused between requests on a connection.
#[derive(Default, Debug)]
pub struct Request {
    pub method: String,
    /// The path without the query string.
    pub path: String,
    /// The query string (after `?`), still percent-encoded.
    pub query: String,
    pub headers: Vec<(String, String)>,
    /// `body[..body_len]`, followed by [`INPUT_PADDING`] bytes.
    pub body: Vec<u8>,
    pub body_len: usize,
    /// The client asked to keep the connection open (HTTP/1.1 default).
    pub keep_alive: bool,
}

impl Request {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn body_bytes(&self) -> &[u8] {
        &self.body[..self.body_len]
    }
}

/// Why no request could be read.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// Malformed request: answer 400 and close.
    #[error("bad request: {0}")]
    Bad(&'static str),
    /// Head or body too large: answer 413 and close.
    #[error("request too large")]
    TooLarge,
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// A connection's read side with its own buffer.
pub struct HttpReader {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Default for HttpReader {
    fn default() -> Self {
        Self { buf: vec![0; 8192], start: 0, end: 0 }
    }
}

impl HttpReader {
    /// Reads the next request into `request`. `Ok(false)` when the peer
    /// closed the connection (or `stop` was set) between requests. Read
    /// timeouts on the stream are used to look at `stop` now and then.
    pub fn read_request<S: Read>(
        &mut self,
        stream: &mut S,
        request: &mut Request,
        stop: &AtomicBool,
    ) -> Result<bool, HttpError> {
        let head_end = loop {
            if let Some(pos) = memchr::memmem::find(&self.buf[self.start..self.end], b"\r\n\r\n") {
                break self.start + pos + 4;
            }
            if self.end - self.start > MAX_HEAD {
                return Err(HttpError::TooLarge);
            }
            if !self.fill(stream, stop)? {
                if self.start == self.end {
                    return Ok(false);
                }
                return Err(HttpError::Io(io::Error::new(ErrorKind::UnexpectedEof, "connection closed mid-request")));
            }
        };
        let head = std::str::from_utf8(&self.buf[self.start..head_end - 4])
            .map_err(|_| HttpError::Bad("head is not UTF-8"))?;
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap_or_default();
        let mut parts = request_line.split(' ');
        let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(HttpError::Bad("malformed request line"));
        };
        if !version.starts_with("HTTP/1.") {
            return Err(HttpError::Bad("only HTTP/1.x is spoken here"));
        }
        request.method.clear();
        request.method.push_str(method);
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        request.path.clear();
        request.path.push_str(path);
        request.query.clear();
        request.query.push_str(query);
        request.headers.clear();
        for line in lines {
            let (name, value) = line.split_once(':').ok_or(HttpError::Bad("malformed header"))?;
            request.headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
        let connection = request.header("connection").map(str::to_ascii_lowercase);
        request.keep_alive = match connection.as_deref() {
            Some(c) if c.contains("close") => false,
            Some(c) if c.contains("keep-alive") => true,
            _ => version == "HTTP/1.1",
        };
        if request.header("transfer-encoding").is_some() {
            return Err(HttpError::Bad("chunked request bodies are not supported; send Content-Length"));
        }
        let body_len = match request.header("content-length") {
            Some(v) => v.parse::<usize>().map_err(|_| HttpError::Bad("bad Content-Length"))?,
            None => 0,
        };
        if body_len > MAX_BODY {
            return Err(HttpError::TooLarge);
        }
        self.start = head_end;
        request.body.clear();
        request.body.resize(body_len + INPUT_PADDING, 0);
        request.body_len = body_len;
        let mut filled = 0;
        while filled < body_len {
            if self.start == self.end && !self.fill(stream, stop)? {
                return Err(HttpError::Io(io::Error::new(ErrorKind::UnexpectedEof, "connection closed mid-body")));
            }
            let n = (body_len - filled).min(self.end - self.start);
            request.body[filled..filled + n].copy_from_slice(&self.buf[self.start..self.start + n]);
            self.start += n;
            filled += n;
        }
        Ok(true)
    }

    /// Reads more bytes; `Ok(false)` at end of stream or when stopping.
    fn fill<S: Read>(&mut self, stream: &mut S, stop: &AtomicBool) -> Result<bool, HttpError> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            self.buf.resize(self.buf.len() * 2, 0);
        }
        loop {
            match stream.read(&mut self.buf[self.end..]) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.end += n;
                    return Ok(true);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    if stop.load(Ordering::Relaxed) {
                        return Ok(false);
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// The reason phrase of the statuses the emulator sends.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

/// Writes the status line and headers for a JSON body of `body_len` bytes.
pub fn write_head(
    out: &mut impl Write,
    status: u16,
    body_len: usize,
    keep_alive: bool,
    extra: &[(&str, &str)],
) -> io::Result<()> {
    let date = crate::time::format_http_date(crate::time::now_ms());
    write_head_dated(out, status, body_len as u64, keep_alive, &date, extra)
}

/// [`write_head`] with a given `Date` (the emulator's clock faults).
pub fn write_head_dated(
    out: &mut impl Write,
    status: u16,
    body_len: u64,
    keep_alive: bool,
    date: &str,
    extra: &[(&str, &str)],
) -> io::Result<()> {
    let mut head = Vec::with_capacity(256);
    write!(
        head,
        "HTTP/1.1 {status} {}\r\nDate: {date}\r\nContent-Type: application/json\r\nContent-Length: {body_len}\r\nConnection: {}\r\n",
        reason(status),
        if keep_alive { "keep-alive" } else { "close" }
    )?;
    for (name, value) in extra {
        write!(head, "{name}: {value}\r\n")?;
    }
    head.extend_from_slice(b"\r\n");
    out.write_all(&head)
}

/// Writes a whole response.
pub fn write_response(
    out: &mut impl Write,
    status: u16,
    body: &[u8],
    keep_alive: bool,
    extra: &[(&str, &str)],
) -> io::Result<()> {
    write_head(out, status, body.len(), keep_alive, extra)?;
    out.write_all(body)?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out its bytes a few at a time, with a timeout in between.
    struct Trickle {
        data: Vec<u8>,
        pos: usize,
        tick: bool,
    }

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.tick = !self.tick;
            if self.tick {
                return Err(io::Error::new(ErrorKind::WouldBlock, "timeout"));
            }
            let n = buf.len().min(7).min(self.data.len() - self.pos);
            buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    #[test]
    fn reads_pipelined_requests_across_timeouts() {
        let data = b"POST /api/v1/alerts/?x=1 HTTP/1.1\r\nHost: a\r\nAuthorization: Token abc\r\nContent-Length: 11\r\n\r\n{\"limit\":5}GET /stats HTTP/1.0\r\n\r\n".to_vec();
        let mut stream = Trickle { data, pos: 0, tick: false };
        let stop = AtomicBool::new(false);
        let mut reader = HttpReader::default();
        let mut req = Request::default();
        assert!(reader.read_request(&mut stream, &mut req, &stop).unwrap());
        assert_eq!((req.method.as_str(), req.path.as_str(), req.query.as_str()), ("POST", "/api/v1/alerts/", "x=1"));
        assert_eq!(req.header("authorization"), Some("Token abc"));
        assert_eq!(req.body_bytes(), b"{\"limit\":5}");
        assert_eq!(req.body.len(), 11 + INPUT_PADDING);
        assert!(req.keep_alive);
        assert!(reader.read_request(&mut stream, &mut req, &stop).unwrap());
        assert_eq!((req.path.as_str(), req.body_len, req.keep_alive), ("/stats", 0, false));
        assert!(!reader.read_request(&mut stream, &mut req, &stop).unwrap());
    }

    #[test]
    fn malformed_and_truncated_requests_are_errors() {
        let stop = AtomicBool::new(false);
        for data in
            [&b"GARBAGE\r\n\r\n"[..], b"GET / HTTP/2\r\n\r\n", b"POST / HTTP/1.1\r\nContent-Length: 9\r\n\r\n{}"]
        {
            let mut stream = io::Cursor::new(data.to_vec());
            let result = HttpReader::default().read_request(&mut stream, &mut Request::default(), &stop);
            assert!(result.is_err(), "{}", String::from_utf8_lossy(data));
        }
    }

    #[test]
    fn response_head_has_length_and_connection() {
        let mut out = Vec::new();
        write_response(&mut out, 429, b"{}", true, &[("Retry-After", "2")]).unwrap();
        let text = String::from_utf8(out).unwrap();
        let (date_line, rest) = text.split_once("\r\nContent-Type").unwrap();
        let date = date_line.strip_prefix("HTTP/1.1 429 Too Many Requests\r\nDate: ").unwrap();
        assert!(crate::time::parse_http_date(date).is_some(), "{date}");
        assert_eq!(
            rest,
            ": application/json\r\nContent-Length: 2\r\nConnection: keep-alive\r\nRetry-After: 2\r\n\r\n{}"
        );
    }
}

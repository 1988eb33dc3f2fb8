//! Framing of whole messages for a byte stream: LF-terminated (the default
//! for plain TCP) or RFC 6587 octet counting (`LEN SP MSG`, required for
//! TLS by RFC 5425). The framer sees only bytes; it never looks inside a
//! message.

/// How messages are delimited on a stream transport.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Framing {
    /// Message followed by `\n`.
    #[default]
    NewLine,
    /// Decimal byte count, a space, then the message (RFC 6587 §3.4.1).
    OctetCounting,
}

impl Framing {
    /// Appends `message` framed to `out`.
    pub fn frame(self, message: &[u8], out: &mut Vec<u8>) {
        match self {
            Framing::NewLine => {
                out.reserve(message.len() + 1);
                out.extend_from_slice(message);
                out.push(b'\n');
            }
            Framing::OctetCounting => {
                let mut digits = itoa::Buffer::new();
                let len = digits.format(message.len());
                out.reserve(len.len() + 1 + message.len());
                out.extend_from_slice(len.as_bytes());
                out.push(b' ');
                out.extend_from_slice(message);
            }
        }
    }

    /// Frames, in place, a message that was rendered straight into `out`
    /// starting at `start` (saves a copy for newline framing).
    pub fn frame_in_place(self, out: &mut Vec<u8>, start: usize) {
        match self {
            Framing::NewLine => out.push(b'\n'),
            Framing::OctetCounting => {
                let mut digits = itoa::Buffer::new();
                let prefix = digits.format(out.len() - start).as_bytes();
                let shift = prefix.len() + 1;
                let old_len = out.len();
                out.resize(old_len + shift, 0);
                out.copy_within(start..old_len, start + shift);
                out[start..start + prefix.len()].copy_from_slice(prefix);
                out[start + prefix.len()] = b' ';
            }
        }
    }
}

/// Why a stream could not be split into messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeframeError {
    #[error("octet count is not a number: {0:?}")]
    BadCount(String),
    #[error("octet count {0} exceeds the limit of {1} bytes")]
    TooLong(usize, usize),
}

/// Splits the complete messages off the front of `data`, calling `each`
/// for every message, and returns how many bytes were consumed. A partial
/// message at the end is left for the next call.
///
/// With `auto`, a frame that starts with an octet count (`[1-9][0-9]*`
/// then a space) is taken as octet counted and any other as newline
/// terminated. rsyslog decides on the first digit alone, which splits a
/// newline-framed message that starts with a bare timestamp (`2017-…`);
/// here the digits must be followed by the space.
pub fn deframe(
    data: &[u8],
    framing: Option<Framing>,
    max_len: usize,
    mut each: impl FnMut(&[u8]),
) -> Result<usize, (usize, DeframeError)> {
    let mut at = 0;
    while at < data.len() {
        let rest = &data[at..];
        let octet = match framing {
            Some(f) => f == Framing::OctetCounting,
            None => match starts_with_octet_count(rest) {
                Some(octet) => octet,
                None => break,
            },
        };
        if octet {
            let Some(space) = memchr::memchr(b' ', &rest[..rest.len().min(12)]) else {
                if rest.len() >= 12 || !rest.iter().all(u8::is_ascii_digit) {
                    let shown = String::from_utf8_lossy(&rest[..rest.len().min(12)]).into_owned();
                    return Err((at, DeframeError::BadCount(shown)));
                }
                break;
            };
            let count = std::str::from_utf8(&rest[..space])
                .ok()
                .and_then(|s| s.parse::<usize>().ok())
                .ok_or_else(|| (at, DeframeError::BadCount(String::from_utf8_lossy(&rest[..space]).into_owned())))?;
            if count > max_len {
                return Err((at, DeframeError::TooLong(count, max_len)));
            }
            let end = space + 1 + count;
            if rest.len() < end {
                break;
            }
            each(&rest[space + 1..end]);
            at += end;
        } else {
            let Some(nl) = memchr::memchr(b'\n', rest) else {
                if rest.len() > max_len {
                    return Err((at, DeframeError::TooLong(rest.len(), max_len)));
                }
                break;
            };
            let line = &rest[..nl];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if !line.is_empty() {
                each(line);
            }
            at += nl + 1;
        }
    }
    Ok(at)
}

/// Whether `frame` starts with `LEN SP`; `None` while only digits are
/// there to look at.
fn starts_with_octet_count(frame: &[u8]) -> Option<bool> {
    /// An octet count has at most this many digits (a 9.9 GB message).
    const MAX_DIGITS: usize = 10;
    let digits = frame.iter().take(MAX_DIGITS + 1).take_while(|b| b.is_ascii_digit()).count();
    match frame.get(digits) {
        _ if digits == 0 || digits > MAX_DIGITS || frame[0] == b'0' => Some(false),
        Some(next) => Some(*next == b' '),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn split(data: &[u8], framing: Option<Framing>) -> (Vec<Vec<u8>>, usize) {
        let mut got = Vec::new();
        let used = deframe(data, framing, 1 << 20, |m| got.push(m.to_vec())).unwrap();
        (got, used)
    }

    /// RFC 6587's MSG-LEN starts with a non-zero digit: `0 ` (an empty
    /// octet-counted message) is not a count, so detection reads a newline
    /// frame there, as rsyslog does. Senders never frame an empty message.
    #[test]
    fn detection_reads_a_zero_count_as_newline_framing() {
        let (got, used) = split(b"0 x\n5 hello", None);
        assert_eq!(got, vec![b"0 x".to_vec(), b"hello".to_vec()]);
        assert_eq!(used, 11);
    }

    #[test]
    fn octet_counting_layout() {
        let mut out = Vec::new();
        Framing::OctetCounting.frame(b"hello world", &mut out);
        assert_eq!(out, b"11 hello world");
        let mut inplace = b"xx".to_vec();
        inplace.extend_from_slice(b"hello world");
        Framing::OctetCounting.frame_in_place(&mut inplace, 2);
        assert_eq!(inplace, b"xx11 hello world");
    }

    #[test]
    fn partial_frames_wait_for_more() {
        assert_eq!(split(b"5 abcde3 ab", Some(Framing::OctetCounting)), (vec![b"abcde".to_vec()], 7));
        assert_eq!(split(b"one\ntw", Some(Framing::NewLine)), (vec![b"one".to_vec()], 4));
        assert_eq!(split(b"12", Some(Framing::OctetCounting)).1, 0);
    }

    #[test]
    fn auto_takes_a_leading_timestamp_for_text_not_an_octet_count() {
        let lines = b"2017-11-22T17:50:04.000Z h CEF:0|a\n22:04 x\n<134>CEF:0|b\n";
        let (got, used) = split(lines, None);
        assert_eq!(used, lines.len());
        assert_eq!(got, [&b"2017-11-22T17:50:04.000Z h CEF:0|a"[..], b"22:04 x", b"<134>CEF:0|b"]);
        // Octet-counted frames, also those without <PRI>, are still found.
        assert_eq!(split(b"5 20171", None), (vec![b"20171".to_vec()], 7));
        // Only digits so far: wait for the byte that decides.
        assert_eq!(split(b"2017", None), (vec![], 0));
    }

    #[test]
    fn garbage_count_is_an_error() {
        let err = deframe(b"12x4 abc", Some(Framing::OctetCounting), 100, |_| ()).unwrap_err();
        assert_eq!(err.0, 0);
        let err = deframe(b"999 abc", Some(Framing::OctetCounting), 100, |_| ()).unwrap_err();
        assert_eq!(err.1, DeframeError::TooLong(999, 100));
    }

    proptest! {
        /// Framing then deframing gives back the same messages, however the
        /// stream is cut into reads.
        #[test]
        fn frame_deframe_round_trip(
            messages in prop::collection::vec("[^\n]{1,40}", 0..20),
            octet in any::<bool>(),
            cut in 1usize..50,
        ) {
            let framing = if octet { Framing::OctetCounting } else { Framing::NewLine };
            let mut stream = Vec::new();
            for m in &messages {
                framing.frame(m.as_bytes(), &mut stream);
            }
            let mut pending = Vec::new();
            let mut got: Vec<String> = Vec::new();
            for chunk in stream.chunks(cut) {
                pending.extend_from_slice(chunk);
                let used = deframe(&pending, Some(framing), 1 << 20, |m| {
                    got.push(String::from_utf8(m.to_vec()).unwrap())
                }).unwrap();
                pending.drain(..used);
            }
            prop_assert!(pending.is_empty());
            let expected: Vec<String> = messages
                .iter()
                .filter(|m| octet || !m.strip_suffix('\r').unwrap_or(m).is_empty())
                .map(|m| if octet { m.clone() } else { m.strip_suffix('\r').unwrap_or(m).to_owned() })
                .collect();
            prop_assert_eq!(got, expected);
        }
    }
}

//! `deframe(frame(x)) == x`: the fuzzer picks messages, a framing and how
//! the stream is cut into reads; framing them and deframing the stream
//! piece by piece gives back exactly the messages, and leaves nothing over.
//! Newline framing cannot carry a message with a LF, an empty one or one
//! ending in CR (documented); those are left out for it. With detection
//! (`None`, what `sink` does when not told) octet-counted frames always
//! start with a digit, newline frames only when the message does; an
//! empty octet-counted message (`0 `) is not a frame RFC 6587 allows
//! (MSG-LEN starts with a non-zero digit), so detection reads it as
//! newline framing, like rsyslog: it is left out when detecting.
#![no_main]

use cefwire::syslog::frame::{Framing, deframe};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else { return };
    let Some((&cut, rest)) = rest.split_first() else { return };
    let framing = if control & 1 == 0 { Framing::NewLine } else { Framing::OctetCounting };
    let detect = control & 2 != 0;
    let separator = control >> 2;
    let cut = usize::from(cut).max(1);
    let messages: Vec<&[u8]> = rest
        .split(|&b| b == separator)
        .filter(|m| {
            if framing == Framing::OctetCounting {
                return !(detect && m.is_empty());
            }
            !m.is_empty() && !m.contains(&b'\n') && m.last() != Some(&b'\r') && !(detect && m[0].is_ascii_digit())
        })
        .collect();
    let mut stream = Vec::new();
    for m in &messages {
        framing.frame(m, &mut stream);
    }
    let mut pending = Vec::new();
    let mut got: Vec<Vec<u8>> = Vec::new();
    for chunk in stream.chunks(cut) {
        pending.extend_from_slice(chunk);
        let used = deframe(&pending, if detect { None } else { Some(framing) }, 1 << 20, |m| got.push(m.to_vec()))
            .unwrap_or_else(|(at, e)| panic!("deframe refused its own framing at {at}: {e}"));
        assert!(used <= pending.len());
        pending.drain(..used);
    }
    assert!(pending.is_empty(), "{} bytes left over", pending.len());
    assert_eq!(got, messages, "{framing:?} detect={detect}");
});

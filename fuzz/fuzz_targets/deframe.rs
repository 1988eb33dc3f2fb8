//! Arbitrary bytes as a syslog stream (what `sink` receives): splitting into
//! frames never panics and never consumes more than it was given.
#![no_main]

use cefwire::syslog::frame::{Framing, deframe};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for framing in [None, Some(Framing::NewLine), Some(Framing::OctetCounting)] {
        let mut total = 0;
        if let Ok(used) = deframe(data, framing, 4096, |m| total += m.len()) {
            assert!(used <= data.len() && total <= used);
        }
    }
});

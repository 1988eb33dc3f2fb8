//! Arbitrary bytes as what a RELP server answers: parsing frame after frame
//! never panics, never claims more bytes than it was given, and the offers
//! check accepts anything.
#![no_main]

use cefwire::send::relp::{ServerFrame, offers_allow_syslog, parse_frame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Ok(Some((frame, used))) = parse_frame(rest) {
        assert!(used > 0 && used <= rest.len());
        if let ServerFrame::Response { data, .. } = frame {
            let _ = offers_allow_syslog(data);
        }
        rest = &rest[used..];
    }
});

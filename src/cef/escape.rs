//! CEF escaping of header fields and extension values, appended to a
//! caller-owned buffer.
//!
//! Rules (from the output contract):
//! - header fields: `\` → `\\`, `|` → `\|`, CR and LF → one space each;
//! - extension values: `\` → `\\`, `=` → `\=`, LF → `\n`, CR → `\r`;
//! - everywhere: other control characters (U+0000–U+001F except TAB, and
//!   U+007F) → one space. Everything else, including all valid UTF-8, is
//!   copied unchanged.
//!
//! The fast path skips clean runs eight bytes at a time (SWAR), jumps
//! straight to the first flagged byte of a word and copies clean runs in
//! one go; a byte table decides what to do with a flagged byte.
//! [`naive`] holds the obviously-correct twins the property tests compare
//! against.

/// What to do with one byte in one context.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Action {
    Copy,
    Space,
    Escape(u8),
}

const fn action_table(extension: bool) -> [Action; 256] {
    let mut table = [Action::Copy; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = Action::Space;
        b += 1;
    }
    table[b'\t' as usize] = Action::Copy;
    table[0x7f] = Action::Space;
    table[b'\\' as usize] = Action::Escape(b'\\');
    if extension {
        table[b'=' as usize] = Action::Escape(b'=');
        table[b'\n' as usize] = Action::Escape(b'n');
        table[b'\r' as usize] = Action::Escape(b'r');
    } else {
        table[b'|' as usize] = Action::Escape(b'|');
    }
    table
}

static HEADER_ACTIONS: [Action; 256] = action_table(false);
static EXTENSION_ACTIONS: [Action; 256] = action_table(true);

const LOW_BITS: u64 = 0x0101_0101_0101_0101;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// Non-zero when some byte of `word` equals `byte` (classic SWAR test).
#[inline(always)]
const fn has_byte(word: u64, byte: u8) -> u64 {
    let x = word ^ (LOW_BITS * byte as u64);
    x.wrapping_sub(LOW_BITS) & !x & HIGH_BITS
}

/// Non-zero when some byte of `word` is below 0x20 or is 0x7F (TAB
/// included: it is then sorted out by the table).
#[inline(always)]
const fn has_control(word: u64) -> u64 {
    (word.wrapping_sub(LOW_BITS * 0x20) & !word & HIGH_BITS) | has_byte(word, 0x7f)
}

/// Flags the bytes of `word` that may need escaping: controls (TAB
/// included, sorted out by the table), `\` and `special`. Only the lowest
/// flagged byte is sure to be one (a borrow may flag bytes above it), which
/// is all the caller uses.
#[inline(always)]
const fn flagged(word: u64, special: u8) -> u64 {
    has_control(word) | has_byte(word, b'\\') | has_byte(word, special)
}

/// A byte that never needs escaping, to fill the part of a word past the
/// end of the text.
const FILLER: u64 = LOW_BITS * b'a' as u64;

#[inline(always)]
fn escape_with(bytes: &[u8], out: &mut Vec<u8>, table: &[Action; 256], special: u8) {
    out.reserve(bytes.len());
    let len = bytes.len();
    let mut done = 0;
    let mut at = 0;
    if len < 8 {
        // Too short for a word: byte by byte.
        for (i, &b) in bytes.iter().enumerate() {
            let action = table[usize::from(b)];
            if action != Action::Copy {
                out.extend_from_slice(&bytes[done..i]);
                push_action(action, out);
                done = i + 1;
            }
        }
        out.extend_from_slice(&bytes[done..]);
        return;
    }
    // Word by word; the last word is the text's last eight bytes, moved
    // down past those already looked at and topped up with filler.
    while at < len {
        let mask = if at + 8 <= len {
            flagged(u64::from_le_bytes(bytes[at..at + 8].try_into().expect("eight bytes")), special)
        } else {
            let seen = at - (len - 8);
            let word = u64::from_le_bytes(bytes[len - 8..].try_into().expect("eight bytes"));
            flagged((word >> (8 * seen)) | (FILLER << (64 - 8 * seen)), special)
        };
        if mask == 0 {
            at += 8;
            continue;
        }
        let pos = at + (mask.trailing_zeros() / 8) as usize;
        let action = table[usize::from(bytes[pos])];
        if action != Action::Copy {
            out.extend_from_slice(&bytes[done..pos]);
            push_action(action, out);
            done = pos + 1;
        }
        at = pos + 1;
    }
    out.extend_from_slice(&bytes[done..]);
}

#[inline(always)]
fn push_action(action: Action, out: &mut Vec<u8>) {
    match action {
        Action::Space => out.push(b' '),
        Action::Escape(c) => out.extend_from_slice(&[b'\\', c]),
        Action::Copy => unreachable!("copied bytes are not pushed one by one"),
    }
}

/// Appends `value` escaped for a CEF header field (vendor … name).
pub fn escape_header(value: &[u8], out: &mut Vec<u8>) {
    escape_with(value, out, &HEADER_ACTIONS, b'|');
}

/// Appends `value` escaped for a CEF extension value.
pub fn escape_extension(value: &[u8], out: &mut Vec<u8>) {
    escape_with(value, out, &EXTENSION_ACTIONS, b'=');
}

/// Byte-at-a-time twins of the escapers: slow, short, obviously right.
pub mod naive {
    fn is_other_control(c: char) -> bool {
        (c < ' ' && c != '\t') || c == '\u{7f}'
    }

    /// Header escaping, one char at a time.
    pub fn escape_header(value: &str) -> String {
        let mut out = String::new();
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '|' => out.push_str("\\|"),
                '\r' | '\n' => out.push(' '),
                c if is_other_control(c) => out.push(' '),
                c => out.push(c),
            }
        }
        out
    }

    /// Extension-value escaping, one char at a time.
    pub fn escape_extension(value: &str) -> String {
        let mut out = String::new();
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '=' => out.push_str("\\="),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                c if is_other_control(c) => out.push(' '),
                c => out.push(c),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header(s: &str) -> String {
        let mut out = Vec::new();
        escape_header(s.as_bytes(), &mut out);
        String::from_utf8(out).unwrap()
    }

    fn extension(s: &str) -> String {
        let mut out = Vec::new();
        escape_extension(s.as_bytes(), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn contract_examples() {
        assert_eq!(header(r"a\b|c"), r"a\\b\|c");
        assert_eq!(header("x\r\ny=z"), "x  y=z");
        assert_eq!(extension("a=b\\c|d e"), "a\\=b\\\\c|d e");
        assert_eq!(extension("l1\nl2\rl3"), "l1\\nl2\\rl3");
        assert_eq!(extension("\u{0}\u{1f}\u{7f}\tü"), "   \tü");
        assert_eq!(extension(""), "");
    }

    #[test]
    fn specials_at_every_offset_of_every_short_length() {
        // Below, at and past one word, and the last word's every overlap.
        for len in 1..=26 {
            for pos in 0..len {
                for special in ["=", "\\", "\r", "\u{0}", "\u{7f}", "|", "\t", "ü"] {
                    let mut s: String = "abcdefghijklmnopqrstuvwxyz".chars().take(len).collect();
                    s.replace_range(pos..=pos, special);
                    assert_eq!(extension(&s), naive::escape_extension(&s), "{s:?}");
                    assert_eq!(header(&s), naive::escape_header(&s), "{s:?}");
                    let twice = format!("{s}{special}{s}");
                    assert_eq!(extension(&twice), naive::escape_extension(&twice), "{twice:?}");
                    assert_eq!(header(&twice), naive::escape_header(&twice), "{twice:?}");
                }
            }
        }
    }

    #[test]
    fn specials_at_every_offset_of_a_long_run() {
        for pos in 0..40 {
            for special in ["=", "\\", "\n", "\u{1}", "\u{7f}", "|", "\t"] {
                let mut s = "abcdefghijklmnopqrstuvwxyz0123456789ABCD".to_owned();
                s.replace_range(pos..=pos, special);
                assert_eq!(extension(&s), naive::escape_extension(&s), "{s:?}");
                assert_eq!(header(&s), naive::escape_header(&s), "{s:?}");
            }
        }
    }

    proptest! {
        #[test]
        fn extension_agrees_with_naive(s in any::<String>()) {
            prop_assert_eq!(extension(&s), naive::escape_extension(&s));
        }

        #[test]
        fn header_agrees_with_naive(s in any::<String>()) {
            prop_assert_eq!(header(&s), naive::escape_header(&s));
        }

        #[test]
        fn agrees_on_ascii_heavy_strings(s in "[a-z=|\\\\\r\n\t\u{0}-\u{1f}\u{7f} ]{0,64}") {
            prop_assert_eq!(extension(&s), naive::escape_extension(&s));
            prop_assert_eq!(header(&s), naive::escape_header(&s));
        }
    }
}

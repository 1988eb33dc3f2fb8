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
//! The fast path skips clean runs eight bytes at a time (SWAR) and copies
//! them in one go; a byte table decides what to do with a flagged byte.
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

/// Length of the leading run of `bytes` that surely needs no escaping,
/// rounded down to whole 8-byte words (the caller checks the rest bytewise).
#[inline(always)]
fn clean_prefix(bytes: &[u8], special: u8) -> usize {
    let mut at = 0;
    while let Some(chunk) = bytes.get(at..at + 8) {
        let word = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        if has_control(word) | has_byte(word, b'\\') | has_byte(word, special) != 0 {
            break;
        }
        at += 8;
    }
    at
}

#[inline(always)]
fn escape_with(bytes: &[u8], out: &mut Vec<u8>, table: &[Action; 256], special: u8) {
    out.reserve(bytes.len());
    let mut done = 0;
    let mut at = 0;
    while at < bytes.len() {
        at += clean_prefix(&bytes[at..], special);
        let end = bytes.len().min(at + 8);
        while at < end {
            let action = table[usize::from(bytes[at])];
            if action != Action::Copy {
                out.extend_from_slice(&bytes[done..at]);
                match action {
                    Action::Space => out.push(b' '),
                    Action::Escape(c) => out.extend_from_slice(&[b'\\', c]),
                    Action::Copy => unreachable!(),
                }
                done = at + 1;
            }
            at += 1;
        }
    }
    out.extend_from_slice(&bytes[done..]);
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

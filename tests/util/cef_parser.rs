//! A small CEF parser written from the CEF specification, independent of
//! cefwire's writer, used to read lines back in tests and in the fuzz
//! targets (`fuzz/` includes this file by path). It is strict: a bad
//! escape, a key that is not alphanumeric or a key that appears twice is
//! an error, never a guess.

/// A parsed CEF line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CefEvent {
    /// Whatever precedes `CEF:` (the syslog header).
    pub prefix: String,
    /// version, vendor, product, device version, signature, name, severity.
    pub header: [String; 7],
    /// Extension keys in order of appearance with their unescaped values.
    pub extension: Vec<(String, String)>,
}

impl CefEvent {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.extension.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// Parses one line. Header fields end at an unescaped `|`; `\\` and `\|`
/// are their escapes. Extension values run until the space before the next
/// `key=` whose `=` is unescaped; `\\`, `\=`, `\n`, `\r` are their escapes.
pub fn parse(line: &str) -> Result<CefEvent, String> {
    let start = line.find("CEF:").ok_or("no CEF: marker")?;
    let prefix = line[..start].to_owned();
    let body = &line[start + 4..];
    let mut header: Vec<String> = Vec::with_capacity(7);
    let mut current = String::new();
    let mut chars = body.char_indices();
    let mut rest_at = None;
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, e @ ('\\' | '|'))) => current.push(e),
                Some((_, other)) => return Err(format!("bad header escape \\{other}")),
                None => return Err("dangling backslash in header".into()),
            },
            '|' => {
                header.push(std::mem::take(&mut current));
                if header.len() == 7 {
                    rest_at = Some(i + 1);
                    break;
                }
            }
            c => current.push(c),
        }
    }
    let rest_at = rest_at.ok_or_else(|| format!("only {} header fields", header.len()))?;
    let header: [String; 7] = header.try_into().map_err(|_| "header count")?;
    Ok(CefEvent { prefix, header, extension: parse_extension(&body[rest_at..])? })
}

fn parse_extension(text: &str) -> Result<Vec<(String, String)>, String> {
    // Positions of unescaped '='.
    let bytes = text.as_bytes();
    let mut equals = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'=' => {
                equals.push(i);
                i += 1;
            }
            _ => i += 1,
        }
    }
    if equals.is_empty() && !text.is_empty() {
        return Err(format!("extension without a key: {text:?}"));
    }
    let mut pairs = Vec::new();
    let mut key_start = 0;
    for (n, &eq) in equals.iter().enumerate() {
        let key = &text[key_start..eq];
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!("bad key {key:?}"));
        }
        let value_end = match equals.get(n + 1) {
            Some(&next_eq) => {
                let space = text[..next_eq].rfind(' ').ok_or("no space before key")?;
                if space < eq {
                    return Err("key without separating space".into());
                }
                key_start = space + 1;
                space
            }
            None => text.len(),
        };
        if pairs.iter().any(|(k, _): &(String, String)| k == key) {
            return Err(format!("duplicate key {key:?}"));
        }
        pairs.push((key.to_owned(), unescape_value(&text[eq + 1..value_end])?));
    }
    Ok(pairs)
}

fn unescape_value(raw: &str) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('=') => out.push('='),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some(other) => return Err(format!("bad extension escape \\{other}")),
            None => return Err("dangling backslash in value".into()),
        }
    }
    Ok(out)
}

#[cfg(test)]
#[test]
fn duplicate_keys_and_bad_escapes_are_errors() {
    assert!(parse("CEF:0|a|b|c|d|e|0|k=1 k=2").unwrap_err().contains("duplicate key"));
    assert_eq!(parse(r"CEF:0|a|b|c|d|e|0|k=x\\ y\=z").unwrap().get("k"), Some(r"x\ y=z"));
    assert!(parse(r"CEF:0|a|b|c|d|e|0|k=\q").unwrap_err().contains("bad extension escape"));
    assert!(parse(r"CEF:0|a|b|c|d|e|0|k=a\").unwrap_err().contains("dangling"));
    assert!(parse(r"CEF:0|a|b\x|c|d|e|0|k=1").unwrap_err().contains("bad header escape"));
    assert!(parse("CEF:0|a|b|c|d|e|0").unwrap_err().contains("header fields"));
    assert!(parse("CEF:0|a|b|c|d|e|0|").unwrap().extension.is_empty());
    assert!(parse("CEF:0|a|b|c|d|e|0|no key").unwrap_err().contains("without a key"));
}

#[cfg(test)]
#[test]
fn parses_the_seed_alert_line() {
    let line = "2017-07-15T20:42:30.531Z CEF:0|MCAS|SIEM_Agent|0.102.17|ALERT_CABINET_EVENT_MATCH_AUDIT|myPolicy|3|externalId=596a7e360c204203a335a3fb start=1500151350531 msg=Activity policy ''myPolicy'' was triggered cn1= cs1=https://x/#/a?b\\=c";
    let e = parse(line).unwrap();
    assert_eq!(e.prefix, "2017-07-15T20:42:30.531Z ");
    assert_eq!(e.header[5], "myPolicy");
    assert_eq!(e.get("msg"), Some("Activity policy ''myPolicy'' was triggered"));
    assert_eq!(e.get("cn1"), Some(""));
    assert_eq!(e.get("cs1"), Some("https://x/#/a?b=c"));
}

//! Azure Storage signatures: Shared Key (each request signed with the
//! account key, as the Storage REST API specifies: a canonical string of the
//! verb, standard headers, `x-ms-*` headers and the resource, HMAC-SHA256)
//! and account SAS tokens (a query string signed the same way, for people
//! who hand cefwire a SAS instead of the key — and for the tests and the
//! emulator, which make one for Azurite).
//!
//! It owns the canonical forms and the key. It never sends anything, and
//! never prints the key.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// A storage account's name and key.
#[derive(Clone, PartialEq, Eq)]
pub struct AccountKey {
    pub account: String,
    key: Vec<u8>,
}

impl std::fmt::Debug for AccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountKey").field("account", &self.account).finish_non_exhaustive()
    }
}

/// Azurite's (and the old storage emulator's) published account.
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
/// Azurite's published key for [`AZURITE_ACCOUNT`] (public; not a secret).
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// The key is not base64.
#[derive(Debug, thiserror::Error)]
#[error("the account key of {account} is not base64 (copy it from the portal's Access keys page)")]
pub struct BadKey {
    pub account: String,
}

impl AccountKey {
    /// `key` as the portal shows it (base64).
    pub fn new(account: &str, key: &str) -> Result<Self, BadKey> {
        let key = STANDARD.decode(key.trim()).map_err(|_| BadKey { account: account.to_owned() })?;
        Ok(Self { account: account.to_owned(), key })
    }

    /// base64(HMAC-SHA256(key, text)).
    pub fn sign(&self, text: &str) -> String {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.key);
        STANDARD.encode(ring::hmac::sign(&key, text.as_bytes()).as_ref())
    }
}

/// What of a request Shared Key signs.
pub struct RequestToSign<'a> {
    pub method: &'a str,
    /// The URL path as sent (percent-encoded), starting with `/`.
    pub path: &'a str,
    /// Query parameters, not encoded.
    pub query: &'a [(&'a str, &'a str)],
    /// Every `x-ms-*` header sent, names in lower case.
    pub ms_headers: &'a [(&'a str, &'a str)],
    pub content_length: u64,
    pub content_type: &'a str,
}

/// The Shared Key string to sign (service version 2015-02-21 and later).
pub fn string_to_sign(account: &str, request: &RequestToSign<'_>) -> String {
    let length = if request.content_length == 0 { String::new() } else { request.content_length.to_string() };
    let mut text = format!("{}\n\n\n{length}\n\n{}\n\n\n\n\n\n\n", request.method, request.content_type);
    let mut headers = request.ms_headers.to_vec();
    headers.sort_unstable_by_key(|(name, _)| *name);
    for (name, value) in headers {
        text.push_str(name);
        text.push(':');
        text.push_str(value.trim());
        text.push('\n');
    }
    text.push('/');
    text.push_str(account);
    text.push_str(request.path);
    let mut query: Vec<(String, &str)> = request.query.iter().map(|(k, v)| (k.to_ascii_lowercase(), *v)).collect();
    query.sort_unstable();
    for (name, value) in query {
        text.push('\n');
        text.push_str(&name);
        text.push(':');
        text.push_str(value);
    }
    text
}

/// The `Authorization` header value for a request.
pub fn authorization(key: &AccountKey, request: &RequestToSign<'_>) -> String {
    format!("SharedKey {}:{}", key.account, key.sign(&string_to_sign(&key.account, request)))
}

/// An account SAS query string (without `?`) for the Blob service:
/// permissions `permissions` (e.g. `rl` to read and list, `racwl` to also
/// write) on every resource type, valid until `expiry` (ISO 8601 without
/// fraction, `2030-01-01T00:00:00Z`), over HTTPS and HTTP.
pub fn account_sas(key: &AccountKey, permissions: &str, expiry: &str) -> String {
    const VERSION: &str = "2021-08-06";
    let (services, types, protocols) = ("b", "sco", "https,http");
    // Account SAS, version 2020-12-06 and later: the last two lines are the
    // encryption scope (empty) and a final newline.
    let text = format!("{}\n{permissions}\n{services}\n{types}\n\n{expiry}\n\n{protocols}\n{VERSION}\n\n", key.account);
    let signature = key.sign(&text);
    let encode = |v: &str| percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC).to_string();
    format!(
        "sv={VERSION}&ss={services}&srt={types}&sp={permissions}&se={}&spr={}&sig={}",
        encode(expiry),
        encode(protocols),
        encode(&signature)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_string_sorts_headers_and_query() {
        let request = RequestToSign {
            method: "GET",
            path: "/devstoreaccount1/c",
            query: &[("restype", "container"), ("comp", "list"), ("prefix", "tenantId=x/")],
            ms_headers: &[("x-ms-version", "2021-08-06"), ("x-ms-date", "Sun, 06 Nov 1994 08:49:37 GMT")],
            content_length: 0,
            content_type: "",
        };
        assert_eq!(
            string_to_sign("devstoreaccount1", &request),
            "GET\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:Sun, 06 Nov 1994 08:49:37 GMT\nx-ms-version:2021-08-06\n\
             /devstoreaccount1/devstoreaccount1/c\ncomp:list\nprefix:tenantId=x/\nrestype:container"
        );
    }

    /// HMAC-SHA256 test vector (RFC 4231, case 2).
    #[test]
    fn signs_with_hmac_sha256() {
        let key = AccountKey { account: "a".into(), key: b"Jefe".to_vec() };
        let signature = STANDARD.decode(key.sign("what do ya want for nothing?")).unwrap();
        let hex: String = signature.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        assert!(!format!("{key:?}").contains("Jefe"));
        assert!(AccountKey::new("a", "not base64!").is_err());
    }
}

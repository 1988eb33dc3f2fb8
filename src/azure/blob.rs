//! A blocking client of the Azure Blob service REST API (ureq): the calls
//! the streaming-archive reader needs — list blobs by prefix with a
//! continuation marker, blob properties, ranged reads — and the few the
//! emulator needs to write an archive (create a container, an append blob,
//! append a block).
//!
//! It owns the three ways to authenticate (Shared Key signing with the
//! account key, a SAS token, an Entra ID bearer token refreshed before it
//! expires), path-style endpoints (Azurite: `http://host:port/account`) as
//! well as the usual `https://account.blob.core.windows.net`, retries of
//! 5xx/408/429 and network errors with backoff, and bounds on every answer
//! (a listing page, a range) so a broken server cannot exhaust memory. It
//! does not know what the blobs contain.

use super::entra::{ClientCredentials, TokenCache, TokenError};
use super::shared_key::{AccountKey, BadKey, RequestToSign, authorization};
use crate::http::{self, AgentSettings, Attempts, Backoff, Next, RetryPolicy, SetupError, TransportFailure};
use crate::time::{format_http_date, now_ms, parse_http_date};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use std::time::Duration;

/// The service version cefwire speaks (supports bearer tokens and append blobs).
pub const API_VERSION: &str = "2021-08-06";
/// Largest listing page read (a page of 5,000 blobs is about 4 MB of XML).
const MAX_LISTING_BYTES: u64 = 32 << 20;
/// Largest error body read.
const MAX_ERROR_BYTES: u64 = 64 << 10;

/// How the client proves who it is.
#[derive(Clone, PartialEq, Eq)]
pub enum StorageAuth {
    /// Shared Key: every request signed with the account key (base64, as
    /// the portal shows it).
    AccountKey(String),
    /// A SAS token (the query string, with or without the leading `?`).
    Sas(String),
    /// An Entra ID application (scope `https://storage.azure.com/.default`).
    Entra(ClientCredentials),
}

impl std::fmt::Debug for StorageAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StorageAuth::AccountKey(_) => f.write_str("AccountKey(<hidden>)"),
            StorageAuth::Sas(_) => f.write_str("Sas(<hidden>)"),
            StorageAuth::Entra(c) => f.debug_tuple("Entra").field(c).finish(),
        }
    }
}

/// The scope of a storage token.
pub const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";

/// Validated settings of a blob client.
#[derive(Clone, Debug)]
pub struct BlobConfig {
    /// `https://<account>.blob.core.windows.net`, or a path-style endpoint
    /// that ends with the account (`http://127.0.0.1:10000/devstoreaccount1`).
    pub endpoint: String,
    pub account: String,
    pub auth: StorageAuth,
    pub http: AgentSettings,
    pub retry: RetryPolicy,
}

impl BlobConfig {
    /// Defaults for `endpoint`: 60 s per request, the default retries.
    pub fn new(endpoint: &str, account: &str, auth: StorageAuth) -> Self {
        Self {
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            account: account.to_owned(),
            auth,
            http: AgentSettings { request_timeout: Some(Duration::from_secs(60)), ..AgentSettings::default() },
            retry: RetryPolicy::default(),
        }
    }
}

/// Why a storage call failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error(
        "the storage account refused the request ({status} {detail}): check the account name, the key / SAS token (permissions: read and list; expiry) or the app's role (Storage Blob Data Reader)"
    )]
    Unauthorized { status: u16, detail: String },
    #[error("{what} does not exist (404 {detail})")]
    NotFound { what: String, detail: String },
    #[error("unexpected answer {status} to {what}: {detail}")]
    Unexpected { status: u16, what: String, detail: String },
    #[error("giving up on {what} after {attempts} attempts; last error: {last}")]
    GaveUp { what: String, attempts: u32, last: String },
    #[error("TLS or proxy setup failed for {endpoint}: {detail} (check the endpoint URL and the CA file)")]
    Setup { endpoint: String, detail: String },
    #[error("the listing of {what} is not valid: {detail}")]
    BadListing { what: String, detail: ListingError },
    #[error(transparent)]
    Agent(#[from] SetupError),
    #[error(transparent)]
    Key(#[from] BadKey),
    #[error(transparent)]
    Token(#[from] TokenError),
}

impl StorageError {
    /// A 404 for a blob whose container is there: the blob was deleted.
    pub fn is_blob_gone(&self) -> bool {
        matches!(self, StorageError::NotFound { detail, .. } if !detail.contains("ContainerNotFound"))
    }

    /// True for errors that more waiting will not fix.
    pub fn is_permanent(&self) -> bool {
        !matches!(self, StorageError::GaveUp { .. })
    }
}

/// One blob of a listing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlobItem {
    pub name: String,
    /// `Content-Length`: the blob's size in bytes.
    pub size: u64,
    pub etag: String,
    /// `Last-Modified`, epoch ms.
    pub last_modified_ms: Option<i64>,
    /// `Creation-Time`, epoch ms (to the second): which blob of that name
    /// this is — a blob deleted and created again has a new one.
    pub created_ms: Option<i64>,
    /// `AppendBlob`, `BlockBlob` or `PageBlob`.
    pub blob_type: String,
}

/// One page of a listing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlobList {
    pub blobs: Vec<BlobItem>,
    /// Where the next page starts; `None` on the last page.
    pub next_marker: Option<String>,
}

/// A blob's properties.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlobProperties {
    pub size: u64,
    pub etag: String,
    pub blob_type: String,
    pub last_modified_ms: Option<i64>,
    /// Blocks committed to an append blob.
    pub committed_blocks: Option<u64>,
}

/// What a ranged read returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RangeRead {
    /// Bytes now in the caller's buffer.
    pub len: usize,
    /// The blob's whole size at the time of the read.
    pub blob_size: u64,
}

/// Counts of one client's traffic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StorageStats {
    /// HTTP requests sent (every attempt).
    pub requests: u64,
    pub listings: u64,
    pub ranges: u64,
    pub bytes_read: u64,
    /// Retried failures.
    pub retried: u64,
    pub tokens_fetched: u64,
    pub backoff_wait: Duration,
}

/// Characters escaped in URL paths: blob names like
/// `tenantId=…/y=2024/m=05/…/PT1H.json` keep `=` and `/` as they are.
const PATH: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'&')
    .add(b'+');

/// Characters escaped in query values: everything but RFC 3986's unreserved.
const QUERY_VALUE: &AsciiSet = &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

enum Auth {
    Key(AccountKey),
    Sas(Vec<(String, String)>),
    Bearer(Box<TokenCache>),
}

/// What one call needs: method, path below the endpoint, query, extra
/// `x-ms-*` headers, body.
struct Call<'a> {
    method: &'a str,
    /// `/container` or `/container/blob`, not encoded.
    resource: &'a str,
    query: &'a [(&'a str, &'a str)],
    headers: &'a [(&'a str, &'a str)],
    body: &'a [u8],
    /// What the call is about, for messages.
    what: &'a str,
}

type Failure = http::Failure<StorageError>;

/// A blocking Blob service client.
pub struct BlobClient {
    agent: ureq::Agent,
    endpoint: String,
    /// The endpoint's own path (`/devstoreaccount1` for Azurite, else empty).
    base_path: String,
    account: String,
    auth: Auth,
    backoff: Backoff,
    stats: StorageStats,
    /// Reused for listings and error bodies.
    scratch: Vec<u8>,
}

impl BlobClient {
    /// Builds the client (reads the CA file, checks the key); no traffic yet.
    pub fn new(config: &BlobConfig) -> Result<Self, StorageError> {
        let agent = http::agent(&config.http)?;
        let auth = match &config.auth {
            StorageAuth::AccountKey(key) => Auth::Key(AccountKey::new(&config.account, key)?),
            StorageAuth::Sas(token) => {
                Auth::Sas(url_query_pairs(token.trim_start_matches('?')).filter(|(k, _)| !k.is_empty()).collect())
            }
            StorageAuth::Entra(credentials) => Auth::Bearer(Box::new(TokenCache::new(credentials.clone()))),
        };
        let endpoint = config.endpoint.trim_end_matches('/').to_owned();
        let base_path =
            endpoint.split_once("://").and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..])).unwrap_or("");
        Ok(Self {
            base_path: base_path.to_owned(),
            endpoint,
            agent,
            account: config.account.clone(),
            auth,
            backoff: Backoff::new(config.retry),
            stats: StorageStats::default(),
            scratch: Vec::new(),
        })
    }

    pub fn stats(&self) -> StorageStats {
        let mut stats = self.stats;
        stats.backoff_wait = self.backoff.waited;
        if let Auth::Bearer(tokens) = &self.auth {
            stats.tokens_fetched = tokens.fetched;
        }
        stats
    }

    /// One page of the blobs of `container` whose names start with
    /// `prefix`, from `marker` on (at most `max_results`, ≤ 5000).
    pub fn list_blobs(
        &mut self,
        container: &str,
        prefix: &str,
        marker: Option<&str>,
        max_results: u32,
    ) -> Result<BlobList, StorageError> {
        let max = max_results.clamp(1, 5000).to_string();
        let mut query = vec![("restype", "container"), ("comp", "list"), ("maxresults", max.as_str())];
        if !prefix.is_empty() {
            query.push(("prefix", prefix));
        }
        if let Some(marker) = marker.filter(|m| !m.is_empty()) {
            query.push(("marker", marker));
        }
        let resource = format!("/{container}");
        let what = format!("the listing of container {container}");
        let call = Call { method: "GET", resource: &resource, query: &query, headers: &[], body: &[], what: &what };
        let mut scratch = std::mem::take(&mut self.scratch);
        let outcome = self.execute(&call, MAX_LISTING_BYTES, &mut scratch, |_| Ok(()));
        let parsed = outcome.and_then(|_| {
            parse_listing(&scratch).map_err(|detail| StorageError::BadListing { what: what.clone(), detail })
        });
        self.scratch = scratch;
        self.stats.listings += 1;
        parsed
    }

    /// Reads `len` bytes of `blob` from `offset` into `out` (cleared
    /// first). At the end of the blob fewer (or no) bytes come back.
    pub fn get_range(
        &mut self,
        container: &str,
        blob: &str,
        offset: u64,
        len: u64,
        out: &mut Vec<u8>,
    ) -> Result<RangeRead, StorageError> {
        out.clear();
        if len == 0 {
            let size = self.properties(container, blob)?.size;
            return Ok(RangeRead { len: 0, blob_size: size });
        }
        let range = format!("bytes={offset}-{}", offset + len - 1);
        let resource = format!("/{container}/{blob}");
        let what = format!("blob {container}/{blob}");
        let headers = [("x-ms-range", range.as_str())];
        let call = Call { method: "GET", resource: &resource, query: &[], headers: &headers, body: &[], what: &what };
        let mut blob_size = None;
        let read = self.execute(&call, len, out, |response| {
            blob_size = content_range_total(response);
            Ok(())
        });
        match read {
            Ok(_) => {}
            // The range starts at or after the end: nothing new.
            Err(StorageError::Unexpected { status: 416, .. }) => {
                let size = self.properties(container, blob)?.size;
                return Ok(RangeRead { len: 0, blob_size: size });
            }
            Err(err) => return Err(err),
        }
        self.stats.ranges += 1;
        self.stats.bytes_read += out.len() as u64;
        let blob_size = blob_size.unwrap_or(offset + out.len() as u64);
        Ok(RangeRead { len: out.len(), blob_size })
    }

    /// A blob's size, type and ETag.
    pub fn properties(&mut self, container: &str, blob: &str) -> Result<BlobProperties, StorageError> {
        let resource = format!("/{container}/{blob}");
        let what = format!("blob {container}/{blob}");
        let call = Call { method: "HEAD", resource: &resource, query: &[], headers: &[], body: &[], what: &what };
        let mut properties = BlobProperties::default();
        let mut scratch = std::mem::take(&mut self.scratch);
        let outcome = self.execute(&call, 0, &mut scratch, |response| {
            let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
            properties.size = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
            properties.etag = header("etag").unwrap_or_default();
            properties.blob_type = header("x-ms-blob-type").unwrap_or_default();
            properties.last_modified_ms = header("last-modified").as_deref().and_then(parse_http_date);
            properties.committed_blocks = header("x-ms-blob-committed-block-count").and_then(|v| v.parse().ok());
            Ok(())
        });
        self.scratch = scratch;
        outcome.map(|_| properties)
    }

    /// Creates `container`; `Ok(false)` when it exists already.
    pub fn create_container(&mut self, container: &str) -> Result<bool, StorageError> {
        let resource = format!("/{container}");
        let what = format!("container {container}");
        let call = Call {
            method: "PUT",
            resource: &resource,
            query: &[("restype", "container")],
            headers: &[],
            body: &[],
            what: &what,
        };
        match self.execute_unit(&call) {
            Ok(()) => Ok(true),
            Err(StorageError::Unexpected { status: 409, .. }) => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Creates an empty append blob (replacing one of that name).
    pub fn create_append_blob(&mut self, container: &str, blob: &str) -> Result<(), StorageError> {
        let resource = format!("/{container}/{blob}");
        let what = format!("blob {container}/{blob}");
        let headers = [("x-ms-blob-type", "AppendBlob")];
        let call = Call { method: "PUT", resource: &resource, query: &[], headers: &headers, body: &[], what: &what };
        self.execute_unit(&call)
    }

    /// Deletes `blob` (the archive's own retention does this; the tests
    /// delete blobs between a listing and a read).
    pub fn delete_blob(&mut self, container: &str, blob: &str) -> Result<(), StorageError> {
        let resource = format!("/{container}/{blob}");
        let what = format!("blob {container}/{blob}");
        let call = Call { method: "DELETE", resource: &resource, query: &[], headers: &[], body: &[], what: &what };
        self.execute_unit(&call)
    }

    /// Appends `data` (at most 4 MiB) to an append blob.
    pub fn append_block(&mut self, container: &str, blob: &str, data: &[u8]) -> Result<(), StorageError> {
        let resource = format!("/{container}/{blob}");
        let what = format!("blob {container}/{blob}");
        let call = Call {
            method: "PUT",
            resource: &resource,
            query: &[("comp", "appendblock")],
            headers: &[],
            body: data,
            what: &what,
        };
        self.execute_unit(&call)
    }

    fn execute_unit(&mut self, call: &Call<'_>) -> Result<(), StorageError> {
        let mut scratch = std::mem::take(&mut self.scratch);
        let outcome = self.execute(call, 0, &mut scratch, |_| Ok(()));
        self.scratch = scratch;
        outcome.map(|_| ())
    }

    /// Sends `call` until it succeeds or fails for good; the body of a
    /// success (at most `limit` bytes) goes to `out`, its head to `head`.
    fn execute(
        &mut self,
        call: &Call<'_>,
        limit: u64,
        out: &mut Vec<u8>,
        mut head: impl FnMut(&ureq::http::Response<ureq::Body>) -> Result<(), StorageError>,
    ) -> Result<u16, StorageError> {
        let mut attempts = Attempts::default();
        loop {
            let failure = match self.attempt(call, limit, out, &mut head) {
                Ok(status) => return Ok(status),
                Err(failure) => failure,
            };
            if matches!(failure, Failure::Retry { .. }) {
                self.stats.retried += 1;
            }
            match attempts.after(failure, &mut self.backoff) {
                Next::Again => {}
                Next::RefreshToken => {
                    if let Auth::Bearer(tokens) = &mut self.auth {
                        tokens.invalidate();
                    }
                }
                Next::Stop(err) => return Err(err),
                Next::GaveUp { attempts, last } => {
                    return Err(StorageError::GaveUp { what: call.what.to_owned(), attempts, last });
                }
                Next::TokenRefusedTwice => {
                    return Err(StorageError::Unauthorized {
                        status: 401,
                        detail: "the token was refused, and so was a fresh one".into(),
                    });
                }
            }
        }
    }

    fn attempt(
        &mut self,
        call: &Call<'_>,
        limit: u64,
        out: &mut Vec<u8>,
        head: &mut impl FnMut(&ureq::http::Response<ureq::Body>) -> Result<(), StorageError>,
    ) -> Result<u16, Failure> {
        let path = format!("{}{}", self.base_path, utf8_percent_encode(call.resource, PATH));
        let mut query: Vec<(&str, &str)> = call.query.to_vec();
        if let Auth::Sas(pairs) = &self.auth {
            query.extend(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        }
        let mut url = format!("{}{}", self.endpoint, &path[self.base_path.len()..]);
        for (n, (key, value)) in query.iter().enumerate() {
            url.push(if n == 0 { '?' } else { '&' });
            url.push_str(key);
            url.push('=');
            url.extend(utf8_percent_encode(value, QUERY_VALUE).flat_map(str::chars));
        }
        let date = format_http_date(now_ms());
        let mut ms_headers: Vec<(&str, &str)> = vec![("x-ms-date", &date), ("x-ms-version", API_VERSION)];
        ms_headers.extend_from_slice(call.headers);
        let content_type = if call.body.is_empty() { "" } else { "application/octet-stream" };
        let authorization = match &mut self.auth {
            Auth::Key(key) => Some(authorization(
                key,
                &RequestToSign {
                    method: call.method,
                    path: &path,
                    query: call.query,
                    ms_headers: &ms_headers,
                    content_length: call.body.len() as u64,
                    content_type,
                },
            )),
            Auth::Sas(_) => None,
            Auth::Bearer(tokens) => match tokens.bearer(&self.agent, &mut self.backoff) {
                Ok(token) => Some(format!("Bearer {token}")),
                Err(err) => return Err(Failure::Stop(err.into())),
            },
        };
        let mut request = ureq::http::Request::builder().method(call.method).uri(&url);
        for (name, value) in &ms_headers {
            request = request.header(*name, *value);
        }
        if let Some(value) = &authorization {
            request = request.header("authorization", value);
        }
        if !content_type.is_empty() {
            request = request.header("content-type", content_type);
        }
        self.stats.requests += 1;
        let request = request.body(call.body.to_vec()).map_err(|e| {
            Failure::Stop(StorageError::Setup { endpoint: self.endpoint.clone(), detail: e.to_string() })
        })?;
        let response = self.agent.run(request).map_err(|e| match http::classify_transport(e) {
            TransportFailure::Setup(detail) => {
                Failure::Stop(StorageError::Setup { endpoint: self.endpoint.clone(), detail })
            }
            TransportFailure::Retry(what) => Failure::Retry { what, retry_after: None },
        })?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            head(&response).map_err(Failure::Stop)?;
            if call.method != "HEAD" {
                http::read_body(response.into_body(), limit, out)
                    .map_err(|e| Failure::Retry { what: e.to_string(), retry_after: None })?;
            }
            return Ok(status);
        }
        let retry_after = http::retry_after(response.headers());
        let code =
            response.headers().get("x-ms-error-code").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let mut body = Vec::new();
        let _ = http::read_body(response.into_body(), MAX_ERROR_BYTES, &mut body);
        let detail = error_message(&code, &body);
        let stop = |err| Err(Failure::Stop(err));
        match status {
            408 | 429 | 500..=599 => Err(Failure::Retry { what: format!("{status} {detail}"), retry_after }),
            // A token the service no longer takes (Azure says 401, Azurite
            // 403 AuthenticationFailed): fetch a fresh one, once.
            401 | 403
                if matches!(self.auth, Auth::Bearer(_))
                    && (status == 401
                        || matches!(code.as_str(), "AuthenticationFailed" | "InvalidAuthenticationInfo")) =>
            {
                Err(Failure::StaleToken)
            }
            401 | 403 => stop(StorageError::Unauthorized { status, detail }),
            404 => stop(StorageError::NotFound { what: call.what.to_owned(), detail }),
            _ => stop(StorageError::Unexpected { status, what: call.what.to_owned(), detail }),
        }
    }

    /// The account name the client signs for.
    pub fn account(&self) -> &str {
        &self.account
    }
}

/// `x-ms-error-code` and the `<Message>` of an error body.
fn error_message(code: &str, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let message = text
        .split_once("<Message>")
        .and_then(|(_, rest)| rest.split_once("</Message>"))
        .map(|(m, _)| m.lines().next().unwrap_or_default().to_owned());
    match (code.is_empty(), message) {
        (false, Some(m)) => format!("{code}: {m}"),
        (false, None) => code.to_owned(),
        (true, Some(m)) => m,
        (true, None) => text.chars().take(200).collect(),
    }
}

/// The total size in `Content-Range: bytes a-b/TOTAL`.
fn content_range_total(response: &ureq::http::Response<ureq::Body>) -> Option<u64> {
    let value = response.headers().get("content-range")?.to_str().ok()?;
    value.rsplit_once('/')?.1.trim().parse().ok()
}

/// `key=value` pairs of a query string, decoded.
fn url_query_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
        (decode(k), decode(v))
    })
}

/// Parses an `EnumerationResults` listing.
pub fn parse_listing(xml: &[u8]) -> Result<BlobList, ListingError> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut list = BlobList::default();
    let mut path: Vec<Vec<u8>> = Vec::new();
    let mut text = String::new();
    let mut blob = BlobItem::default();
    let mut buf = Vec::new();
    loop {
        let event = reader.read_event_into(&mut buf).map_err(ListingError::xml)?;
        match event {
            Event::Start(start) => {
                path.push(start.local_name().as_ref().to_vec());
                text.clear();
            }
            Event::Text(t) => text.push_str(&t.xml_content().map_err(ListingError::xml)?),
            Event::CData(t) => text.push_str(&String::from_utf8_lossy(&t)),
            Event::GeneralRef(r) => {
                if let Some(c) = r.resolve_char_ref().map_err(ListingError::xml)? {
                    text.push(c);
                } else {
                    let name = r.decode().map_err(ListingError::xml)?;
                    let resolved = quick_xml::escape::resolve_predefined_entity(&name)
                        .ok_or_else(|| ListingError::UnknownEntity(name.to_string()))?;
                    text.push_str(resolved);
                }
            }
            Event::End(_) => {
                let name = path.pop().unwrap_or_default();
                let parent = path.last().map(Vec::as_slice);
                match (parent, name.as_slice()) {
                    (Some(b"Blob"), b"Name") => blob.name = std::mem::take(&mut text),
                    (Some(b"Properties"), b"Content-Length") => {
                        blob.size = text.trim().parse().map_err(|_| ListingError::ContentLength(text.clone()))?;
                    }
                    (Some(b"Properties"), b"Etag") => blob.etag = std::mem::take(&mut text),
                    (Some(b"Properties"), b"Last-Modified") => blob.last_modified_ms = parse_http_date(&text),
                    (Some(b"Properties"), b"Creation-Time") => blob.created_ms = parse_http_date(&text),
                    (Some(b"Properties"), b"BlobType") => blob.blob_type = std::mem::take(&mut text),
                    (Some(b"Blobs"), b"Blob") => list.blobs.push(std::mem::take(&mut blob)),
                    (Some(b"EnumerationResults"), b"NextMarker") => {
                        list.next_marker = Some(std::mem::take(&mut text)).filter(|m| !m.is_empty());
                    }
                    _ => {}
                }
                text.clear();
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if !path.is_empty() {
        return Err(ListingError::Unclosed);
    }
    Ok(list)
}

/// Why a listing could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ListingError {
    /// The XML parser's own words (quick-xml has an error type per step).
    #[error("{0}")]
    Xml(String),
    #[error("unknown entity &{0};")]
    UnknownEntity(String),
    #[error("bad Content-Length {0:?}")]
    ContentLength(String),
    #[error("the XML ends inside an element")]
    Unclosed,
}

impl ListingError {
    #[cold]
    fn xml(error: impl std::fmt::Display) -> Self {
        Self::Xml(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_listing_with_escapes_and_a_marker() {
        let xml = br#"<?xml version="1.0" encoding="utf-8"?><EnumerationResults ServiceEndpoint="http://127.0.0.1:10000/devstoreaccount1" ContainerName="c"><Prefix>tenantId=t/</Prefix><MaxResults>2</MaxResults><Blobs><Blob><Name>tenantId=t/y=2024/m=05/d=01/h=12/m=00/PT1H.json</Name><Properties><Creation-Time>Wed, 01 May 2024 12:00:01 GMT</Creation-Time><Last-Modified>Wed, 01 May 2024 12:59:59 GMT</Last-Modified><Etag>0x8D</Etag><Content-Length>1234</Content-Length><BlobType>AppendBlob</BlobType></Properties></Blob><Blob><Name>a &amp; b&#x2F;c</Name><Properties><Content-Length>0</Content-Length><BlobType>BlockBlob</BlobType></Properties></Blob></Blobs><NextMarker>2!64!bWFya2Vy</NextMarker></EnumerationResults>"#;
        let list = parse_listing(xml).unwrap();
        assert_eq!(list.blobs.len(), 2);
        assert_eq!(list.blobs[0].name, "tenantId=t/y=2024/m=05/d=01/h=12/m=00/PT1H.json");
        assert_eq!(list.blobs[0].size, 1234);
        assert_eq!(list.blobs[0].last_modified_ms, Some(1_714_568_399_000));
        assert_eq!(list.blobs[0].created_ms, Some(1_714_564_801_000));
        assert_eq!(list.blobs[1].created_ms, None);
        assert_eq!(list.blobs[0].blob_type, "AppendBlob");
        assert_eq!(list.blobs[1].name, "a & b/c");
        assert_eq!(list.next_marker.as_deref(), Some("2!64!bWFya2Vy"));
        let last = parse_listing(b"<EnumerationResults><Blobs/><NextMarker/></EnumerationResults>").unwrap();
        assert_eq!(last, BlobList::default());
        assert!(parse_listing(b"<EnumerationResults><Blobs>").is_err());
        assert!(parse_listing(b"<EnumerationResults><Blobs><Blob><Properties><Content-Length>x</Content-Length></Properties></Blob></Blobs></EnumerationResults>").is_err());
    }

    #[test]
    fn sas_tokens_are_split_into_decoded_pairs() {
        let pairs: Vec<_> = url_query_pairs("sv=2021-08-06&sig=a%2Bb%3D&se=2030-01-01T00%3A00%3A00Z").collect();
        assert_eq!(pairs[1], ("sig".to_owned(), "a+b=".to_owned()));
        assert_eq!(pairs[2].1, "2030-01-01T00:00:00Z");
        let auth = StorageAuth::Sas("sig=secret".into());
        assert!(!format!("{auth:?}").contains("secret"));
    }
}

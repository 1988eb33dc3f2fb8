//! The Azure Blob client against a real Azurite: listing with a prefix and
//! a continuation marker, properties, ranged reads of a growing append
//! blob, and each way to authenticate (Shared Key, SAS, refused keys and
//! read-only SAS); plus the size bound against a server that sends more
//! than it was asked for.

use crate::util::azurite::{self, Azurite};
use cefwire::azure::blob::{BlobClient, BlobConfig, StorageAuth, StorageError};
use cefwire::azure::shared_key::{AZURITE_ACCOUNT, AZURITE_KEY, AccountKey, account_sas};
use cefwire::http::RetryPolicy;
use std::io::{Read, Write};
use std::time::Duration;

fn client(endpoint: &str, auth: StorageAuth) -> BlobClient {
    let mut config = BlobConfig::new(endpoint, AZURITE_ACCOUNT, auth);
    config.retry =
        RetryPolicy { first_delay: Duration::from_millis(50), max_delay: Duration::from_secs(1), max_attempts: 3 };
    BlobClient::new(&config).unwrap()
}

fn hour_blob(tenant: &str, hour: u32) -> String {
    format!("tenantId={tenant}/y=2024/m=05/d=01/h={hour:02}/m=00/PT1H.json")
}

#[test]
fn shared_key_writes_lists_and_reads_ranges() {
    let Some(endpoint) = azurite::shared() else { return };
    let mut blobs = client(endpoint, StorageAuth::AccountKey(AZURITE_KEY.into()));
    let container = "shared-key-test";
    assert!(blobs.create_container(container).unwrap());
    assert!(!blobs.create_container(container).unwrap(), "a second create says it exists");

    let tenant = "4d8f5a1c-0000-4000-8000-000000000001";
    for hour in 0..5 {
        blobs.create_append_blob(container, &hour_blob(tenant, hour)).unwrap();
    }
    blobs.create_append_blob(container, "tenantId=other/y=2024/m=05/d=01/h=00/m=00/PT1H.json").unwrap();
    let name = hour_blob(tenant, 3);
    blobs.append_block(container, &name, b"{\"a\":1}\n{\"b\":").unwrap();
    blobs.append_block(container, &name, b"2}\n").unwrap();

    // Pages of two, by prefix, marker to marker.
    let prefix = format!("tenantId={tenant}/");
    let mut names = Vec::new();
    let mut marker = None;
    let mut pages = 0;
    loop {
        let page = blobs.list_blobs(container, &prefix, marker.as_deref(), 2).unwrap();
        pages += 1;
        assert!(page.blobs.len() <= 2);
        names.extend(page.blobs.iter().map(|b| (b.name.clone(), b.size, b.blob_type.clone())));
        marker = page.next_marker;
        if marker.is_none() {
            break;
        }
    }
    assert_eq!(pages, 3);
    let expected: Vec<_> =
        (0..5).map(|h| (hour_blob(tenant, h), if h == 3 { 16 } else { 0 }, "AppendBlob".to_owned())).collect();
    assert_eq!(names, expected);

    let properties = blobs.properties(container, &name).unwrap();
    assert_eq!(
        (properties.size, properties.blob_type.as_str(), properties.committed_blocks),
        (16, "AppendBlob", Some(2))
    );
    assert!(!properties.etag.is_empty() && properties.last_modified_ms.is_some());

    let mut buf = Vec::new();
    let read = blobs.get_range(container, &name, 8, 100, &mut buf).unwrap();
    assert_eq!((buf.as_slice(), read.blob_size), (&b"{\"b\":2}\n"[..], 16));
    let read = blobs.get_range(container, &name, 0, 3, &mut buf).unwrap();
    assert_eq!((buf.as_slice(), read.len), (&b"{\"a"[..], 3));
    // At the end, and past it: nothing, and the size.
    let read = blobs.get_range(container, &name, 16, 100, &mut buf).unwrap();
    assert_eq!((read.len, read.blob_size), (0, 16));
    let read = blobs.get_range(container, &name, 1000, 100, &mut buf).unwrap();
    assert_eq!((read.len, read.blob_size), (0, 16));
    // The blob grows; the next range sees only the new bytes.
    blobs.append_block(container, &name, b"{\"c\":3}\n").unwrap();
    let read = blobs.get_range(container, &name, 16, 1 << 20, &mut buf).unwrap();
    assert_eq!((buf.as_slice(), read.blob_size), (&b"{\"c\":3}\n"[..], 24));

    let missing = blobs.properties(container, &hour_blob(tenant, 23)).unwrap_err();
    assert!(matches!(missing, StorageError::NotFound { .. }), "{missing}");
    assert!(blobs.stats().requests > 10);

    // A wrong key is refused with a message that says what to check.
    let mut refused = client(endpoint, StorageAuth::AccountKey("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into()));
    let err = refused.list_blobs(container, "", None, 10).unwrap_err();
    assert!(matches!(err, StorageError::Unauthorized { status: 403, .. }), "{err}");
    assert!(err.to_string().contains("key / SAS token"), "{err}");
}

#[test]
fn sas_tokens_read_and_list_but_write_only_when_allowed() {
    let Some(endpoint) = azurite::shared() else { return };
    let key = AccountKey::new(AZURITE_ACCOUNT, AZURITE_KEY).unwrap();
    let mut writer = client(endpoint, StorageAuth::Sas(account_sas(&key, "racwl", "2099-01-01T00:00:00Z")));
    writer.create_container("sas-test").unwrap();
    writer.create_append_blob("sas-test", "b/one.json").unwrap();
    writer.append_block("sas-test", "b/one.json", b"line\n").unwrap();

    let reader_token = format!("?{}", account_sas(&key, "rl", "2099-01-01T00:00:00Z"));
    let mut reader = client(endpoint, StorageAuth::Sas(reader_token));
    let list = reader.list_blobs("sas-test", "b/", None, 10).unwrap();
    assert_eq!(list.blobs.len(), 1);
    let mut buf = Vec::new();
    reader.get_range("sas-test", "b/one.json", 0, 100, &mut buf).unwrap();
    assert_eq!(buf, b"line\n");
    let err = reader.append_block("sas-test", "b/one.json", b"more\n").unwrap_err();
    assert!(matches!(err, StorageError::Unauthorized { status: 403, .. }), "a read-only SAS cannot write: {err}");

    let expired = account_sas(&key, "rl", "2001-01-01T00:00:00Z");
    let err = client(endpoint, StorageAuth::Sas(expired)).list_blobs("sas-test", "", None, 10).unwrap_err();
    assert!(matches!(err, StorageError::Unauthorized { .. }), "{err}");
}

/// A server that answers a range with more bytes than were asked for is
/// refused rather than buffered.
#[test]
fn a_range_answer_larger_than_asked_is_refused() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}/acct", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut head = [0u8; 4096];
        let _ = stream.read(&mut head);
        let body = vec![b'x'; 1 << 20];
        let _ = write!(
            stream,
            "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let _ = stream.write_all(&body);
    });
    let mut config = BlobConfig::new(&endpoint, "acct", StorageAuth::Sas("sig=x".into()));
    config.retry =
        RetryPolicy { first_delay: Duration::from_millis(1), max_delay: Duration::from_millis(1), max_attempts: 1 };
    let mut blobs = BlobClient::new(&config).unwrap();
    let mut buf = Vec::new();
    let err = blobs.get_range("c", "b", 0, 1000, &mut buf).unwrap_err();
    assert!(err.to_string().contains("larger than the 1000 bytes allowed"), "{err}");
    assert!(buf.capacity() < 1 << 20, "the oversized body was not kept");
    server.join().unwrap();
}

/// Entra ID bearer tokens (from the emulator's token endpoint) against
/// Azurite over HTTPS with OAuth on: Azurite checks each token's audience,
/// issuer and lifetime.
#[test]
fn bearer_tokens_over_https() {
    use cefwire::azure::blob::STORAGE_SCOPE;
    use cefwire::azure::entra::ClientCredentials;
    use cefwire::emulate::{self, EmulatorAuth, EmulatorConfig, RecordStore};
    use std::sync::Arc;

    let dir = crate::util::Scratch::new("azurite-oauth");
    let pki = crate::util::tls::test_pki(dir.path());
    let Some(azurite) = Azurite::start_https_oauth(&pki.server_cert, &pki.server_key) else { return };
    let cert = pki.ca.clone();

    let mut config = EmulatorConfig::new("127.0.0.1:0".parse().unwrap(), "unused");
    config.auth = EmulatorAuth {
        api_token: None,
        client: Some(("app".into(), "secret".into())),
        token_lifetime: Duration::from_secs(3600),
    };
    let entra = emulate::start(config, Arc::new(RecordStore::default())).unwrap();
    let credentials = |scope: &str| ClientCredentials {
        tenant_id: "tenant-1".into(),
        client_id: "app".into(),
        client_secret: "secret".into(),
        token_url: format!("{}/tenant-1/oauth2/v2.0/token", entra.base_url()),
        scope: scope.into(),
    };
    let with_ca = |auth: StorageAuth| {
        let mut config = BlobConfig::new(&azurite.endpoint, AZURITE_ACCOUNT, auth);
        config.http.ca_file = Some(cert.clone());
        config.retry =
            RetryPolicy { first_delay: Duration::from_millis(50), max_delay: Duration::from_secs(1), max_attempts: 3 };
        BlobClient::new(&config).unwrap()
    };

    let mut writer = with_ca(StorageAuth::AccountKey(AZURITE_KEY.into()));
    writer.create_container("archive").unwrap();
    writer.create_append_blob("archive", "t/PT1H.json").unwrap();
    writer.append_block("archive", "t/PT1H.json", b"{\"x\":1}\n").unwrap();

    let mut reader = with_ca(StorageAuth::Entra(credentials(STORAGE_SCOPE)));
    assert_eq!(reader.list_blobs("archive", "t/", None, 10).unwrap().blobs.len(), 1);
    let mut buf = Vec::new();
    reader.get_range("archive", "t/PT1H.json", 0, 100, &mut buf).unwrap();
    assert_eq!(buf, b"{\"x\":1}\n");
    assert_eq!(reader.stats().tokens_fetched, 1, "one token serves both calls");

    // A token for another audience is refused, even after a refresh.
    let mut wrong = with_ca(StorageAuth::Entra(credentials("https://graph.microsoft.com/.default")));
    let err = wrong.list_blobs("archive", "", None, 10).unwrap_err();
    assert!(matches!(err, StorageError::Unauthorized { .. }), "{err}");
    assert_eq!(wrong.stats().tokens_fetched, 2, "a 401 fetches a fresh token once");
}

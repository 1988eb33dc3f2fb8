//! The emulator's HTTPS identity: a fresh self-signed certificate for
//! `localhost`, `127.0.0.1` and `::1` (rcgen with ring), and the rustls
//! server configuration that presents it. The certificate's PEM is what a
//! client trusts with `--ca`.

use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::sync::Arc;

/// A generated certificate and the server config using it.
pub struct SelfSignedIdentity {
    /// The certificate in PEM, to write to a file.
    pub cert_pem: String,
    pub server_config: Arc<ServerConfig>,
}

/// Failure to make the certificate or the TLS config.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("generating the self-signed certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("setting up TLS: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Generates a certificate valid for `extra_names` plus the loopback names.
pub fn self_signed(extra_names: &[String]) -> Result<SelfSignedIdentity, TlsSetupError> {
    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
    names.extend(extra_names.iter().filter(|n| !names.contains(n)).cloned().collect::<Vec<_>>());
    let certified = rcgen::generate_simple_self_signed(names)?;
    let cert_der = CertificateDer::from(certified.cert.der().to_vec());
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der()));
    let server_config = ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![cert_der], key_der)?;
    Ok(SelfSignedIdentity { cert_pem: certified.cert.pem(), server_config: Arc::new(server_config) })
}

//! TLS settings for syslog over TLS (RFC 5425): rustls with the ring
//! provider, TLS 1.2 and 1.3 only. Builds client configs for the sender and
//! server configs for `cefwire sink`; reads PEM files. Knows nothing about
//! sockets.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where the system's trusted CAs are on Debian-like systems (used when no
/// `--ca` is given).
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Client-side TLS files.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsClientOptions {
    /// PEM file with the CA certificate(s) that sign the server's
    /// certificate; the system bundle when `None`.
    pub ca: Option<PathBuf>,
    /// PEM certificate chain presented to the server (with `client_key`).
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("reading {path}: {reason}")]
    Pem { path: String, reason: String },
    #[error("{path}: no certificate found")]
    NoCertificate { path: String },
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
    #[error("a client certificate needs both --client-cert and --client-key")]
    HalfClientIdentity,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads every certificate in a PEM file.
pub fn load_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let pem_error = |e: rustls::pki_types::pem::Error| TlsSetupError::Pem {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let certs =
        CertificateDer::pem_file_iter(path).map_err(pem_error)?.collect::<Result<Vec<_>, _>>().map_err(pem_error)?;
    if certs.is_empty() {
        return Err(TlsSetupError::NoCertificate { path: path.display().to_string() });
    }
    Ok(certs)
}

/// Reads the first private key (PKCS#8, PKCS#1 or SEC1) in a PEM file.
pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsSetupError> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| TlsSetupError::Pem { path: path.display().to_string(), reason: e.to_string() })
}

/// A client config that trusts `options.ca` (or the system bundle).
pub fn client_config(options: &TlsClientOptions) -> Result<Arc<ClientConfig>, TlsSetupError> {
    let mut roots = RootCertStore::empty();
    let ca = options.ca.clone().unwrap_or_else(|| PathBuf::from(SYSTEM_CA_BUNDLE));
    for cert in load_certificates(&ca)? {
        // A bundle may hold certificates rustls cannot use; skip those.
        let _ = roots.add(cert);
    }
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let config = match (&options.client_cert, &options.client_key) {
        (Some(cert), Some(key)) => builder.with_client_auth_cert(load_certificates(cert)?, load_private_key(key)?)?,
        (None, None) => builder.with_no_client_auth(),
        _ => return Err(TlsSetupError::HalfClientIdentity),
    };
    Ok(Arc::new(config))
}

/// A server config presenting `cert` (chain) and `key`; with `client_ca`,
/// clients must present a certificate that CA signed (mutual TLS).
pub fn server_config(cert: &Path, key: &Path, client_ca: Option<&Path>) -> Result<Arc<ServerConfig>, TlsSetupError> {
    let builder = ServerConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in load_certificates(ca)? {
                roots.add(cert)?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| TlsSetupError::Pem { path: ca.display().to_string(), reason: e.to_string() })?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(builder.with_single_cert(load_certificates(cert)?, load_private_key(key)?)?))
}

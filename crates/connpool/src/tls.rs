//! rustls client configuration shared by the TLS features (`postgres-rustls`, `redis-rustls`,
//! `http-rustls`): which certificate authorities to trust.

use std::fmt;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// Root certificates from PEM text (one or more `CERTIFICATE` blocks): a private CA, or a cloud
/// provider's bundle (RDS, Cloud SQL).
///
/// # Errors
/// [`TlsError`] if the text holds no certificate, or one that does not parse.
pub fn tls_roots(pem: &[u8]) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| TlsError(format!("bad PEM certificate: {e}")))?;
        roots.add(cert).map_err(|e| TlsError(format!("unusable root certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(TlsError("no certificate in the PEM text".into()));
    }
    Ok(roots)
}

/// The operating system's root certificates.
///
/// # Errors
/// [`TlsError`] if none could be loaded.
pub fn tls_native_roots() -> Result<RootCertStore, TlsError> {
    let loaded = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(loaded.certs);
    if added == 0 {
        return Err(TlsError(format!(
            "no system root certificate could be loaded ({} errors)",
            loaded.errors.len()
        )));
    }
    Ok(roots)
}

/// A client configuration trusting `roots` (no client certificate), with rustls's defaults.
pub fn tls_client_config(roots: RootCertStore) -> rustls::ClientConfig {
    rustls::ClientConfig::builder().with_root_certificates(Arc::new(roots)).with_no_client_auth()
}

/// Certificates that could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsError(String);

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsError {}

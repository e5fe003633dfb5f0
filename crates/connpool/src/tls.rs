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
        let cert = cert.map_err(TlsError::Pem)?;
        roots.add(cert).map_err(TlsError::Certificate)?;
    }
    if roots.is_empty() {
        return Err(TlsError::NoCertificate);
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
        return Err(TlsError::NoSystemRoots { errors: loaded.errors.len() });
    }
    Ok(roots)
}

/// A client configuration trusting `roots` (no client certificate), with rustls's defaults.
pub fn tls_client_config(roots: RootCertStore) -> rustls::ClientConfig {
    rustls::ClientConfig::builder().with_root_certificates(Arc::new(roots)).with_no_client_auth()
}

/// Certificates that could not be loaded.
#[derive(Debug)]
#[non_exhaustive]
pub enum TlsError {
    /// The PEM text does not parse (the source says where and why).
    Pem(rustls::pki_types::pem::Error),
    /// A certificate parsed but cannot serve as a root (the source says why).
    Certificate(rustls::Error),
    /// The PEM text holds no `CERTIFICATE` block.
    NoCertificate,
    /// The operating system's store gave no usable root certificate.
    NoSystemRoots {
        /// How many errors loading the store reported.
        errors: usize,
    },
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pem(_) => f.write_str("bad PEM certificate"),
            Self::Certificate(_) => f.write_str("unusable root certificate"),
            Self::NoCertificate => f.write_str("no certificate in the PEM text"),
            Self::NoSystemRoots { errors } => {
                write!(f, "no system root certificate could be loaded ({errors} errors)")
            }
        }
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Pem(error) => Some(error),
            Self::Certificate(error) => Some(error),
            Self::NoCertificate | Self::NoSystemRoots { .. } => None,
        }
    }
}

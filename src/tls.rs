//! TLS settings: extra trusted roots, the platform verifier, a client certificate,
//! and what a TLS failure is called.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig};

use crate::error::{ConfigError, ErrorKind, FetchError};

/// PEM text as given; shared, so that cloning a builder copies no certificate.
type Pem = Arc<[u8]>;

/// The TLS settings of a builder, kept as given until `build` checks them.
#[derive(Clone, Default)]
pub(crate) struct TlsOptions {
    /// Each PEM given to `tls_root_certs_pem`.
    roots_pem: Vec<Pem>,
    platform_verifier: bool,
    skip_env_roots: bool,
    /// The chain and the key.
    client_cert: Option<(Pem, Pem)>,
}

impl fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key, nor anything else read from the PEMs.
        f.debug_struct("TlsOptions")
            .field("extra_root_pems", &self.roots_pem.len())
            .field("platform_verifier", &self.platform_verifier)
            .field("env_roots", &!self.skip_env_roots)
            .field("client_cert", &self.client_cert.is_some())
            .finish()
    }
}

impl TlsOptions {
    // The setters of the builder's `tls_*` methods, which document them.
    pub(crate) fn add_roots_pem(&mut self, pem: &[u8]) {
        self.roots_pem.push(Arc::from(pem));
    }

    pub(crate) fn set_env_roots(&mut self, on: bool) {
        self.skip_env_roots = !on;
    }

    pub(crate) fn set_platform_verifier(&mut self, on: bool) {
        self.platform_verifier = on;
    }

    pub(crate) fn set_client_cert(&mut self, chain_pem: &[u8], key_pem: &[u8]) {
        self.client_cert = Some((Arc::from(chain_pem), Arc::from(key_pem)));
    }

    /// ureq's TLS configuration for these settings and the URL `template`: ureq's
    /// default when none is set.
    pub(crate) fn config(&self, template: &str) -> Result<TlsConfig, ConfigError> {
        let mut builder = TlsConfig::builder();
        if let Some((chain, key)) = &self.client_cert {
            builder = builder.client_cert(Some(client_cert(chain, key)?));
        }
        let mut extra = Vec::new();
        for pem in &self.roots_pem {
            let roots = root_certificates(pem).map_err(ConfigError::InvalidRootCertificates)?;
            if roots.is_empty() {
                return Err(ConfigError::InvalidRootCertificates(NO_CERTIFICATE.into()));
            }
            extra.extend(roots);
        }
        if self.platform_verifier {
            if !extra.is_empty() {
                return Err(ConfigError::PlatformVerifierWithRoots);
            }
            return Ok(builder.root_certs(RootCerts::PlatformVerifier).build());
        }
        // A bad variable meant for other programs need not fail an http client.
        let https = template
            .get(..8)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"));
        if https && !self.skip_env_roots {
            extra.extend(env_roots()?);
        }
        if !extra.is_empty() {
            // ureq takes either its built-in roots or a list: the list is both.
            let roots: Vec<_> = default_roots().chain(extra).collect();
            builder = builder.root_certs(RootCerts::from(roots));
        }
        Ok(builder.build())
    }
}

/// ureq's built-in roots as certificates, less those that Mozilla trusts for some names
/// only (one, a national CA): a certificate carries no constraint it was not issued
/// with, so such a root is left out rather than trusted for every name.
fn default_roots() -> impl Iterator<Item = Certificate<'static>> {
    let constrained: Vec<_> = webpki_roots::TLS_SERVER_ROOTS
        .iter()
        .filter(|anchor| anchor.name_constraints.is_some())
        .map(|anchor| &anchor.subject_public_key_info)
        .collect();
    webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .filter(move |der| {
            let mut one = rustls::RootCertStore::empty();
            one.add((*der).clone()).is_ok()
                && !constrained.contains(&&one.roots[0].subject_public_key_info)
        })
        .map(|der| Certificate::from_der(der.as_ref()))
}

const NO_CERTIFICATE: &str = "no certificate found (expected a PEM BEGIN CERTIFICATE block)";

/// The certificates in `pem`, each checked to be usable as a trust anchor; empty if
/// there is none.
fn root_certificates(pem: &[u8]) -> Result<Vec<Certificate<'static>>, String> {
    let certs = pem_certificates(pem)?;
    let mut store = rustls::RootCertStore::empty();
    for (n, cert) in certs.iter().enumerate() {
        store.add(cert.clone()).map_err(|e| {
            format!(
                "certificate {} of {} is not a valid X.509 certificate: {e}",
                n + 1,
                certs.len()
            )
        })?;
    }
    Ok(certs
        .iter()
        .map(|der| Certificate::from_der(der).to_owned())
        .collect())
}

/// The certificates in `pem` (read from `path`) that can be trust anchors: as
/// OpenSSL does, a system bundle's odd certificate is passed over, not fatal.
fn usable_roots(pem: &[u8], path: &Path) -> Result<Vec<Certificate<'static>>, String> {
    let mut store = rustls::RootCertStore::empty();
    let mut roots = Vec::new();
    for cert in pem_certificates(pem)? {
        match store.add(cert.clone()) {
            Ok(()) => roots.push(Certificate::from_der(&cert).to_owned()),
            Err(e) => log::warn!("certificate in {} passed over: {e}", path.display()),
        }
    }
    Ok(roots)
}

fn pem_certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| malformed(&e))
}

/// A PEM error in words, without quoting the input (which may be a key).
fn malformed(error: &pem::Error) -> String {
    let what = match error {
        pem::Error::MissingSectionEnd { .. } => "a section has no END line".to_owned(),
        pem::Error::IllegalSectionStart { .. } => "a BEGIN line is malformed".to_owned(),
        pem::Error::Base64Decode(e) => format!("bad base64 ({e})"),
        pem::Error::SectionTooLarge => "a section is larger than 256 MB".to_owned(),
        other => other.to_string(),
    };
    format!("malformed PEM: {what}")
}

/// The client certificate, checked as the TLS library will use it: ureq panics on a
/// key that does not load or match, so that is found out here instead.
fn client_cert(chain_pem: &[u8], key_pem: &[u8]) -> Result<ClientCert, ConfigError> {
    let chain = pem_certificates(chain_pem).map_err(ConfigError::InvalidClientCertificate)?;
    if chain.is_empty() {
        return Err(ConfigError::InvalidClientCertificate(NO_CERTIFICATE.into()));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| {
        ConfigError::InvalidClientKey(match e {
            pem::Error::NoItemsFound => "no private key found (expected a PEM BEGIN PRIVATE KEY, \
                 BEGIN RSA PRIVATE KEY or BEGIN EC PRIVATE KEY block)"
                .to_owned(),
            other => malformed(&other),
        })
    })?;
    // The provider ureq picks: the process default, else ring.
    let provider = CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
    rustls::sign::CertifiedKey::from_der(chain.clone(), key, &provider).map_err(|e| {
        ConfigError::InvalidClientKey(match e {
            rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
                "does not match the client certificate".to_owned()
            }
            other => format!("cannot be used: {other}"),
        })
    })?;

    let certs: Vec<_> = chain
        .iter()
        .map(|der| Certificate::from_der(der).to_owned())
        .collect();
    let key = PrivateKey::from_pem(key_pem)
        .map_err(|e| ConfigError::InvalidClientKey(format!("cannot be used: {e}")))?;
    Ok(ClientCert::new_with_certs(&certs, key))
}

/// The certificates of `SSL_CERT_FILE` and `SSL_CERT_DIR`, if set.
fn env_roots() -> Result<Vec<Certificate<'static>>, ConfigError> {
    let mut roots = Vec::new();
    if let Some(file) = env_path("SSL_CERT_FILE") {
        let path = PathBuf::from(file);
        let fail = |reason| file_error("SSL_CERT_FILE", &path, reason);
        let pem = std::fs::read(&path).map_err(|e| fail(format!("cannot read: {e}")))?;
        let certs = usable_roots(&pem, &path).map_err(fail)?;
        if certs.is_empty() {
            return Err(fail(NO_CERTIFICATE.into()));
        }
        roots.extend(certs);
    }
    if let Some(dirs) = env_path("SSL_CERT_DIR") {
        let mut seen = HashSet::new();
        for dir in std::env::split_paths(&dirs).filter(|d| !d.as_os_str().is_empty()) {
            roots.extend(dir_roots(&dir, &mut seen)?);
        }
    }
    Ok(roots)
}

fn env_path(name: &str) -> Option<OsString> {
    std::env::var_os(name).filter(|value| !value.is_empty())
}

/// The certificates in the files of `dir`, as OpenSSL's `CApath`: every file is read
/// once, however many links (such as `openssl rehash`'s hash names) lead to it.
fn dir_roots(
    dir: &Path,
    seen: &mut HashSet<PathBuf>,
) -> Result<Vec<Certificate<'static>>, ConfigError> {
    let fail = |path: &Path, reason| file_error("SSL_CERT_DIR", path, reason);
    let entries = std::fs::read_dir(dir).map_err(|e| fail(dir, format!("cannot read: {e}")))?;
    let mut paths = entries
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(dir, format!("cannot read: {e}")))?;
    paths.sort();
    let mut roots = Vec::new();
    for path in paths {
        // Dangling links and subdirectories are skipped.
        let Ok(real) = std::fs::canonicalize(&path) else {
            continue;
        };
        if !real.is_file() || !seen.insert(real) {
            continue;
        }
        let pem = std::fs::read(&path).map_err(|e| fail(&path, format!("cannot read: {e}")))?;
        roots.extend(usable_roots(&pem, &path).map_err(|reason| fail(&path, reason))?);
    }
    Ok(roots)
}

fn file_error(variable: &str, path: &Path, reason: String) -> ConfigError {
    ConfigError::CertificateFile {
        variable: variable.to_owned(),
        path: path.display().to_string(),
        reason,
    }
}

/// The fetch error for a request that failed in TLS, or the error back if it did not.
///
/// rustls reports through `io::Error`, whose `source()` skips the error it wraps: it
/// is taken out and kept as the source itself, so that the chain shows it. Not
/// retried: another try meets the same certificates.
pub(crate) fn classify(error: ureq::Error) -> Result<FetchError, ureq::Error> {
    let tls = match error {
        ureq::Error::Rustls(tls) => tls,
        ureq::Error::Io(io) if io.get_ref().is_some_and(|e| e.is::<rustls::Error>()) => {
            let inner = io.into_inner().expect("checked above");
            *inner.downcast::<rustls::Error>().expect("checked above")
        }
        other => return Err(other),
    };
    Ok(FetchError::new(ErrorKind::Transport)
        .with_description(format!("TLS: {}", cause(&tls)))
        .with_source(tls))
}

/// What went wrong, in a few words; the error itself says more.
fn cause(error: &rustls::Error) -> &'static str {
    use rustls::{AlertDescription as A, CertificateError as C, Error as E};
    match error {
        E::InvalidCertificate(C::UnknownIssuer) => "server certificate has an unknown issuer",
        E::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. }) => {
            "server certificate is not valid for this host name"
        }
        E::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
            "server certificate has expired"
        }
        E::InvalidCertificate(C::NotValidYet | C::NotValidYetContext { .. }) => {
            "server certificate is not valid yet"
        }
        E::InvalidCertificate(C::Revoked) => "server certificate is revoked",
        E::InvalidCertificate(_) => "server certificate is invalid",
        E::AlertReceived(A::CertificateRequired) => "server requires a client certificate",
        E::AlertReceived(
            A::BadCertificate
            | A::UnsupportedCertificate
            | A::CertificateRevoked
            | A::CertificateExpired
            | A::CertificateUnknown
            | A::UnknownCA
            | A::AccessDenied,
        ) => "server refused the client certificate",
        _ => "handshake failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = "https://api.test/users/{id}";

    #[test]
    fn no_settings_keep_ureqs_defaults() {
        let config = TlsOptions {
            skip_env_roots: true,
            ..TlsOptions::default()
        }
        .config(TEMPLATE)
        .unwrap();
        assert!(matches!(config.root_certs(), RootCerts::WebPki));
        assert!(config.client_cert().is_none());
    }

    #[test]
    fn the_defaults_are_ureqs_roots_less_the_constrained_ones() {
        let constrained = webpki_roots::TLS_SERVER_ROOTS
            .iter()
            .filter(|anchor| anchor.name_constraints.is_some())
            .count();
        assert_eq!(
            default_roots().count() + constrained,
            webpki_roots::TLS_SERVER_ROOTS.len()
        );
        assert_eq!(
            webpki_root_certs::TLS_SERVER_ROOT_CERTS.len(),
            webpki_roots::TLS_SERVER_ROOTS.len()
        );
    }

    #[test]
    fn pem_without_certificate_is_refused() {
        let options = TlsOptions {
            roots_pem: vec![Arc::from(&b"hello"[..])],
            ..TlsOptions::default()
        };
        assert_eq!(
            options.config(TEMPLATE).unwrap_err(),
            ConfigError::InvalidRootCertificates(NO_CERTIFICATE.into())
        );
    }

    #[test]
    fn malformed_pem_is_named_without_quoting_it() {
        let pem = b"-----BEGIN CERTIFICATE-----\nc2VjcmV0!!\n-----END CERTIFICATE-----\n";
        let options = TlsOptions {
            roots_pem: vec![Arc::from(&pem[..])],
            ..TlsOptions::default()
        };
        let ConfigError::InvalidRootCertificates(reason) = options.config(TEMPLATE).unwrap_err()
        else {
            panic!("not a root certificate error");
        };
        assert!(reason.starts_with("malformed PEM: bad base64"), "{reason}");
        assert!(!reason.contains("c2VjcmV0"), "{reason}");
    }

    #[test]
    fn a_block_that_is_not_x509_is_refused() {
        let pem = b"-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n";
        let options = TlsOptions {
            roots_pem: vec![Arc::from(&pem[..])],
            ..TlsOptions::default()
        };
        let ConfigError::InvalidRootCertificates(reason) = options.config(TEMPLATE).unwrap_err()
        else {
            panic!("not a root certificate error");
        };
        assert!(reason.contains("not a valid X.509 certificate"), "{reason}");
    }

    #[test]
    fn debug_shows_no_key() {
        let options = TlsOptions {
            client_cert: Some((Arc::from(&b"chain"[..]), Arc::from(&b"SECRET"[..]))),
            ..TlsOptions::default()
        };
        let shown = format!("{options:?}");
        assert!(
            !shown.contains("SECRET") && !shown.contains("83, 69"),
            "{shown}"
        );
    }

    #[test]
    fn causes_are_named() {
        use rustls::CertificateError as C;
        let named = |e| cause(&rustls::Error::InvalidCertificate(e));
        assert_eq!(
            named(C::UnknownIssuer),
            "server certificate has an unknown issuer"
        );
        assert_eq!(named(C::Expired), "server certificate has expired");
        assert_eq!(
            cause(&rustls::Error::AlertReceived(
                rustls::AlertDescription::CertificateRequired
            )),
            "server requires a client certificate"
        );
    }

    #[test]
    fn a_rustls_error_inside_io_becomes_the_source() {
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        let error = classify(ureq::Error::Io(io)).expect("a TLS error");
        assert_eq!(
            error.to_string(),
            "TLS: server certificate has an unknown issuer"
        );
        let source = std::error::Error::source(&error).expect("a source");
        assert!(source.is::<rustls::Error>());

        let plain = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(classify(ureq::Error::Io(plain)).is_err());
    }
}

//! The TLS flags of `fanout fetch`: extra roots, the system's roots, a client
//! certificate, and which file a refused certificate came from.

use std::path::{Path, PathBuf};

use clap::Args;
use fanout::{BuildError, ConfigError, FanOutClientBuilder};

use crate::UsageError;

/// TLS settings, for https:// templates.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "TLS")]
pub struct TlsArgs {
    /// Also trust the CA certificates in this PEM file.
    ///
    /// They are added to the built-in roots (Mozilla's), as are the certificates in
    /// the files named by SSL_CERT_FILE and SSL_CERT_DIR, as curl and OpenSSL read
    /// them.
    #[arg(long, value_name = "FILE")]
    pub cacert: Option<PathBuf>,

    /// Present this client certificate (mutual TLS); needs --key.
    ///
    /// A PEM file: the certificate, then any intermediate ones.
    #[arg(long, value_name = "FILE", requires = "key")]
    pub cert: Option<PathBuf>,

    /// The private key of --cert (PEM, not encrypted).
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,

    /// Verify servers with the system's trust store instead of the built-in roots.
    ///
    /// SSL_CERT_FILE and SSL_CERT_DIR, if set, then replace the system's store, as in
    /// OpenSSL. Not with --cacert.
    #[arg(long, conflicts_with = "cacert")]
    pub platform_roots: bool,
}

impl TlsArgs {
    /// `builder` with these settings; a file that cannot be read is a usage error.
    pub fn configure(
        &self,
        mut builder: FanOutClientBuilder,
    ) -> Result<FanOutClientBuilder, UsageError> {
        if let Some(path) = &self.cacert {
            builder = builder.tls_root_certs_pem(read("--cacert", path)?);
        }
        if let (Some(cert), Some(key)) = (&self.cert, &self.key) {
            builder = builder.tls_client_cert_pem(read("--cert", cert)?, read("--key", key)?);
        }
        Ok(builder.tls_platform_verifier(self.platform_roots))
    }

    /// The flag and file that `error` is about, such as `--cacert ca.pem`, if it is
    /// about one of them.
    pub fn file_at_fault(&self, error: &BuildError) -> Option<String> {
        let BuildError::Config(error) = error else {
            return None;
        };
        let (flag, path) = match error {
            ConfigError::InvalidRootCertificates(_) => ("--cacert", self.cacert.as_ref()?),
            ConfigError::InvalidClientCertificate(_) => ("--cert", self.cert.as_ref()?),
            ConfigError::InvalidClientKey(_) => ("--key", self.key.as_ref()?),
            _ => return None,
        };
        Some(format!("{flag} {}", path.display()))
    }
}

fn read(flag: &str, path: &Path) -> Result<Vec<u8>, UsageError> {
    std::fs::read(path)
        .map_err(|e| UsageError::new(format!("{flag} {}: cannot read: {e}", path.display())))
}

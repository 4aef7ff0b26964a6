//! `TlsServer`: the test server behind TLS, with a CA made for the test (rcgen) and
//! rustls on 127.0.0.1; optionally a server certificate for the wrong name, an
//! expired one, or a required client certificate.

use std::io::{self, Read};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection};

use crate::reply::Reply;
use crate::server::{Builder, Handler, Request, Serve, Server, Shared, lock, serve_http};

/// A certificate authority that exists for one test.
pub struct TestCa {
    cert: rcgen::Certificate,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate signed by a [`TestCa`], with its private key.
#[derive(Debug)]
pub struct Issued {
    /// The certificate, as PEM.
    pub cert_pem: String,
    /// Its private key, as PEM (PKCS #8).
    pub key_pem: String,
    cert_der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

impl TestCa {
    /// A new CA called `name`, with a key of its own.
    ///
    /// # Panics
    /// If rcgen cannot make the key or the certificate.
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA certificate");
        TestCa {
            cert,
            issuer: Issuer::new(params, key),
        }
    }

    /// The CA's certificate, as PEM.
    pub fn cert_pem(&self) -> String {
        self.cert.pem()
    }

    /// A server certificate for `names` (an IP address becomes an IP address name).
    pub fn server_cert(&self, names: &[&str], expired: bool) -> Issued {
        self.issue(names, ExtendedKeyUsagePurpose::ServerAuth, expired)
    }

    /// A client certificate, for mutual TLS.
    pub fn client_cert(&self) -> Issued {
        self.issue(&["client.test"], ExtendedKeyUsagePurpose::ClientAuth, false)
    }

    fn issue(&self, names: &[&str], usage: ExtendedKeyUsagePurpose, expired: bool) -> Issued {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("certificate params");
        params
            .distinguished_name
            .push(DnType::CommonName, "fanout test");
        params.extended_key_usages = vec![usage];
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("certificate");
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().clone(),
            key_der: key.serialize_der(),
        }
    }
}

/// What the server's TLS looks like.
#[derive(Debug, Clone)]
pub struct TlsServerConfig {
    /// The names the server certificate is for.
    pub names: Vec<&'static str>,
    /// A certificate that expired in 2021.
    pub expired: bool,
    /// Refuse clients without a certificate signed by the CA.
    pub require_client_cert: bool,
    /// How long the server holds each client hello before it answers: a server far
    /// away, or a busy one.
    pub handshake_delay: Duration,
}

impl Default for TlsServerConfig {
    fn default() -> Self {
        TlsServerConfig {
            names: vec!["127.0.0.1", "localhost"],
            expired: false,
            require_client_cert: false,
            handshake_delay: Duration::ZERO,
        }
    }
}

/// A test [`Server`] that speaks HTTPS only.
pub struct TlsServer {
    server: Server,
    ca: TestCa,
    refused: Arc<Mutex<Vec<String>>>,
}

impl TlsServer {
    /// An HTTPS server with a certificate for 127.0.0.1 and localhost.
    pub fn start(handler: impl Fn(Option<u64>) -> Reply + Send + Sync + 'static) -> Self {
        Self::start_with(TlsServerConfig::default(), handler)
    }

    /// An HTTPS server as `config` says.
    ///
    /// # Panics
    /// If the CA, the certificate or the server cannot be made.
    pub fn start_with(
        config: TlsServerConfig,
        handler: impl Fn(Option<u64>) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let answer = move |request: &Request<'_>| handler(request.id()).answer(request);
        Server::builder()
            .record_arrivals()
            .start_tls(config, answer)
            .expect("start the TLS test server")
    }

    /// `https://127.0.0.1:PORT/users/{id}`
    pub fn template(&self) -> String {
        format!("https://{}/users/{{id}}", self.server.addr())
    }

    /// The same on `host`, such as `localhost`.
    pub fn template_on(&self, host: &str) -> String {
        format!("https://{host}:{}/users/{{id}}", self.server.addr().port())
    }

    /// The CA that signed the server certificate, as PEM.
    pub fn ca_pem(&self) -> String {
        self.ca.cert_pem()
    }

    /// A new client certificate signed by the server's CA.
    pub fn client_cert(&self) -> Issued {
        self.ca.client_cert()
    }

    /// Why each refused handshake failed, as the server saw it.
    pub fn refused(&self) -> Vec<String> {
        lock(&self.refused).clone()
    }

    /// The server underneath, for its arrivals and counts.
    pub fn server(&self) -> &Server {
        &self.server
    }
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsServer")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl Builder {
    /// Starts the server behind TLS as `config` says, with a CA of its own; `handler`
    /// answers every request.
    ///
    /// # Panics
    /// If rcgen or rustls cannot make the CA, the certificate or the configuration.
    pub fn start_tls(
        self,
        config: TlsServerConfig,
        handler: impl Handler,
    ) -> io::Result<TlsServer> {
        let ca = TestCa::new("fanout test CA");
        let leaf = ca.server_cert(&config.names, config.expired);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .expect("protocol versions");
        let builder = if config.require_client_cert {
            let mut roots = RootCertStore::empty();
            roots.add(ca.cert.der().clone()).expect("CA as a root");
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .expect("client verifier");
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf.key_der.clone()));
        let mut tls = builder
            .with_single_cert(vec![leaf.cert_der.clone()], key)
            .expect("server certificate");
        // No session tickets: making them is work the server would do between the
        // client's last handshake message and its first request, and the first
        // request's arrival would be stamped late by it.
        tls.send_tls13_tickets = 0;
        let tls = Arc::new(tls);

        let refused = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&refused);
        let delay = config.handshake_delay;
        let serve = move |shared: &Shared, tcp: TcpStream| {
            let _ = tcp.set_nodelay(true);
            let Ok(peer) = tcp.peer_addr() else { return };
            let Ok(conn) = ServerConnection::new(Arc::clone(&tls)) else {
                return;
            };
            let mut stream = rustls::StreamOwned::new(conn, tcp);
            if !delay.is_zero() {
                // A test server may sleep: it plays a slow handshake.
                std::thread::sleep(delay);
            }
            // The handshake first, so that a refused client is seen here.
            while stream.conn.is_handshaking() {
                if let Err(e) = stream.conn.complete_io(&mut stream.sock) {
                    lock(&seen).push(e.to_string());
                    drain(&mut stream.sock);
                    return;
                }
            }
            serve_http(shared, stream, peer);
        };
        let serve: Arc<Serve> = Arc::new(serve);
        let server = self.start_serving(Box::new(handler), serve)?;
        Ok(TlsServer {
            server,
            ca,
            refused,
        })
    }
}

/// Reads what the client still sends (up to its close, or a second) after the alert:
/// closing with unread data would reset the connection, and the client might see the
/// reset instead of the alert.
fn drain(tcp: &mut TcpStream) {
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(1)));
    let mut sink = [0u8; 4096];
    while matches!(tcp.read(&mut sink), Ok(n) if n > 0) {}
}

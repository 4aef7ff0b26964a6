//! HTTPS against a private CA: trusted when its root is added, and otherwise a TLS
//! error that names the cause, keeps the rustls error as its source and is not
//! retried; mutual TLS; certificates the builder refuses.

use std::error::Error as _;
use std::time::Duration;

use fanout::{BuildError, ConfigError, ErrorKind, FanOutClient, FanOutClientBuilder, FetchError};
use rustls::{AlertDescription, CertificateError};
use testserver::{Reply, TestCa, TlsServer, TlsServerConfig};

fn echo(id: Option<u64>) -> Reply {
    Reply::ok(format!("user-{}", id.unwrap_or(0)))
}

/// A client of `template` with a short timeout, and the environment's roots left out
/// so that the test sees only what it configures.
fn builder(template: &str) -> FanOutClientBuilder {
    FanOutClient::builder(template)
        .no_rate_limit()
        .timeout(Duration::from_secs(5))
        .retry_backoff(Duration::from_millis(1), Duration::from_millis(5))
        .tls_env_roots(false)
}

/// The rustls error in `err`'s source chain.
fn rustls_error(err: &FetchError) -> Option<&rustls::Error> {
    let mut source = err.source();
    while let Some(e) = source {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        source = e.source();
    }
    None
}

/// Fetches ID 1 with `client`, which must fail in TLS at once, without a retry.
fn tls_failure(client: &FanOutClient) -> (FetchError, rustls::Error) {
    let err = client.fetch_all([1]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transport, "{err}");
    assert_eq!(err.user_id(), Some(1), "{err}");
    assert_eq!(
        err.attempts(),
        1,
        "a certificate problem is not retried: {err}"
    );
    assert!(err.to_string().contains("TLS"), "{err}");
    let tls = rustls_error(&err)
        .expect("the rustls error in the source chain")
        .clone();
    (err, tls)
}

#[test]
fn a_private_ca_added_to_the_roots_is_trusted() {
    let server = TlsServer::start(echo);
    for template in [server.template(), server.template_on("localhost")] {
        let client = builder(&template)
            .tls_root_certs_pem(server.ca_pem())
            .build()
            .unwrap();
        let bodies = client.fetch_all([1, 2, 3]).unwrap();
        assert_eq!(&bodies[2], b"user-2", "{template}");
    }
    assert_eq!(server.server().request_count(), 6);
}

#[test]
fn roots_are_added_to_the_default_ones_not_in_place_of_them() {
    let server = TlsServer::start(echo);
    let other = TestCa::new("another CA");
    // Two calls, and the right CA in the second: every call adds.
    let client = builder(&server.template())
        .tls_root_certs_pem(other.cert_pem())
        .tls_root_certs_pem(server.ca_pem())
        .build()
        .unwrap();
    assert_eq!(&client.fetch_all([4]).unwrap()[4], b"user-4");
}

#[test]
fn an_unknown_issuer_is_a_clear_tls_error() {
    let server = TlsServer::start(echo);
    let client = builder(&server.template()).build().unwrap();
    let (err, tls) = tls_failure(&client);
    assert!(
        matches!(
            tls,
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
        ),
        "{tls:?}"
    );
    assert!(err.to_string().contains("unknown issuer"), "{err}");
    assert_eq!(server.server().request_count(), 0);
}

#[test]
fn a_certificate_for_another_name_is_refused() {
    let server = TlsServer::start_with(
        TlsServerConfig {
            names: vec!["other.test"],
            ..TlsServerConfig::default()
        },
        echo,
    );
    let client = builder(&server.template())
        .tls_root_certs_pem(server.ca_pem())
        .build()
        .unwrap();
    let (err, tls) = tls_failure(&client);
    assert!(
        matches!(
            tls,
            rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
            )
        ),
        "{tls:?}"
    );
    assert!(
        err.to_string().contains("not valid for this host name"),
        "{err}"
    );
}

#[test]
fn an_expired_certificate_is_refused() {
    let server = TlsServer::start_with(
        TlsServerConfig {
            expired: true,
            ..TlsServerConfig::default()
        },
        echo,
    );
    let client = builder(&server.template())
        .tls_root_certs_pem(server.ca_pem())
        .build()
        .unwrap();
    let (err, tls) = tls_failure(&client);
    assert!(
        matches!(
            tls,
            rustls::Error::InvalidCertificate(
                CertificateError::Expired | CertificateError::ExpiredContext { .. }
            )
        ),
        "{tls:?}"
    );
    assert!(err.to_string().contains("expired"), "{err}");
}

fn mutual_tls_server() -> TlsServer {
    TlsServer::start_with(
        TlsServerConfig {
            require_client_cert: true,
            ..TlsServerConfig::default()
        },
        echo,
    )
}

#[test]
fn mutual_tls_with_a_client_certificate_is_accepted() {
    let server = mutual_tls_server();
    let client_cert = server.client_cert();
    let client = builder(&server.template())
        .tls_root_certs_pem(server.ca_pem())
        .tls_client_cert_pem(&client_cert.cert_pem, &client_cert.key_pem)
        .build()
        .unwrap();
    assert_eq!(&client.fetch_all([5]).unwrap()[5], b"user-5");
    assert!(server.refused().is_empty(), "{:?}", server.refused());
}

#[test]
fn mutual_tls_without_a_client_certificate_is_refused() {
    let server = mutual_tls_server();
    let client = builder(&server.template())
        .tls_root_certs_pem(server.ca_pem())
        .build()
        .unwrap();
    let (err, tls) = tls_failure(&client);
    assert!(
        matches!(
            tls,
            rustls::Error::AlertReceived(AlertDescription::CertificateRequired)
        ),
        "{tls:?}"
    );
    assert!(err.to_string().contains("client certificate"), "{err}");
    assert_eq!(server.server().request_count(), 0);
    assert_eq!(server.refused().len(), 1, "{:?}", server.refused());
}

#[test]
fn a_client_certificate_from_another_ca_is_refused() {
    let server = mutual_tls_server();
    let stranger = TestCa::new("another CA").client_cert();
    let client = builder(&server.template())
        .tls_root_certs_pem(server.ca_pem())
        .tls_client_cert_pem(&stranger.cert_pem, &stranger.key_pem)
        .build()
        .unwrap();
    let (err, tls) = tls_failure(&client);
    assert!(matches!(tls, rustls::Error::AlertReceived(_)), "{tls:?}");
    assert!(
        err.to_string().contains("refused the client certificate"),
        "{err}"
    );
}

#[test]
fn bad_certificates_and_keys_are_configuration_errors() {
    let ca = TestCa::new("fanout test CA");
    let mine = ca.client_cert();
    let other = ca.client_cert();
    let build = |b: FanOutClientBuilder| match b.build() {
        Err(BuildError::Config(err)) => err,
        other => panic!("not a configuration error: {other:?}"),
    };
    let template = "https://127.0.0.1:9/users/{id}";

    let err = build(builder(template).tls_root_certs_pem("no PEM here"));
    assert!(
        matches!(err, ConfigError::InvalidRootCertificates(_)),
        "{err}"
    );
    assert!(err.to_string().contains("no certificate found"), "{err}");

    let err = build(builder(template).tls_client_cert_pem(&mine.key_pem, &mine.key_pem));
    assert!(
        matches!(err, ConfigError::InvalidClientCertificate(_)),
        "{err}"
    );

    let err = build(builder(template).tls_client_cert_pem(&mine.cert_pem, &mine.cert_pem));
    assert!(matches!(err, ConfigError::InvalidClientKey(_)), "{err}");
    assert!(err.to_string().contains("no private key found"), "{err}");

    let err = build(builder(template).tls_client_cert_pem(&mine.cert_pem, &other.key_pem));
    assert_eq!(
        err,
        ConfigError::InvalidClientKey("does not match the client certificate".into())
    );

    // A key whose base64 is broken: named, never quoted.
    let broken = other.key_pem.replacen('A', "!", 1);
    let err = build(builder(template).tls_client_cert_pem(&mine.cert_pem, &broken));
    assert!(err.to_string().contains("malformed PEM"), "{err}");
    let body: String = other
        .key_pem
        .lines()
        .nth(1)
        .unwrap()
        .chars()
        .take(16)
        .collect();
    assert!(!err.to_string().contains(&body), "{err}");
    assert!(!format!("{err:?}").contains(&body), "{err:?}");

    let err = build(
        builder(template)
            .tls_platform_verifier(true)
            .tls_root_certs_pem(ca.cert_pem()),
    );
    assert_eq!(err, ConfigError::PlatformVerifierWithRoots);
}

#[test]
fn the_builder_never_shows_the_key() {
    let mine = TestCa::new("fanout test CA").client_cert();
    let builder = builder("https://127.0.0.1:9/users/{id}")
        .tls_client_cert_pem(&mine.cert_pem, &mine.key_pem);
    let shown = format!("{builder:?}");
    let body: String = mine
        .key_pem
        .lines()
        .nth(1)
        .unwrap()
        .chars()
        .take(16)
        .collect();
    assert!(!shown.contains(&body), "{shown}");
    assert!(!shown.contains("PRIVATE KEY"), "{shown}");
}

#[test]
fn the_platform_verifier_does_not_know_a_private_ca() {
    let server = TlsServer::start(echo);
    let client = builder(&server.template())
        .tls_platform_verifier(true)
        .build()
        .unwrap();
    let (_, tls) = tls_failure(&client);
    // A machine with no system certificates at all fails before any certificate.
    assert!(
        matches!(
            tls,
            rustls::Error::InvalidCertificate(_) | rustls::Error::General(_)
        ),
        "{tls:?}"
    );
}

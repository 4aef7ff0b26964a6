//! `fanout fetch` over HTTPS from a private CA: `--cacert`, `SSL_CERT_FILE` and
//! `SSL_CERT_DIR`, mutual TLS with `--cert` and `--key`, and the files it refuses.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{Reply, TestCa, TlsServer, TlsServerConfig, body_of, echo_server, fanout};
use predicates::prelude::*;

fn echo(id: Option<u64>) -> Reply {
    Reply::ok(body_of(id.unwrap_or(0)))
}

/// The summary line of a successful fetch of IDs 1 to 3.
fn three_fetched() -> String {
    let bytes: usize = (1..=3).map(|id| body_of(id).len()).sum();
    format!("{{\"ok\":true,\"count\":3,\"bytes\":{bytes}}}\n")
}

fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, contents).unwrap();
    path
}

#[test]
fn cacert_trusts_a_private_ca() {
    let server = TlsServer::start(echo);
    let dir = tempfile::tempdir().unwrap();
    let ca = write(dir.path(), "ca.pem", &server.ca_pem());
    fanout()
        .args(["fetch", &server.template(), "--ids", "1-3", "--cacert"])
        .arg(&ca)
        .assert()
        .success()
        .stdout(three_fetched());
}

#[test]
fn without_the_ca_the_error_says_tls_and_why() {
    let server = TlsServer::start(echo);
    fanout()
        .args(["fetch", &server.template(), "--ids", "1"])
        .assert()
        .code(1)
        .stdout(
            predicate::str::contains("\"user_id\":1")
                .and(predicate::str::contains("TLS"))
                .and(predicate::str::contains("unknown issuer")),
        );
    assert_eq!(server.server().request_count(), 0);
}

#[test]
fn ssl_cert_file_is_trusted() {
    let server = TlsServer::start(echo);
    let dir = tempfile::tempdir().unwrap();
    let ca = write(dir.path(), "ca.pem", &server.ca_pem());
    fanout()
        .args(["fetch", &server.template(), "--ids", "1-3"])
        .env("SSL_CERT_FILE", &ca)
        .assert()
        .success()
        .stdout(three_fetched());
}

#[test]
fn ssl_cert_dir_is_trusted() {
    let server = TlsServer::start(echo);
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "ca.pem", &server.ca_pem());
    // A file with no certificate in it is skipped, as OpenSSL does.
    write(dir.path(), "README", "certificates for the tests\n");
    fanout()
        .args(["fetch", &server.template(), "--ids", "1-3"])
        .env("SSL_CERT_DIR", dir.path())
        .assert()
        .success()
        .stdout(three_fetched());
}

#[test]
fn ssl_cert_file_is_not_read_for_plain_http() {
    let server = echo_server();
    fanout()
        .args(["fetch", &server.template(), "--ids", "1-3"])
        .env("SSL_CERT_FILE", "/nonexistent/ca.pem")
        .assert()
        .success()
        .stdout(three_fetched());
}

#[test]
fn platform_roots_take_ssl_cert_file_in_place_of_the_systems() {
    let server = TlsServer::start(echo);
    let dir = tempfile::tempdir().unwrap();
    let ca = write(dir.path(), "ca.pem", &server.ca_pem());
    fanout()
        .args([
            "fetch",
            &server.template(),
            "--ids",
            "1-3",
            "--platform-roots",
        ])
        .env("SSL_CERT_FILE", &ca)
        .assert()
        .success()
        .stdout(three_fetched());
}

#[test]
fn mutual_tls_with_cert_and_key() {
    let server = TlsServer::start_with(
        TlsServerConfig {
            require_client_cert: true,
            ..TlsServerConfig::default()
        },
        echo,
    );
    let client = server.client_cert();
    let dir = tempfile::tempdir().unwrap();
    let ca = write(dir.path(), "ca.pem", &server.ca_pem());
    let cert = write(dir.path(), "client.pem", &client.cert_pem);
    let key = write(dir.path(), "client.key", &client.key_pem);
    fanout()
        .args(["fetch", &server.template(), "--ids", "1-3", "--cacert"])
        .arg(&ca)
        .arg("--cert")
        .arg(&cert)
        .arg("--key")
        .arg(&key)
        .assert()
        .success()
        .stdout(three_fetched());

    // Without them, the server refuses, and the error says so.
    fanout()
        .args(["fetch", &server.template(), "--ids", "1", "--cacert"])
        .arg(&ca)
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "server requires a client certificate",
        ));
}

/// A run that must stop with a usage error whose message holds every `expected` part.
struct Case<'a> {
    files: Vec<(&'a str, &'a PathBuf)>,
    ssl_cert_file: Option<&'a PathBuf>,
    expected: Vec<String>,
}

#[test]
fn unusable_files_are_usage_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("fanout test CA");
    let mine = ca.client_cert();
    let other = ca.client_cert();
    let cert = write(dir.path(), "client.pem", &mine.cert_pem);
    let wrong_key = write(dir.path(), "wrong.key", &other.key_pem);
    let empty = write(dir.path(), "empty.pem", "");
    let missing = dir.path().join("missing.pem");
    let template = "https://127.0.0.1:9/users/{id}";
    let base = ["fetch", template, "--ids", "1"];

    let cases = [
        Case {
            files: vec![("--cacert", &missing)],
            ssl_cert_file: None,
            expected: vec!["--cacert".into(), missing.display().to_string()],
        },
        Case {
            files: vec![("--cacert", &empty)],
            ssl_cert_file: None,
            expected: vec![
                format!("--cacert {}", empty.display()),
                "no certificate".into(),
            ],
        },
        Case {
            files: vec![("--cert", &cert), ("--key", &wrong_key)],
            ssl_cert_file: None,
            expected: vec![
                format!("--key {}", wrong_key.display()),
                "does not match".into(),
            ],
        },
        Case {
            files: vec![],
            ssl_cert_file: Some(&missing),
            expected: vec!["SSL_CERT_FILE".into(), missing.display().to_string()],
        },
        Case {
            files: vec![],
            ssl_cert_file: Some(&empty),
            expected: vec!["SSL_CERT_FILE".into(), "no certificate".into()],
        },
    ];
    let key_body: String = other
        .key_pem
        .lines()
        .nth(1)
        .unwrap()
        .chars()
        .take(16)
        .collect();
    for case in cases {
        let mut command = fanout();
        command.args(base);
        for (flag, file) in &case.files {
            command.arg(flag).arg(file);
        }
        if let Some(file) = case.ssl_cert_file {
            command.env("SSL_CERT_FILE", file);
        }
        let output = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(output.stdout.is_empty(), "{stderr}");
        for part in &case.expected {
            assert!(stderr.contains(part.as_str()), "{part:?} not in {stderr}");
        }
        assert!(!stderr.contains(&key_body), "{stderr}");
    }

    // Flags that go together.
    fanout()
        .args(base)
        .arg("--cert")
        .arg(&cert)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--key"));
    fanout()
        .args(base)
        .args(["--platform-roots", "--cacert"])
        .arg(&cert)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--cacert"));
}

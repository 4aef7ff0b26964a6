//! `fanout fetch` through a real proxy (tinyproxy on 127.0.0.1): `--proxy`, the
//! environment's variables as curl reads them, and the ways around a proxy.

mod common;

use common::{RecordingServer, TinyProxy, fanout, response};
use predicates::prelude::*;

fn echo() -> RecordingServer {
    RecordingServer::start(|_| response(&[], b"user"))
}

/// Runs `fanout fetch` of IDs 1-3 from `server` with `args` and `env`, and expects
/// success.
fn fetch(server: &RecordingServer, args: &[&str], env: &[(&str, &str)]) {
    let mut command = fanout();
    command
        .args(["fetch", &server.template(), "--ids", "1-3"])
        .args(args);
    for (name, value) in env {
        command.env(name, value);
    }
    command
        .assert()
        .success()
        .stdout("{\"ok\":true,\"count\":3,\"bytes\":12}\n");
    assert_eq!(server.seen().len(), 3);
}

#[test]
fn proxy_flag_sends_requests_through_the_proxy() {
    let Some(proxy) = TinyProxy::start() else {
        return;
    };
    let server = echo();
    fetch(
        &server,
        &["--proxy", &proxy.url(), "--max-in-flight", "1"],
        &[],
    );
    // One connection, kept alive: one tunnel carried all three requests.
    assert_eq!(proxy.tunnels_to(server.authority()), 1, "{}", proxy.log());
}

#[test]
fn http_proxy_from_the_environment_is_used_for_http() {
    let Some(proxy) = TinyProxy::start() else {
        return;
    };
    for name in ["http_proxy", "all_proxy", "ALL_PROXY"] {
        let server = echo();
        fetch(&server, &["--max-in-flight", "1"], &[(name, &proxy.url())]);
        assert_eq!(proxy.tunnels_to(server.authority()), 1, "{name}");
    }
}

#[test]
fn https_proxy_and_upper_case_http_proxy_are_not_used_for_http() {
    let Some(proxy) = TinyProxy::start() else {
        return;
    };
    for name in ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY"] {
        let server = echo();
        fetch(&server, &[], &[(name, &proxy.url())]);
        assert_eq!(proxy.tunnels_to(server.authority()), 0, "{name}");
    }
}

#[test]
fn https_proxy_is_used_for_https() {
    let Some(proxy) = TinyProxy::start() else {
        return;
    };
    // Not a TLS server: the run fails, after the proxy opened the tunnel to it.
    let server = echo();
    let template = server.template().replace("http://", "https://");
    fanout()
        .args(["fetch", &template, "--ids", "1", "--max-attempts", "1"])
        .env("HTTPS_PROXY", proxy.url())
        .env("http_proxy", "http://127.0.0.1:9")
        .assert()
        .code(1);
    assert_eq!(proxy.tunnels_to(server.authority()), 1, "{}", proxy.log());
    assert!(server.seen()[0].not_http.is_some(), "a TLS handshake");
}

#[test]
fn an_empty_proxy_flag_bypasses_the_environments_proxy() {
    let Some(proxy) = TinyProxy::start() else {
        return;
    };
    let server = echo();
    fetch(&server, &["--proxy", ""], &[("http_proxy", &proxy.url())]);
    assert_eq!(proxy.tunnels_to(server.authority()), 0, "{}", proxy.log());
}

#[test]
fn no_proxy_hosts_are_reached_directly() {
    let Some(proxy) = TinyProxy::start() else {
        return;
    };
    for no_proxy in [
        ("NO_PROXY", "127.0.0.1"),
        ("no_proxy", "example.test, 127.0.0.0/8"),
    ] {
        let server = echo();
        fetch(&server, &[], &[("http_proxy", &proxy.url()), no_proxy]);
        assert_eq!(proxy.tunnels_to(server.authority()), 0, "{no_proxy:?}");
        // Even a proxy given on the command line, as in curl.
        let server = echo();
        fetch(&server, &["--proxy", &proxy.url()], &[no_proxy]);
        assert_eq!(proxy.tunnels_to(server.authority()), 0, "{no_proxy:?}");
    }
    // A list that does not name the host leaves the proxy in use.
    let server = echo();
    fetch(
        &server,
        &["--max-in-flight", "1"],
        &[
            ("http_proxy", &proxy.url()),
            ("NO_PROXY", "localhost,127.0.0.2"),
        ],
    );
    assert_eq!(proxy.tunnels_to(server.authority()), 1, "{}", proxy.log());
}

#[test]
fn an_invalid_proxy_is_a_usage_error_naming_it() {
    let server = echo();
    fanout()
        .args(["fetch", &server.template(), "--ids", "1"])
        .env("ALL_PROXY", "gopher://me:hunter2@proxy.test")
        .assert()
        .code(2)
        .stdout("")
        .stderr(predicates::str::contains(
            "invalid proxy \"gopher://me:***@proxy.test\" (from ALL_PROXY)",
        ))
        .stderr(predicates::str::contains("hunter2").not());
    fanout()
        .args([
            "fetch",
            &server.template(),
            "--ids",
            "1",
            "--proxy",
            "ftp://p",
        ])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("(from proxy)"));
    assert!(server.seen().is_empty());
}

//! Requests through a real proxy (tinyproxy, started by each test on 127.0.0.1), and
//! proxy URLs the builder refuses. The environment's proxy variables are tested
//! through the command line, whose environment a test can set.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};

use fanout::{BuildError, ConfigError, ErrorKind, FanOutClient};
use testserver::{RecordingServer, TinyProxy, raw_server, read_request_head, response};

fn echo() -> RecordingServer {
    RecordingServer::start(|head| {
        let id = head
            .split_whitespace()
            .nth(1)
            .unwrap_or("")
            .rsplit('/')
            .next();
        response(&[], format!("user-{}", id.unwrap_or("")).as_bytes())
    })
}

#[test]
fn requests_go_through_the_proxy_set_on_the_builder() {
    let Some(proxy) = TinyProxy::start() else {
        return;
    };
    let server = echo();
    let client = FanOutClient::builder(server.template())
        .no_rate_limit()
        .max_in_flight(2)
        .proxy(Some(&proxy.url()))
        .build()
        .unwrap();

    let bodies = client.fetch_all([1, 2, 3, 4]).unwrap();

    for id in 1..=4 {
        assert_eq!(bodies[id], format!("user-{id}").into_bytes());
    }
    let seen = server.seen();
    assert_eq!(seen.len(), 4);
    // While the client keeps its connections, each one the server holds ends in the
    // proxy process.
    for request in &seen {
        assert!(
            proxy.owns_socket(request.peer),
            "{} did not come from the proxy",
            request.peer
        );
    }
    // One tunnel per kept-alive connection, no more than the cap in flight.
    let tunnels = proxy.tunnels_to(server.authority());
    assert!(
        (1..=2).contains(&tunnels),
        "{tunnels} tunnels\n{}",
        proxy.log()
    );
}

#[test]
fn an_https_template_is_tunnelled_too() {
    let Some(proxy) = TinyProxy::start() else {
        return;
    };
    // Not a TLS server: it records the handshake that arrives through the tunnel.
    let server = echo();
    let template = server.template().replace("http://", "https://");
    let client = FanOutClient::builder(template)
        .max_attempts(1)
        .proxy(Some(&proxy.url()))
        .build()
        .unwrap();

    let err = client.fetch_all([1]).unwrap_err();

    assert_eq!(err.kind(), ErrorKind::Transport);
    assert_eq!(proxy.tunnels_to(server.authority()), 1, "{}", proxy.log());
    let seen = server.seen();
    let first = seen[0].not_http.as_deref().expect("a TLS handshake");
    assert_eq!(first[0], 0x16, "a TLS handshake record");
}

#[test]
fn no_proxy_on_the_builder_connects_directly() {
    let Some(proxy) = TinyProxy::start() else {
        return;
    };
    let server = echo();
    let client = FanOutClient::builder(server.template())
        .proxy(Some(&proxy.url()))
        .proxy(None)
        .build()
        .unwrap();

    client.fetch_all([1]).unwrap();

    assert_eq!(server.seen().len(), 1);
    assert_eq!(proxy.tunnels_to(server.authority()), 0);
    assert!(!proxy.owns_socket(server.seen()[0].peer));
}

/// Answers the SOCKS5 handshake on `stream` (no authentication, IPv4 targets) and
/// returns the target the client asked for.
fn socks5_handshake(stream: &mut TcpStream) -> std::io::Result<SocketAddr> {
    let mut greeting = [0u8; 2];
    stream.read_exact(&mut greeting)?;
    let mut methods = vec![0u8; usize::from(greeting[1])];
    stream.read_exact(&mut methods)?;
    stream.write_all(&[5, 0])?;
    // VER CMD RSV ATYP=1 ADDR(4) PORT(2)
    let mut request = [0u8; 10];
    stream.read_exact(&mut request)?;
    assert_eq!(request[..4], [5, 1, 0, 1], "a CONNECT to an IPv4 address");
    let ip = Ipv4Addr::new(request[4], request[5], request[6], request[7]);
    let port = u16::from_be_bytes([request[8], request[9]]);
    stream.write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0])?;
    Ok(SocketAddr::from((ip, port)))
}

#[test]
fn a_socks5_proxy_carries_the_requests() {
    // The proxy answers the request itself, once its handshake named the target.
    let targets = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&targets);
    let proxy = raw_server(move |mut stream| {
        let Ok(target) = socks5_handshake(&mut stream) else {
            return;
        };
        seen.lock().unwrap().push(target);
        while read_request_head(&stream).is_some() {
            if stream.write_all(&response(&[], b"via socks")).is_err() {
                return;
            }
        }
    });
    // Nothing listens at the target: only the proxy can answer.
    let client = FanOutClient::builder("http://127.0.0.1:9/users/{id}")
        .max_in_flight(1)
        .proxy(Some(&proxy.replace("http://", "socks5h://")))
        .build()
        .unwrap();

    let bodies = client.fetch_all([1, 2]).unwrap();

    assert_eq!(&bodies[1], b"via socks");
    assert_eq!(*targets.lock().unwrap(), ["127.0.0.1:9".parse().unwrap()]);
}

#[test]
fn an_unreachable_proxy_fails_the_request_not_the_build() {
    let server = echo();
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = FanOutClient::builder(server.template())
        .max_attempts(1)
        .proxy(Some(&format!("http://127.0.0.1:{port}")))
        .build()
        .unwrap();

    let err = client.fetch_all([1]).unwrap_err();

    assert_eq!(err.kind(), ErrorKind::Transport);
    assert!(server.seen().is_empty());
}

#[test]
fn an_invalid_proxy_url_is_a_config_error_naming_it() {
    for url in ["ftp://proxy.test:21", "http://", "http://user:secret@[::1"] {
        let err = FanOutClient::builder("http://api.test/users/{id}")
            .proxy(Some(url))
            .build()
            .unwrap_err();
        let BuildError::Config(ConfigError::InvalidProxy { proxy, origin, .. }) = &err else {
            panic!("{url}: {err:?}");
        };
        assert_eq!(origin, "proxy");
        let message = err.to_string();
        assert!(message.contains(&format!("{proxy:?}")), "{message}");
        assert!(!message.contains("secret"), "{message}");
        assert_eq!(proxy, &url.replace("secret", "***"));
    }
}

//! A hostile downstream: every failure ends in a clear error for the right ID, in
//! bounded time, and the client keeps working.

use std::error::Error as _;
use std::io::Write;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use fanout::{ErrorKind, FanOutClient, FetchError};
use testserver::{raw_server, read_request_head};

/// Fetches ID 7 from `base` with fast retries and a short timeout.
fn fetch_7(base: &str) -> (FetchError, Duration) {
    let client = FanOutClient::builder(format!("{base}/users/{{id}}"))
        .no_rate_limit()
        .timeout(Duration::from_millis(500))
        .retry_backoff(Duration::from_millis(1), Duration::from_millis(5))
        .max_body_bytes(1024 * 1024)
        .build()
        .unwrap();
    let started = Instant::now();
    let err = client.fetch_all([7]).unwrap_err();
    let took = started.elapsed();
    assert_eq!(err.user_id(), Some(7), "{err}");
    (err, took)
}

/// A port on 127.0.0.1 that nothing listens on: bound, then closed.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    listener.local_addr().unwrap().port()
}

/// Closes `stream` with a TCP reset rather than an orderly close.
fn reset(stream: TcpStream) {
    // A zero linger time makes close send RST.
    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
    drop(stream);
}

#[test]
fn reset_before_the_headers_is_a_transport_error_after_retries() {
    let base = raw_server(|stream| {
        let _ = read_request_head(&stream);
        reset(stream);
    });
    let (err, _) = fetch_7(&base);
    assert_eq!(err.kind(), ErrorKind::Transport, "{err}");
    assert_eq!(err.user_id(), Some(7));
    assert_eq!(err.attempts(), 3);
}

#[test]
fn reset_in_the_middle_of_the_body_is_a_transport_error() {
    let base = raw_server(|mut stream| {
        let _ = read_request_head(&stream);
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\nhalf");
        reset(stream);
    });
    let (err, _) = fetch_7(&base);
    assert_eq!(err.kind(), ErrorKind::Transport, "{err}");
    assert_eq!(err.user_id(), Some(7));
    assert_eq!(err.status(), Some(200));
    assert_eq!(
        err.to_string(),
        "user 7: reading the body: connection reset by peer (after 3 attempts)"
    );
}

#[test]
fn a_server_that_never_answers_times_out() {
    let base = raw_server(|stream| {
        let _ = read_request_head(&stream);
        std::thread::sleep(Duration::from_secs(10));
    });
    let (err, took) = fetch_7(&base);
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert_eq!(err.attempts(), 3);
    // Three 500 ms attempts, not ten seconds.
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert_eq!(
        err.to_string(),
        "user 7: timed out reading the response head after 500 ms (after 3 attempts)"
    );
}

#[test]
fn a_body_that_stops_arriving_times_out_reading_the_body() {
    let base = raw_server(|mut stream| {
        let _ = read_request_head(&stream);
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\nhalf");
        std::thread::sleep(Duration::from_secs(10));
    });
    let (err, took) = fetch_7(&base);
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert_eq!(
        err.to_string(),
        "user 7: timed out reading the body after 500 ms (after 3 attempts)"
    );
}

#[test]
fn a_trickled_body_ends_at_the_timeout() {
    let base = raw_server(|mut stream| {
        let _ = read_request_head(&stream);
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n");
        for _ in 0..100_000 {
            if stream.write_all(b"x").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let (err, took) = fetch_7(&base);
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

#[test]
fn an_advertised_huge_body_fails_at_once() {
    let base = raw_server(|mut stream| {
        let _ = read_request_head(&stream);
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10737418240\r\n\r\n");
        // Keep writing: a client that read it all would take minutes and 10 GiB.
        let chunk = vec![b'x'; 64 * 1024];
        while stream.write_all(&chunk).is_ok() {}
    });
    let (err, took) = fetch_7(&base);
    assert_eq!(err.kind(), ErrorKind::TooLarge, "{err}");
    assert_eq!(err.attempts(), 1);
    assert!(took < Duration::from_secs(2), "took {took:?}");
}

#[test]
fn a_body_shorter_than_its_length_is_an_error() {
    let base = raw_server(|mut stream| {
        let _ = read_request_head(&stream);
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nshort");
        // A clean close, not a reset: the body simply ends early.
        let _ = stream.shutdown(Shutdown::Write);
        let _ = read_request_head(&stream);
    });
    let (err, _) = fetch_7(&base);
    assert_eq!(err.kind(), ErrorKind::Transport, "{err}");
    assert_eq!(err.user_id(), Some(7));
}

#[test]
fn garbage_instead_of_http_fails_without_retry() {
    let base = raw_server(|mut stream| {
        let _ = read_request_head(&stream);
        let _ = stream.write_all(b"SSH-2.0-OpenSSH_9.2\r\nnot http at all\r\n\r\n");
        let _ = stream.shutdown(Shutdown::Write);
        let _ = read_request_head(&stream);
    });
    let (err, _) = fetch_7(&base);
    assert_eq!(err.kind(), ErrorKind::Transport, "{err}");
    assert_eq!(err.attempts(), 1);
    let message = err.to_string();
    assert!(
        message.starts_with("user 7: reading the response head: not a valid http response"),
        "{message}"
    );
}

#[test]
fn a_refused_connection_names_connect_the_address_and_the_attempts() {
    let port = closed_port();
    let (err, _) = fetch_7(&format!("http://127.0.0.1:{port}"));
    assert_eq!(err.kind(), ErrorKind::Transport, "{err}");
    assert_eq!(err.attempts(), 3);
    assert_eq!(
        err.to_string(),
        format!("user 7: connect 127.0.0.1:{port}: connection refused (after 3 attempts)")
    );
}

#[test]
fn a_transport_error_keeps_the_error_underneath_as_its_source() {
    let (err, _) = fetch_7(&format!("http://127.0.0.1:{}", closed_port()));
    let source = err.source().expect("a source");
    let Some(ureq::Error::Io(io)) = source.downcast_ref::<ureq::Error>() else {
        panic!("not ureq's I/O error: {source:?}");
    };
    assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused);
}

#[test]
fn a_server_that_does_not_speak_tls_fails_the_tls_handshake() {
    let base = raw_server(|mut stream| {
        let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n");
        let _ = stream.shutdown(Shutdown::Write);
        let _ = read_request_head(&stream);
    });
    let (err, _) = fetch_7(&base.replace("http://", "https://"));
    assert_eq!(err.kind(), ErrorKind::Transport, "{err}");
    let message = err.to_string();
    assert!(message.starts_with("user 7: TLS: "), "{message}");
}

#[test]
fn a_host_that_does_not_resolve_fails_without_retry() {
    // `.invalid` is reserved: it never resolves.
    let (err, took) = fetch_7("http://no-such-host.invalid");
    assert_eq!(err.kind(), ErrorKind::Transport, "{err}");
    assert_eq!(err.attempts(), 1);
    assert!(took < Duration::from_secs(10), "took {took:?}");
    let message = err.to_string();
    assert!(
        message.starts_with("user 7: resolve no-such-host.invalid: "),
        "{message}"
    );
}

#[test]
fn a_redirect_loop_fails_without_retry() {
    let base = raw_server(|mut stream| {
        while read_request_head(&stream).is_some() {
            let answer = b"HTTP/1.1 302 Found\r\nlocation: /users/7\r\ncontent-length: 0\r\n\r\n";
            if stream.write_all(answer).is_err() {
                return;
            }
        }
    });
    let (err, _) = fetch_7(&base);
    assert_eq!(err.kind(), ErrorKind::Transport, "{err}");
    assert_eq!(err.attempts(), 1);
}

#[test]
fn a_same_origin_redirect_is_followed() {
    let base = raw_server(|mut stream| {
        while let Some(head) = read_request_head(&stream) {
            let answer: &[u8] = if head.starts_with("GET /users/7 ") {
                b"HTTP/1.1 301 Moved\r\nlocation: /v2/users/7\r\ncontent-length: 0\r\n\r\n"
            } else {
                b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nmoved"
            };
            if stream.write_all(answer).is_err() {
                return;
            }
        }
    });
    let client = FanOutClient::builder(format!("{base}/users/{{id}}"))
        .build()
        .unwrap();
    assert_eq!(&client.fetch_all([7]).unwrap()[7], b"moved");
}

#[test]
fn a_redirect_to_another_host_is_refused_and_credentials_stay_home() {
    let mut elsewhere = mockito::Server::new();
    let stolen = elsewhere
        .mock("GET", mockito::Matcher::Any)
        .expect(0)
        .create();
    let target = format!("{}/collect", elsewhere.url());
    let base = raw_server(move |mut stream| {
        let _ = read_request_head(&stream);
        let answer =
            format!("HTTP/1.1 302 Found\r\nlocation: {target}\r\ncontent-length: 0\r\n\r\n");
        let _ = stream.write_all(answer.as_bytes());
    });
    let client = FanOutClient::builder(format!("{base}/users/{{id}}"))
        .header("Authorization", "Bearer secret")
        .build()
        .unwrap();

    let err = client.fetch_all([7]).unwrap_err();

    assert_eq!(err.kind(), ErrorKind::Status);
    assert_eq!(err.status(), Some(302));
    assert_eq!(err.attempts(), 1);
    assert!(err.to_string().contains("another origin"), "{err}");
    stolen.assert();
}

#[test]
fn each_redirect_takes_its_own_token() {
    let base = raw_server(|mut stream| {
        while let Some(head) = read_request_head(&stream) {
            let answer: &[u8] = if head.starts_with("GET /users/7 ") {
                b"HTTP/1.1 302 Found\r\nlocation: /a/7\r\ncontent-length: 0\r\n\r\n"
            } else if head.starts_with("GET /a/7 ") {
                b"HTTP/1.1 302 Found\r\nlocation: /b/7\r\ncontent-length: 0\r\n\r\n"
            } else {
                b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
            };
            if stream.write_all(answer).is_err() {
                return;
            }
        }
    });
    let client = FanOutClient::builder(format!("{base}/users/{{id}}"))
        .rate_limit(5, 1)
        .build()
        .unwrap();

    let started = Instant::now();
    assert_eq!(&client.fetch_all([7]).unwrap()[7], b"ok");
    let elapsed = started.elapsed();

    // Three requests through a bucket of one at 5/s: two waits of 200 ms.
    assert_eq!(client.stats().requests_sent, 3);
    assert_eq!(client.stats().retries, 0);
    assert!(
        elapsed >= Duration::from_millis(380),
        "too fast: {elapsed:?}"
    );
}

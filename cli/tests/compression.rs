//! `fanout fetch` asks for compressed bodies and writes them decoded;
//! `--no-compression` asks for none.

mod common;

use std::io::Write;

use common::{RecordingServer, fanout, response};

const BODY: &str = "{\"id\":1,\"name\":\"gzip gzip gzip gzip gzip gzip gzip gzip\"}";

/// A server that gzips its answer when the request allows it.
fn server() -> RecordingServer {
    RecordingServer::start(|head| {
        if head.to_ascii_lowercase().contains("accept-encoding: gzip") {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            gz.write_all(BODY.as_bytes()).unwrap();
            response(&[("content-encoding", "gzip")], &gz.finish().unwrap())
        } else {
            response(&[], BODY.as_bytes())
        }
    })
}

#[test]
fn bodies_are_asked_for_compressed_and_written_decoded() {
    let server = server();
    let out = tempfile::tempdir().unwrap();
    fanout()
        .args(["fetch", &server.template(), "--ids", "1", "--out-dir"])
        .arg(out.path())
        .assert()
        .success();
    assert_eq!(std::fs::read_to_string(out.path().join("1")).unwrap(), BODY);
    assert_eq!(server.seen()[0].header("accept-encoding"), Some("gzip, br"));
}

#[test]
fn no_compression_sends_no_accept_encoding() {
    let server = server();
    fanout()
        .args([
            "fetch",
            &server.template(),
            "--ids",
            "1",
            "--no-compression",
        ])
        .assert()
        .success()
        .stdout(format!(
            "{{\"ok\":true,\"count\":1,\"bytes\":{}}}\n",
            BODY.len()
        ));
    assert_eq!(server.seen()[0].header("accept-encoding"), None);
}

//! Compressed bodies: asked for, decoded, bounded by `max_body_bytes` once decoded (a
//! gzip bomb), and not asked for with `compression(false)`.

use std::io::Write;

use fanout::{ErrorKind, FanOutClient};
use flate2::write::GzEncoder;
use flate2::{Compress, Compression, Crc, FlushCompress};
use testserver::{RecordingServer, response};

fn gzip(body: &[u8], level: Compression) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), level);
    encoder.write_all(body).unwrap();
    encoder.finish().unwrap()
}

/// 100 user objects as a typical JSON API returns them.
fn api_json() -> String {
    const CITIES: [(&str, &str); 5] = [
        ("Lisbon", "PT"),
        ("Osaka", "JP"),
        ("Toronto", "CA"),
        ("Nairobi", "KE"),
        ("Berlin", "DE"),
    ];
    const PLANS: [&str; 3] = ["free", "pro", "enterprise"];
    let users: Vec<String> = (1..=100u64)
        .map(|i| {
            let id = 100_000 + i * 7919 % 90_000;
            let (city, country) = CITIES[(i % 5) as usize];
            format!(
                r#"{{"id":{id},"login":"user{id}","name":"User {i}","email":"user{id}@example.com","avatar_url":"https://cdn.example.com/avatars/{id}.png","created_at":"2024-{:02}-{:02}T{:02}:{:02}:{:02}Z","plan":"{}","active":{},"followers":{},"repos":{},"tags":["{}","team-{}"],"address":{{"city":"{city}","country":"{country}"}}}}"#,
                i % 12 + 1,
                i % 28 + 1,
                i * 7 % 24,
                i * 13 % 60,
                i * 31 % 60,
                PLANS[(i % 3) as usize],
                i % 4 != 0,
                i * i * 37 % 5000,
                i * 11 % 300,
                ["api", "web", "data", "ops"][(i % 4) as usize],
                i % 9,
            )
        })
        .collect();
    format!("[{}]", users.join(","))
}

#[test]
fn gzip_is_asked_for_and_decoded() {
    let body = api_json();
    let compressed = gzip(body.as_bytes(), Compression::default());
    let server =
        RecordingServer::start(move |_| response(&[("content-encoding", "gzip")], &compressed));
    let client = FanOutClient::builder(server.template()).build().unwrap();

    let bodies = client.fetch_all([1]).unwrap();

    assert_eq!(&bodies[1], body.as_bytes());
    assert_eq!(server.seen()[0].header("accept-encoding"), Some("gzip, br"));
}

#[test]
fn brotli_is_decoded() {
    // `brotli -q 11` of the JSON below.
    const BROTLI: [u8; 78] = [
        0xa1, 0x00, 0x0b, 0xc0, 0x6f, 0x1c, 0xa6, 0x1b, 0xed, 0xf9, 0x23, 0x84, 0x6b, 0x33, 0xe9,
        0xe0, 0xc9, 0x6d, 0x9f, 0x2a, 0x7b, 0xa1, 0xc1, 0x3f, 0x75, 0x12, 0x8c, 0x73, 0x63, 0x43,
        0x74, 0xa7, 0x26, 0x9b, 0x45, 0xa7, 0xab, 0x6f, 0x3b, 0xd1, 0x84, 0x22, 0x24, 0x8d, 0x1d,
        0xbe, 0xf5, 0x67, 0x0e, 0xb2, 0xd8, 0xed, 0x14, 0xa2, 0xeb, 0xf5, 0xae, 0x69, 0xbe, 0x47,
        0x14, 0xdc, 0xab, 0x6d, 0xe2, 0x50, 0x11, 0x4e, 0x39, 0xe5, 0x55, 0x50, 0x51, 0x25, 0x95,
        0x73, 0xd9, 0x00,
    ];
    let expected: Vec<String> = (1..=8)
        .map(|i| format!(r#"{{"id":{i},"name":"brotli user","plan":"free"}}"#))
        .collect();
    let server = RecordingServer::start(|_| response(&[("content-encoding", "br")], &BROTLI));
    let client = FanOutClient::builder(server.template()).build().unwrap();

    let bodies = client.fetch_all([1]).unwrap();

    assert_eq!(&bodies[1], format!("[{}]", expected.join(",")).as_bytes());
}

#[test]
fn compression_off_sends_no_accept_encoding() {
    let server = RecordingServer::start(|_| response(&[], b"plain"));
    let client = FanOutClient::builder(server.template())
        .compression(false)
        .build()
        .unwrap();

    assert_eq!(client.fetch_all([1]).unwrap()[1], b"plain"[..]);

    assert_eq!(server.seen()[0].header("accept-encoding"), None);
}

#[test]
fn an_accept_encoding_header_of_the_callers_wins() {
    let server = RecordingServer::start(|_| response(&[], b"plain"));
    let client = FanOutClient::builder(server.template())
        .header("Accept-Encoding", "identity")
        .build()
        .unwrap();

    client.fetch_all([1]).unwrap();

    let seen = server.seen();
    assert_eq!(seen[0].header("accept-encoding"), Some("identity"));
    assert_eq!(
        seen[0].head.matches("ccept-").count(),
        1,
        "{}",
        seen[0].head
    );
}

/// The gzip file of `chunks` MiB of zeros, made from one compressed MiB repeated, so
/// that no GiB is ever held or compressed.
fn gzip_of_zeros(chunks: u32) -> Vec<u8> {
    const MIB: usize = 1 << 20;
    let zeros = vec![0u8; MIB];
    // A full flush ends the chunk on a byte boundary with no back-references out of
    // it, so the same bytes can follow themselves.
    let mut chunk = Vec::with_capacity(64 * 1024);
    let mut deflate = Compress::new(Compression::best(), false);
    deflate
        .compress_vec(&zeros, &mut chunk, FlushCompress::Full)
        .unwrap();
    assert_eq!(deflate.total_in(), MIB as u64, "compressed in one go");
    let mut last = Vec::with_capacity(64);
    Compress::new(Compression::best(), false)
        .compress_vec(&[], &mut last, FlushCompress::Finish)
        .unwrap();

    let mut one = Crc::new();
    one.update(&zeros);
    let mut crc = Crc::new();
    let mut file = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    for _ in 0..chunks {
        file.extend_from_slice(&chunk);
        crc.combine(&one);
    }
    file.extend_from_slice(&last);
    file.extend_from_slice(&crc.sum().to_le_bytes());
    file.extend_from_slice(&crc.amount().to_le_bytes());
    file
}

/// The peak resident memory of this process so far, in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[test]
fn a_gzip_bomb_is_too_large_once_decoded_and_memory_stays_bounded() {
    const GIB_OF_ZEROS: u32 = 1024;
    let bomb = gzip_of_zeros(GIB_OF_ZEROS);
    let server_bytes = bomb.len();
    assert!(server_bytes < 2 << 20, "{server_bytes} bytes on the wire");
    let server = RecordingServer::start(move |_| response(&[("content-encoding", "gzip")], &bomb));
    let client = FanOutClient::builder(server.template())
        .max_attempts(1)
        .max_body_bytes(16 << 20)
        .build()
        .unwrap();
    let before = peak_rss();

    let err = client.fetch_all([1]).unwrap_err();

    let grew = peak_rss().saturating_sub(before);
    eprintln!(
        "a GiB of zeros in {} KiB of gzip: {err}; peak memory grew by {} MiB",
        server_bytes >> 10,
        grew >> 20
    );
    assert_eq!(err.kind(), ErrorKind::TooLarge, "{err}");
    // The 16 MiB limit may take a 32 MiB buffer; a decoded GiB would take 1024.
    assert!(grew < 256 << 20, "peak memory grew by {} MiB", grew >> 20);
}

#[test]
fn a_json_body_shrinks_on_the_wire() {
    let body = api_json();
    let default = gzip(body.as_bytes(), Compression::default());
    let fast = gzip(body.as_bytes(), Compression::fast());
    let wire = default.len();
    let server =
        RecordingServer::start(move |_| response(&[("content-encoding", "gzip")], &default));
    let client = FanOutClient::builder(server.template()).build().unwrap();

    let bodies = client.fetch_all([1]).unwrap();

    let decoded = bodies[1].len();
    assert_eq!(decoded, body.len());
    eprintln!(
        "100 JSON objects: {decoded} bytes decoded, {wire} on the wire with gzip -6 \
         ({:.1}x), {} with gzip -1",
        decoded as f64 / wire as f64,
        fast.len()
    );
    assert!(wire * 4 < decoded, "{wire} bytes on the wire for {decoded}");
}

//! Just enough HTTP/1.1 for the demo server: read a request head, write a response,
//! keep the connection alive when the client wants it.

use std::io::{self, BufRead, Read, Write};

/// Longest request line or header line accepted.
const MAX_LINE: u64 = 8 * 1024;
/// Most header lines accepted in one request.
const MAX_HEADERS: usize = 100;
/// Largest request body read (and discarded).
const MAX_BODY: u64 = 1024 * 1024;

/// The parts of a request the demo server uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The request target, such as `/users/7/widgets`.
    pub target: String,
    /// Whether the connection stays open after the response.
    pub keep_alive: bool,
}

/// Reads one request, discarding any body. `Ok(None)` when the client closed the
/// connection between requests; `Err` for anything malformed or too large.
pub fn read_request(reader: &mut impl BufRead) -> io::Result<Option<Request>> {
    let Some(request_line) = read_line(reader)? else {
        return Ok(None);
    };
    let mut parts = request_line.split_whitespace();
    let (Some(_method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid("malformed request line"));
    };
    let target = target.to_owned();
    let mut keep_alive = version == "HTTP/1.1";
    let mut body_length: u64 = 0;
    for _ in 0..=MAX_HEADERS {
        let line = read_line(reader)?.ok_or_else(|| invalid("connection closed in headers"))?;
        if line.is_empty() {
            discard_body(reader, body_length)?;
            return Ok(Some(Request { target, keep_alive }));
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| invalid("malformed header"))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("connection") {
            if value.eq_ignore_ascii_case("close") {
                keep_alive = false;
            } else if value.eq_ignore_ascii_case("keep-alive") {
                keep_alive = true;
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            body_length = value
                .parse()
                .map_err(|_| invalid("malformed content-length"))?;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(invalid("chunked request bodies are not supported"));
        }
    }
    Err(invalid("too many headers"))
}

/// Writes a complete response with `body`.
pub fn write_response(
    writer: &mut impl Write,
    status: u16,
    content_type: &str,
    body: &[u8],
    keep_alive: bool,
) -> io::Result<()> {
    let connection = if keep_alive { "keep-alive" } else { "close" };
    let head = format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: {connection}\r\n\r\n",
        reason(status),
        body.len()
    );
    // One write, so that the response leaves in one segment.
    let mut response = head.into_bytes();
    response.extend_from_slice(body);
    writer.write_all(&response)?;
    writer.flush()
}

/// One line without its line ending; `None` at the end of the stream.
fn read_line(reader: &mut impl BufRead) -> io::Result<Option<String>> {
    let mut line = String::new();
    let read = reader.by_ref().take(MAX_LINE).read_line(&mut line)?;
    if read == 0 {
        return Ok(None);
    }
    if !line.ends_with('\n') {
        return Err(invalid("line too long or cut short"));
    }
    line.truncate(line.trim_end_matches(['\r', '\n']).len());
    Ok(Some(line))
}

fn discard_body(reader: &mut impl BufRead, length: u64) -> io::Result<()> {
    if length > MAX_BODY {
        return Err(invalid("request body too large"));
    }
    let copied = io::copy(&mut reader.by_ref().take(length), &mut io::sink())?;
    if copied < length {
        return Err(invalid("request body cut short"));
    }
    Ok(())
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(input: &str) -> io::Result<Option<Request>> {
        read_request(&mut input.as_bytes())
    }

    #[test]
    fn keep_alive_by_version_and_header() {
        let request = read("GET /users/1/widgets HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
        assert_eq!(
            request,
            Some(Request {
                target: "/users/1/widgets".into(),
                keep_alive: true
            })
        );
        let request = read("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap();
        assert!(!request.unwrap().keep_alive);
        let request = read("GET / HTTP/1.0\r\n\r\n").unwrap();
        assert!(!request.unwrap().keep_alive);
    }

    #[test]
    fn two_requests_on_one_connection_with_a_body_between() {
        let input = "POST /a HTTP/1.1\r\ncontent-length: 3\r\n\r\nxyzGET /b HTTP/1.1\r\n\r\n";
        let mut reader = input.as_bytes();
        assert_eq!(read_request(&mut reader).unwrap().unwrap().target, "/a");
        assert_eq!(read_request(&mut reader).unwrap().unwrap().target, "/b");
        assert_eq!(read_request(&mut reader).unwrap(), None);
    }

    #[test]
    fn malformed_requests_are_errors() {
        for input in [
            "GARBAGE\r\n\r\n",
            "GET / HTTP/1.1\r\nno colon\r\n\r\n",
            "GET / HTTP/1.1\r\ncontent-length: x\r\n\r\n",
            "GET / HTTP/1.1\r\n",
            "GET / HTTP/1.1\r\ncontent-length: 9\r\n\r\nabc",
        ] {
            assert!(read(input).is_err(), "{input:?} was accepted");
        }
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(10_000));
        assert!(read(&long).is_err());
    }

    #[test]
    fn response_has_length_and_connection() {
        let mut out = Vec::new();
        write_response(&mut out, 429, "text/plain", b"slow down", false).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 429 Too Many Requests\r\ncontent-type: text/plain\r\n\
             content-length: 9\r\nconnection: close\r\n\r\nslow down"
        );
    }
}

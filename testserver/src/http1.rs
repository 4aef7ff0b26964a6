//! Just enough HTTP/1.1 for a loopback server: read a request head within bounds,
//! write a response in one piece, keep the connection alive when the client wants it.

use std::fmt::Write as _;
use std::io::{self, BufRead, Read, Write};

/// Longest request line or header line accepted.
const MAX_LINE: u64 = 8 * 1024;
/// Most header lines accepted in one request.
const MAX_HEADERS: usize = 100;
/// Largest request body read (and discarded).
const MAX_BODY: u64 = 1024 * 1024;

/// The parts of a request the servers use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The request target, such as `/users/7/widgets`.
    pub target: String,
    /// The request line and header lines as they came, up to and with the blank line.
    pub text: String,
    /// Whether the connection stays open after the response.
    pub keep_alive: bool,
}

/// A response to write: status, headers beyond `content-length` and `connection`, body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code; the reason phrase follows from it.
    pub status: u16,
    /// Header names and values, written in this order.
    pub headers: Vec<(String, String)>,
    /// The body; its length is written as `content-length`.
    pub body: Vec<u8>,
}

impl Response {
    /// A response with `status` and `body` and no headers of its own.
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// The same response with one more header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl ToString) -> Self {
        self.headers.push((name.into(), value.to_string()));
        self
    }
}

/// Reads one request, discarding any body. `Ok(None)` when the client closed the
/// connection between requests; `Err` for anything malformed or too large.
pub fn read_request(reader: &mut impl BufRead) -> io::Result<Option<Head>> {
    let mut text = String::new();
    let Some(request_line) = read_line(reader, &mut text)? else {
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
        let line =
            read_line(reader, &mut text)?.ok_or_else(|| invalid("connection closed in headers"))?;
        if line.is_empty() {
            discard_body(reader, body_length)?;
            return Ok(Some(Head {
                target,
                text,
                keep_alive,
            }));
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

/// Writes `response` whole; with `closing`, it says `connection: close`.
pub fn write_response(
    writer: &mut impl Write,
    response: &Response,
    closing: bool,
) -> io::Result<()> {
    // Sized for head and body: one allocation, and one write so that the response
    // leaves in one segment.
    let mut out = String::with_capacity(96 + response.body.len());
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        "HTTP/1.1 {} {}\r\ncontent-length: {}\r\n",
        response.status,
        reason(response.status),
        response.body.len()
    );
    for (name, value) in &response.headers {
        let _ = write!(out, "{name}: {value}\r\n");
    }
    if closing {
        out.push_str("connection: close\r\n");
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(&response.body);
    writer.write_all(&out)?;
    writer.flush()
}

/// One line without its line ending, appended as it came to `text`; `None` at the end
/// of the stream.
fn read_line(reader: &mut impl BufRead, text: &mut String) -> io::Result<Option<String>> {
    let mut line = String::new();
    let read = reader.by_ref().take(MAX_LINE).read_line(&mut line)?;
    if read == 0 {
        return Ok(None);
    }
    if !line.ends_with('\n') {
        return Err(invalid("line too long or cut short"));
    }
    text.push_str(&line);
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
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(input: &str) -> io::Result<Option<Head>> {
        read_request(&mut input.as_bytes())
    }

    #[test]
    fn keep_alive_by_version_and_header() {
        let request = read("GET /users/1/widgets HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
        assert_eq!(
            request,
            Some(Head {
                target: "/users/1/widgets".into(),
                text: "GET /users/1/widgets HTTP/1.1\r\nhost: x\r\n\r\n".into(),
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
        let response = Response::new(429, "slow down").with_header("content-type", "text/plain");
        write_response(&mut out, &response, true).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 429 Too Many Requests\r\ncontent-length: 9\r\n\
             content-type: text/plain\r\nconnection: close\r\n\r\nslow down"
        );
    }
}

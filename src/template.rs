//! The URL template: validated once, then filled in per key without re-parsing.

use std::fmt::Write;

use ureq::http::Uri;

use crate::error::ConfigError;
use crate::key::KeyRef;

const PLACEHOLDER: &str = "{id}";

/// A URL with one or more `{id}` placeholders, known to give a valid http(s) URL for
/// every `u64` and every non-empty text key.
///
/// A text key is percent-encoded: every byte but the unreserved ones
/// (`A-Z a-z 0-9 - . _ ~`) becomes `%XX` of its UTF-8, in the path and the query
/// alike, so that a key can never add a path segment, a query parameter or a
/// fragment. In the path, the keys `.` and `..` are written `%2E` and `%2E%2E`, so
/// that they stay a segment rather than being taken as "this" or "parent" directory.
///
/// [`FanOutClientBuilder::build`](crate::FanOutClientBuilder::build) parses its template
/// with this; it is public so that a program can check a template (say, from its
/// command line) before building a client.
///
/// ```
/// use fanout::UrlTemplate;
///
/// let template = UrlTemplate::parse("https://api.example.com/users/{id}/widgets")?;
/// assert_eq!(template.url(42), "https://api.example.com/users/42/widgets");
/// assert!(UrlTemplate::parse("https://api.example.com/users").is_err());
/// assert_eq!(
///     template.url_for_key("a/b?c"),
///     Some("https://api.example.com/users/a%2Fb%3Fc/widgets".to_owned())
/// );
/// assert_eq!(template.url_for_key(""), None);
/// # Ok::<(), fanout::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct UrlTemplate {
    /// The text between placeholders: `pieces.len()` is the placeholder count + 1.
    pieces: Vec<String>,
    /// Longest URL any ID can make, so `url` allocates exactly once.
    max_len: usize,
    /// How many placeholders are in the path; the rest are in the query (or
    /// fragment).
    in_path: usize,
}

impl UrlTemplate {
    /// Checks `template`: it must contain `{id}` (every occurrence is replaced), no
    /// other braces, and make an absolute `http` or `https` URL with a host.
    pub fn parse(template: &str) -> Result<Self, ConfigError> {
        let pieces: Vec<String> = template.split(PLACEHOLDER).map(str::to_owned).collect();
        if pieces.len() < 2 {
            return Err(ConfigError::MissingPlaceholder(template.to_owned()));
        }
        if pieces.iter().any(|p| p.contains(['{', '}'])) {
            return Err(ConfigError::StrayBrace(template.to_owned()));
        }
        let fixed: usize = pieces.iter().map(String::len).sum();
        let max_len = fixed + (pieces.len() - 1) * u64::MAX.to_string().len();
        // A placeholder is in the path until a `?` or `#` comes before it.
        let in_path = pieces[..pieces.len() - 1]
            .iter()
            .take_while(|p| !p.contains(['?', '#']))
            .count();
        let parsed = UrlTemplate {
            pieces,
            max_len,
            in_path,
        };

        // The ID belongs in the path or query: in the host or port it would send
        // different IDs to different servers. With the authority fixed, digits cannot
        // change which part of the URL a piece lands in, so checking the smallest and
        // largest IDs checks them all.
        let low = check_url(template, &parsed.url(0))?;
        let high = check_url(template, &parsed.url(u64::MAX))?;
        if low.authority() != high.authority() || low.scheme() != high.scheme() {
            return Err(ConfigError::InvalidUrl {
                template: template.to_owned(),
                reason: "{id} must be in the path or query, not the scheme, host or port"
                    .to_owned(),
            });
        }
        Ok(parsed)
    }

    /// The URL for `id`.
    pub fn url(&self, id: u64) -> String {
        let mut url = String::with_capacity(self.max_len);
        let (last, rest) = self.pieces.split_last().expect("at least two pieces");
        for piece in rest {
            url.push_str(piece);
            // Writing to a String cannot fail.
            let _ = write!(url, "{id}");
        }
        url.push_str(last);
        url
    }

    /// The URL for the text key `key`, percent-encoded for where each `{id}` stands,
    /// or `None` for an empty key, which makes no URL.
    pub fn url_for_key(&self, key: &str) -> Option<String> {
        if key.is_empty() {
            return None;
        }
        let fixed: usize = self.pieces.iter().map(String::len).sum();
        let mut url = String::with_capacity(fixed + (self.pieces.len() - 1) * key.len() * 3);
        let (last, rest) = self.pieces.split_last().expect("at least two pieces");
        for (at, piece) in rest.iter().enumerate() {
            url.push_str(piece);
            push_encoded(&mut url, key, at < self.in_path);
        }
        url.push_str(last);
        Some(url)
    }

    /// The URL for `key`, or `None` for an empty text key.
    pub(crate) fn url_for(&self, key: KeyRef<'_>) -> Option<String> {
        match key {
            KeyRef::Id(id) => Some(self.url(id)),
            KeyRef::Text(text) => self.url_for_key(text),
        }
    }
}

/// Appends `key` percent-encoded: only unreserved bytes are left as they are, and in
/// a path the dot segments `.` and `..` are encoded too.
fn push_encoded(url: &mut String, key: &str, in_path: bool) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let dot_segment = in_path && matches!(key, "." | "..");
    for &byte in key.as_bytes() {
        let unreserved = byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~');
        if unreserved && !dot_segment {
            url.push(char::from(byte));
        } else {
            url.push('%');
            url.push(char::from(HEX[usize::from(byte >> 4)]));
            url.push(char::from(HEX[usize::from(byte & 0xF)]));
        }
    }
}

fn check_url(template: &str, url: &str) -> Result<Uri, ConfigError> {
    let invalid = |reason: &str| ConfigError::InvalidUrl {
        template: template.to_owned(),
        reason: reason.to_owned(),
    };
    let uri: Uri = url
        .parse()
        .map_err(|e: ureq::http::uri::InvalidUri| invalid(&e.to_string()))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        Some(other) => return Err(invalid(&format!("scheme {other:?} is not http or https"))),
        None => return Err(invalid("no scheme (expected http:// or https://)")),
    }
    match uri.host() {
        Some(host) if !host.is_empty() => Ok(uri),
        _ => Err(invalid("no host")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fills_every_placeholder() {
        let t = UrlTemplate::parse("http://127.0.0.1:8080/u/{id}/w?again={id}").unwrap();
        assert_eq!(t.url(42), "http://127.0.0.1:8080/u/42/w?again=42");
    }

    #[test]
    fn refuses_bad_templates() {
        assert!(matches!(
            UrlTemplate::parse("http://h/users"),
            Err(ConfigError::MissingPlaceholder(_))
        ));
        assert!(matches!(
            UrlTemplate::parse("http://h/{user}/{id}"),
            Err(ConfigError::StrayBrace(_))
        ));
        for bad in [
            "ftp://h/{id}",
            "/relative/{id}",
            "http:///{id}",
            "http://h h/{id}",
            "{id}",
        ] {
            assert!(
                matches!(UrlTemplate::parse(bad), Err(ConfigError::InvalidUrl { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn error_message_names_the_template() {
        let err = UrlTemplate::parse("ftp://h/{id}").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("ftp://h/{id}") && msg.contains("ftp"), "{msg}");
    }

    #[test]
    fn a_text_key_never_changes_the_urls_structure() {
        let t = UrlTemplate::parse("http://h/users/{id}/w?q={id}#f").unwrap();
        for (key, encoded) in [
            ("alice", "alice"),
            ("../admin", "..%2Fadmin"),
            ("a/b", "a%2Fb"),
            ("?x=1", "%3Fx%3D1"),
            ("#f", "%23f"),
            ("a b+c&d", "a%20b%2Bc%26d"),
            ("%2F", "%252F"),
            ("josé", "jos%C3%A9"),
            ("日本", "%E6%97%A5%E6%9C%AC"),
            ("a.b-c_d~e", "a.b-c_d~e"),
        ] {
            assert_eq!(
                t.url_for_key(key).unwrap(),
                format!("http://h/users/{encoded}/w?q={encoded}#f"),
                "{key}"
            );
        }
    }

    #[test]
    fn dot_segments_are_encoded_in_the_path_only() {
        let t = UrlTemplate::parse("http://h/users/{id}?q={id}").unwrap();
        assert_eq!(t.url_for_key(".").unwrap(), "http://h/users/%2E?q=.");
        assert_eq!(t.url_for_key("..").unwrap(), "http://h/users/%2E%2E?q=..");
        assert_eq!(t.url_for_key("...").unwrap(), "http://h/users/...?q=...");
        let uri: Uri = t.url_for_key("..").unwrap().parse().unwrap();
        assert_eq!(uri.path(), "/users/%2E%2E");
    }

    #[test]
    fn an_empty_key_makes_no_url() {
        let t = UrlTemplate::parse("http://h/users/{id}").unwrap();
        assert_eq!(t.url_for_key(""), None);
        assert_eq!(t.url_for(KeyRef::Text("")), None);
        assert_eq!(t.url_for(KeyRef::Id(0)).unwrap(), "http://h/users/0");
    }

    proptest! {
        #[test]
        fn every_text_key_keeps_the_template_s_path_and_query(key in "(?s).{1,20}") {
            let t = UrlTemplate::parse("https://api.example.com/users/{id}/w?x={id}").unwrap();
            let uri: Uri = t.url_for_key(&key).unwrap().parse().unwrap();
            prop_assert_eq!(uri.host(), Some("api.example.com"));
            let path = uri.path();
            prop_assert!(path.starts_with("/users/") && path.ends_with("/w"));
            prop_assert_eq!(path.matches('/').count(), 3);
            prop_assert!(!uri.query().unwrap().contains(['&', '#', '?']));
        }

        #[test]
        fn every_id_makes_a_valid_url(id in any::<u64>()) {
            let t = UrlTemplate::parse("https://api.example.com/users/{id}/widgets").unwrap();
            let url = t.url(id);
            prop_assert_eq!(&url, &format!("https://api.example.com/users/{id}/widgets"));
            prop_assert!(url.parse::<Uri>().is_ok());
        }
    }
}

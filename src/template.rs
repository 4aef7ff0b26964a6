//! The URL template: validated once, then filled in per ID without re-parsing.

use std::fmt::Write;

use ureq::http::Uri;

use crate::error::ConfigError;

const PLACEHOLDER: &str = "{id}";

/// A URL with one or more `{id}` placeholders, known to give a valid http(s) URL for
/// every `u64`.
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
/// # Ok::<(), fanout::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct UrlTemplate {
    /// The text between placeholders: `pieces.len()` is the placeholder count + 1.
    pieces: Vec<String>,
    /// Longest URL any ID can make, so `url` allocates exactly once.
    max_len: usize,
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
        let parsed = UrlTemplate { pieces, max_len };

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

    proptest! {
        #[test]
        fn every_id_makes_a_valid_url(id in any::<u64>()) {
            let t = UrlTemplate::parse("https://api.example.com/users/{id}/widgets").unwrap();
            let url = t.url(id);
            prop_assert_eq!(&url, &format!("https://api.example.com/users/{id}/widgets"));
            prop_assert!(url.parse::<Uri>().is_ok());
        }
    }
}

//! Which proxy a client's requests go through: chosen once per client, as curl chooses.
//!
//! The template fixes the scheme and host of every request (redirects stay within the
//! origin), so the choice is made once, at build time, and handed to ureq as an
//! explicit proxy. ureq's own reading of the environment takes one variable for every
//! scheme (`ALL_PROXY` first) and matches `NO_PROXY` differently from curl.

use std::net::IpAddr;

use ureq::Proxy;
use ureq::http::Uri;

use crate::error::ConfigError;

/// The proxy setting of a builder.
#[derive(Debug, Clone, Default)]
pub(crate) enum ProxySetting {
    /// From the environment, as curl reads it.
    #[default]
    FromEnv,
    /// Never a proxy, whatever the environment says.
    Off,
    /// This proxy URL (`NO_PROXY` still applies, as in curl).
    Url(String),
}

/// The proxy for requests to `target`, or `None` to connect directly. `env` reads one
/// environment variable.
pub(crate) fn choose(
    setting: &ProxySetting,
    target: &Uri,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<Proxy>, ConfigError> {
    // curl takes an empty variable for an unset one.
    let var = |name: &str| env(name).filter(|v| !v.is_empty());
    let (url, origin) = match setting {
        ProxySetting::Off => return Ok(None),
        ProxySetting::Url(url) => (url.clone(), "proxy"),
        ProxySetting::FromEnv => {
            let Some(found) = env_names(target.scheme_str().unwrap_or("http"))
                .iter()
                .find_map(|name| var(name).map(|url| (url, *name)))
            else {
                return Ok(None);
            };
            found
        }
    };
    let host = target.host().unwrap_or_default();
    if let Some(list) = var("no_proxy").or_else(|| var("NO_PROXY")) {
        if no_proxy_matches(&list, host) {
            log::debug!("no proxy for {host}: it matches NO_PROXY");
            return Ok(None);
        }
    }
    let proxy = parse(&url).map_err(|reason| ConfigError::InvalidProxy {
        proxy: redact(&url),
        origin: origin.to_owned(),
        reason,
    })?;
    log::debug!(
        "requests to {host} go through proxy {} (from {origin})",
        redact(&url)
    );
    Ok(Some(proxy))
}

/// The variables curl reads for a URL of `scheme`, first found wins. Upper-case
/// `HTTP_PROXY` is left out as curl leaves it out: a CGI program gets it from a
/// request's `Proxy:` header ("httpoxy").
fn env_names(scheme: &str) -> &'static [&'static str] {
    if scheme.eq_ignore_ascii_case("https") {
        &["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"]
    } else {
        &["http_proxy", "all_proxy", "ALL_PROXY"]
    }
}

fn parse(url: &str) -> Result<Proxy, String> {
    // ureq's own error says only "invalid proxy url": name what it accepts.
    if let Some((scheme, _)) = url.split_once("://") {
        const SCHEMES: [&str; 7] = [
            "http", "https", "socks", "socks4", "socks4a", "socks5", "socks5h",
        ];
        if !SCHEMES.iter().any(|s| s.eq_ignore_ascii_case(scheme)) {
            return Err(format!(
                "unsupported scheme {scheme:?} (use http, https, socks4, socks4a, socks5 or socks5h)"
            ));
        }
    }
    Proxy::new(url).map_err(|_| "not a proxy URL such as http://host:port".to_owned())
}

/// `url` with any password replaced, for messages and logs.
fn redact(url: &str) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    let end = url[start..].find('/').map_or(url.len(), |i| start + i);
    let authority = &url[start..end];
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            let masked = if user.len() < userinfo.len() {
                format!("{user}:***")
            } else {
                user.to_owned()
            };
            format!("{}{masked}{}", &url[..start], &url[start + at..])
        }
        None => url.to_owned(),
    }
}

/// Whether `host` is exempt from proxying by the `NO_PROXY` value `list`, as curl
/// reads it: names separated by commas or spaces, each matching that host and its
/// subdomains (a leading dot changes nothing); IP addresses matching exactly or, with
/// `/bits`, a range; `*` matching every host.
fn no_proxy_matches(list: &str, host: &str) -> bool {
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let host = host.strip_suffix('.').unwrap_or(host);
    let ip = host.parse::<IpAddr>().ok();
    list.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|token| !token.is_empty())
        .any(|token| {
            token == "*"
                || match ip {
                    Some(ip) => ip_matches(token, ip),
                    None => name_matches(token, host),
                }
        })
}

fn name_matches(token: &str, host: &str) -> bool {
    let token = token.strip_prefix('*').unwrap_or(token);
    let token = token.strip_prefix('.').unwrap_or(token);
    let token = token.strip_suffix('.').unwrap_or(token);
    let (host, token) = (host.as_bytes(), token.as_bytes());
    if token.is_empty() || token.len() > host.len() {
        return false;
    }
    let cut = host.len() - token.len();
    host[cut..].eq_ignore_ascii_case(token) && (cut == 0 || host[cut - 1] == b'.')
}

fn ip_matches(token: &str, ip: IpAddr) -> bool {
    let (addr, bits) = match token.split_once('/') {
        Some((addr, bits)) => match bits.parse::<u32>() {
            Ok(bits) => (addr, Some(bits)),
            Err(_) => return false,
        },
        None => (token, None),
    };
    let addr = addr
        .strip_prefix('[')
        .and_then(|a| a.strip_suffix(']'))
        .unwrap_or(addr);
    let Ok(net) = addr.parse::<IpAddr>() else {
        return false;
    };
    let (net, ip, width) = match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => (u32::from(n).into(), u32::from(i).into(), 32),
        (IpAddr::V6(n), IpAddr::V6(i)) => (u128::from(n), u128::from(i), 128),
        _ => return false,
    };
    let bits = bits.unwrap_or(width);
    if bits > width {
        return false;
    }
    // The top `bits` of a `width`-bit number, in a u128.
    let mask = match bits {
        0 => 0,
        b => (u128::MAX << (128 - b)) >> (128 - width),
    };
    net & mask == ip & mask
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        let vars = vars.to_vec();
        move |name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    fn chosen(target: &str, vars: &[(&'static str, &'static str)]) -> Option<String> {
        let target: Uri = target.parse().unwrap();
        choose(&ProxySetting::FromEnv, &target, env(vars))
            .unwrap()
            .map(|p| format!("{}:{}", p.host(), p.port()))
    }

    #[test]
    fn each_scheme_reads_its_own_variable_then_all_proxy() {
        let vars = [
            ("http_proxy", "http://h:1"),
            ("HTTPS_PROXY", "http://s:2"),
            ("ALL_PROXY", "http://a:3"),
        ];
        assert_eq!(chosen("http://api.test/x", &vars).as_deref(), Some("h:1"));
        assert_eq!(chosen("https://api.test/x", &vars).as_deref(), Some("s:2"));
        let all_only = [("ALL_PROXY", "http://a:3")];
        assert_eq!(
            chosen("http://api.test/x", &all_only).as_deref(),
            Some("a:3")
        );
        assert_eq!(
            chosen("https://api.test/x", &all_only).as_deref(),
            Some("a:3")
        );
        assert_eq!(chosen("https://api.test/x", &[]), None);
    }

    #[test]
    fn lower_case_wins_and_upper_case_http_proxy_is_ignored() {
        let vars = [
            ("https_proxy", "http://low:1"),
            ("HTTPS_PROXY", "http://up:2"),
        ];
        assert_eq!(chosen("https://api.test/", &vars).as_deref(), Some("low:1"));
        // An HTTPS proxy is not used for http, nor the upper-case HTTP_PROXY.
        let vars = [("HTTP_PROXY", "http://up:2"), ("https_proxy", "http://s:3")];
        assert_eq!(chosen("http://api.test/", &vars), None);
        // An empty variable is an unset one.
        let vars = [("https_proxy", ""), ("all_proxy", "http://a:4")];
        assert_eq!(chosen("https://api.test/", &vars).as_deref(), Some("a:4"));
    }

    #[test]
    fn no_proxy_exempts_hosts_also_from_an_explicit_proxy() {
        let target: Uri = "http://api.internal.test:8080/x".parse().unwrap();
        let explicit = ProxySetting::Url("http://p:1".into());
        let no_proxy = env(&[("NO_PROXY", "other.test, internal.test")]);
        assert!(choose(&explicit, &target, &no_proxy).unwrap().is_none());
        let unrelated = env(&[("no_proxy", "other.test")]);
        assert!(choose(&explicit, &target, unrelated).unwrap().is_some());
        assert!(
            choose(
                &ProxySetting::Off,
                &target,
                env(&[("http_proxy", "http://p:1")])
            )
            .unwrap()
            .is_none()
        );
    }

    #[test]
    fn no_proxy_matches_as_curl_does() {
        let yes = [
            ("*", "any.test"),
            ("example.com", "example.com"),
            ("example.com", "api.example.com"),
            (".example.com", "example.com"),
            ("*.example.com", "api.example.com"),
            ("EXAMPLE.com.", "api.Example.COM"),
            ("a.test example.com", "example.com."),
            ("127.0.0.1", "127.0.0.1"),
            ("10.0.0.0/8", "10.1.2.3"),
            ("::1", "[::1]"),
            ("[fd00::]/8", "[fdab::1]"),
            ("0.0.0.0/0", "192.0.2.1"),
        ];
        for (list, host) in yes {
            assert!(no_proxy_matches(list, host), "{list:?} should match {host}");
        }
        let no = [
            ("", "example.com"),
            ("example.com", "badexample.com"),
            ("api.example.com", "example.com"),
            ("127.0.0.1", "127.0.0.2"),
            ("127.0.0.1", "localhost"),
            ("10.0.0.0/8", "11.0.0.1"),
            ("10.0.0.0/33", "10.0.0.1"),
            ("::1", "127.0.0.1"),
            ("a.test,*x", "b.test"),
        ];
        for (list, host) in no {
            assert!(
                !no_proxy_matches(list, host),
                "{list:?} should not match {host}"
            );
        }
    }

    #[test]
    fn a_bad_proxy_url_is_named_without_its_password() {
        let target: Uri = "https://api.test/x".parse().unwrap();
        let err = choose(
            &ProxySetting::FromEnv,
            &target,
            env(&[("HTTPS_PROXY", "ftp://me:secret@p.test:21")]),
        )
        .unwrap_err();
        let message = err.to_string();
        assert!(message.contains("ftp://me:***@p.test:21"), "{message}");
        assert!(message.contains("HTTPS_PROXY"), "{message}");
        assert!(!message.contains("secret"), "{message}");

        let err = choose(&ProxySetting::Url("http://".into()), &target, env(&[])).unwrap_err();
        assert!(matches!(err, ConfigError::InvalidProxy { ref origin, .. } if origin == "proxy"));
    }

    #[test]
    fn redaction_keeps_everything_but_the_password() {
        assert_eq!(redact("http://u:p@h:1/x"), "http://u:***@h:1/x");
        assert_eq!(redact("http://u@h:1"), "http://u@h:1");
        assert_eq!(redact("u:p@h"), "u:***@h");
        assert_eq!(redact("http://h:1/a@b"), "http://h:1/a@b");
    }
}

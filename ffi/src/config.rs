//! `fanout_config`: the settings a client is built from.

use std::ffi::c_char;
use std::fmt;
use std::time::Duration;

use fanout::{FanOutClient, FanOutClientBuilder, Rate};

use crate::boundary::{bytes, guard, handle_mut, utf8};
use crate::error::{FanoutError, FanoutStatus};
use crate::handle::{free, into_handle};
use crate::unwind::guard_value;

/// The settings of a client, filled in by the `fanout_config_set_*` functions and
/// read by `fanout_client_new`. Unset settings keep the library's defaults: 10
/// requests per second with bursts of 20, 8 in flight, a 10 s timeout per attempt, 3
/// attempts per ID. Values are checked when the client is made. One thread at a time
/// may change a configuration.
#[derive(Debug, Default)]
pub struct FanoutConfig {
    url_template: Option<String>,
    rate: Option<Option<(RateSetting, u64)>>,
    max_in_flight: Option<usize>,
    timeout: Option<Duration>,
    max_attempts: Option<u32>,
    adaptive_rate: Option<bool>,
    headers: Vec<(String, String)>,
    /// `Some(None)`: no proxy; `None`: the environment's.
    proxy: Option<Option<String>>,
    root_certificates: Vec<Pem>,
    /// The chain and its key.
    client_certificate: Option<(Pem, Pem)>,
}

/// PEM text copied from the caller. `Debug` shows only its length: it may be a key.
#[derive(Clone)]
struct Pem(Vec<u8>);

impl fmt::Debug for Pem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pem({} bytes)", self.0.len())
    }
}

/// A rate as one of the setters gave it.
#[derive(Debug, Clone, Copy)]
enum RateSetting {
    PerSecond(u64),
    PerWindow { amount: u64, window_ms: u64 },
}

impl FanoutConfig {
    /// The library's builder with these settings.
    pub(crate) fn builder(&self) -> Result<FanOutClientBuilder, FanoutError> {
        let template = self.url_template.as_deref().ok_or_else(|| {
            FanoutError::invalid("no URL template: call fanout_config_set_url_template")
        })?;
        let mut builder = FanOutClient::builder(template);
        match self.rate {
            Some(Some((RateSetting::PerSecond(per_second), burst))) => {
                builder = builder.rate_limit(per_second, burst);
            }
            Some(Some((RateSetting::PerWindow { amount, window_ms }, burst))) => {
                let rate = Rate::new(amount, Duration::from_millis(window_ms))
                    .map_err(|e| FanoutError::invalid(e.to_string()))?;
                builder = builder.rate(rate, burst);
            }
            Some(None) => builder = builder.no_rate_limit(),
            None => {}
        }
        if let Some(n) = self.max_in_flight {
            builder = builder.max_in_flight(n);
        }
        if let Some(timeout) = self.timeout {
            builder = builder.timeout(timeout);
        }
        if let Some(n) = self.max_attempts {
            builder = builder.max_attempts(n);
        }
        if let Some(on) = self.adaptive_rate {
            builder = builder.adaptive_rate(on);
        }
        for (name, value) in &self.headers {
            builder = builder.header(name, value);
        }
        if let Some(proxy) = &self.proxy {
            builder = builder.proxy(proxy.as_deref());
        }
        for pem in &self.root_certificates {
            builder = builder.tls_root_certs_pem(&pem.0);
        }
        if let Some((chain, key)) = &self.client_certificate {
            builder = builder.tls_client_cert_pem(&chain.0, &key.0);
        }
        Ok(builder)
    }
}

/// A new configuration with every setting at its default and no URL template yet.
/// NULL only if the library failed inside (a bug). Free it with `fanout_config_free`.
///
/// Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn fanout_config_new() -> *mut FanoutConfig {
    guard_value(
        std::ptr::null_mut(),
        || into_handle(FanoutConfig::default()),
    )
}

/// Sets the URL template: an http or https URL with one `{id}` placeholder, such as
/// `"https://api.example.com/users/{id}"`. Checked by `fanout_client_new`.
///
/// One thread at a time per configuration, as for every setter.
///
/// # Safety
///
/// `config` is NULL or a live configuration; `url_template` is NULL or a
/// NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fanout_config_set_url_template(
    config: *mut FanoutConfig,
    url_template: *const c_char,
) -> FanoutStatus {
    guard(None, || {
        // SAFETY: `config` is NULL or a live configuration that no other thread uses, by
        // this function's contract.
        let config = unsafe { handle_mut(config, "config") }?;
        // SAFETY: `url_template` is NULL or a NUL-terminated string, by this function's
        // contract.
        let url_template = unsafe { utf8(url_template, "url_template") }?;
        config.url_template = Some(url_template.to_owned());
        Ok(())
    })
}

/// Allows `per_second` requests per second on average, in bursts of up to `burst`.
/// Both must be at least 1 (checked by `fanout_client_new`).
///
/// # Safety
///
/// `config` is NULL or a live configuration.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fanout_config_set_rate_limit(
    config: *mut FanoutConfig,
    per_second: u64,
    burst: u64,
) -> FanoutStatus {
    guard(None, || {
        // SAFETY: `config` is NULL or a live configuration that no other thread uses, by
        // this function's contract.
        let config = unsafe { handle_mut(config, "config") }?;
        config.rate = Some(Some((RateSetting::PerSecond(per_second), burst)));
        Ok(())
    })
}

/// Allows `amount` requests per window of `window_ms` milliseconds on average, in
/// bursts of up to `burst`: quotas of any window, such as 5000 an hour
/// (`5000, 3600000, burst`) or one every two seconds (`1, 2000, burst`). The bucket
/// refills evenly. All three must be at least 1, and the window at most a year
/// (checked by `fanout_client_new`).
///
/// # Safety
///
/// `config` is NULL or a live configuration.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fanout_config_set_rate_per_window(
    config: *mut FanoutConfig,
    amount: u64,
    window_ms: u64,
    burst: u64,
) -> FanoutStatus {
    guard(None, || {
        // SAFETY: `config` is NULL or a live configuration that no other thread uses, by
        // this function's contract.
        let config = unsafe { handle_mut(config, "config") }?;
        config.rate = Some(Some((RateSetting::PerWindow { amount, window_ms }, burst)));
        Ok(())
    })
}

/// Lifts the rate limit: requests are bounded only by the in-flight cap.
///
/// # Safety
///
/// `config` is NULL or a live configuration.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fanout_config_set_no_rate_limit(
    config: *mut FanoutConfig,
) -> FanoutStatus {
    guard(None, || {
        // SAFETY: `config` is NULL or a live configuration that no other thread uses, by
        // this function's contract.
        let config = unsafe { handle_mut(config, "config") }?;
        config.rate = Some(None);
        Ok(())
    })
}

/// Caps requests in flight at `n`, which is also the number of worker threads: from 1
/// to 4096 (checked by `fanout_client_new`).
///
/// # Safety
///
/// `config` is NULL or a live configuration.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fanout_config_set_max_in_flight(
    config: *mut FanoutConfig,
    n: usize,
) -> FanoutStatus {
    guard(None, || {
        // SAFETY: `config` is NULL or a live configuration that no other thread uses, by
        // this function's contract.
        let config = unsafe { handle_mut(config, "config") }?;
        config.max_in_flight = Some(n);
        Ok(())
    })
}

/// Bounds each attempt, from connecting to the last byte of the body, to
/// `milliseconds`: at least 1, at most a day (checked by `fanout_client_new`).
///
/// # Safety
///
/// `config` is NULL or a live configuration.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fanout_config_set_timeout_ms(
    config: *mut FanoutConfig,
    milliseconds: u64,
) -> FanoutStatus {
    guard(None, || {
        // SAFETY: `config` is NULL or a live configuration that no other thread uses, by
        // this function's contract.
        let config = unsafe { handle_mut(config, "config") }?;
        config.timeout = Some(Duration::from_millis(milliseconds));
        Ok(())
    })
}

/// Attempts per ID in all, the first included: 1 means no retries; at least 1
/// (checked by `fanout_client_new`). Retried: 429, 502, 503, 504, connection errors
/// and timeouts.
///
/// # Safety
///
/// `config` is NULL or a live configuration.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fanout_config_set_max_attempts(
    config: *mut FanoutConfig,
    attempts: u32,
) -> FanoutStatus {
    guard(None, || {
        // SAFETY: `config` is NULL or a live configuration that no other thread uses, by
        // this function's contract.
        let config = unsafe { handle_mut(config, "config") }?;
        config.max_attempts = Some(attempts);
        Ok(())
    })
}

/// Adds a header to every request, such as `Authorization`. Checked by
/// `fanout_client_new`.
///
/// # Safety
///
/// `config` is NULL or a live configuration; `name` and `value` are NULL or
/// NUL-terminated strings.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fanout_config_add_header(
    config: *mut FanoutConfig,
    name: *const c_char,
    value: *const c_char,
) -> FanoutStatus {
    guard(None, || {
        // SAFETY: `config` is NULL or a live configuration that no other thread uses, by
        // this function's contract.
        let config = unsafe { handle_mut(config, "config") }?;
        // SAFETY: `name` is NULL or a NUL-terminated string, by this function's contract.
        let name = unsafe { utf8(name, "header name") }?.to_owned();
        // SAFETY: `value` is NULL or a NUL-terminated string, by this function's contract.
        let value = unsafe { utf8(value, "header value") }?.to_owned();
        config.headers.push((name, value));
        Ok(())
    })
}

/// Sends every request through the proxy at `url` (`http://host:port`, also
/// `https://`, `socks5h://` and the other SOCKS schemes, with `user:password@` if the
/// proxy asks), or through no proxy at all, whatever the environment says, when `url`
/// is NULL or "". Unset, the proxy comes from the environment as curl reads it
/// (`https_proxy`/`HTTPS_PROXY`, `http_proxy`, `all_proxy`/`ALL_PROXY`, `no_proxy`/
/// `NO_PROXY`). An invalid URL is reported by `fanout_client_new`, password masked.
///
/// # Safety
///
/// `config` is NULL or a live configuration; `url` is NULL or a NUL-terminated
/// string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fanout_config_set_proxy(
    config: *mut FanoutConfig,
    url: *const c_char,
) -> FanoutStatus {
    guard(None, || {
        // SAFETY: `config` is NULL or a live configuration that no other thread uses, by
        // this function's contract.
        let config = unsafe { handle_mut(config, "config") }?;
        let url = if url.is_null() {
            None
        } else {
            // SAFETY: `url` is a NUL-terminated string, by this function's contract.
            Some(unsafe { utf8(url, "proxy url") }?.to_owned())
        };
        config.proxy = Some(url.filter(|u| !u.is_empty()));
        Ok(())
    })
}

/// Trusts the CA certificates in the `len` bytes of PEM text at `pem` (one or more
/// `BEGIN CERTIFICATE` blocks) for https, in addition to the built-in roots; for
/// example a company's private CA. Every call adds. The text is copied, and checked by
/// `fanout_client_new`, which refuses one with no certificate or a malformed one.
///
/// The certificates in the files named by the `SSL_CERT_FILE` and `SSL_CERT_DIR`
/// environment variables are trusted too, as curl and OpenSSL do.
///
/// # Safety
///
/// `config` is NULL or a live configuration; `pem` is NULL or points to `len`
/// readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fanout_config_add_root_certificates_pem(
    config: *mut FanoutConfig,
    pem: *const u8,
    len: usize,
) -> FanoutStatus {
    guard(None, || {
        // SAFETY: `config` is NULL or a live configuration that no other thread uses, by
        // this function's contract.
        let config = unsafe { handle_mut(config, "config") }?;
        // SAFETY: `pem` is NULL or points to `len` readable bytes, by this function's
        // contract.
        let pem = unsafe { bytes(pem, len, "pem") }?.to_vec();
        config.root_certificates.push(Pem(pem));
        Ok(())
    })
}

/// Presents a client certificate to servers that ask for one (mutual TLS):
/// `cert` holds `cert_len` bytes of PEM, the certificate then any intermediate
/// ones; `key` holds `key_len` bytes of PEM, its private key (PKCS#8, PKCS#1 or SEC1,
/// not encrypted). Replaces an earlier one. Both are copied, and checked by
/// `fanout_client_new`, which refuses a missing or malformed certificate or key, and
/// a key that is not the certificate's. No message ever shows the key.
///
/// # Safety
///
/// `config` is NULL or a live configuration; `cert` and `key` are NULL or point to
/// `cert_len` and `key_len` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fanout_config_set_client_certificate_pem(
    config: *mut FanoutConfig,
    cert: *const u8,
    cert_len: usize,
    key: *const u8,
    key_len: usize,
) -> FanoutStatus {
    guard(None, || {
        // SAFETY: `config` is NULL or a live configuration that no other thread uses, by
        // this function's contract.
        let config = unsafe { handle_mut(config, "config") }?;
        // SAFETY: `cert` is NULL or points to `cert_len` readable bytes, by this
        // function's contract.
        let cert = unsafe { bytes(cert, cert_len, "cert") }?.to_vec();
        // SAFETY: `key` is NULL or points to `key_len` readable bytes, by this function's
        // contract.
        let key = unsafe { bytes(key, key_len, "key") }?.to_vec();
        config.client_certificate = Some((Pem(cert), Pem(key)));
        Ok(())
    })
}

/// Frees a configuration. NULL is ignored. Clients made from it are not affected.
///
/// # Safety
///
/// `config` is NULL or a live configuration, not used again after this.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fanout_config_free(config: *mut FanoutConfig) {
    guard_value((), || {
        // SAFETY: the caller hands over NULL or a live configuration, used no more.
        unsafe { free(config) }
    })
}

/// Whether the client slows down when the server answers 429 without rate-limit
/// headers (non-zero: yes, the default; zero: keep the configured rate, obeying only
/// the server's `Retry-After` pauses and rate-limit headers).
///
/// # Safety
///
/// `config` is NULL or a live configuration.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fanout_config_set_adaptive_rate(
    config: *mut FanoutConfig,
    on: bool,
) -> FanoutStatus {
    guard(None, || {
        // SAFETY: `config` is NULL or a live configuration that no other thread uses, by
        // this function's contract.
        let config = unsafe { handle_mut(config, "config") }?;
        config.adaptive_rate = Some(on);
        Ok(())
    })
}

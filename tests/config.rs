//! Every bad configuration is a clear `ConfigError`, never a panic.

use std::time::Duration;

use fanout::{BuildError, ConfigError, FanOutClient};

const GOOD: &str = "http://127.0.0.1:9/users/{id}";

fn error_of(builder: fanout::FanOutClientBuilder) -> ConfigError {
    match builder.build() {
        Err(BuildError::Config(err)) => err,
        other => panic!("configuration should be refused: {other:?}"),
    }
}

#[test]
fn zero_limits_are_refused() {
    let b = || FanOutClient::builder(GOOD);
    assert_eq!(error_of(b().max_in_flight(0)), ConfigError::ZeroInFlight);
    assert_eq!(error_of(b().rate_limit(0, 20)), ConfigError::ZeroRate);
    assert_eq!(error_of(b().rate_limit(10, 0)), ConfigError::ZeroBurst);
    assert_eq!(error_of(b().max_attempts(0)), ConfigError::ZeroAttempts);
    assert_eq!(
        error_of(b().timeout(Duration::ZERO)),
        ConfigError::ZeroTimeout
    );
    assert_eq!(error_of(b().max_body_bytes(0)), ConfigError::ZeroBodyLimit);
    assert_eq!(
        error_of(b().timeout(Duration::MAX)),
        ConfigError::TimeoutTooLong(Duration::MAX)
    );
    assert_eq!(
        error_of(b().max_in_flight(1_000_000)),
        ConfigError::TooManyInFlight(1_000_000)
    );
}

#[test]
fn bad_templates_are_refused_with_the_template_in_the_message() {
    let missing = error_of(FanOutClient::builder("http://127.0.0.1/users"));
    assert!(matches!(missing, ConfigError::MissingPlaceholder(_)));
    assert!(missing.to_string().contains("{id}"), "{missing}");

    for template in ["ftp://host/{id}", "not a url {id}", "//host/{id}", ""] {
        let err = error_of(FanOutClient::builder(template));
        assert!(
            matches!(
                err,
                ConfigError::InvalidUrl { .. } | ConfigError::MissingPlaceholder(_)
            ),
            "{template:?}: {err:?}"
        );
    }
}

#[test]
fn bad_headers_are_refused() {
    let err = error_of(FanOutClient::builder(GOOD).header("bad name", "v"));
    assert!(matches!(err, ConfigError::InvalidHeader { ref name, .. } if name == "bad name"));
    let err = error_of(FanOutClient::builder(GOOD).header("x-ok", "line\nbreak"));
    assert!(matches!(err, ConfigError::InvalidHeader { .. }));
}

#[test]
fn no_rate_limit_and_defaults_build() {
    let client = FanOutClient::builder(GOOD).no_rate_limit().build().unwrap();
    assert_eq!(client.max_in_flight(), fanout::DEFAULT_MAX_IN_FLIGHT);
}

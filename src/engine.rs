//! Fetching one key: wait for a token, send, classify, back off and retry, log.

use std::sync::Arc;
use std::time::Instant;

use crate::abort::{self, CallSockets};
use crate::cancel::{Signals, Stop};
use crate::error::ErrorKind;
use crate::error::FetchError;
use crate::http::{AttemptError, Http, MAX_REDIRECTS, Reply, ReplyKind};
use crate::key::KeyRef;
use crate::rate_limit::{NoToken, RateLimit};
use crate::retry::RetryPolicy;
use crate::stats::Counters;
use crate::template::UrlTemplate;
use crate::throttle::Answer;
use crate::wire::{self, Outcome};

/// Everything the workers share: one agent, one token bucket, one set of counters.
#[derive(Debug)]
pub(crate) struct Engine {
    pub(crate) http: Http,
    pub(crate) limit: Arc<RateLimit>,
    pub(crate) template: UrlTemplate,
    pub(crate) retry: RetryPolicy,
    pub(crate) counters: Arc<Counters>,
}

impl Engine {
    /// Fetches `key` with retries, until it succeeds, fails for good, or `signals` stop
    /// the call. On success the body is in `body`, which is overwritten.
    pub(crate) fn fetch_one(
        &self,
        key: KeyRef<'_>,
        signals: &Signals,
        sockets: &Arc<CallSockets>,
        body: &mut Vec<u8>,
    ) -> Result<(), FetchError> {
        // Only an empty key makes no URL: refused without a request.
        let first_url = self.template.url_for(key).ok_or_else(|| key.refused())?;
        let stopped =
            |stop: Stop, attempts: u32| stop.into_error().with_key(key).with_attempts(attempts);

        let mut attempt = 0;
        // Same-origin redirects followed in this attempt, and where they led.
        let mut hops = 0;
        let mut redirected: Option<String> = None;
        // When the server first throttled this ID, while it goes on doing so.
        let mut throttled_since: Option<Instant> = None;
        loop {
            // Checked before waiting for a token, so a stopped call spends none.
            signals.check().map_err(|s| stopped(s, attempt))?;
            if hops == 0 {
                attempt += 1;
            }
            // Attempts that went, for errors raised before this one did.
            let went_before = attempt - u32::from(hops == 0);
            let url = redirected.as_deref().unwrap_or(&first_url);

            // The token is taken at the wire, once the connection is ready.
            self.counters.request_started(hops == 0 && attempt > 1);
            let (result, outcome) = {
                let wire = wire::enter(&self.limit, &self.counters, signals, self.http.timeout());
                let _attempt = abort::enter(sockets);
                let result = self.http.request(url, signals.deadline(), body);
                (result, wire.outcome())
            };
            let sent = match outcome {
                Outcome::Sent(went) => {
                    self.counters.waited_for_token(went.waited);
                    Some(went.sent)
                }
                Outcome::Refused(NoToken::Stopped(stop)) => {
                    return Err(stopped(stop, went_before));
                }
                Outcome::Refused(NoToken::Failed(e)) => {
                    log::error!(user_id = key, attempt = went_before; "rate limiter failed: {e}");
                    self.counters.id_failed();
                    let detail = e.to_string();
                    return Err(FetchError::new(ErrorKind::Limiter)
                        .with_key(key)
                        .with_attempts(went_before)
                        .with_detail(detail)
                        .with_source(e));
                }
                Outcome::NotSent => None,
            };
            let latency_ms = sent.map_or(0, |sent| sent.at().elapsed().as_millis() as u64);

            let failed = match result {
                Ok(Reply { kind, quota }) => {
                    if let Some(sent) = sent {
                        self.limit.observe(sent, Answer::Accepted, quota.as_ref());
                    }
                    match kind {
                        ReplyKind::Body { status } => {
                            log::debug!(
                                user_id = key, attempt, latency_ms, status, bytes = body.len();
                                "fetched"
                            );
                            self.counters.id_succeeded();
                            return Ok(());
                        }
                        ReplyKind::Redirect(next) if hops < MAX_REDIRECTS => {
                            log::debug!(user_id = key, attempt, latency_ms; "redirected to {next}");
                            hops += 1;
                            redirected = Some(next);
                            continue;
                        }
                        ReplyKind::Redirect(_) => AttemptError::fatal(
                            FetchError::new(ErrorKind::Transport)
                                .with_description("too many redirects")
                                .with_detail(format!("more than {MAX_REDIRECTS}")),
                        ),
                    }
                }
                Err(failed) => {
                    if let (Some(answer), Some(sent)) = (failed.answer, sent) {
                        self.limit.observe(sent, answer, failed.quota.as_deref());
                    }
                    failed
                }
            };
            // A retry starts again from the template's URL.
            hops = 0;
            redirected = None;
            let status = failed.error.status();

            // A failure caused by the call stopping (its socket shut down, say) is
            // reported as the stop, not as a transport error.
            if let Err(stop) = signals.check() {
                return Err(stopped(stop, attempt).with_source(failed.error));
            }

            // Over the quota: the throttle holds this ID (and every other) until the
            // server's pause ends or its rate allows, and this try does not count.
            if let Some(Answer::Throttled { retry_after }) = failed.answer {
                let obeyed = retry_after.is_none_or(|r| r <= self.retry.max_retry_after);
                if obeyed && (retry_after.is_some() || self.limit.adaptive()) {
                    let now = Instant::now();
                    let since = *throttled_since.get_or_insert(now);
                    if now.duration_since(since) <= self.retry.max_throttled {
                        log::warn!(
                            user_id = key, attempt, latency_ms, status;
                            "throttled: waiting for the server's quota"
                        );
                        attempt -= 1;
                        continue;
                    }
                    log::error!(
                        user_id = key, attempt, latency_ms, status;
                        "failed: throttled for longer than {:?}", self.retry.max_throttled
                    );
                    self.counters.id_failed();
                    let detail = format!(
                        "throttled for longer than {} s",
                        self.retry.max_throttled.as_secs_f64()
                    );
                    return Err(failed
                        .error
                        .with_detail(detail)
                        .with_key(key)
                        .with_attempts(attempt));
                }
            }

            let backoff = if failed.retryable {
                self.retry
                    .backoff(attempt, failed.retry_after, fastrand::f64())
            } else {
                None
            };
            let Some(backoff) = backoff else {
                log::error!(
                    user_id = key, attempt, latency_ms, status;
                    "failed: {}", failed.error
                );
                self.counters.id_failed();
                return Err(failed.error.with_key(key).with_attempts(attempt));
            };

            log::warn!(
                user_id = key, attempt, latency_ms, status,
                backoff_ms = backoff.as_millis() as u64;
                "retrying: {}", failed.error
            );
            // Stopped while waiting to retry: the failure is news, not the stop's doing.
            if let Err(stop) = signals.wait(backoff) {
                return Err(stopped(stop, attempt).after_failure(failed.error));
            }
        }
    }
}

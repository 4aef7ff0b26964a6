/*
 * fanout: fetch many resources from one HTTP API as fast as its limits allow,
 * and never faster. The C API; see the README, "Using from C and Python".
 *
 * Generated from ffi/src by cbindgen: do not edit.
 */

#ifndef FANOUT_H
#define FANOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// The `timeout_ms` of `fanout_cancel_new` that means no deadline.
#define FANOUT_NO_TIMEOUT UINT64_MAX

// What a function returns: `FANOUT_STATUS_OK`, or why it failed. The kind of a
// `fanout_error` is one of these too.
enum fanout_status
#if defined(__cplusplus) || __STDC_VERSION__ >= 202311L
  : int32_t
#endif // defined(__cplusplus) || __STDC_VERSION__ >= 202311L
 {
  // Success.
  FANOUT_STATUS_OK = 0,
  // A NULL pointer where one is required, a length too large, a string that is not
  // UTF-8, or a configuration the client refuses (the error's message says which).
  FANOUT_STATUS_INVALID_ARGUMENT = 1,
  // The ID, or the index, is not in the results.
  FANOUT_STATUS_NOT_FOUND = 2,
  // The server answered with a status that is not a success, after any retries.
  FANOUT_STATUS_HTTP_STATUS = 3,
  // The request could not be sent or its answer could not be read.
  FANOUT_STATUS_TRANSPORT = 4,
  // An attempt took longer than the configured timeout.
  FANOUT_STATUS_TIMEOUT = 5,
  // A response body was larger than the client accepts.
  FANOUT_STATUS_TOO_LARGE = 6,
  // The call was cancelled with `fanout_cancel_cancel`.
  FANOUT_STATUS_CANCELLED = 7,
  // The cancel token's deadline passed.
  FANOUT_STATUS_DEADLINE_EXCEEDED = 8,
  // A bug in this library, such as a panic caught at the boundary.
  FANOUT_STATUS_INTERNAL = 9,
  // The rate limiter could not answer, such as a shared limiter whose store is
  // unreachable.
  FANOUT_STATUS_LIMITER = 10,
  // The system refused what the client needs, such as a worker thread.
  FANOUT_STATUS_SYSTEM = 11,
  // The callback of `fanout_fetch_each` returned non-zero, which stopped the call.
  FANOUT_STATUS_STOPPED = 12,
};
#ifndef __cplusplus
#if __STDC_VERSION__ >= 202311L
typedef enum fanout_status fanout_status;
#else
typedef int32_t fanout_status;
#endif // __STDC_VERSION__ >= 202311L
#endif // __cplusplus

// A cancellation signal: pass it to `fanout_fetch_all`, and cancel it from any
// thread with `fanout_cancel_cancel`. Every wait of the calls using it ends at once.
typedef struct fanout_cancel fanout_cancel;

// A client: its rate limit, its worker threads and its connections, shared by every
// call made on it.
typedef struct fanout_client fanout_client;

// The settings of a client, filled in by the `fanout_config_set_*` functions and
// read by `fanout_client_new`. Unset settings keep the library's defaults: 10
// requests per second with bursts of 20, 8 in flight, a 10 s timeout per attempt, 3
// attempts per ID. Values are checked when the client is made. One thread at a time
// may change a configuration.
typedef struct fanout_config fanout_config;

// Why a call failed: a kind, a message, and the ID or key and HTTP status it
// concerns, if any. Made by `fanout_client_new` and the fetch functions; freed with
// `fanout_error_free`.
typedef struct fanout_error fanout_error;

// The bodies of one call, by ID in ascending ID order, or by text key in ascending
// byte order, for iteration. Read-only: any number of threads may read one at once.
typedef struct fanout_results fanout_results;

// What `fanout_fetch_each` calls once per key, in completion order, on the thread
// that called `fanout_fetch_each`.
//
// `key` is the key, NUL-terminated. On success `body` points to the body's `len`
// bytes and `error` is NULL; on failure `body` is NULL, `len` is 0, and `error` says
// why. All three live only until the callback returns: copy what is kept. Return 0
// to go on, anything else to stop the call.
typedef int (*fanout_each_callback)(void *user_data,
                                    const char *key,
                                    const uint8_t *body,
                                    size_t len,
                                    const struct fanout_error *error);

#ifdef __cplusplus
extern "C" {
#endif // __cplusplus

// A new cancel token whose deadline is `timeout_ms` milliseconds from now, or none
// with `FANOUT_NO_TIMEOUT`. A call using it fails with
// `FANOUT_STATUS_DEADLINE_EXCEEDED` once the deadline passes (or would pass before
// its next request could be sent). NULL only if the library failed inside (a bug).
// Free it with `fanout_cancel_free`.
//
// Any thread.
struct fanout_cancel *fanout_cancel_new(uint64_t timeout_ms);

// Cancels the token: calls using it return `FANOUT_STATUS_CANCELLED` promptly.
// Cancelling twice is harmless.
//
// Any thread, at any time, also while calls are using the token.
//
// # Safety
//
// `cancel` is NULL or a live cancel token.
fanout_status fanout_cancel_cancel(const struct fanout_cancel *cancel);

// True once the token was cancelled or its deadline has passed; false for NULL.
//
// Any thread, at any time.
//
// # Safety
//
// `cancel` is NULL or a live cancel token.
bool fanout_cancel_is_cancelled(const struct fanout_cancel *cancel);

// Frees a cancel token. NULL is ignored.
//
// One thread, once no call uses the token and no other thread may cancel it.
//
// # Safety
//
// `cancel` is NULL or a live cancel token, not used again after this.
void fanout_cancel_free(struct fanout_cancel *cancel);

// Checks `config` and makes a client from it, starting its worker threads. On
// success `*out` is the client (free it with `fanout_client_free`); on failure
// `*out` is NULL and `*err`, if `err` is not NULL, explains (free it with
// `fanout_error_free`). A configuration the library refuses returns
// `FANOUT_STATUS_INVALID_ARGUMENT`; worker threads the system will not start,
// `FANOUT_STATUS_SYSTEM`. The configuration can be freed or reused after.
//
// Any thread.
//
// # Safety
//
// `config` is NULL or a live configuration not being changed by another thread;
// `out` and `err` are NULL or valid for one write.
fanout_status fanout_client_new(const struct fanout_config *config,
                                struct fanout_client **out,
                                struct fanout_error **err);

// Fetches the `n` IDs at `ids` (repeats are fetched once) and, on success, sets
// `*out` to the results (free them with `fanout_results_free`).
//
// The first ID that fails for good ends the call at once: its requests in flight are
// interrupted, the error comes back in `*err` (if `err` is not NULL), and `*out` is
// NULL. `cancel` may be NULL; if not, cancelling it or its deadline passing ends the
// call with `FANOUT_STATUS_CANCELLED` or `FANOUT_STATUS_DEADLINE_EXCEEDED`.
//
// `ids` may be NULL only when `n` is 0. Blocks until the call ends.
//
// Any number of threads may call this at once on one client: they share its rate
// limit and its in-flight cap.
//
// # Safety
//
// `client` and `cancel` are NULL or live handles, not freed during the call; `ids`
// is NULL or points to `n` readable `uint64_t`; `out` and `err` are NULL or valid for
// one write.
fanout_status fanout_fetch_all(const struct fanout_client *client,
                               const uint64_t *ids,
                               size_t n,
                               const struct fanout_cancel *cancel,
                               struct fanout_results **out,
                               struct fanout_error **err);

// Frees a client: waits for its worker threads to end, interrupting any request
// still in flight. NULL is ignored.
//
// One thread, once no call is running on the client.
//
// # Safety
//
// `client` is NULL or a live client, not used again after this.
void fanout_client_free(struct fanout_client *client);

// A new configuration with every setting at its default and no URL template yet.
// NULL only if the library failed inside (a bug). Free it with `fanout_config_free`.
//
// Any thread.
struct fanout_config *fanout_config_new(void);

// Sets the URL template: an http or https URL with one `{id}` placeholder, such as
// `"https://api.example.com/users/{id}"`. Checked by `fanout_client_new`.
//
// One thread at a time per configuration, as for every setter.
//
// # Safety
//
// `config` is NULL or a live configuration; `url_template` is NULL or a
// NUL-terminated string.
fanout_status fanout_config_set_url_template(struct fanout_config *config,
                                             const char *url_template);

// Allows `per_second` requests per second on average, in bursts of up to `burst`.
// Both must be at least 1 (checked by `fanout_client_new`).
//
// # Safety
//
// `config` is NULL or a live configuration.
fanout_status fanout_config_set_rate_limit(struct fanout_config *config,
                                           uint64_t per_second,
                                           uint64_t burst);

// Allows `amount` requests per window of `window_ms` milliseconds on average, in
// bursts of up to `burst`: quotas of any window, such as 5000 an hour
// (`5000, 3600000, burst`) or one every two seconds (`1, 2000, burst`). The bucket
// refills evenly. All three must be at least 1, and the window at most a year
// (checked by `fanout_client_new`).
//
// # Safety
//
// `config` is NULL or a live configuration.
fanout_status fanout_config_set_rate_per_window(struct fanout_config *config,
                                                uint64_t amount,
                                                uint64_t window_ms,
                                                uint64_t burst);

// Lifts the rate limit: requests are bounded only by the in-flight cap.
//
// # Safety
//
// `config` is NULL or a live configuration.
fanout_status fanout_config_set_no_rate_limit(struct fanout_config *config);

// Caps requests in flight at `n`, which is also the number of worker threads: from 1
// to 4096 (checked by `fanout_client_new`).
//
// # Safety
//
// `config` is NULL or a live configuration.
fanout_status fanout_config_set_max_in_flight(struct fanout_config *config, size_t n);

// Bounds each attempt, from connecting to the last byte of the body, to
// `milliseconds`: at least 1, at most a day (checked by `fanout_client_new`).
//
// # Safety
//
// `config` is NULL or a live configuration.
fanout_status fanout_config_set_timeout_ms(struct fanout_config *config, uint64_t milliseconds);

// Attempts per ID in all, the first included: 1 means no retries; at least 1
// (checked by `fanout_client_new`). Retried: 429, 502, 503, 504, connection errors
// and timeouts.
//
// # Safety
//
// `config` is NULL or a live configuration.
fanout_status fanout_config_set_max_attempts(struct fanout_config *config, uint32_t attempts);

// Adds a header to every request, such as `Authorization`. Checked by
// `fanout_client_new`.
//
// # Safety
//
// `config` is NULL or a live configuration; `name` and `value` are NULL or
// NUL-terminated strings.
fanout_status fanout_config_add_header(struct fanout_config *config,
                                       const char *name,
                                       const char *value);

// Sends every request through the proxy at `url` (`http://host:port`, also
// `https://`, `socks5h://` and the other SOCKS schemes, with `user:password@` if the
// proxy asks), or through no proxy at all, whatever the environment says, when `url`
// is NULL or "". Unset, the proxy comes from the environment as curl reads it
// (`https_proxy`/`HTTPS_PROXY`, `http_proxy`, `all_proxy`/`ALL_PROXY`, `no_proxy`/
// `NO_PROXY`). An invalid URL is reported by `fanout_client_new`, password masked.
//
// # Safety
//
// `config` is NULL or a live configuration; `url` is NULL or a NUL-terminated
// string.
fanout_status fanout_config_set_proxy(struct fanout_config *config, const char *url);

// Trusts the CA certificates in the `len` bytes of PEM text at `pem` (one or more
// `BEGIN CERTIFICATE` blocks) for https, in addition to the built-in roots; for
// example a company's private CA. Every call adds. The text is copied, and checked by
// `fanout_client_new`, which refuses one with no certificate or a malformed one.
//
// The certificates in the files named by the `SSL_CERT_FILE` and `SSL_CERT_DIR`
// environment variables are trusted too, as curl and OpenSSL do.
//
// # Safety
//
// `config` is NULL or a live configuration; `pem` is NULL or points to `len`
// readable bytes.
fanout_status fanout_config_add_root_certificates_pem(struct fanout_config *config,
                                                      const uint8_t *pem,
                                                      size_t len);

// Presents a client certificate to servers that ask for one (mutual TLS):
// `cert` holds `cert_len` bytes of PEM, the certificate then any intermediate
// ones; `key` holds `key_len` bytes of PEM, its private key (PKCS#8, PKCS#1 or SEC1,
// not encrypted). Replaces an earlier one. Both are copied, and checked by
// `fanout_client_new`, which refuses a missing or malformed certificate or key, and
// a key that is not the certificate's. No message ever shows the key.
//
// # Safety
//
// `config` is NULL or a live configuration; `cert` and `key` are NULL or point to
// `cert_len` and `key_len` readable bytes.
fanout_status fanout_config_set_client_certificate_pem(struct fanout_config *config,
                                                       const uint8_t *cert,
                                                       size_t cert_len,
                                                       const uint8_t *key,
                                                       size_t key_len);

// Frees a configuration. NULL is ignored. Clients made from it are not affected.
//
// # Safety
//
// `config` is NULL or a live configuration, not used again after this.
void fanout_config_free(struct fanout_config *config);

// Whether the client slows down when the server answers 429 without rate-limit
// headers (non-zero: yes, the default; zero: keep the configured rate, obeying only
// the server's `Retry-After` pauses and rate-limit headers).
//
// # Safety
//
// `config` is NULL or a live configuration.
fanout_status fanout_config_set_adaptive_rate(struct fanout_config *config, bool on);

// The kind of `error`; `FANOUT_STATUS_INVALID_ARGUMENT` if `error` is NULL.
//
// Any thread, at once with other readers of the same error.
//
// # Safety
//
// `error` is NULL or a live error from this library.
fanout_status fanout_error_kind(const struct fanout_error *error);

// What went wrong, in one line of UTF-8 ending in NUL; NULL if `error` is NULL. The
// string belongs to `error` and lives until it is freed.
//
// Any thread, at once with other readers of the same error.
//
// # Safety
//
// `error` is NULL or a live error from this library.
const char *fanout_error_message(const struct fanout_error *error);

// True if the error concerns one ID, which is then written to `*user_id` (if
// `user_id` is not NULL). False for NULL `error`, and for errors of the whole call
// (cancelled, deadline exceeded, invalid argument), with `*user_id` set to 0.
//
// Any thread, at once with other readers of the same error.
//
// # Safety
//
// `error` is NULL or a live error from this library; `user_id` is NULL or valid for
// one write.
bool fanout_error_user_id(const struct fanout_error *error, uint64_t *user_id);

// The text key the error concerns, as a NUL-terminated UTF-8 string that belongs to
// `error` and lives until it is freed; NULL for errors of the whole call, for errors
// of a `uint64_t` ID (see `fanout_error_user_id`), and for NULL `error`.
//
// Any thread, at once with other readers of the same error.
//
// # Safety
//
// `error` is NULL or a live error from this library.
const char *fanout_error_key(const struct fanout_error *error);

// The HTTP status the server answered with, for `FANOUT_STATUS_HTTP_STATUS` errors;
// 0 otherwise, and for NULL `error`.
//
// Any thread, at once with other readers of the same error.
//
// # Safety
//
// `error` is NULL or a live error from this library.
uint16_t fanout_error_http_status(const struct fanout_error *error);

// Frees an error and its message. NULL is ignored.
//
// One thread, once no other thread uses the error.
//
// # Safety
//
// `error` is NULL or a live error from this library, not used again after this.
void fanout_error_free(struct fanout_error *error);

// Fetches the `n` text keys at `keys` (NUL-terminated UTF-8 strings; repeats are
// fetched once) and, on success, sets `*out` to the results, looked up with
// `fanout_results_get_key` (free them with `fanout_results_free`).
//
// Each key goes into the URL percent-encoded, so that no key can add a path segment
// or a query parameter. An empty key, a NULL one or one that is not UTF-8 fails the
// call with `FANOUT_STATUS_INVALID_ARGUMENT` before any request. Otherwise the first
// key that fails for good ends the call as in `fanout_fetch_all`, and
// `fanout_error_key` names it. `cancel` may be NULL, as in `fanout_fetch_all`.
//
// `keys` may be NULL only when `n` is 0. Blocks until the call ends. Any number of
// threads may call this at once on one client.
//
// # Safety
//
// `client` and `cancel` are NULL or live handles, not freed during the call; `keys`
// is NULL or points to `n` readable pointers, each NULL or a NUL-terminated string,
// unchanged during the call; `out` and `err` are NULL or valid for one write.
fanout_status fanout_fetch_all_keys(const struct fanout_client *client,
                                    const char *const *keys,
                                    size_t n,
                                    const struct fanout_cancel *cancel,
                                    struct fanout_results **out,
                                    struct fanout_error **err);

// Fetches the `n` text keys at `keys` as `fanout_fetch_all_keys` does, but hands each
// result to `callback` as it completes instead of keeping it: memory stays bounded
// by the number of requests in flight (and the set of keys seen, to skip repeats),
// whatever `n` is. `user_data` is passed to every call of `callback` as it is.
//
// A key that fails does not stop the others: the callback gets its error (an empty
// key's without a request). The call stops early when the callback returns non-zero
// (`FANOUT_STATUS_STOPPED`) or when `cancel` is cancelled or its deadline passes
// (`FANOUT_STATUS_CANCELLED` or `FANOUT_STATUS_DEADLINE_EXCEEDED`); its requests in
// flight are then interrupted, and the callback is not called again. Otherwise it
// returns `FANOUT_STATUS_OK` once every key has been handed to the callback. A NULL
// or non-UTF-8 key fails the call with `FANOUT_STATUS_INVALID_ARGUMENT` before any
// request.
//
// The callback runs on the calling thread, one call at a time; it must not free the
// client. Any number of threads may call this at once on one client.
//
// # Safety
//
// As `fanout_fetch_all_keys`; `callback` is not NULL and may be called with
// `user_data` as described.
fanout_status fanout_fetch_each(const struct fanout_client *client,
                                const char *const *keys,
                                size_t n,
                                const struct fanout_cancel *cancel,
                                fanout_each_callback callback,
                                void *user_data,
                                struct fanout_error **err);

// How many IDs or keys the results hold; 0 for NULL.
//
// Any thread, at once with other readers.
//
// # Safety
//
// `results` is NULL or live results.
size_t fanout_results_len(const struct fanout_results *results);

// Looks up the body of `id`: on success `*body` points to its `*len` bytes, which
// belong to `results` and live until it is freed (for an empty body, `*body` is not
// NULL but must not be read). `FANOUT_STATUS_NOT_FOUND` if the call did not include
// `id`; `FANOUT_STATUS_INVALID_ARGUMENT` for results of text keys. On failure
// `*body` is NULL and `*len` is 0.
//
// Any thread, at once with other readers.
//
// # Safety
//
// `results` is NULL or live results; `body` and `len` are NULL or valid for one
// write.
fanout_status fanout_results_get(const struct fanout_results *results,
                                 uint64_t id,
                                 const uint8_t **body,
                                 size_t *len);

// The `index`th entry in ascending ID order, for iteration from 0 to
// `fanout_results_len(results) - 1`: writes its ID to `*id` and its body to `*body`
// and `*len`, as `fanout_results_get` does. `FANOUT_STATUS_NOT_FOUND` once `index`
// is past the end; `FANOUT_STATUS_INVALID_ARGUMENT` for results of text keys. On
// failure `*id` and `*len` are 0 and `*body` is NULL.
//
// Any thread, at once with other readers.
//
// # Safety
//
// `results` is NULL or live results; `id`, `body` and `len` are NULL or valid for
// one write.
fanout_status fanout_results_at(const struct fanout_results *results,
                                size_t index,
                                uint64_t *id,
                                const uint8_t **body,
                                size_t *len);

// Looks up the body of the text key `key` (NUL-terminated UTF-8), in results of
// `fanout_fetch_all_keys`: on success `*body` points to its `*len` bytes, as
// `fanout_results_get` gives them. `FANOUT_STATUS_NOT_FOUND` if the call did not
// include `key`; `FANOUT_STATUS_INVALID_ARGUMENT` for results of IDs. On failure
// `*body` is NULL and `*len` is 0.
//
// Any thread, at once with other readers.
//
// # Safety
//
// `results` is NULL or live results; `key` is NULL or a NUL-terminated string;
// `body` and `len` are NULL or valid for one write.
fanout_status fanout_results_get_key(const struct fanout_results *results,
                                     const char *key,
                                     const uint8_t **body,
                                     size_t *len);

// The `index`th entry in ascending byte order of the keys, in results of
// `fanout_fetch_all_keys`, for iteration from 0 to `fanout_results_len(results) - 1`:
// `*key` points to its key's `*key_len` bytes of UTF-8, **not** NUL-terminated, and
// `*body` to its body's `*len` bytes; both belong to `results` and live until it is
// freed. `FANOUT_STATUS_NOT_FOUND` once `index` is past the end;
// `FANOUT_STATUS_INVALID_ARGUMENT` for results of IDs. On failure the pointers are
// NULL and the lengths 0.
//
// Any thread, at once with other readers.
//
// # Safety
//
// `results` is NULL or live results; `key`, `key_len`, `body` and `len` are NULL or
// valid for one write.
fanout_status fanout_results_key_at(const struct fanout_results *results,
                                    size_t index,
                                    const char **key,
                                    size_t *key_len,
                                    const uint8_t **body,
                                    size_t *len);

// Frees results and every body in them. NULL is ignored.
//
// One thread, once no other thread reads the results and no body pointer taken from
// them is used again.
//
// # Safety
//
// `results` is NULL or live results, not used again after this.
void fanout_results_free(struct fanout_results *results);

#ifdef __cplusplus
}  // extern "C"
#endif  // __cplusplus

#endif  /* FANOUT_H */

//! The C API of `fanout`: a small, stable C ABI over the library, for C, C++, Python
//! (ctypes) and any language with a C FFI. The header is `include/fanout.h`, generated
//! from this crate by cbindgen.
//!
//! Conventions, the same for every function:
//!
//! - Each handle (`fanout_config`, `fanout_client`, `fanout_cancel`, `fanout_results`,
//!   `fanout_error`) has one constructor and one free function. Freeing NULL does
//!   nothing. Nothing else frees a handle, and nothing is handed out that the caller
//!   frees otherwise: strings and bodies borrowed from a handle live until it is freed.
//! - Functions that can fail return a [`FanoutStatus`]. A NULL pointer where one is
//!   required, a length too large, or a string that is not UTF-8 returns
//!   `FANOUT_STATUS_INVALID_ARGUMENT` and changes no handle.
//! - Outputs come last, each its own variable. Each output pointer that is not NULL is
//!   set to NULL or 0 on entry, and written with a result only on success.
//! - No panic crosses the boundary: each function catches one and returns
//!   `FANOUT_STATUS_INTERNAL` (or NULL, or zero), which is a bug in this library.
//! - Each function says in its documentation which threads may call it at once.

#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
// Each `unsafe` block holds one operation and says why it is sound.
#![deny(
    clippy::undocumented_unsafe_blocks,
    clippy::multiple_unsafe_ops_per_block
)]

mod boundary;
mod cancel;
mod client;
mod config;
mod error;
mod handle;
mod keys;
mod out;
mod results;
mod unwind;

pub use cancel::{
    FANOUT_NO_TIMEOUT, FanoutCancel, fanout_cancel_cancel, fanout_cancel_free,
    fanout_cancel_is_cancelled, fanout_cancel_new,
};
pub use client::{FanoutClient, fanout_client_free, fanout_client_new, fanout_fetch_all};
pub use config::{
    FanoutConfig, fanout_config_add_header, fanout_config_add_root_certificates_pem,
    fanout_config_free, fanout_config_new, fanout_config_set_adaptive_rate,
    fanout_config_set_client_certificate_pem, fanout_config_set_max_attempts,
    fanout_config_set_max_in_flight, fanout_config_set_no_rate_limit, fanout_config_set_proxy,
    fanout_config_set_rate_limit, fanout_config_set_rate_per_window, fanout_config_set_timeout_ms,
    fanout_config_set_url_template,
};
pub use error::{
    FanoutError, FanoutStatus, fanout_error_free, fanout_error_http_status, fanout_error_key,
    fanout_error_kind, fanout_error_message, fanout_error_user_id,
};
pub use keys::{FanoutEachCallback, fanout_fetch_all_keys, fanout_fetch_each};
pub use results::{
    FanoutResults, fanout_results_at, fanout_results_free, fanout_results_get,
    fanout_results_get_key, fanout_results_key_at, fanout_results_len,
};

//! The workspace's loopback HTTP/1.1 server: the library's and the command line's test
//! servers, the `fanout demo`'s strict API and the bench's downstream are all one
//! [`Server`].
//!
//! It is built to be measured against: one thread per connection, started before
//! connections come, so that no request queues behind another and the first request
//! on a new connection is read as soon as one on a kept-alive connection; each
//! request's arrival is stamped as its head is read; every thread is named (by default
//! `test-server`), so that thread counts can leave the server out.
//!
//! - [`Server`] answers each request with a [`Handler`]; [`Server::start`] (also
//!   called [`TestServer`]) answers canned [`Reply`]s by the ID in the path.
//! - [`QuotaServer`] is a rate-limited API judged by a [`Bucket`].
//! - [`worst_window_excess`] holds the arrivals a server saw against a token bucket.
//! - [`RecordingServer`] keeps every request head; [`raw_server`] hands over whole
//!   connections.
//! - With the `full` feature: [`TlsServer`] (rustls, and a CA of the test's own from
//!   rcgen), and [`TinyProxy`] and [`RedisServer`], processes of the test's own.
//!
//! ```
//! use testserver::{Reply, TestServer};
//!
//! let server = TestServer::start(|id| Reply::ok(format!("user-{}", id.unwrap_or(0))));
//! assert!(server.template().ends_with("/users/{id}"));
//! ```
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod bucket;
pub mod http1;
mod pacing;
#[cfg(feature = "full")]
mod process;
mod quota;
mod raw;
mod recording;
#[cfg(feature = "full")]
mod redis_server;
mod reply;
mod server;
mod threads;
#[cfg(feature = "full")]
mod tinyproxy;
#[cfg(feature = "full")]
mod tls;

pub use bucket::{Bucket, QuotaHeaders};
pub use http1::Response;
pub use pacing::{ARRIVAL_JITTER, arrival_times, worst_window_excess};
pub use quota::{QuotaArrival, QuotaConfig, QuotaServer, RetryAfterForm, http_date};
pub use raw::{raw_server, read_request_head};
pub use recording::{RecordingServer, Seen, response};
#[cfg(feature = "full")]
pub use redis_server::RedisServer;
pub use reply::Reply;
/// The tests' name for [`Server`].
pub use server::Server as TestServer;
pub use server::{Answer, Arrival, Builder, Handler, Request, SERVER_THREAD, Server};
pub use threads::{
    eventually, library_thread_count, library_threads_gone, thread_count, thread_names,
};
#[cfg(feature = "full")]
pub use tinyproxy::TinyProxy;
#[cfg(feature = "full")]
pub use tls::{Issued, TestCa, TlsServer, TlsServerConfig};

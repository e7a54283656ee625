//! HTTP/1.1, one codec in two roles (as hyper's `proto/h1` serves `Server` and `Client`): the
//! server role for the site tags' requests ([`request`] heads, [`response`] writing, the
//! per-connection loop in [`conn`]) and the client role for partner calls ([`client`]), sharing
//! the framing rules ([`framing`], [`chunked`]).
//! The URL grammar of redirect targets and origins, and the `Location` encoder, are in [`url`].
//!
//! Per-core: nothing here is shared between cores except read-only limits.

pub mod chunked;
pub mod client;
pub mod conn;
pub mod drain;
pub mod framing;
pub mod io;
pub mod request;
pub mod response;
#[allow(unsafe_code)]
pub mod sock;
pub mod url;

pub use io::Transport;
pub use request::{host_without_port, parse_head, Body, Head, HeadLimits, Method, Parsed, Span, Version};

/// Most headers a request may carry (docs/http-api.md §1: more is a 431).
pub const MAX_HEADERS: usize = 64;

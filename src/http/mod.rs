//! HTTP/1.1 for the client side (and, later, the partner client): framing without IO in
//! [`request`], [`chunked`] and [`response`]; the per-connection loop in [`conn`]; the URL
//! grammar of redirect targets and origins, and the `Location` encoder, in [`url`].
//!
//! Per-core: nothing here is shared between cores except read-only limits.

pub mod chunked;
pub mod conn;
pub mod drain;
pub mod request;
pub mod response;
pub mod url;

pub use request::{parse_head, Body, Head, HeadLimits, Method, Parsed, Span, Version};

/// Most headers a request may carry (docs/http-api.md §1: more is a 431).
pub const MAX_HEADERS: usize = 64;

//! Protocol errors of inbound requests, and the one place where they become HTTP statuses
//! ([`status_for`]). They are all the client's doing; a partner's failure is never an error of
//! the client request (it is an outcome the partner client counts), and DCS-level problems
//! (error codes 1–315) are answered inside a 200 (docs/http-api.md §12). Hot-path errors are
//! `Copy` and never allocate.

use std::fmt;

/// A protocol-level failure of an inbound request (docs/http-api.md §1). Each one is answered with
/// its status and `Connection: close`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpError {
    /// Malformed request line or header, obs-fold, bad chunk framing, HTTP/1.1 without `Host`,
    /// conflicting framing headers (request smuggling defences).
    BadRequest(BadRequest),
    /// The request target is longer than `limits.max_uri_bytes`.
    UriTooLong,
    /// The header block is larger than `limits.max_header_bytes` or has more than 64 headers.
    HeadersTooLarge,
    /// The body is larger than `limits.max_body_bytes`.
    BodyTooLarge,
    /// The request head did not arrive within `limits.header_timeout_ms`.
    Timeout,
    /// A method other than GET, HEAD, POST, OPTIONS.
    MethodNotAllowed,
    /// An HTTP version other than 1.0 and 1.1.
    VersionNotSupported,
}

/// Why a request is a 400; logged at debug level and counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadRequest {
    /// httparse rejected the request line or a header (obs-fold included).
    Syntax,
    /// HTTP/1.1 request without a `Host` header, or with several.
    Host,
    /// Both `Content-Length` and `Transfer-Encoding`.
    ContentLengthAndTransferEncoding,
    /// Several `Content-Length` values that differ, or one that is not a number.
    ContentLength,
    /// A `Transfer-Encoding` other than `chunked` alone, or one in an HTTP/1.0 request.
    TransferEncoding,
    /// A chunked body whose framing is broken.
    Chunk,
    /// The request target is not in origin or absolute form.
    Target,
}

// === impl HttpError ===

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::BadRequest(why) => write!(f, "bad request ({why:?})"),
            HttpError::UriTooLong => f.write_str("request target too long"),
            HttpError::HeadersTooLarge => f.write_str("request header fields too large"),
            HttpError::BodyTooLarge => f.write_str("request body too large"),
            HttpError::Timeout => f.write_str("request header timed out"),
            HttpError::MethodNotAllowed => f.write_str("method not allowed"),
            HttpError::VersionNotSupported => f.write_str("HTTP version not supported"),
        }
    }
}

impl std::error::Error for HttpError {}

/// The HTTP status for a protocol error. This is the only place errors become statuses.
pub fn status_for(e: HttpError) -> u16 {
    match e {
        HttpError::BadRequest(_) => 400,
        HttpError::UriTooLong => 414,
        HttpError::HeadersTooLarge => 431,
        HttpError::BodyTooLarge => 413,
        HttpError::Timeout => 408,
        HttpError::MethodNotAllowed => 405,
        HttpError::VersionNotSupported => 505,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_contract_table() {
        assert_eq!(status_for(HttpError::BadRequest(BadRequest::Chunk)), 400);
        assert_eq!(status_for(HttpError::UriTooLong), 414);
        assert_eq!(status_for(HttpError::HeadersTooLarge), 431);
        assert_eq!(status_for(HttpError::BodyTooLarge), 413);
        assert_eq!(status_for(HttpError::Timeout), 408);
        assert_eq!(status_for(HttpError::MethodNotAllowed), 405);
    }
}

//! TLS for both roles, on rustls 0.23 with the ring provider: HTTPS termination for the
//! `tls.tls_listen` listeners ([`ServerTls`], docs/configuration.md §3.10) and `https://`
//! partner calls ([`client`], docs/partner-protocol.md §2.1).
//!
//! * Protocols: TLS 1.2 and 1.3 only; rustls' default suites (AES-GCM and ChaCha20-Poly1305
//!   with ECDHE, nothing else); ALPN `http/1.1` (a client that offers ALPN without it is
//!   refused with `no_application_protocol`).
//! * Certificates: PEM chain and key (RSA, ECDSA or Ed25519), checked when loaded (readable,
//!   the key matches the certificate, every certificate of the chain valid now), and swapped
//!   whole on reload ([`ServerTls::reload`]): new handshakes get the new set, established
//!   connections keep theirs, and a set that fails a check is refused and the old one kept.
//!   Extra certificates are chosen by SNI among their subjectAltName DNS names.
//! * Resumption: stateless tickets (TLS 1.2 and 1.3) from one ticketer shared by every core,
//!   its key rotated every 6 hours (tickets accepted up to 12 hours), and a session-ID cache
//!   for TLS 1.2 clients without ticket support, also shared. Both take a lock only during a
//!   handshake, never on the request path.
//! * Streams: [`TlsStream`] drives a rustls connection over any [`crate::http::Transport`] and
//!   is one itself, so the HTTP connection loop and the partner client run unchanged on it.
//!
//! Sits beside `http` (uses only its `Transport`); used by `runtime` (accepting) and `partner`
//! (calling). The server configuration is shared by every core; streams are per connection.
//!
//! Measured 2026-11-29 on the 2-core VM, `benches/load.sh --tls --pixel` against nginx 1.22 +
//! OpenSSL 3.0 in the same run (one worker each, TLS 1.3, ECDSA P-256): keep-alive 14.6 µs of
//! server CPU per request (nginx 18.7, 0.78 ×); a full handshake and one request 532 µs (nginx
//! 934, 0.57 ×), a resumed one 412 µs (719, 0.57 ×); 23 kB of RSS per idle TLS connection
//! (nginx 13.5 kB).

pub mod certs;
pub mod client;
mod server;
mod stream;
pub mod x509;

use std::fmt;
use std::rc::Rc;

pub use certs::{CertFiles, CertSummary};
pub use server::ServerTls;
pub use stream::TlsStream;

/// How a server handshake is reported (to the runtime's metrics), once per connection.
pub type Report = Rc<dyn Fn(Result<Handshake, HandshakeError>)>;

/// What a finished handshake negotiated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Handshake {
    /// TLS 1.3 (else 1.2).
    pub tls13: bool,
    /// Resumed from a ticket or a cached session.
    pub resumed: bool,
}

/// Why a handshake failed. `Copy`; the label is the metrics' `reason`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandshakeError {
    /// Not finished in time (the server's `header_timeout`, the partner's `timeout_ms`), or
    /// the connection was dropped (drain) before it finished.
    Timeout,
    /// The peer closed or reset the connection.
    Closed,
    /// Nothing in common: TLS version (1.1 and older), cipher suite, key exchange group,
    /// signature scheme or ALPN protocol.
    Incompatible,
    /// The peer sent an alert (a browser refusing our certificate says so with one).
    Alert,
    /// Anything else: a malformed or unexpected message, a bad MAC, a bad certificate from a
    /// partner.
    Protocol,
}

// === impl HandshakeError ===

impl HandshakeError {
    /// Every reason, in label order.
    pub const ALL: [HandshakeError; 5] = [
        HandshakeError::Timeout,
        HandshakeError::Closed,
        HandshakeError::Incompatible,
        HandshakeError::Alert,
        HandshakeError::Protocol,
    ];

    /// The metrics label.
    pub fn label(self) -> &'static str {
        match self {
            HandshakeError::Timeout => "timeout",
            HandshakeError::Closed => "closed",
            HandshakeError::Incompatible => "incompatible",
            HandshakeError::Alert => "alert",
            HandshakeError::Protocol => "protocol",
        }
    }

    fn from_rustls(e: &rustls::Error) -> HandshakeError {
        match e {
            rustls::Error::PeerIncompatible(_) | rustls::Error::NoApplicationProtocol => {
                HandshakeError::Incompatible
            }
            rustls::Error::AlertReceived(_) => HandshakeError::Alert,
            _ => HandshakeError::Protocol,
        }
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TLS handshake failed: {}", self.label())
    }
}

impl std::error::Error for HandshakeError {}

/// The crypto provider both roles use: ring, with rustls' default (modern) suites and groups.
fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::ring::default_provider())
}

/// TLS 1.3 and 1.2, nothing older.
const VERSIONS: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];

/// The one application protocol offered and accepted.
const ALPN_HTTP11: &[u8] = b"http/1.1";

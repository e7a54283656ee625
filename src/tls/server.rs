//! [`ServerTls`]: the server configuration shared by every core (protocols, ALPN, resumption,
//! the certificate resolver) and the per-connection [`TlsStream`] it starts.

use std::sync::Arc;

use rustls::server::{ServerConfig, ServerConnection, ServerSessionMemoryCache};

use crate::http::Transport;

use super::certs::{unix_now, CertFiles, CertSet, CertSummary, Resolver};
use super::{Report, TlsStream, ALPN_HTTP11, VERSIONS};

/// TLS 1.2 sessions kept for session-ID resumption, all cores together (a few hundred bytes
/// each). Clients that support tickets (all current browsers) need no entry.
const SESSION_CACHE_ENTRIES: usize = 16 * 1024;

/// HTTPS termination: one per process, shared by every core.
#[derive(Debug)]
pub struct ServerTls {
    /// rustls' configuration; its ticketer and session cache live as long as the process, so
    /// a certificate reload keeps resumption working.
    config: Arc<ServerConfig>,
    /// The certificates, swapped on reload.
    resolver: Arc<Resolver>,
    /// Where they are read from (the first is the default certificate).
    files: Vec<CertFiles>,
}

// === impl ServerTls ===

impl ServerTls {
    /// Reads and checks the certificates and builds the configuration.
    ///
    /// # Errors
    /// A certificate or key that fails a check (docs/configuration.md §3.10), with its file.
    pub fn load(files: Vec<CertFiles>) -> Result<ServerTls, String> {
        let set = CertSet::load(&files, unix_now())?;
        let resolver = Arc::new(Resolver::new(set));
        let mut config = ServerConfig::builder_with_provider(super::provider())
            .with_protocol_versions(VERSIONS)
            .map_err(|e| format!("tls: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
        config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE_ENTRIES);
        config.ticketer = rustls::crypto::ring::Ticketer::new().map_err(|e| format!("tls: ticketer: {e}"))?;
        Ok(ServerTls { config: Arc::new(config), resolver, files })
    }

    /// Reads the certificate files again; on success new handshakes use them (established
    /// connections keep theirs), else the current ones stay.
    ///
    /// # Errors
    /// Why the new files were refused.
    pub fn reload(&self) -> Result<CertSummary, String> {
        let set = CertSet::load(&self.files, unix_now())?;
        let summary = set.summary().clone();
        self.resolver.swap(set);
        Ok(summary)
    }

    /// What the current certificates are.
    pub fn summary(&self) -> CertSummary {
        self.resolver.summary()
    }

    /// Starts TLS on an accepted connection. Nothing is read or sent yet: the first read runs
    /// the handshake (see [`TlsStream`]), whose outcome goes to `report`. `None` (reported as
    /// a protocol failure) only if rustls refuses the configuration, which `load` built.
    pub fn accept<IO: Transport>(&self, io: IO, report: Report) -> Option<TlsStream<IO, ServerConnection>> {
        match ServerConnection::new(self.config.clone()) {
            Ok(conn) => Some(TlsStream::new(io, conn, Some(report))),
            Err(_) => {
                report(Err(super::HandshakeError::Protocol));
                None
            }
        }
    }
}

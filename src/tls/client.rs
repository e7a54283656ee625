//! The client role, for `https://` partners (docs/partner-protocol.md §2.1): a rustls client
//! configuration per trust store, built at taxonomy load, and [`connect`].
//!
//! Trust: the system's CA store (read once per process, on first use, on the main thread), or
//! the data source's `ca_file` (read at each taxonomy load). Each configuration keeps a client
//! session cache (rustls' in-memory store, 256 sessions, shared by every core through the
//! `Arc`), so a new pooled connection to a partner resumes its TLS session instead of a full
//! handshake. The server name sent (SNI) and checked against the certificate is the URL's host.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::client::ClientConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConnection, RootCertStore};

use crate::http::Transport;

use super::{HandshakeError, TlsStream, ALPN_HTTP11, VERSIONS};

/// A TLS stream to a partner.
pub type ClientStream<IO> = TlsStream<IO, ClientConnection>;

/// The configuration for partners that trust the system's CAs (one per process: one session
/// cache for all of them, keyed by server name).
///
/// # Errors
/// No usable CA certificate in the system store.
pub fn system_config() -> Result<Arc<ClientConfig>, String> {
    static SYSTEM: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    SYSTEM
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            let mut roots = RootCertStore::empty();
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                let why = found.errors.first().map(|e| format!(": {e}")).unwrap_or_default();
                return Err(format!("no CA certificate found in the system store{why}"));
            }
            config(roots)
        })
        .clone()
}

/// A configuration that trusts only the CA certificates in `ca_file` (PEM).
///
/// # Errors
/// The file cannot be read or holds no usable certificate.
pub fn ca_file_config(ca_file: &Path) -> Result<Arc<ClientConfig>, String> {
    let certs = CertificateDer::pem_file_iter(ca_file)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read {}: {e}", ca_file.display()))?;
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(format!("{}: no usable CA certificate", ca_file.display()));
    }
    config(roots)
}

fn config(roots: RootCertStore) -> Result<Arc<ClientConfig>, String> {
    let mut c = ClientConfig::builder_with_provider(super::provider())
        .with_protocol_versions(VERSIONS)
        .map_err(|e| format!("tls: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    c.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    Ok(Arc::new(c))
}

/// The name to send and verify for a URL's host (a DNS name or an IP literal).
///
/// # Errors
/// A host that is neither.
pub fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(host.trim_start_matches('[').trim_end_matches(']').to_string())
        .map_err(|_| format!("{host:?} is not a valid TLS server name"))
}

/// Runs a client handshake over `io` (the caller bounds it with its deadline).
///
/// # Errors
/// How the handshake failed (an untrusted or wrong certificate is [`HandshakeError::Protocol`]).
pub async fn connect<IO: Transport>(
    io: IO,
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
) -> Result<ClientStream<IO>, HandshakeError> {
    let conn = ClientConnection::new(config, name).map_err(|_| HandshakeError::Protocol)?;
    let mut s = TlsStream::new(io, conn, None);
    s.handshake().await?;
    Ok(s)
}

//! The server's certificates: PEM files read and checked ([`CertSet::load`]), and the SNI
//! choice among them ([`Resolver`], swapped whole on reload).
//!
//! Checks, each failing with a message naming the file: the files can be read and hold a
//! certificate chain and a private key rustls can use (RSA ≥ 2048 bits, ECDSA P-256/P-384,
//! Ed25519); the key is the certificate's (same public key); every certificate of the chain is
//! valid at load time (not expired, not before its `notBefore`). Reading happens on the main
//! thread (start-up, `--check`, SIGHUP), never on a worker.

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustc_hash::FxHashMap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::x509::{self, format_utc};

/// One certificate chain and its key, as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertFiles {
    /// PEM certificate chain, the server's certificate first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// The loaded certificates: the default one (first) and the others by DNS name.
#[derive(Debug)]
pub struct CertSet {
    /// For clients without SNI or with a name no certificate has.
    default: Arc<CertifiedKey>,
    /// Exact names and `*.suffix` wildcards, lower-case; the first certificate naming one wins.
    by_name: FxHashMap<String, Arc<CertifiedKey>>,
    /// What was loaded, for logs and metrics.
    summary: CertSummary,
}

/// What a loaded set holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertSummary {
    /// Certificate chains loaded.
    pub certificates: usize,
    /// The earliest `notAfter` among the server certificates, Unix seconds.
    pub not_after: i64,
    /// The default certificate's DNS names.
    pub names: Vec<String>,
}

/// Picks a certificate per handshake from the current [`CertSet`].
#[derive(Debug)]
pub struct Resolver {
    current: ArcSwap<CertSet>,
}

// === impl CertSet ===

impl CertSet {
    /// Reads and checks every pair (the first is the default certificate) at Unix time `now`.
    ///
    /// # Errors
    /// The first problem found, naming its file.
    pub fn load(files: &[CertFiles], now: i64) -> Result<CertSet, String> {
        let provider = super::provider();
        let mut by_name = FxHashMap::default();
        let mut default = None;
        let mut summary = CertSummary { certificates: files.len(), not_after: i64::MAX, names: Vec::new() };
        for f in files {
            let (key, info) = load_pair(f, &provider, now)?;
            let key = Arc::new(key);
            summary.not_after = summary.not_after.min(info.not_after);
            if default.is_none() {
                summary.names = info.dns_names.clone();
                default = Some(key.clone());
            }
            for name in info.dns_names {
                by_name.entry(name).or_insert_with(|| key.clone());
            }
        }
        let default = default.ok_or("tls: no certificate configured")?;
        Ok(CertSet { default, by_name, summary })
    }

    /// The certificate for an SNI name.
    fn pick(&self, sni: Option<&str>) -> &Arc<CertifiedKey> {
        let Some(name) = sni.filter(|_| !self.by_name.is_empty()) else { return &self.default };
        let name = name.to_ascii_lowercase();
        if let Some(k) = self.by_name.get(&name) {
            return k;
        }
        match name.split_once('.') {
            Some((_, parent)) => self.by_name.get(&format!("*.{parent}")).unwrap_or(&self.default),
            None => &self.default,
        }
    }

    /// What this set holds.
    pub fn summary(&self) -> &CertSummary {
        &self.summary
    }
}

/// One chain and key, checked.
fn load_pair(
    f: &CertFiles,
    provider: &rustls::crypto::CryptoProvider,
    now: i64,
) -> Result<(CertifiedKey, x509::CertInfo), String> {
    let (cert, key) = (f.cert.display(), f.key.display());
    let chain = CertificateDer::pem_file_iter(&f.cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("tls.cert {cert}: cannot read a PEM certificate chain: {e}"))?;
    if chain.is_empty() {
        return Err(format!("tls.cert {cert}: no certificate in the file"));
    }
    let der = PrivateKeyDer::from_pem_file(&f.key)
        .map_err(|e| format!("tls.key {key}: cannot read a PEM private key: {e}"))?;
    let certified = CertifiedKey::from_der(chain, der, provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => {
            format!("tls.key {key} does not belong to the certificate in {cert} (their public keys differ)")
        }
        e => format!("tls.key {key}: unusable private key: {e}"),
    })?;
    let mut leaf = None;
    for (i, c) in certified.cert.iter().enumerate() {
        let info = x509::parse(c).map_err(|e| format!("tls.cert {cert}: certificate {}: {e}", i + 1))?;
        let which =
            if i == 0 { "the server certificate".to_string() } else { format!("certificate {}", i + 1) };
        if now < info.not_before {
            return Err(format!(
                "tls.cert {cert}: {which} is not valid before {}",
                format_utc(info.not_before)
            ));
        }
        if now > info.not_after {
            return Err(format!("tls.cert {cert}: {which} expired on {}", format_utc(info.not_after)));
        }
        leaf.get_or_insert(info);
    }
    let leaf = leaf.ok_or_else(|| format!("tls.cert {cert}: no certificate in the file"))?;
    Ok((certified, leaf))
}

/// The current Unix time, seconds.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

// === impl Resolver ===

impl Resolver {
    /// Serves `set` until [`Resolver::swap`].
    pub fn new(set: CertSet) -> Resolver {
        Resolver { current: ArcSwap::from_pointee(set) }
    }

    /// New handshakes use `set` from now on.
    pub fn swap(&self, set: CertSet) {
        self.current.store(Arc::new(set));
    }

    /// What the current set holds.
    pub fn summary(&self) -> CertSummary {
        self.current.load().summary.clone()
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load().pick(hello.server_name()).clone())
    }
}

#[cfg(test)]
mod tests;

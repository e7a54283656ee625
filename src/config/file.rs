//! `dcsd.toml` (docs/configuration.md §3): every key optional, unknown keys rejected.
//!
//! Single-value checks (ranges, enums, address syntax) run inside deserialization, so toml
//! reports them with the line and column of the offending value.

use std::net::SocketAddr;

use serde::{Deserialize, Deserializer};

use super::cli::Driver;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileConfig {
    /// `[server]`
    pub server: Server,
    /// `[limits]`
    pub limits: Limits,
    /// `[cookie]`
    pub cookie: Cookie,
    /// `[privacy]`
    pub privacy: Privacy,
    /// `[rate_limit]`
    pub rate_limit: RateLimit,
    /// `[denylist]`
    pub denylist: Denylist,
    /// `[partners]`
    pub partners: Partners,
    /// `[store]`
    pub store: Store,
    /// `[eventlog]`
    pub eventlog: EventLog,
    /// `[tls]`
    pub tls: Tls,
}

/// `[server]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Server {
    /// Public listeners; one `SO_REUSEPORT` socket per core per address.
    #[serde(deserialize_with = "nonempty_addrs")]
    pub listen: Vec<SocketAddr>,
    /// If set, `/healthz` and `/metrics` are served only here.
    pub admin_listen: Vec<SocketAddr>,
    /// Worker threads; 0 = one per available core. At most 1024.
    #[serde(deserialize_with = "threads")]
    pub threads: usize,
    /// `auto`, `uring` or `legacy`.
    pub driver: Driver,
    /// `dcs_region` in responses.
    pub region: u32,
    /// Node name in the `DCS` header; "" = the host name. At most 255 bytes of printable ASCII
    /// without spaces (it is written into every answer's head as it is).
    #[serde(deserialize_with = "node")]
    pub node: String,
    /// Grace period for in-flight requests on SIGTERM, ms (1..=600000).
    #[serde(deserialize_with = "drain_ms")]
    pub drain_ms: u64,
    /// Taxonomy path; "" = the built-in demo taxonomy.
    pub taxonomy: String,
}

/// `[limits]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Longest request target, bytes (64..=1 MiB).
    #[serde(deserialize_with = "uri_bytes")]
    pub max_uri_bytes: usize,
    /// Largest header block, bytes (256..=1 MiB).
    #[serde(deserialize_with = "header_bytes")]
    pub max_header_bytes: usize,
    /// Largest request body, bytes (0..=16 MiB).
    #[serde(deserialize_with = "body_bytes")]
    pub max_body_bytes: usize,
    /// Time for a request head (and body) to arrive, ms (1..=3600000).
    #[serde(deserialize_with = "timeout_ms")]
    pub header_timeout_ms: u64,
    /// Idle keep-alive connections are closed after this, ms (1..=3600000).
    #[serde(deserialize_with = "timeout_ms")]
    pub keepalive_timeout_ms: u64,
    /// Open client connections per process on the public listeners; beyond it new ones are
    /// closed at once (>= 1). Lowered at start-up to what `RLIMIT_NOFILE` allows.
    #[serde(deserialize_with = "positive_usize")]
    pub max_connections: usize,
    /// Open connections per client address (IPv6: per /64); 0 = no cap.
    pub max_connections_per_ip: usize,
    /// Open connections on the admin listeners, a budget of their own (>= 1).
    #[serde(deserialize_with = "positive_usize")]
    pub admin_max_connections: usize,
    /// Largest taxonomy file read, bytes (1 KiB..=4 GiB); checked before parsing.
    #[serde(deserialize_with = "taxonomy_bytes")]
    pub taxonomy_max_bytes: u64,
    /// Deepest nesting of JSON arrays and objects in the taxonomy (4..=1024); checked before
    /// parsing.
    #[serde(deserialize_with = "taxonomy_depth")]
    pub taxonomy_max_depth: usize,
}

/// `[cookie]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Cookie {
    /// `Domain` attribute; "" = host-only.
    #[serde(deserialize_with = "cookie_domain")]
    pub domain: String,
    /// `Secure` attribute.
    pub secure: bool,
    /// `SameSite=None` attribute.
    pub same_site_none: bool,
}

/// `[privacy]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Privacy {
    /// Zero the last IPv4 octet / last 80 bits of IPv6 before use.
    pub ip_obfuscation: bool,
    /// The IAB vendor ID whose consent is required with `gdpr=1`.
    pub consent_vendor_id: u16,
}

/// `[rate_limit]`
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimit {
    /// Requests per second per client IP per core; 0 = off.
    pub per_ip_rps: u32,
    /// Token bucket depth.
    pub burst: u32,
}

/// `[denylist]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Denylist {
    /// Requests per ID within `window_s` before it is denylisted (>= 1: 0 would denylist every
    /// ID at its first request).
    #[serde(deserialize_with = "positive_u32")]
    pub max_requests: u32,
    /// Counting window, seconds (>= 1).
    #[serde(deserialize_with = "positive_u32")]
    pub window_s: u32,
    /// How long a denylisted ID stays denylisted, seconds (>= 1).
    #[serde(deserialize_with = "positive_u32")]
    pub ttl_s: u32,
}

/// `[partners]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Partners {
    /// A request's partner phase lasts at most this, ms.
    pub budget_ms: u32,
}

/// `[store]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Store {
    /// Profiles kept; the least recently seen are evicted beyond it.
    #[serde(deserialize_with = "positive_usize")]
    pub max_profiles: usize,
    /// Trait realizations per profile; the oldest go first.
    #[serde(deserialize_with = "positive_usize")]
    pub max_traits_per_profile: usize,
    /// Snapshot file; "" = none.
    pub snapshot_path: String,
    /// When a snapshot would hold fewer than this fraction of the previous file's profiles,
    /// the previous file is kept aside (`<path>.previous`) and a warning logged (0.0..=1.0;
    /// 0 = never).
    #[serde(deserialize_with = "fraction")]
    pub snapshot_shrink_ratio: f64,
    /// Seconds between snapshots.
    pub snapshot_interval_s: u32,
}

/// `[eventlog]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventLog {
    /// Directory; "" = no event log.
    pub dir: String,
    /// Rotate at this size, bytes.
    pub segment_bytes: u64,
    /// Buffered records are written at least this often, ms.
    pub flush_ms: u32,
    /// `always`, `interval` or `never`.
    pub fsync: Fsync,
    /// Interval for `fsync = "interval"`, ms.
    pub fsync_interval_ms: u32,
}

/// When the event log is fsynced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fsync {
    /// After every flush.
    Always,
    /// Every `fsync_interval_ms`.
    #[default]
    Interval,
    /// Never (the kernel decides).
    Never,
}

/// `[tls]` — HTTPS on `tls_listen` (docs/configuration.md §3.10). The files are read and
/// checked by `crate::tls` at start-up, `--check` and SIGHUP; `Config::load` checks that the
/// keys go together.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tls {
    /// PEM certificate chain (server certificate first); relative to `dcsd.toml`'s directory.
    pub cert: String,
    /// PEM private key of `cert` (PKCS#8, PKCS#1 or SEC1).
    pub key: String,
    /// HTTPS listeners; one `SO_REUSEPORT` socket per core per address, like `server.listen`.
    pub tls_listen: Vec<SocketAddr>,
    /// More certificates, each served to clients whose SNI names one of its subjectAltName DNS
    /// names (`cert`/`key` serve every other client).
    pub sni: Vec<SniCert>,
}

/// `[[tls.sni]]` — one more certificate and its key.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SniCert {
    /// PEM certificate chain.
    #[serde(deserialize_with = "nonempty_path")]
    pub cert: String,
    /// PEM private key.
    #[serde(deserialize_with = "nonempty_path")]
    pub key: String,
}

// === impl Default for the sections (the spec's defaults) ===

impl Default for Server {
    fn default() -> Self {
        Server {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 8080))],
            admin_listen: Vec::new(),
            threads: 0,
            driver: Driver::Auto,
            region: 7,
            node: String::new(),
            drain_ms: 5000,
            taxonomy: String::new(),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_uri_bytes: 8192,
            max_header_bytes: 16384,
            max_body_bytes: 32768,
            header_timeout_ms: 5000,
            keepalive_timeout_ms: 30000,
            max_connections: 100_000,
            max_connections_per_ip: 1000,
            admin_max_connections: 64,
            taxonomy_max_bytes: 256 << 20,
            taxonomy_max_depth: 32,
        }
    }
}

impl Default for Cookie {
    fn default() -> Self {
        Cookie { domain: String::new(), secure: true, same_site_none: true }
    }
}

impl Default for Privacy {
    fn default() -> Self {
        Privacy { ip_obfuscation: false, consent_vendor_id: 565 }
    }
}

impl Default for Denylist {
    fn default() -> Self {
        Denylist { max_requests: 1000, window_s: 10, ttl_s: 86_400 }
    }
}

impl Default for Partners {
    fn default() -> Self {
        Partners { budget_ms: 80 }
    }
}

impl Default for Store {
    fn default() -> Self {
        Store {
            max_profiles: 10_000_000,
            max_traits_per_profile: 1000,
            snapshot_path: String::new(),
            snapshot_shrink_ratio: 0.5,
            snapshot_interval_s: 300,
        }
    }
}

impl Default for EventLog {
    fn default() -> Self {
        EventLog {
            dir: String::new(),
            segment_bytes: 268_435_456,
            flush_ms: 100,
            fsync: Fsync::Interval,
            fsync_interval_ms: 1000,
        }
    }
}

// === value checks (run inside deserialization so errors carry the value's position) ===

fn in_range<'de, D, T>(d: D, lo: T, hi: T, what: &str) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + PartialOrd + std::fmt::Display + Copy,
{
    let v = T::deserialize(d)?;
    if v < lo || v > hi {
        return Err(serde::de::Error::custom(format!("{what} must be in {lo}..={hi}, got {v}")));
    }
    Ok(v)
}

fn threads<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    in_range(d, 0, 1024, "threads")
}

fn drain_ms<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    in_range(d, 1, 600_000, "drain_ms")
}

fn uri_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    in_range(d, 64, 1 << 20, "max_uri_bytes")
}

fn header_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    in_range(d, 256, 1 << 20, "max_header_bytes")
}

fn body_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    in_range(d, 0, 16 << 20, "max_body_bytes")
}

fn timeout_ms<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    in_range(d, 1, 3_600_000, "a time-out")
}

fn taxonomy_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    in_range(d, 1024, 4 << 30, "taxonomy_max_bytes")
}

fn taxonomy_depth<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    in_range(d, 4, 1024, "taxonomy_max_depth")
}

fn fraction<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    in_range(d, 0.0, 1.0, "snapshot_shrink_ratio")
}

fn positive_usize<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    in_range(d, 1, usize::MAX, "this value")
}

fn positive_u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    in_range(d, 1, u32::MAX, "this value")
}

/// Longest `server.node`, bytes.
pub const MAX_NODE_BYTES: usize = 255;

/// Whether `node` may go into the `DCS` header as it is: printable ASCII without spaces (no
/// CR or LF to end the header early, no control bytes), at most [`MAX_NODE_BYTES`].
pub fn valid_node(node: &str) -> bool {
    node.len() <= MAX_NODE_BYTES && node.bytes().all(|b| b.is_ascii_graphic())
}

fn node<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let v = String::deserialize(d)?;
    if !valid_node(&v) {
        return Err(serde::de::Error::custom(format!(
            "node {v:?} must be at most {MAX_NODE_BYTES} bytes of printable ASCII without spaces (it is sent in the DCS header)"
        )));
    }
    Ok(v)
}

fn nonempty_addrs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SocketAddr>, D::Error> {
    let v = Vec::<SocketAddr>::deserialize(d)?;
    if v.is_empty() {
        return Err(serde::de::Error::custom("listen needs at least one address"));
    }
    Ok(v)
}

fn cookie_domain<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let v = String::deserialize(d)?;
    let ok = v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    if !ok {
        return Err(serde::de::Error::custom(format!(
            "cookie domain {v:?} may hold only letters, digits, '.' and '-'"
        )));
    }
    Ok(v)
}

fn nonempty_path<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let v = String::deserialize(d)?;
    if v.is_empty() {
        return Err(serde::de::Error::custom("a file path is required here"));
    }
    Ok(v)
}

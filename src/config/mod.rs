//! Configuration as data: the command line, `dcsd.toml` and the taxonomy document, each
//! validated before any socket is bound (docs/configuration.md §1–§3, docs/taxonomy.md).
//!
//! Errors name their place — `file:line:col` for `dcsd.toml`, a JSON path for the taxonomy —
//! and `main` exits with status 64 (EX_USAGE) after printing them. This module only reads and
//! checks: the catalog (`crate::catalog`) compiles the taxonomy for requests. On reload only
//! the taxonomy is read again ([`read_taxonomy`]); a bad one is reported and the old one kept.

pub mod cli;
pub mod file;
pub mod taxonomy;

use std::fmt;
use std::path::{Path, PathBuf};

pub use cli::{Cli, Command, Driver};
pub use file::FileConfig;
pub use taxonomy::{Counts, Taxonomy};

/// The validated configuration; fixed for the life of the process except the taxonomy, which
/// a reload replaces.
#[derive(Debug)]
pub struct Config {
    /// `[server]` with command-line overrides applied.
    pub server: file::Server,
    /// `[limits]`
    pub limits: file::Limits,
    /// `[cookie]`
    pub cookie: file::Cookie,
    /// `[privacy]`
    pub privacy: file::Privacy,
    /// `[rate_limit]`
    pub rate_limit: file::RateLimit,
    /// `[denylist]`
    pub denylist: file::Denylist,
    /// `[partners]`
    pub partners: file::Partners,
    /// `[store]`
    pub store: file::Store,
    /// `[eventlog]`
    pub eventlog: file::EventLog,
    /// `[tls]`, with relative paths resolved against `dcsd.toml`'s directory; `None` when no
    /// HTTPS listener is configured.
    pub tls: Option<TlsSettings>,
    /// Where the taxonomy comes from (read again on reload).
    pub taxonomy_source: TaxonomySource,
    /// The `dcsd.toml` that was read, if any.
    pub config_path: Option<PathBuf>,
}

/// Where the taxonomy is read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TaxonomySource {
    /// The demo taxonomy compiled into the binary.
    BuiltIn,
    /// A JSON file.
    File(PathBuf),
}

/// HTTPS listeners and the certificate files they serve (`[tls]`, checked for consistency).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSettings {
    /// `tls.tls_listen`, not empty.
    pub listen: Vec<std::net::SocketAddr>,
    /// (certificate chain, key) pairs: `tls.cert`/`tls.key` first (the default certificate),
    /// then each `[[tls.sni]]`.
    pub certs: Vec<(PathBuf, PathBuf)>,
}

/// Every problem found, each with its place; `Display` prints one per line.
#[derive(Debug)]
pub struct ConfigError(pub Vec<String>);

// === impl Config ===

impl Config {
    /// Builds the configuration from the command line (and the files it names).
    ///
    /// # Errors
    /// Every problem found in the files or flags, with file and place.
    pub fn load(cli: &Cli) -> Result<Config, ConfigError> {
        let file = match &cli.config {
            Some(path) => read_toml(path)?,
            None => FileConfig::default(),
        };
        let FileConfig { mut server, limits, cookie, privacy, rate_limit, denylist, .. } = file;
        let mut errs = Vec::new();
        let tls = tls_settings(&file.tls, &server, cli.config.as_deref(), &mut errs);
        if !cli.listen.is_empty() {
            server.listen = cli.listen.clone();
        }
        if let Some(t) = cli.threads {
            if t > 1024 {
                return Err(ConfigError(vec![format!("--threads: at most 1024, got {t}")]));
            }
            server.threads = t;
        }
        if let Some(d) = cli.driver {
            server.driver = d;
        }
        if let Some(t) = &cli.taxonomy {
            server.taxonomy = t.to_string_lossy().into_owned();
        }
        // Port 0 means "any free port", so two port-0 addresses do not collide.
        if let Some(a) = server.admin_listen.iter().find(|a| a.port() != 0 && server.listen.contains(a)) {
            errs.push(format!("server.admin_listen: {a} is also in server.listen"));
        }
        let taxonomy_source = if server.taxonomy.is_empty() {
            TaxonomySource::BuiltIn
        } else {
            TaxonomySource::File(resolve_relative(cli.config.as_deref(), &server.taxonomy))
        };
        if server.node.is_empty() {
            server.node = host_name();
        }
        let mut eventlog = file.eventlog;
        check_eventlog(&eventlog, &mut errs);
        if !eventlog.dir.is_empty() {
            eventlog.dir =
                resolve_relative(cli.config.as_deref(), &eventlog.dir).to_string_lossy().into_owned();
        }
        if !errs.is_empty() {
            return Err(ConfigError(errs));
        }
        Ok(Config {
            server,
            limits,
            cookie,
            privacy,
            rate_limit,
            denylist,
            partners: file.partners,
            store: file.store,
            eventlog,
            tls,
            taxonomy_source,
            config_path: cli.config.clone(),
        })
    }

    /// The bounds a taxonomy document must stay within (`[limits]`).
    pub fn taxonomy_limits(&self) -> TaxonomyLimits {
        TaxonomyLimits {
            max_bytes: self.limits.taxonomy_max_bytes,
            max_depth: self.limits.taxonomy_max_depth,
        }
    }

    /// The one-line summary `--check` prints, with the taxonomy's `counts`.
    pub fn summary(&self, c: Counts) -> String {
        format!(
            "ok: {} hosts, {} data sources, {} traits, {} segments, {} destinations; listen {}",
            c.hosts,
            c.data_sources,
            c.traits,
            c.segments,
            c.destinations,
            self.server.listen.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(",")
        )
    }
}

// === impl ConfigError ===

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            f.write_str(e)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Bounds on a taxonomy document, checked before it is parsed (`[limits]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaxonomyLimits {
    /// Largest file, bytes.
    pub max_bytes: u64,
    /// Deepest nesting of arrays and objects.
    pub max_depth: usize,
}

/// Reads the taxonomy's bytes: the built-in demo document or the file, within `limits` (size
/// first, from the file's metadata and again while reading; then nesting depth, by one scan
/// that keeps no state but a counter). Returns a name for messages and the bytes.
///
/// # Errors
/// The file cannot be read, or it is over a limit (the message names the limit).
pub fn read_taxonomy(src: &TaxonomySource, limits: TaxonomyLimits) -> Result<(String, Vec<u8>), ConfigError> {
    let (name, bytes) = match src {
        TaxonomySource::BuiltIn => ("built-in taxonomy".to_string(), taxonomy::DEMO_JSON.as_bytes().to_vec()),
        TaxonomySource::File(p) => (p.display().to_string(), read_bounded(p, limits.max_bytes)?),
    };
    if let Some(at) = taxonomy::nesting_over(&bytes, limits.max_depth) {
        return Err(ConfigError(vec![format!(
            "{name}: $: nested deeper than limits.taxonomy_max_depth ({}) at byte {at}",
            limits.max_depth
        )]));
    }
    Ok((name, bytes))
}

/// The whole file, or an error when it holds more than `max` bytes (read at most `max + 1`).
fn read_bounded(p: &Path, max: u64) -> Result<Vec<u8>, ConfigError> {
    use std::io::Read;
    let cannot = |e: std::io::Error| ConfigError(vec![format!("{}: cannot read: {e}", p.display())]);
    let too_big = |n: u64| {
        ConfigError(vec![format!("{}: {n} bytes is over limits.taxonomy_max_bytes ({max})", p.display())])
    };
    let f = std::fs::File::open(p).map_err(cannot)?;
    let len = f.metadata().map_err(cannot)?.len();
    if len > max {
        return Err(too_big(len));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    f.take(max + 1).read_to_end(&mut bytes).map_err(cannot)?;
    if bytes.len() as u64 > max {
        return Err(too_big(bytes.len() as u64)); // the file grew while being read
    }
    Ok(bytes)
}

fn read_toml(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(vec![format!("{}: cannot read: {e}", path.display())]))?;
    toml::from_str::<FileConfig>(&text).map_err(|e| {
        let (line, col) = e.span().map(|s| line_col(&text, s.start)).unwrap_or((1, 1));
        ConfigError(vec![format!("{}:{line}:{col}: {}", path.display(), e.message().trim())])
    })
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text.as_bytes()[..offset.min(text.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let col = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
    (line, col)
}

/// `[eventlog]` bounds (docs/eventlog.md §9): a file holds at least 4 KiB before it rotates
/// and at most 1 TiB (positions keep offsets in 40 bits); the timers run at least every
/// millisecond and flush at least once a minute.
fn check_eventlog(e: &file::EventLog, errs: &mut Vec<String>) {
    if !(4096..(1u64 << 40)).contains(&e.segment_bytes) {
        errs.push(format!("eventlog.segment_bytes: from 4096 to 1099511627775, got {}", e.segment_bytes));
    }
    if !(1..=60_000).contains(&e.flush_ms) {
        errs.push(format!("eventlog.flush_ms: from 1 to 60000, got {}", e.flush_ms));
    }
    if e.fsync_interval_ms == 0 {
        errs.push("eventlog.fsync_interval_ms: at least 1".to_string());
    }
}

/// `[tls]` checked as a whole: `cert` and `key` go together, HTTPS listeners need them and
/// they need HTTPS listeners, and no HTTPS address is also a plain one. The files themselves
/// are read by `crate::tls`.
fn tls_settings(
    t: &file::Tls,
    server: &file::Server,
    config: Option<&Path>,
    errs: &mut Vec<String>,
) -> Option<TlsSettings> {
    let configured = !t.cert.is_empty() || !t.key.is_empty() || !t.tls_listen.is_empty() || !t.sni.is_empty();
    if !configured {
        return None;
    }
    let before = errs.len();
    let file = config.map(|p| format!("{}: ", p.display())).unwrap_or_default();
    if t.cert.is_empty() || t.key.is_empty() {
        errs.push(format!("{file}[tls]: cert and key must both be set to serve HTTPS"));
    }
    if t.tls_listen.is_empty() {
        errs.push(format!("{file}[tls]: tls_listen is empty, so the certificate would serve nothing"));
    }
    let plain = server.listen.iter().chain(&server.admin_listen);
    for a in t.tls_listen.iter().filter(|a| a.port() != 0) {
        if plain.clone().any(|p| p == a) {
            errs.push(format!(
                "{file}[tls]: tls_listen {a} is also a plain listener (server.listen or admin_listen)"
            ));
        }
    }
    if errs.len() > before {
        return None;
    }
    let path = |p: &str| resolve_relative(config, p);
    let mut certs = vec![(path(&t.cert), path(&t.key))];
    certs.extend(t.sni.iter().map(|s| (path(&s.cert), path(&s.key))));
    Some(TlsSettings { listen: t.tls_listen.clone(), certs })
}

/// A relative taxonomy path is taken relative to the directory of `dcsd.toml`.
fn resolve_relative(config: Option<&Path>, p: &str) -> PathBuf {
    let p = PathBuf::from(p);
    match config.and_then(Path::parent) {
        Some(dir) if p.is_relative() && !dir.as_os_str().is_empty() => dir.join(p),
        _ => p,
    }
}

/// The host name for `server.node = ""`; `dcsd` when it cannot be read or could not go into a
/// header as it is (the rule of `server.node`).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty() && file::valid_node(s))
        .unwrap_or_else(|| "dcsd".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<FileConfig, String> {
        toml::from_str::<FileConfig>(text).map_err(|e| {
            let (l, c) = e.span().map(|s| line_col(text, s.start)).unwrap_or((0, 0));
            format!("{l}:{c}: {}", e.message())
        })
    }

    #[test]
    fn defaults_match_the_spec() {
        let f = parse("").unwrap();
        assert_eq!(f.server.listen, vec!["127.0.0.1:8080".parse().unwrap()]);
        assert_eq!(f.server.region, 7);
        assert_eq!(f.limits.max_uri_bytes, 8192);
        assert_eq!(f.limits.max_header_bytes, 16384);
        assert_eq!(f.limits.max_body_bytes, 32768);
        assert_eq!(f.limits.keepalive_timeout_ms, 30000);
        assert!(f.cookie.secure && f.cookie.same_site_none);
        assert_eq!(f.store.max_profiles, 10_000_000);
    }

    #[test]
    fn unknown_keys_are_rejected_with_line() {
        let e = parse("[server]\nregion = 3\nthreadz = 2\n").unwrap_err();
        assert!(e.starts_with("3:1:") && e.contains("threadz"), "{e}");
        let e = parse("[serverx]\n").unwrap_err();
        assert!(e.starts_with("1:"), "{e}");
    }

    #[test]
    fn bad_values_are_rejected_with_line() {
        let e = parse("[limits]\nmax_uri_bytes = 10\n").unwrap_err();
        assert!(e.starts_with("2:17:") && e.contains("64..="), "{e}");
        let e = parse("[server]\nlisten = [\"nonsense\"]\n").unwrap_err();
        assert!(e.starts_with("2:"), "{e}");
        let e = parse("[server]\ndriver = \"turbo\"\n").unwrap_err();
        assert!(e.starts_with("2:") && e.contains("turbo"), "{e}");
        let e = parse("[server]\nthreads = -1\n").unwrap_err();
        assert!(e.starts_with("2:"), "{e}");
        let e = parse("[tls]\ncert = \"/etc/x.pem\"\n[[tls.sni]]\ncert = \"\"\nkey = \"k\"\n").unwrap_err();
        assert!(e.starts_with("4:") && e.contains("file path is required"), "{e}");
        let e = parse("[cookie]\ndomain = \"a b\"\n").unwrap_err();
        assert!(e.starts_with("2:"), "{e}");
    }

    #[test]
    fn node_must_be_printable_ascii_without_spaces() {
        for bad in [r#""edge-1\r\nSet-Cookie: a=b""#, r#""edge\n""#, r#""edge 1""#, r#""\u0000""#, r#""é""#]
        {
            let e = parse(&format!("[server]\nnode = {bad}\n")).unwrap_err();
            assert!(e.starts_with("2:8:") && e.contains("printable ASCII"), "{bad}: {e}");
        }
        let e = parse(&format!("[server]\nnode = \"{}\"\n", "n".repeat(256))).unwrap_err();
        assert!(e.contains("at most 255"), "{e}");
        assert_eq!(parse("[server]\nnode = \"edge-1.fra~2\"\n").unwrap().server.node, "edge-1.fra~2");
        assert_eq!(parse("[server]\nnode = \"\"\n").unwrap().server.node, "");
        assert!(file::valid_node(&host_name()));
    }

    #[test]
    fn denylist_values_must_be_positive() {
        for key in ["max_requests", "window_s", "ttl_s"] {
            let e = parse(&format!("[denylist]\n{key} = 0\n")).unwrap_err();
            assert!(e.starts_with("2:") && e.contains("1..="), "{key}: {e}");
            assert!(parse(&format!("[denylist]\n{key} = 1\n")).is_ok(), "{key}");
        }
        let e = parse("[denylist]\nmax_requests = -1\n").unwrap_err();
        assert!(e.starts_with("2:16:"), "{e}");
    }

    #[test]
    fn shipped_example_config_is_valid() {
        let f = parse(include_str!("../../systemd/dcsd.toml")).unwrap();
        assert_eq!(f.server.listen, vec!["0.0.0.0:80".parse().unwrap()]);
        assert_eq!(f.server.taxonomy, "/etc/dcsd/taxonomy.json");
    }

    #[test]
    fn taxonomy_over_a_limit_is_refused_before_parsing() {
        let dir = std::env::temp_dir().join(format!("dcsd-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("deep.json");
        std::fs::write(&path, "[".repeat(5000)).unwrap();
        let src = TaxonomySource::File(path.clone());
        let deep = TaxonomyLimits { max_bytes: 1 << 20, max_depth: 32 };
        let e = read_taxonomy(&src, deep).unwrap_err().to_string();
        assert!(e.ends_with("nested deeper than limits.taxonomy_max_depth (32) at byte 32"), "{e}");
        let small = TaxonomyLimits { max_bytes: 4096, max_depth: 32 };
        let e = read_taxonomy(&src, small).unwrap_err().to_string();
        assert!(e.ends_with("5000 bytes is over limits.taxonomy_max_bytes (4096)"), "{e}");
        // Brackets inside strings are not nesting.
        std::fs::write(&path, format!(r#"{{"version":"{}","customers":[]}}"#, "[".repeat(100))).unwrap();
        assert!(read_taxonomy(&src, deep).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn tls_keys_are_checked_together() {
        let dir = std::env::temp_dir().join(format!("dcsd-config-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("dcsd.toml");
        let load = |text: &str| {
            std::fs::write(&path, text).unwrap();
            Config::load(&Cli { config: Some(path.clone()), ..Cli::default() })
        };
        let err = |text: &str| load(text).unwrap_err().to_string();
        assert!(err("[tls]\ncert = \"c.pem\"\ntls_listen = [\"127.0.0.1:0\"]\n")
            .contains("cert and key must both"));
        assert!(err("[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n").contains("tls_listen is empty"));
        assert!(err("[tls]\ntls_listen = [\"127.0.0.1:0\"]\n").contains("cert and key must both"));
        let clash = "[server]\nlisten = [\"127.0.0.1:8443\"]\n[tls]\ncert = \"c\"\nkey = \"k\"\ntls_listen = [\"127.0.0.1:8443\"]\n";
        assert!(err(clash).contains("also a plain listener"));
        let ok = "[tls]\ncert = \"c.pem\"\nkey = \"/abs/k.pem\"\ntls_listen = [\"127.0.0.1:0\"]\n[[tls.sni]]\ncert = \"s.pem\"\nkey = \"s.key\"\n";
        let tls = load(ok).unwrap().tls.unwrap();
        assert_eq!(tls.listen, vec!["127.0.0.1:0".parse().unwrap()]);
        assert_eq!(tls.certs[0], (dir.join("c.pem"), PathBuf::from("/abs/k.pem")));
        assert_eq!(tls.certs[1], (dir.join("s.pem"), dir.join("s.key")));
        assert!(load("").unwrap().tls.is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
    }

    #[test]
    fn cli_overrides_the_file() {
        let cli = Cli {
            listen: vec!["127.0.0.1:9".parse().unwrap()],
            threads: Some(3),
            driver: Some(Driver::Legacy),
            ..Cli::default()
        };
        let c = Config::load(&cli).unwrap();
        assert_eq!(c.server.listen, cli.listen);
        assert_eq!(c.server.threads, 3);
        assert_eq!(c.server.driver, Driver::Legacy);
        assert_eq!(c.taxonomy_source, TaxonomySource::BuiltIn);
        let (_, demo) = read_taxonomy(&c.taxonomy_source, c.taxonomy_limits()).unwrap();
        let counts = Taxonomy::parse(&demo).unwrap().counts();
        assert!(c.summary(counts).starts_with("ok: 3 hosts, 3 data sources, 5 traits"));
    }
}

//! Threads and sockets: one pinned monoio runtime per core, each with its own `SO_REUSEPORT`
//! listener per address, plus the process-wide state they share.
//!
//! [`Server::start`] binds every socket before any worker starts (so a taken port fails
//! start-up cleanly, and port 0 resolves to one port shared by all cores), chooses the IO
//! driver once (io_uring with `COOP_TASKRUN`, else epoll), starts the workers and returns when
//! every core is accepting. [`Server::drain`] stops them. Only this module and `main` know
//! about threads.

pub mod notify;
pub mod shutdown;
mod worker;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use crossbeam_utils::CachePadded;

use crate::config::{Config, Driver, Taxonomy};
use crate::http::conn::ListenerKind;
use crate::metrics::Registry;
use crate::table::snapshot::{self, Snapshotter};
use crate::table::{ProfileTable, TableConfig};

/// State shared by all cores. Read-mostly; the only writes are the connection count, the
/// drain flag and the taxonomy swap on reload.
pub struct Shared {
    /// The configuration (fixed for the life of the process).
    pub config: Arc<Config>,
    /// The current taxonomy; a reload swaps it, requests in flight keep the old one.
    pub taxonomy: ArcSwap<Taxonomy>,
    /// Bumped after every swap of `taxonomy`, so workers can cache their `Arc` and re-load it
    /// only when this changes (one relaxed load per request instead of an arc-swap guard).
    pub taxonomy_generation: CachePadded<AtomicU64>,
    /// Every core's metrics.
    pub metrics: Registry,
    /// Open client connections, all cores (for `limits.max_connections`).
    pub open_conns: CachePadded<AtomicUsize>,
    /// Set once by `main` when draining starts.
    pub draining: AtomicBool,
    /// Every profile and ID mapping (the only shared mutable state on the request path).
    pub table: Arc<ProfileTable>,
}

// === impl Shared ===

impl Shared {
    /// Replaces the taxonomy (reload); workers pick it up on their next request.
    pub fn swap_taxonomy(&self, t: Arc<Taxonomy>) {
        self.taxonomy.store(t);
        self.taxonomy_generation.fetch_add(1, Ordering::Release);
    }

    /// State for `threads` workers, with an empty profile table.
    pub fn new(config: Config, threads: usize) -> Shared {
        let table = Arc::new(ProfileTable::new(table_config(&config)));
        Shared::with_table(config, threads, table)
    }

    /// State for `threads` workers around an existing (restored) table.
    pub fn with_table(config: Config, threads: usize, table: Arc<ProfileTable>) -> Shared {
        Shared {
            table,
            taxonomy: ArcSwap::new(config.taxonomy.clone()),
            taxonomy_generation: CachePadded::new(AtomicU64::new(0)),
            config: Arc::new(config),
            metrics: Registry::new(threads),
            open_conns: CachePadded::new(AtomicUsize::new(0)),
            draining: AtomicBool::new(false),
        }
    }
}

/// The IO driver the workers run, decided once at start-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoDriver {
    /// io_uring with `IORING_SETUP_COOP_TASKRUN`.
    Uring,
    /// epoll (monoio's legacy driver).
    Epoll,
}

/// The running workers.
pub struct Server {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    addrs: Vec<SocketAddr>,
    admin_addrs: Vec<SocketAddr>,
    driver: IoDriver,
    /// Writes the table every `store.snapshot_interval_s` (when `store.snapshot_path` is set).
    snapshotter: Option<Snapshotter>,
}

/// Why the server could not start.
#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

// === impl Server ===

impl Server {
    /// Binds, starts one worker per core and waits until every worker accepts.
    ///
    /// # Errors
    /// A socket that cannot be bound, io_uring forced but unavailable, or a worker that fails
    /// to start its runtime.
    pub fn start(config: Config) -> Result<Server, StartError> {
        // The snapshot is restored before any socket is bound.
        let table = Arc::new(restore_table(&config));
        let cpus = allowed_cpus();
        let threads = if config.server.threads == 0 { cpus.len() } else { config.server.threads };
        let driver = choose_driver(config.server.driver)?;
        let admin = !config.server.admin_listen.is_empty();
        let public_kind = if admin { ListenerKind::Public } else { ListenerKind::All };
        let mut sockets: Vec<Vec<(std::net::TcpListener, ListenerKind)>> =
            (0..threads).map(|_| Vec::new()).collect();
        let mut addrs = Vec::new();
        let mut admin_addrs = Vec::new();
        for (list, kind) in
            [(&config.server.listen, public_kind), (&config.server.admin_listen, ListenerKind::Admin)]
        {
            for addr in list {
                let bound = bind_group(*addr, threads)?;
                let local = bound[0].local_addr().map_err(|e| StartError(format!("{addr}: {e}")))?;
                if kind == ListenerKind::Admin {
                    admin_addrs.push(local)
                } else {
                    addrs.push(local)
                }
                for (i, l) in bound.into_iter().enumerate() {
                    sockets[i].push((l, kind));
                }
            }
        }
        let snapshotter = start_snapshotter(&config, &table)?;
        let shared = Arc::new(Shared::with_table(config, threads, table));
        let (ready_tx, ready_rx) = mpsc::channel();
        let mut workers = Vec::with_capacity(threads);
        for (i, listeners) in sockets.into_iter().enumerate() {
            let spec = worker::Spec {
                index: i,
                cpu: cpus[i % cpus.len()],
                driver,
                listeners,
                shared: shared.clone(),
            };
            let tx = ready_tx.clone();
            let h = std::thread::Builder::new()
                .name(format!("w{i}"))
                .spawn(move || worker::run(spec, tx))
                .map_err(|e| StartError(format!("cannot start worker w{i}: {e}")))?;
            workers.push(h);
        }
        drop(ready_tx);
        for _ in 0..threads {
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(StartError(e)),
                Err(_) => return Err(StartError("a worker exited during start-up".into())),
            }
        }
        Ok(Server { shared, workers, addrs, admin_addrs, driver, snapshotter })
    }

    /// The public listeners' addresses (port 0 resolved).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The admin listeners' addresses.
    pub fn admin_addrs(&self) -> &[SocketAddr] {
        &self.admin_addrs
    }

    /// The IO driver in use.
    pub fn driver(&self) -> IoDriver {
        self.driver
    }

    /// Worker threads.
    pub fn threads(&self) -> usize {
        self.workers.len()
    }

    /// State shared with the workers.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Stops accepting, lets requests in flight finish within `grace`, and returns whether
    /// every worker finished in time.
    #[allow(clippy::disallowed_methods)] // main thread, not a worker
    pub fn drain(self, grace: Duration) -> bool {
        self.shared.draining.store(true, Ordering::Release);
        let deadline = Instant::now() + grace + shutdown::WATCH_INTERVAL;
        for w in &self.workers {
            while !w.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        let all = self.workers.iter().all(JoinHandle::is_finished);
        if all {
            for w in self.workers {
                let _ = w.join();
            }
        }
        if let Some(s) = self.snapshotter {
            match s.stop_and_write_final() {
                Ok(st) => crate::log!(Info, "snapshot written: {} profiles, {} bytes", st.profiles, st.bytes),
                Err(e) => crate::log!(Error, "final snapshot failed: {e}"),
            }
        }
        all
    }
}

/// `[store]` (and the taxonomy's trait TTL) as table limits.
fn table_config(config: &Config) -> TableConfig {
    TableConfig {
        max_profiles: config.store.max_profiles,
        max_traits_per_profile: config.store.max_traits_per_profile,
        history_days: u16::try_from(config.taxonomy.trait_ttl_days).unwrap_or(u16::MAX),
        deny: crate::table::DenyRule {
            max_requests: config.denylist.max_requests,
            window_s: config.denylist.window_s,
            ttl_s: config.denylist.ttl_s,
        },
        ..TableConfig::default()
    }
}

/// The table from `store.snapshot_path`, or an empty one. A missing file starts empty; a torn
/// or corrupt one is refused with one log line and the daemon starts empty — never half-loaded.
fn restore_table(config: &Config) -> ProfileTable {
    let limits = table_config(config);
    let path = std::path::Path::new(&config.store.snapshot_path);
    if config.store.snapshot_path.is_empty() {
        return ProfileTable::new(limits);
    }
    if !path.exists() {
        crate::log!(Info, "no snapshot at {}; starting with an empty profile table", path.display());
        return ProfileTable::new(limits);
    }
    let t0 = Instant::now();
    match snapshot::restore(path, limits.clone()) {
        Ok((table, st)) => {
            let ms = t0.elapsed().as_millis();
            crate::log!(Info, "restored {} profiles from {} in {ms} ms", st.profiles, path.display());
            table
        }
        Err(e) => {
            crate::log!(
                Error,
                "snapshot {} refused ({e}); starting with an empty profile table",
                path.display()
            );
            ProfileTable::new(limits)
        }
    }
}

fn start_snapshotter(config: &Config, table: &Arc<ProfileTable>) -> Result<Option<Snapshotter>, StartError> {
    if config.store.snapshot_path.is_empty() {
        return Ok(None);
    }
    let interval = Duration::from_secs(u64::from(config.store.snapshot_interval_s.max(1)));
    snapshot::spawn_snapshotter(table.clone(), config.store.snapshot_path.clone().into(), interval)
        .map(Some)
        .map_err(|e| StartError(format!("cannot start the snapshot thread: {e}")))
}

/// Chooses the driver once: io_uring with `COOP_TASKRUN` if the kernel sets it up.
fn choose_driver(want: Driver) -> Result<IoDriver, StartError> {
    if want == Driver::Legacy {
        return Ok(IoDriver::Epoll);
    }
    match worker::uring_builder().build(8) {
        Ok(_) => Ok(IoDriver::Uring),
        Err(e) if want == Driver::Auto => {
            crate::log!(Warn, "io_uring with COOP_TASKRUN is unavailable ({e}); falling back to epoll");
            Ok(IoDriver::Epoll)
        }
        Err(e) => Err(StartError(format!("driver = \"uring\" but io_uring cannot be set up: {e}"))),
    }
}

/// `n` listening sockets on one address with `SO_REUSEPORT`; the first resolves port 0.
fn bind_group(addr: SocketAddr, n: usize) -> Result<Vec<std::net::TcpListener>, StartError> {
    let mut out = Vec::with_capacity(n);
    let mut at = addr;
    for _ in 0..n {
        let l = bind_one(at).map_err(|e| StartError(format!("cannot listen on {at}: {e}")))?;
        if out.is_empty() {
            at = l.local_addr().map_err(|e| StartError(format!("{addr}: {e}")))?;
        }
        out.push(l);
    }
    Ok(out)
}

fn bind_one(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.set_nonblocking(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.bind(&addr.into())?;
    s.listen(4096)?;
    Ok(s.into())
}

/// The CPUs this process may run on (honours `taskset` and systemd `CPUAffinity=`).
fn allowed_cpus() -> Vec<usize> {
    let list = std::fs::read_to_string("/proc/self/status").ok().and_then(|s| {
        s.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:").map(|v| parse_cpu_list(v.trim())))
    });
    match list {
        Some(v) if !v.is_empty() => v,
        _ => (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect(),
    }
}

/// Parses `0-3,8,10-11`.
fn parse_cpu_list(s: &str) -> Vec<usize> {
    let mut v = Vec::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        let mut ends = part.splitn(2, '-').map(|x| x.trim().parse::<usize>());
        match (ends.next(), ends.next()) {
            (Some(Ok(a)), None) => v.push(a),
            (Some(Ok(a)), Some(Ok(b))) if a <= b => v.extend(a..=b),
            _ => return Vec::new(),
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-3,8,10-11"), vec![0, 1, 2, 3, 8, 10, 11]);
        assert_eq!(parse_cpu_list("1"), vec![1]);
        assert!(parse_cpu_list("x").is_empty());
        assert!(!allowed_cpus().is_empty());
    }
}

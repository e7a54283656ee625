//! Threads and sockets: one pinned monoio runtime per core, each with its own `SO_REUSEPORT`
//! listener per address, running a per-core service built by a factory.
//!
//! [`Server::start`] binds every socket before any worker starts (so a taken port fails
//! start-up cleanly, and port 0 resolves to one port shared by all cores), chooses the IO
//! driver once (io_uring with `COOP_TASKRUN`, else epoll), starts the workers — each builds its
//! service with the factory on its own thread — and returns when every core is accepting.
//! [`Server::drain`] stops them. The runtime knows threads, sockets, connection budgets and
//! drain; it knows nothing of what the service does with a request.
//!
//! Connection budgets (docs/configuration.md §3.2), all process-wide atomics checked on
//! accept, where a refused connection is closed at once without being read:
//! * public listeners: `max_connections` (lowered by `main` to what `RLIMIT_NOFILE` allows, see
//!   [`fds`]) and `max_connections_per_ip` (a lock-free sketch, `per_ip.rs`);
//! * admin listeners: `admin_max_connections`, a budget of their own that public traffic
//!   cannot take; no per-address cap there.
//!
//! A failed `accept` (EMFILE, …) backs off from 5 ms to 1 s and warns at most once a second
//! per worker (`backoff.rs`).
//!
//! HTTPS listeners (`tls.tls_listen`) are bound the same way and are public listeners for the
//! budgets above (a refused connection is closed before any handshake); the connections they
//! accept are wrapped in a [`crate::tls::ServerTls`] stream before the same connection loop
//! serves them, and each handshake's outcome is counted in the TLS metrics.

mod backoff;
pub mod fds;
pub mod notify;
mod per_ip;
mod worker;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;

use crate::config::{Config, Driver};
use crate::http::conn::{ConnConfig, ListenerKind, Service};
use crate::metrics::Registry;
use crate::tls::ServerTls;

use per_ip::PerIpCounts;

/// How often a worker looks at the process-wide drain flag.
const WATCH_INTERVAL: Duration = Duration::from_millis(20);

/// What the runtime is started with.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// Public listeners (every route when `admin_listen` is empty).
    pub listen: Vec<SocketAddr>,
    /// Admin listeners (`/healthz`, `/metrics` only).
    pub admin_listen: Vec<SocketAddr>,
    /// HTTPS listeners (served like `listen`), with [`RuntimeConfig::tls`].
    pub tls_listen: Vec<SocketAddr>,
    /// The TLS configuration shared by every core; set when `tls_listen` is not empty.
    pub tls: Option<Arc<ServerTls>>,
    /// Worker threads (see [`worker_count`]).
    pub threads: usize,
    /// Which IO driver to use.
    pub driver: Driver,
    /// Per-connection limits and time-outs.
    pub conn: ConnConfig,
    /// Open public connections allowed in the process (`limits.max_connections`, after
    /// [`fds::plan_connections`]).
    pub max_connections: usize,
    /// Open public connections allowed per client address; 0 = no cap.
    pub max_connections_per_ip: usize,
    /// Open admin connections allowed in the process, a budget of their own.
    pub admin_max_connections: usize,
}

/// Process-wide runtime state the workers share.
struct State {
    /// Open public connections, all cores (for `max_connections`).
    open_conns: CachePadded<AtomicUsize>,
    /// Open admin connections, all cores (for `admin_max_connections`).
    admin_conns: CachePadded<AtomicUsize>,
    /// `max_connections`.
    max_conns: usize,
    /// `admin_max_connections`.
    admin_max_conns: usize,
    /// Open public connections per client address; `None` without a cap.
    per_ip: Option<PerIpCounts>,
    /// Set once when draining starts.
    draining: AtomicBool,
    /// The service's metrics; the runtime counts connections in each worker's block.
    metrics: Arc<Registry>,
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
    state: Arc<State>,
    workers: Vec<JoinHandle<()>>,
    addrs: Vec<SocketAddr>,
    admin_addrs: Vec<SocketAddr>,
    tls_addrs: Vec<SocketAddr>,
    driver: IoDriver,
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

/// One bound listener socket of a worker.
pub(crate) struct Bound {
    /// The socket.
    socket: std::net::TcpListener,
    /// Which routes it serves.
    kind: ListenerKind,
    /// It serves HTTPS.
    tls: bool,
}

/// One listener socket per worker for every address.
type Sockets = Vec<Vec<Bound>>;

/// The addresses bound, port 0 resolved: public, admin, HTTPS.
type Addrs = (Vec<SocketAddr>, Vec<SocketAddr>, Vec<SocketAddr>);

// === impl RuntimeConfig ===

impl RuntimeConfig {
    /// `[server]` and `[limits]` with `threads` workers.
    pub fn from_config(config: &Config, threads: usize) -> RuntimeConfig {
        let (s, l) = (&config.server, &config.limits);
        RuntimeConfig {
            listen: s.listen.clone(),
            admin_listen: s.admin_listen.clone(),
            tls_listen: config.tls.as_ref().map(|t| t.listen.clone()).unwrap_or_default(),
            tls: None,
            threads,
            driver: s.driver,
            conn: ConnConfig {
                head: crate::http::HeadLimits {
                    max_uri_bytes: l.max_uri_bytes,
                    max_header_bytes: l.max_header_bytes,
                    max_body_bytes: l.max_body_bytes,
                },
                header_timeout: Duration::from_millis(l.header_timeout_ms),
                keepalive_timeout: Duration::from_millis(l.keepalive_timeout_ms),
            },
            max_connections: l.max_connections,
            max_connections_per_ip: l.max_connections_per_ip,
            admin_max_connections: l.admin_max_connections,
        }
    }
}

/// Workers for `server.threads`: the number asked, or with 0 one per CPU this process may run
/// on (honours `taskset` and systemd `CPUAffinity=`).
pub fn worker_count(threads: usize) -> usize {
    if threads == 0 {
        allowed_cpus().len()
    } else {
        threads
    }
}

// === impl Server ===

impl Server {
    /// Binds, starts `cfg.threads` workers, each serving with `factory(worker_index)` built on
    /// its own thread, and waits until every worker accepts. `metrics` has a block per worker;
    /// the runtime counts connections there.
    ///
    /// # Errors
    /// A socket that cannot be bound, io_uring forced but unavailable, or a worker that fails
    /// to start its runtime.
    pub fn start<F, S>(cfg: RuntimeConfig, metrics: Arc<Registry>, factory: F) -> Result<Server, StartError>
    where
        F: Fn(usize) -> S + Send + Sync + 'static,
        S: Service + 'static,
    {
        let cpus = allowed_cpus();
        let threads = cfg.threads.max(1);
        let driver = choose_driver(cfg.driver)?;
        if !cfg.tls_listen.is_empty() && cfg.tls.is_none() {
            return Err(StartError("tls_listen is set but no TLS configuration was loaded".into()));
        }
        let (sockets, (addrs, admin_addrs, tls_addrs)) = bind_all(&cfg, threads)?;
        let cap = u32::try_from(cfg.max_connections_per_ip).unwrap_or(u32::MAX);
        let state = Arc::new(State {
            open_conns: CachePadded::new(AtomicUsize::new(0)),
            admin_conns: CachePadded::new(AtomicUsize::new(0)),
            max_conns: cfg.max_connections,
            admin_max_conns: cfg.admin_max_connections,
            per_ip: (cap > 0).then(|| PerIpCounts::new(cap, cfg.max_connections)),
            draining: AtomicBool::new(false),
            metrics,
        });
        if let Some(p) = &state.per_ip {
            crate::log!(Debug, "max_connections_per_ip = {cap}: {} KiB of counters", p.bytes() >> 10);
        }
        let factory = Arc::new(factory);
        let (ready_tx, ready_rx) = mpsc::channel();
        let mut workers = Vec::with_capacity(threads);
        for (i, listeners) in sockets.into_iter().enumerate() {
            let spec = worker::Spec {
                index: i,
                cpu: cpus[i % cpus.len()],
                driver,
                listeners,
                tls: cfg.tls.clone(),
                conn: cfg.conn,
                state: state.clone(),
            };
            let (tx, factory) = (ready_tx.clone(), factory.clone());
            let h = std::thread::Builder::new()
                .name(format!("w{i}"))
                .spawn(move || worker::run(spec, &*factory, tx))
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
        Ok(Server { state, workers, addrs, admin_addrs, tls_addrs, driver })
    }

    /// The public listeners' addresses (port 0 resolved).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The admin listeners' addresses.
    pub fn admin_addrs(&self) -> &[SocketAddr] {
        &self.admin_addrs
    }

    /// The HTTPS listeners' addresses.
    pub fn tls_addrs(&self) -> &[SocketAddr] {
        &self.tls_addrs
    }

    /// The IO driver in use.
    pub fn driver(&self) -> IoDriver {
        self.driver
    }

    /// Worker threads.
    pub fn threads(&self) -> usize {
        self.workers.len()
    }

    /// Stops accepting, lets requests in flight finish within `grace`, and returns whether
    /// every worker finished in time.
    #[allow(clippy::disallowed_methods)] // main thread, not a worker
    pub fn drain(self, grace: Duration) -> bool {
        self.state.draining.store(true, Ordering::Release);
        let deadline = Instant::now() + grace + WATCH_INTERVAL;
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
        all
    }
}

/// Binds every address `threads` times; returns the sockets per worker and the public, admin
/// and HTTPS addresses with port 0 resolved.
fn bind_all(cfg: &RuntimeConfig, threads: usize) -> Result<(Sockets, Addrs), StartError> {
    let public_kind = if cfg.admin_listen.is_empty() { ListenerKind::All } else { ListenerKind::Public };
    let mut sockets: Sockets = (0..threads).map(|_| Vec::new()).collect();
    let mut found: Addrs = Default::default();
    let groups = [
        (&cfg.listen, public_kind, false),
        (&cfg.admin_listen, ListenerKind::Admin, false),
        (&cfg.tls_listen, public_kind, true),
    ];
    for (list, kind, tls) in groups {
        for addr in list {
            let bound = bind_group(*addr, threads)?;
            let local = bound[0].local_addr().map_err(|e| StartError(format!("{addr}: {e}")))?;
            match (kind, tls) {
                (_, true) => found.2.push(local),
                (ListenerKind::Admin, _) => found.1.push(local),
                _ => found.0.push(local),
            }
            for (i, socket) in bound.into_iter().enumerate() {
                sockets[i].push(Bound { socket, kind, tls });
            }
        }
    }
    Ok((sockets, found))
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
    fn handshake_failure_labels_match_the_metrics() {
        let labels = crate::tls::HandshakeError::ALL.map(|e| e.label());
        assert_eq!(labels, crate::metrics::tls::FAILURE_REASONS);
        for (i, e) in crate::tls::HandshakeError::ALL.iter().enumerate() {
            assert_eq!(*e as usize, i);
        }
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-3,8,10-11"), vec![0, 1, 2, 3, 8, 10, 11]);
        assert_eq!(parse_cpu_list("1"), vec![1]);
        assert!(parse_cpu_list("x").is_empty());
        assert!(!allowed_cpus().is_empty());
    }
}

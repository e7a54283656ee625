//! One worker: a pinned thread running its own monoio runtime, its service, its listeners'
//! accept loops, its connections and its drain watcher. Nothing here waits on another core;
//! the connection budgets are process-wide atomics (no lock).

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use monoio::net::TcpListener;

use crate::http::conn::{self, ConnConfig, ListenerKind, Service};
use crate::http::drain::Drain;
use crate::metrics::ConnRejected;
use crate::tls::{Handshake, HandshakeError, Report, ServerTls};

use super::backoff::{AcceptBackoff, WarnEvery};
use super::per_ip::IpSlots;
use super::{Bound, IoDriver, State, WATCH_INTERVAL};

/// io_uring submission queue entries per worker.
const URING_ENTRIES: u32 = 1024;

/// What a worker is started with.
pub(super) struct Spec {
    pub index: usize,
    pub cpu: usize,
    pub driver: IoDriver,
    pub listeners: Vec<Bound>,
    pub tls: Option<Arc<ServerTls>>,
    pub conn: ConnConfig,
    pub state: Arc<State>,
}

/// This worker's view of the connection budgets.
struct Budget {
    index: usize,
    /// Open connections on this core, public and admin (drain waits for 0).
    open: Cell<usize>,
    /// Accept warnings of this worker, at most one a second.
    warn: WarnEvery,
    state: Arc<State>,
}

/// Holds one connection's place in its budget (and its address's counters); released on drop.
struct Slot {
    budget: Rc<Budget>,
    /// An admin connection (counted in `admin_conns`, not `open_conns`).
    admin: bool,
    /// The per-address counters it holds, when there is a cap.
    ip: Option<IpSlots>,
}

/// io_uring setup with `COOP_TASKRUN`: completions are not delivered by task-work interrupts,
/// which cost 1.5–1.7× CPU per request on this kind of VM (docs/architecture.md §1).
pub(super) fn uring_builder() -> io_uring::Builder {
    let mut b = io_uring::IoUring::builder();
    b.setup_coop_taskrun();
    b
}

/// Thread body: pin, build the runtime, build the service, serve until drained.
pub(super) fn run<F, S>(spec: Spec, factory: &F, ready: Sender<Result<(), String>>)
where
    F: Fn(usize) -> S,
    S: Service + 'static,
{
    if let Err(e) = monoio::utils::bind_to_cpu_set([spec.cpu]) {
        crate::log!(Warn, "w{}: cannot pin to CPU {}: {e}", spec.index, spec.cpu);
    }
    let index = spec.index;
    let built = match spec.driver {
        IoDriver::Uring => monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
            .uring_builder(uring_builder())
            .with_entries(URING_ENTRIES)
            .enable_timer()
            .build()
            .map(|mut rt| rt.block_on(serve(spec, factory, ready.clone()))),
        IoDriver::Epoll => monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .map(|mut rt| rt.block_on(serve(spec, factory, ready.clone()))),
    };
    if let Err(e) = built {
        let _ = ready.send(Err(format!("w{index}: cannot start the IO runtime: {e}")));
    }
}

async fn serve<F, S>(spec: Spec, factory: &F, ready: Sender<Result<(), String>>)
where
    F: Fn(usize) -> S,
    S: Service + 'static,
{
    let Spec { index, listeners, tls, conn, state, .. } = spec;
    // Built here, on the worker's own thread and runtime: the service holds per-core state.
    let svc = Rc::new(factory(index));
    let drain = Rc::new(Drain::new());
    let budget =
        Rc::new(Budget { index, open: Cell::new(0), warn: WarnEvery::default(), state: state.clone() });
    let mut accepting = Vec::new();
    for Bound { socket, kind, tls: https } in listeners {
        match TcpListener::from_std(socket) {
            Ok(l) => {
                let tls =
                    if https { tls.clone().map(|t| (t, handshake_report(&state, index))) } else { None };
                let task = accept_loop(l, kind, tls, svc.clone(), conn, drain.clone(), budget.clone());
                accepting.push(monoio::spawn(task));
            }
            Err(e) => {
                let _ = ready.send(Err(format!("w{index}: cannot register listener: {e}")));
                return;
            }
        }
    }
    let _ = ready.send(Ok(()));
    drop(ready);
    while !state.draining.load(Ordering::Acquire) {
        monoio::time::sleep(WATCH_INTERVAL).await;
    }
    drain.trigger();
    for a in accepting {
        a.await;
    }
    while budget.open.get() > 0 {
        monoio::time::sleep(Duration::from_millis(2)).await;
    }
    svc.drained();
}

/// Counts each handshake's outcome in this core's TLS metrics.
fn handshake_report(state: &Arc<State>, core: usize) -> Report {
    let metrics = state.metrics.clone();
    Rc::new(move |r: Result<Handshake, HandshakeError>| match r {
        Ok(h) => metrics.tls.handshake(core, h.tls13, h.resumed),
        Err(e) => metrics.tls.failure(core, e as usize),
    })
}

async fn accept_loop<S: Service + 'static>(
    listener: TcpListener,
    kind: ListenerKind,
    tls: Option<(Arc<ServerTls>, Report)>,
    svc: Rc<S>,
    cfg: ConnConfig,
    drain: Rc<Drain>,
    budget: Rc<Budget>,
) {
    let mut backoff = AcceptBackoff::default();
    loop {
        let accepted = monoio::select! {
            r = listener.accept() => r,
            _ = drain.wait() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                backoff.succeeded();
                // Refused: closed at once, nothing read (docs/http-api.md §1).
                let Some(slot) = Budget::try_take(&budget, peer, kind) else {
                    drop(stream);
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let (svc, drain) = (svc.clone(), drain.clone());
                match &tls {
                    None => monoio::spawn(async move {
                        conn::serve(stream, peer, kind, svc, cfg, drain).await;
                        drop(slot);
                    }),
                    // The handshake runs in the connection's first read, under header_timeout.
                    Some((tls, report)) => {
                        let stream = tls.accept(stream, report.clone());
                        monoio::spawn(async move {
                            if let Some(stream) = stream {
                                conn::serve(stream, peer, kind, svc, cfg, drain).await;
                            }
                            drop(slot);
                        })
                    }
                };
            }
            Err(e) => {
                // EMFILE and friends leave the connection in the backlog: wait, longer each
                // time, instead of spinning on it; the listener stays.
                let wait = backoff.failed();
                budget.accept_failed(&e, wait);
                monoio::select! {
                    _ = monoio::time::sleep(wait) => {},
                    _ = drain.wait() => return,
                }
            }
        }
    }
}

/// Takes a place in `max` by counting one more in `open`; `false` (counting nothing) when full.
fn take(open: &AtomicUsize, max: usize) -> bool {
    if open.fetch_add(1, Ordering::Relaxed) >= max {
        open.fetch_sub(1, Ordering::Relaxed);
        return false;
    }
    true
}

/// A public connection's place: its address's counters (when capped), then `max_connections`.
fn take_public(st: &State, peer: SocketAddr) -> Result<Option<IpSlots>, ConnRejected> {
    let ip = match &st.per_ip {
        Some(counts) => Some(counts.try_add(peer.ip()).ok_or(ConnRejected::PerIp)?),
        None => None,
    };
    if !take(&st.open_conns, st.max_conns) {
        if let (Some(counts), Some(slots)) = (&st.per_ip, ip) {
            counts.remove(slots);
        }
        return Err(ConnRejected::MaxConnections);
    }
    Ok(ip)
}

// === impl Budget ===

impl Budget {
    /// Takes a place for a connection from `peer` on a `kind` listener, or `None` when its
    /// budget (or its address's cap) is full: the caller closes the connection at once.
    /// Admin connections count only against `admin_max_connections`; public ones against the
    /// per-address cap, then `max_connections`.
    fn try_take(this: &Rc<Budget>, peer: SocketAddr, kind: ListenerKind) -> Option<Slot> {
        let (st, metrics) = (&*this.state, this.state.metrics.core(this.index));
        let admin = kind == ListenerKind::Admin;
        let taken = if admin {
            take(&st.admin_conns, st.admin_max_conns).then_some(None).ok_or(ConnRejected::Admin)
        } else {
            take_public(st, peer)
        };
        match taken {
            Ok(ip) => {
                metrics.conn_opened();
                this.open.set(this.open.get() + 1);
                Some(Slot { budget: this.clone(), admin, ip })
            }
            Err(why) => {
                metrics.conn_rejected(why);
                None
            }
        }
    }

    /// Counts a failed accept and warns if this worker has not in the last second.
    fn accept_failed(&self, e: &std::io::Error, wait: Duration) {
        self.state.metrics.core(self.index).accept_failed();
        if let Some(n) = self.warn.failed(Instant::now()) {
            crate::log!(
                Warn,
                "w{}: accept failed ({e}); {n} failure(s) since the last warning; retrying in {} ms",
                self.index,
                wait.as_millis()
            );
        }
    }
}

// === impl Slot ===

impl Drop for Slot {
    fn drop(&mut self) {
        let (b, st) = (&self.budget, &self.budget.state);
        b.open.set(b.open.get().saturating_sub(1));
        if self.admin {
            st.admin_conns.fetch_sub(1, Ordering::Relaxed);
        } else {
            st.open_conns.fetch_sub(1, Ordering::Relaxed);
        }
        if let (Some(c), Some(s)) = (&st.per_ip, self.ip) {
            c.remove(s);
        }
        st.metrics.core(b.index).conn_closed();
    }
}

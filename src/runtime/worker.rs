//! One worker: a pinned thread running its own monoio runtime, its service, its listeners'
//! accept loops, its connections and its drain watcher. Nothing here waits on another core.

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Duration;

use monoio::net::TcpListener;

use crate::http::conn::{self, ConnConfig, ListenerKind, Service};
use crate::http::drain::Drain;
use crate::tls::{Handshake, HandshakeError, Report, ServerTls};

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
    pub max_connections: usize,
    pub state: Arc<State>,
}

/// This worker's share of the connection budget.
struct Budget {
    index: usize,
    max: usize,
    /// Open connections on this core.
    open: Cell<usize>,
    state: Arc<State>,
}

/// Holds one slot of the connection budget; released on drop.
struct Slot {
    budget: Rc<Budget>,
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
    let Spec { index, listeners, tls, conn, max_connections, state, .. } = spec;
    // Built here, on the worker's own thread and runtime: the service holds per-core state.
    let svc = Rc::new(factory(index));
    let drain = Rc::new(Drain::new());
    let budget = Rc::new(Budget { index, max: max_connections, open: Cell::new(0), state: state.clone() });
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
    loop {
        let accepted = monoio::select! {
            r = listener.accept() => r,
            _ = drain.wait() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                let Some(slot) = Budget::try_take(&budget, peer) else {
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
                // EMFILE and friends: back off instead of spinning; the listener stays.
                crate::log!(Warn, "accept failed: {e}");
                monoio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

// === impl Budget ===

impl Budget {
    /// Takes a connection slot, or `None` when `max` connections are open process-wide (the
    /// caller closes the new connection at once).
    fn try_take(this: &Rc<Budget>, _peer: SocketAddr) -> Option<Slot> {
        let metrics = this.state.metrics.core(this.index);
        if this.state.open_conns.fetch_add(1, Ordering::Relaxed) >= this.max {
            this.state.open_conns.fetch_sub(1, Ordering::Relaxed);
            metrics.conn_rejected();
            return None;
        }
        metrics.conn_opened();
        this.open.set(this.open.get() + 1);
        Some(Slot { budget: this.clone() })
    }
}

// === impl Slot ===

impl Drop for Slot {
    fn drop(&mut self) {
        let b = &self.budget;
        b.open.set(b.open.get().saturating_sub(1));
        b.state.open_conns.fetch_sub(1, Ordering::Relaxed);
        b.state.metrics.core(b.index).conn_closed();
    }
}

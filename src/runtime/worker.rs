//! One worker: a pinned thread running its own monoio runtime, its listeners' accept loops,
//! its connections and its drain watcher. Nothing here waits on another core.

use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Duration;

use monoio::net::TcpListener;

use crate::http::conn::{self, ConnConfig, ListenerKind};
use crate::pipeline::Dcs;

use super::shutdown::{Drain, WATCH_INTERVAL};
use super::{IoDriver, Shared};

/// io_uring submission queue entries per worker.
const URING_ENTRIES: u32 = 1024;

/// What a worker is started with.
pub(super) struct Spec {
    pub index: usize,
    pub cpu: usize,
    pub driver: IoDriver,
    pub listeners: Vec<(std::net::TcpListener, ListenerKind)>,
    pub shared: Arc<Shared>,
}

/// io_uring setup with `COOP_TASKRUN`: completions are not delivered by task-work interrupts,
/// which cost 1.5–1.7× CPU per request on this kind of VM (shared/bench RESULTS §4).
pub(super) fn uring_builder() -> io_uring::Builder {
    let mut b = io_uring::IoUring::builder();
    b.setup_coop_taskrun();
    b
}

/// Thread body: pin, build the runtime, serve until drained.
pub(super) fn run(spec: Spec, ready: Sender<Result<(), String>>) {
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
            .map(|mut rt| rt.block_on(serve(spec, ready.clone()))),
        IoDriver::Epoll => monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .map(|mut rt| rt.block_on(serve(spec, ready.clone()))),
    };
    if let Err(e) = built {
        let _ = ready.send(Err(format!("w{index}: cannot start the IO runtime: {e}")));
    }
}

async fn serve(spec: Spec, ready: Sender<Result<(), String>>) {
    let Spec { index, listeners, shared, .. } = spec;
    let dcs = Rc::new(Dcs::new(index, shared.clone()));
    let drain = Rc::new(Drain::new());
    let l = &shared.config.limits;
    let cfg = ConnConfig {
        head: crate::http::HeadLimits {
            max_uri_bytes: l.max_uri_bytes,
            max_header_bytes: l.max_header_bytes,
            max_body_bytes: l.max_body_bytes,
        },
        header_timeout: Duration::from_millis(l.header_timeout_ms),
        keepalive_timeout: Duration::from_millis(l.keepalive_timeout_ms),
    };
    let mut accepting = Vec::new();
    for (std_listener, kind) in listeners {
        match TcpListener::from_std(std_listener) {
            Ok(l) => accepting.push(monoio::spawn(accept_loop(l, kind, dcs.clone(), cfg, drain.clone()))),
            Err(e) => {
                let _ = ready.send(Err(format!("w{index}: cannot register listener: {e}")));
                return;
            }
        }
    }
    let _ = ready.send(Ok(()));
    drop(ready);
    while !shared.draining.load(Ordering::Acquire) {
        monoio::time::sleep(WATCH_INTERVAL).await;
    }
    drain.trigger();
    for a in accepting {
        a.await;
    }
    while dcs.open_connections() > 0 {
        monoio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn accept_loop(
    listener: TcpListener,
    kind: ListenerKind,
    dcs: Rc<Dcs>,
    cfg: ConnConfig,
    drain: Rc<Drain>,
) {
    let max = dcs.shared().config.limits.max_connections;
    loop {
        let accepted = monoio::select! {
            r = listener.accept() => r,
            _ = drain.wait() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                let Some(guard) = dcs.try_open_connection(max) else {
                    drop(stream);
                    continue;
                };
                let (dcs, drain) = (dcs.clone(), drain.clone());
                monoio::spawn(async move {
                    conn::serve(stream, peer, kind, dcs, cfg, drain).await;
                    drop(guard);
                });
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning; the listener stays.
                crate::log!(Warn, "accept failed: {e}");
                monoio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

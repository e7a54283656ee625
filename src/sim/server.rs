//! The simulator's threads: `SO_REUSEPORT` listeners bound before any thread starts (so port 0
//! resolves once, to one port for all), one monoio runtime per thread, the accept loops, and
//! the stop that closes every connection.
//!
//! Stopping: [`Shared::stop`] is a process-wide flag; each thread looks at it every
//! [`WATCH_INTERVAL`] and then fires its local [`Stop`], which ends the accept loop and every
//! connection task (a hanging connection included) at once. Per-thread state is `Rc`/`Cell`;
//! only [`Shared`] crosses threads.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use socket2::{Domain, Protocol, Socket, Type};

use super::conn::{self, Worker};
use super::state::Shared;
use super::{Driver, SimOptions};

/// How often a thread looks at the stop flag.
const WATCH_INTERVAL: Duration = Duration::from_millis(10);

/// io_uring submission queue entries per thread.
const URING_ENTRIES: u32 = 1024;

/// Listen backlog: benchmarks open many connections at once.
const BACKLOG: i32 = 4096;

/// A running simulator's threads.
pub struct Started {
    /// The address every listener is bound to (port 0 resolved).
    pub addr: SocketAddr,
    /// State shared with the threads.
    pub shared: Arc<Shared>,
    /// The threads, stopped through `shared.stop`.
    pub joins: Vec<JoinHandle<()>>,
}

/// One thread's stop signal: wakes every task waiting in [`Stop::wait`] once.
#[derive(Default)]
struct Stop {
    fired: Cell<bool>,
    /// Wakers of the waiting tasks; `None` marks a free slot (listed in `free`).
    waiters: RefCell<Vec<Option<Waker>>>,
    free: RefCell<Vec<usize>>,
}

/// Future of [`Stop::wait`]; gives its slot back when dropped.
struct StopWait<'a> {
    stop: &'a Stop,
    slot: Option<usize>,
}

/// Binds the listeners and starts one thread per listener; returns once every thread accepts.
///
/// # Errors
/// Bad options, a bind error, or a runtime that cannot start; no thread is left running.
pub fn start(opts: SimOptions) -> io::Result<Started> {
    if opts.threads == 0 {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "threads must be at least 1"));
    }
    if !(0.0..=1.0).contains(&opts.fail_rate) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "fail_rate must be in 0..=1"));
    }
    let first = bind(opts.listen)?;
    let addr = first.local_addr()?;
    let mut listeners = vec![first];
    for _ in 1..opts.threads {
        listeners.push(bind(addr)?);
    }
    let seed = opts.seed.unwrap_or_else(|| StdRng::from_os_rng().next_u64());
    let shared = Arc::new(Shared::new(opts));
    let (ready_tx, ready_rx) = mpsc::channel();
    let mut joins = Vec::new();
    for (i, listener) in listeners.into_iter().enumerate() {
        let (thread_shared, ready) = (shared.clone(), ready_tx.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("sim{i}"))
            .spawn(move || thread_main(i, listener, thread_shared, seed, ready));
        match spawned {
            Ok(j) => joins.push(j),
            Err(e) => return Err(stop_all(&shared, joins, e)),
        }
    }
    drop(ready_tx);
    for _ in 0..joins.len() {
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(stop_all(&shared, joins, e)),
            Err(_) => return Err(stop_all(&shared, joins, io::Error::other("a simulator thread died"))),
        }
    }
    Ok(Started { addr, shared, joins })
}

/// Stops and joins the threads started so far; passes `e` through.
fn stop_all(shared: &Shared, joins: Vec<JoinHandle<()>>, e: io::Error) -> io::Error {
    shared.stop.store(true, Ordering::Release);
    for j in joins {
        let _ = j.join();
    }
    e
}

/// A non-blocking `SO_REUSEPORT` listener on `addr`.
fn bind(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(BACKLOG)?;
    Ok(s.into())
}

/// Thread body: build the runtime the options ask for and serve until stopped.
fn thread_main(
    index: usize,
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    seed: u64,
    ready: Sender<io::Result<()>>,
) {
    let worker = |precise| Worker {
        rng: RefCell::new(StdRng::seed_from_u64(seed.wrapping_add(index as u64))),
        shared: shared.clone(),
        precise,
        tasks: Cell::new(0),
    };
    let uring = match shared.opts.driver {
        Driver::Legacy => None,
        Driver::Uring | Driver::Auto => Some(
            monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
                .with_entries(URING_ENTRIES)
                .enable_timer()
                .build(),
        ),
    };
    match uring {
        Some(Ok(mut rt)) => rt.block_on(serve(listener, Rc::new(worker(true)), ready)),
        Some(Err(e)) if shared.opts.driver == Driver::Uring => {
            let _ = ready.send(Err(io::Error::new(e.kind(), format!("cannot start io_uring: {e}"))));
        }
        _ => {
            if let Some(Err(e)) = uring {
                crate::log!(Warn, "partner simulator: io_uring unavailable ({e}); using epoll");
            }
            match monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().enable_timer().build() {
                Ok(mut rt) => rt.block_on(serve(listener, Rc::new(worker(false)), ready)),
                Err(e) => {
                    let _ = ready.send(Err(e));
                }
            }
        }
    }
}

/// Accepts until stopped, then waits for this thread's connections to end.
async fn serve(listener: std::net::TcpListener, w: Rc<Worker>, ready: Sender<io::Result<()>>) {
    let listener = match monoio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    drop(ready);
    let stop = Rc::new(Stop::default());
    let accepting = monoio::spawn(accept_loop(listener, w.clone(), stop.clone()));
    while !w.shared.stop.load(Ordering::Acquire) {
        monoio::time::sleep(WATCH_INTERVAL).await;
    }
    stop.trigger();
    accepting.await;
    while w.tasks.get() > 0 {
        monoio::time::sleep(Duration::from_millis(1)).await;
    }
    // One more turn of the ring, so the closes of the dropped sockets are submitted before the
    // runtime (and its ring) goes away.
    monoio::time::sleep(Duration::from_millis(2)).await;
}

async fn accept_loop(listener: monoio::net::TcpListener, w: Rc<Worker>, stop: Rc<Stop>) {
    loop {
        let accepted = monoio::select! {
            r = listener.accept() => r,
            _ = stop.wait() => return,
        };
        match accepted {
            Ok((stream, _)) => {
                w.tasks.set(w.tasks.get() + 1);
                let (w, stop) = (w.clone(), stop.clone());
                monoio::spawn(async move {
                    monoio::select! {
                        _ = conn::serve(stream, &w) => {},
                        _ = stop.wait() => {},
                    }
                    w.tasks.set(w.tasks.get() - 1);
                });
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                crate::log!(Warn, "partner simulator: accept failed: {e}");
                monoio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

// === impl Stop ===

impl Stop {
    /// Fires the signal and wakes every waiting task.
    fn trigger(&self) {
        self.fired.set(true);
        let wakers: Vec<Waker> = self.waiters.borrow_mut().drain(..).flatten().collect();
        self.free.borrow_mut().clear();
        for w in wakers {
            w.wake();
        }
    }

    /// Completes once the signal fires.
    fn wait(&self) -> StopWait<'_> {
        StopWait { stop: self, slot: None }
    }
}

// === impl StopWait ===

impl Future for StopWait<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.stop.fired.get() {
            return Poll::Ready(());
        }
        let stop = self.stop;
        let mut waiters = stop.waiters.borrow_mut();
        match self.slot {
            // One slot per waiting future, refreshed only when the task's waker changes, so a
            // connection polled a million times still holds one slot.
            Some(i) => {
                if let Some(slot) = waiters.get_mut(i) {
                    if !slot.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                        *slot = Some(cx.waker().clone());
                    }
                }
            }
            None => {
                let i = match stop.free.borrow_mut().pop() {
                    Some(i) => {
                        waiters[i] = Some(cx.waker().clone());
                        i
                    }
                    None => {
                        waiters.push(Some(cx.waker().clone()));
                        waiters.len() - 1
                    }
                };
                self.slot = Some(i);
            }
        }
        Poll::Pending
    }
}

impl Drop for StopWait<'_> {
    fn drop(&mut self) {
        // After `trigger` the slots are gone; before it, give ours back.
        if let (Some(i), false) = (self.slot, self.stop.fired.get()) {
            if let Some(slot) = self.stop.waiters.borrow_mut().get_mut(i) {
                *slot = None;
                self.stop.free.borrow_mut().push(i);
            }
        }
    }
}

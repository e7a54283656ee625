//! One core's side of the log (docs/eventlog.md §4): records are serialized into the core's
//! current buffer (reused: no allocation per record once warm); a full buffer, the flush timer
//! (`flush_ms`) or a group commit hands it to the core's writer thread over a bounded channel,
//! and emptied buffers come back for reuse. Nothing here blocks or locks.
//!
//! Backlog: when the bytes handed over and not yet written plus the current buffer would pass
//! [`MAX_BACKLOG_BYTES`], a record is dropped and counted (`backlog`), so memory stays
//! bounded however slow the disk.
//!
//! Group commit (`fsync = "always"`): before a connection writes its batch of answers it
//! awaits [`Lane::durable`]: the records appended so far on this core must be written and
//! fdatasync'ed. The first waiter hands the current buffer over; while that batch is being
//! synced, new records gather in the next buffer, and the first waiter woken after the sync
//! hands those over — one write and one fdatasync per batch, shared by every connection of
//! the core. The writer rings a per-core socket pair (the bell) after each synced batch; a task
//! on the worker reads it and wakes the waiters. A socket works on both IO drivers.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use monoio::io::AsyncReadRent;

use crate::config::file::Fsync;
use crate::metrics::Registry;

use super::writer::count_records;
use super::Msg;

/// A buffer is handed over once it holds this much, whatever the timer says.
pub const CHUNK_BYTES: usize = 256 * 1024;
/// Most bytes one core holds for its writer: handed over and not yet written, plus its
/// current buffer. A record that would pass it is dropped.
pub const MAX_BACKLOG_BYTES: u64 = 8 << 20;

/// One core's end of its writer thread.
pub struct Lane {
    core: usize,
    metrics: Arc<Registry>,
    policy: Fsync,
    flush_every: Duration,
    /// Records not yet handed over, each ending in `\n`.
    cur: RefCell<Vec<u8>>,
    /// Bytes appended since start (the mark a batch carries).
    appended: Cell<u64>,
    /// The mark of the last batch handed over.
    handed: Cell<u64>,
    /// Everything up to this mark will never become durable (dropped): waiters stop waiting.
    abandoned: Cell<u64>,
    /// The writer's mark of the last batch written (and synced, with `always`).
    durable: Arc<AtomicU64>,
    tx: SyncSender<Msg>,
    spare: Receiver<Vec<u8>>,
    /// Taken by the bell task when it starts.
    bell: RefCell<Option<std::os::unix::net::UnixStream>>,
    waiters: RefCell<Vec<Waker>>,
    /// The flush (and bell) tasks run.
    started: Cell<bool>,
    closed: Cell<bool>,
}

/// What a lane is made of; see [`super::EventLog::lane`].
pub(super) struct Parts {
    pub core: usize,
    pub metrics: Arc<Registry>,
    pub policy: Fsync,
    pub flush_every: Duration,
    pub durable: Arc<AtomicU64>,
    pub tx: SyncSender<Msg>,
    pub spare: Receiver<Vec<u8>>,
    pub bell: Option<std::os::unix::net::UnixStream>,
}

/// Resolves when the records appended before it was made are durable (or dropped).
pub struct Durable {
    lane: Rc<Lane>,
    target: u64,
}

// === impl Lane ===

impl Lane {
    pub(super) fn new(p: Parts) -> Lane {
        Lane {
            core: p.core,
            metrics: p.metrics,
            policy: p.policy,
            flush_every: p.flush_every,
            cur: RefCell::new(Vec::with_capacity(CHUNK_BYTES)),
            appended: Cell::new(0),
            handed: Cell::new(0),
            abandoned: Cell::new(0),
            durable: p.durable,
            tx: p.tx,
            spare: p.spare,
            bell: RefCell::new(p.bell),
            waiters: RefCell::new(Vec::new()),
            started: Cell::new(false),
            closed: Cell::new(false),
        }
    }

    /// Appends one record that `write` serializes (without its line end). Dropped and counted
    /// when the backlog is full. Must run on the worker's runtime (the first call starts the
    /// lane's tasks there).
    pub fn append(self: &Rc<Self>, write: impl FnOnce(&mut Vec<u8>)) {
        if !self.started.replace(true) {
            self.start();
        }
        let metrics = self.metrics.eventlog.core(self.core);
        if self.closed.get() {
            // A partner answer landing after the drain: the writer is gone.
            metrics.dropped_backlog(1);
            return;
        }
        let mut cur = self.cur.borrow_mut();
        let start = cur.len();
        write(&mut cur);
        cur.push(b'\n');
        if metrics.pending() + cur.len() as u64 > MAX_BACKLOG_BYTES {
            cur.truncate(start);
            metrics.dropped_backlog(1);
            return;
        }
        self.appended.set(self.appended.get() + (cur.len() - start) as u64);
        metrics.appended();
        let full = cur.len() >= CHUNK_BYTES;
        drop(cur);
        if full {
            self.hand_over();
        }
    }

    /// With `fsync = "always"` and records not yet durable: a future that resolves once every
    /// record appended so far is on disk. `None` when there is nothing to wait for.
    pub fn durable(self: &Rc<Self>) -> Option<Durable> {
        if self.policy != Fsync::Always {
            return None;
        }
        let target = self.appended.get();
        if self.reached(target) {
            return None;
        }
        Some(Durable { lane: self.clone(), target })
    }

    /// Hands the remaining records over and tells the writer to finish its file (shutdown).
    pub fn close(&self) {
        if self.closed.replace(true) {
            return;
        }
        let bytes = std::mem::take(&mut *self.cur.borrow_mut());
        if !bytes.is_empty() {
            self.metrics.eventlog.core(self.core).handed(bytes.len() as u64);
            // Blocking is fine here: the worker has drained and serves nothing any more.
            if let Err(e) = self.tx.send(Msg::Batch { bytes, mark: self.appended.get(), sync: true }) {
                self.refused(e.0);
            }
        }
        let _ = self.tx.send(Msg::Close);
    }

    fn reached(&self, target: u64) -> bool {
        self.durable.load(Ordering::Acquire).max(self.abandoned.get()) >= target
    }

    /// Hands the current buffer to the writer (synced with `always`).
    fn hand_over(&self) {
        let mut cur = self.cur.borrow_mut();
        if cur.is_empty() {
            return;
        }
        let next = self.spare.try_recv().unwrap_or_else(|_| Vec::with_capacity(CHUNK_BYTES));
        let bytes = std::mem::replace(&mut *cur, next);
        drop(cur);
        let mark = self.appended.get();
        self.metrics.eventlog.core(self.core).handed(bytes.len() as u64);
        let sync = self.policy == Fsync::Always;
        match self.tx.try_send(Msg::Batch { bytes, mark, sync }) {
            Ok(()) => self.handed.set(mark),
            Err(TrySendError::Full(m) | TrySendError::Disconnected(m)) => self.refused(m),
        }
    }

    /// The writer did not take a batch: its records are dropped.
    fn refused(&self, m: Msg) {
        if let Msg::Batch { bytes, mark, .. } = m {
            let metrics = self.metrics.eventlog.core(self.core);
            metrics.done_with(bytes.len() as u64);
            metrics.dropped_backlog(count_records(&bytes));
            self.abandoned.set(self.abandoned.get().max(mark));
            self.wake_all();
        }
    }

    fn wake_all(&self) {
        for w in self.waiters.borrow_mut().drain(..) {
            w.wake();
        }
    }

    /// Starts the flush timer and, with `always`, the bell reader.
    fn start(self: &Rc<Self>) {
        let weak = Rc::downgrade(self);
        let every = self.flush_every;
        monoio::spawn(async move {
            loop {
                monoio::time::sleep(every).await;
                let Some(lane) = weak.upgrade() else { return };
                if lane.closed.get() {
                    return;
                }
                lane.hand_over();
            }
        });
        if let Some(bell) = self.bell.borrow_mut().take() {
            let weak = Rc::downgrade(self);
            monoio::spawn(async move {
                if let Err(e) = ring_loop(bell, weak).await {
                    crate::log!(
                        Error,
                        "event log: the writer's bell failed ({e}); group commits wait for the flush timer"
                    );
                }
            });
        }
    }
}

/// Wakes the lane's waiters each time its writer rings.
async fn ring_loop(bell: std::os::unix::net::UnixStream, lane: Weak<Lane>) -> io::Result<()> {
    bell.set_nonblocking(true)?;
    let mut bell = monoio::net::UnixStream::from_std(bell)?;
    let mut buf = vec![0u8; 64];
    loop {
        let (r, b) = bell.read(buf).await;
        buf = b;
        if r? == 0 {
            return Ok(());
        }
        let Some(lane) = lane.upgrade() else { return Ok(()) };
        lane.wake_all();
    }
}

// === impl Durable ===

impl Future for Durable {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let lane = &self.lane;
        if lane.reached(self.target) {
            return Poll::Ready(());
        }
        // Nothing in flight covers the target: this waiter starts the next group commit.
        let in_flight = lane.durable.load(Ordering::Acquire) < lane.handed.get();
        if lane.handed.get() < self.target && !in_flight {
            lane.hand_over();
            if lane.reached(self.target) {
                return Poll::Ready(());
            }
        }
        lane.waiters.borrow_mut().push(cx.waker().clone());
        Poll::Pending
    }
}

//! One core's writer thread (docs/eventlog.md §2, §4): owns the core's open file, writes the
//! batches its worker hands over, rotates at `segment_bytes` on a record boundary, renames
//! finished files `.done`, and fdatasyncs by the policy. Blocking file IO lives here and only
//! here, so the worker never waits for the disk (monoio's epoll driver would run file
//! operations inline on the worker; a thread serves both drivers the same way).
//!
//! Failures never stop the daemon: a file that cannot be opened or written is logged once
//! (until a write succeeds again), its records are counted as dropped (`io`), and the next
//! batch tries again. A failed write is cut back to the last whole record (`set_len`) so a
//! torn line never sits in the middle of a file; if even that fails the file is finished
//! there and the next batch starts a new one, so the torn line is that file's last.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::file::Fsync;
use crate::metrics::Registry;

use super::read::FileName;
use super::{pack, Msg};

/// What a writer thread is started with.
pub(super) struct Writer {
    pub core: u32,
    pub dir: PathBuf,
    /// The sequence number of the next file.
    pub seq: u64,
    pub segment_bytes: u64,
    pub policy: Fsync,
    pub fsync_interval: Duration,
    pub metrics: Arc<Registry>,
    /// Where the written position is published (`pack(seq, offset)`), for snapshots.
    pub written: Arc<AtomicU64>,
    /// Start as if a failure had been logged already (start-up logged the directory's).
    pub failing: bool,
    /// The worker's mark of the last batch made durable (`always`) or written.
    pub durable: Arc<AtomicU64>,
    pub rx: Receiver<Msg>,
    /// Emptied buffers go back to the worker.
    pub spare: Sender<Vec<u8>>,
    /// Rung after each batch the worker waits for (`always`).
    pub bell: Option<UnixStream>,
}

/// The open file.
struct Open {
    file: File,
    offset: u64,
    /// Bytes written since the last fdatasync.
    dirty: bool,
}

/// The writer's state between batches.
struct State {
    w: Writer,
    open: Option<Open>,
    last_sync: Instant,
    /// An error was logged and nothing has succeeded since: further errors are only counted.
    failing: bool,
}

// === impl Writer ===

impl Writer {
    /// The thread body: until the worker closes its lane (or the channel goes away).
    pub(super) fn run(self) {
        let failing = self.failing;
        let mut st = State { w: self, open: None, last_sync: Instant::now(), failing };
        st.publish();
        loop {
            let wait = match (st.w.policy, &st.open) {
                (Fsync::Interval, Some(o)) if o.dirty => {
                    st.w.fsync_interval.saturating_sub(st.last_sync.elapsed()).max(Duration::from_millis(1))
                }
                _ => Duration::from_secs(1),
            };
            match st.w.rx.recv_timeout(wait) {
                Ok(Msg::Batch { bytes, mark, sync }) => st.batch(bytes, mark, sync),
                Ok(Msg::Close) | Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {}
            }
            if st.w.policy == Fsync::Interval && st.last_sync.elapsed() >= st.w.fsync_interval {
                st.sync();
            }
        }
        // Shutdown: everything handed over is written; the file is synced and finished.
        while let Ok(Msg::Batch { bytes, mark, sync }) = st.w.rx.try_recv() {
            st.batch(bytes, mark, sync);
        }
        st.finish_file();
    }
}

// === impl State ===

impl State {
    fn lane(&self) -> &crate::metrics::eventlog::LogCore {
        self.w.metrics.eventlog.core(self.w.core as usize)
    }

    /// Writes one batch, syncs it when asked or by the policy, and hands the buffer back.
    fn batch(&mut self, mut bytes: Vec<u8>, mark: u64, sync: bool) {
        let len = bytes.len() as u64;
        self.write_records(&bytes);
        if sync || self.w.policy == Fsync::Always {
            self.sync();
        }
        self.w.durable.store(mark, Ordering::Release);
        self.lane().done_with(len);
        if sync {
            if let Some(bell) = &self.w.bell {
                // Non-blocking: a byte already waiting wakes the worker just as well.
                let _ = (&*bell).write(&[1]);
            }
        }
        bytes.clear();
        let _ = self.w.spare.send(bytes);
    }

    /// Appends whole records to the open file, rotating before a record that would pass
    /// `segment_bytes` (a file holds at least one record, however large).
    fn write_records(&mut self, mut rest: &[u8]) {
        while !rest.is_empty() {
            let Some(offset) = self.ensure_open() else {
                self.lane().dropped_io(count_records(rest));
                return;
            };
            let room = self.w.segment_bytes.saturating_sub(offset);
            let take = if rest.len() as u64 <= room {
                rest.len()
            } else {
                match memchr::memrchr(b'\n', &rest[..room as usize]) {
                    Some(i) => i + 1,
                    None if offset == 0 => memchr::memchr(b'\n', rest).map_or(rest.len(), |i| i + 1),
                    None => {
                        self.finish_file();
                        continue;
                    }
                }
            };
            let (chunk, after) = rest.split_at(take);
            self.write_chunk(chunk);
            rest = after;
            if self.open.as_ref().is_some_and(|o| o.offset >= self.w.segment_bytes) {
                self.finish_file();
            }
        }
    }

    /// Writes `chunk` (whole records) at the end of the open file.
    fn write_chunk(&mut self, chunk: &[u8]) {
        let Some(o) = self.open.as_mut() else { return };
        match o.file.write_all(chunk) {
            Ok(()) => {
                o.offset += chunk.len() as u64;
                o.dirty = true;
                self.lane().written(chunk.len() as u64);
                self.failing = false;
                self.publish();
            }
            Err(e) => {
                let at = o.offset;
                let cut = o.file.set_len(at);
                self.failed("write to", &e);
                self.lane().dropped_io(count_records(chunk));
                if cut.is_err() {
                    // Whatever part of the chunk reached the file is its last line now.
                    self.finish_file();
                }
            }
        }
    }

    /// The open file's offset, opening the next file first if none is open.
    fn ensure_open(&mut self) -> Option<u64> {
        if let Some(o) = &self.open {
            return Some(o.offset);
        }
        let path = self.path(false);
        match OpenOptions::new().append(true).create_new(true).open(&path) {
            Ok(file) => {
                self.open = Some(Open { file, offset: 0, dirty: false });
                self.publish();
                Some(0)
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                // Never reuse a name: skip to the next sequence number.
                self.w.seq += 1;
                self.ensure_open()
            }
            Err(e) => {
                self.failed("create", &e);
                None
            }
        }
    }

    /// The policy's fdatasync of the open file (none with `never`).
    fn sync(&mut self) {
        self.last_sync = Instant::now();
        if self.w.policy != Fsync::Never {
            self.datasync();
        }
    }

    /// fdatasync of the open file if it has unsynced bytes, timed and counted.
    fn datasync(&mut self) {
        let Some(o) = self.open.as_mut().filter(|o| o.dirty) else { return };
        let t0 = Instant::now();
        let r = o.file.sync_data();
        o.dirty = false;
        self.lane().fsynced(t0.elapsed());
        if let Err(e) = r {
            self.failed("fdatasync", &e);
        }
    }

    /// Syncs (whatever the policy: a finished file is complete on disk), closes and renames
    /// the open file `.done`; the next record opens a new one.
    fn finish_file(&mut self) {
        self.datasync();
        if self.open.take().is_none() {
            return;
        }
        let (from, to) = (self.path(false), self.path(true));
        match std::fs::rename(&from, &to) {
            Ok(()) => self.lane().rotated(),
            Err(e) => self.failed("rename", &e),
        }
        self.w.seq += 1;
        self.publish();
    }

    fn path(&self, done: bool) -> PathBuf {
        self.w.dir.join(FileName { core: self.w.core, seq: self.w.seq, done }.to_name())
    }

    /// Publishes where the next record will be written.
    fn publish(&self) {
        let offset = self.open.as_ref().map_or(0, |o| o.offset);
        self.w.written.store(pack(self.w.seq, offset), Ordering::Release);
    }

    /// Counts a failed file operation; logs it unless the previous operation failed too.
    fn failed(&mut self, what: &str, e: &io::Error) {
        self.lane().io_error();
        if !self.failing {
            self.failing = true;
            crate::log!(
                Error,
                "event log: cannot {what} {} ({e}); records are dropped and counted \
                 (dcsd_eventlog_dropped_total{{reason=\"io\"}}) until writing works again",
                self.path(false).display()
            );
        }
    }
}

/// Records in a buffer of whole lines.
pub(super) fn count_records(bytes: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', bytes).count() as u64
}

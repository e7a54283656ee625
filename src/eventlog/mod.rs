//! The event log (docs/eventlog.md): every processed `/event`, `/ibs:` and opt-out — and every
//! partner answer that lands after its request's answer — as one NDJSON line in per-core
//! files that a shipper carries away (`events-<core>-<seq>.ndjson`, renamed `.done` when
//! finished). It is also the profile table's write-ahead log: a snapshot notes the log
//! position it covers ([`encode_note`]) and start-up replays what follows.
//!
//! * [`record`] — serializing a record (pure);
//! * [`lane`] — a core's buffer, backlog bound and group commit (the worker's side);
//! * `writer` — a core's writer thread (files, rotation, fdatasync, `.done`);
//! * [`read`] — file names, listing, reading lines and records back (replay and the verifier);
//! * [`verify`] — `dcsd verify-log DIR`.
//!
//! Threads: one writer per core, started by [`EventLog::open`] and ended by
//! [`EventLog::finish`] (each core's [`Lane::close`] first hands over what it holds).
//! Applying records to the profile table is the pipeline's business (`pipeline::replay`): this
//! module knows files and bytes, not profiles.

pub mod lane;
pub mod read;
pub mod record;
pub mod verify;
mod writer;

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::config::file::{EventLog as LogConfig, Fsync};
use crate::metrics::Registry;

pub use lane::{Durable, Lane};

/// Batches a core may have queued for its writer (the byte bound comes first in practice).
const QUEUE_BATCHES: usize = 64;
/// Offsets take the low 40 bits of a packed position (files up to 1 TiB).
const OFFSET_BITS: u32 = 40;

/// What a worker sends its writer.
enum Msg {
    /// Whole records; `mark` is the worker's count of bytes appended up to their end; `sync`:
    /// fdatasync before reporting the mark and ring the bell.
    Batch { bytes: Vec<u8>, mark: u64, sync: bool },
    /// Finish the file and end the thread.
    Close,
}

/// Where a core's log stands: the next record goes to file `seq` at byte `offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    /// The core.
    pub core: u32,
    /// The file's sequence number.
    pub seq: u64,
    /// Bytes of that file before the position.
    pub offset: u64,
}

/// The process's event log: its writer threads and what each core takes to reach its own.
pub struct EventLog {
    /// What each worker takes once ([`EventLog::lane`]).
    parts: Mutex<Vec<Option<lane::Parts>>>,
    /// Each core's written position, published by its writer.
    written: Vec<Arc<AtomicU64>>,
    /// Cores with files in the directory that this run has no worker for (fewer threads than
    /// before): past their last file, so that no snapshot of this run replays them again.
    idle: Vec<Position>,
    /// A sender per core, to end writers whose worker never closed its lane.
    closers: Vec<SyncSender<Msg>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// `seq` and `offset` in one atomic word.
fn pack(seq: u64, offset: u64) -> u64 {
    (seq << OFFSET_BITS) | (offset & ((1 << OFFSET_BITS) - 1))
}

fn unpack(core: u32, v: u64) -> Position {
    Position { core, seq: v >> OFFSET_BITS, offset: v & ((1 << OFFSET_BITS) - 1) }
}

// === impl EventLog ===

impl EventLog {
    /// Starts one writer per core for `eventlog.dir`, which [`prepare_dir`] made (`usable`:
    /// it could). File sequence numbers continue after the highest name already there, per
    /// core. In a directory that was not usable the writers count their records as dropped
    /// until it works, without logging again what `prepare_dir` logged, and the daemon runs
    /// on.
    ///
    /// # Errors
    /// A writer thread cannot be started.
    pub fn open(
        cfg: &LogConfig,
        cores: usize,
        metrics: Arc<Registry>,
        usable: bool,
    ) -> std::io::Result<EventLog> {
        let dir = PathBuf::from(&cfg.dir);
        let mut next = if usable { next_sequences(&dir) } else { Vec::new() };
        next.resize(next.len().max(cores), 1);
        let idle =
            (cores..next.len()).map(|c| Position { core: c as u32, seq: next[c], offset: 0 }).collect();
        next.truncate(cores);
        metrics.eventlog.enable();
        let (mut parts, mut written, mut closers, mut threads) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (core, &seq) in next.iter().enumerate() {
            let (tx, rx) = mpsc::sync_channel(QUEUE_BATCHES);
            let (spare_tx, spare_rx) = mpsc::channel();
            let (bell_worker, bell_writer) = match cfg.fsync {
                Fsync::Always => {
                    let (a, b) = UnixStream::pair()?;
                    b.set_nonblocking(true)?;
                    (Some(a), Some(b))
                }
                _ => (None, None),
            };
            let pos = Arc::new(AtomicU64::new(pack(seq, 0)));
            let durable = Arc::new(AtomicU64::new(0));
            let w = writer::Writer {
                core: core as u32,
                dir: dir.clone(),
                seq,
                segment_bytes: cfg.segment_bytes,
                policy: cfg.fsync,
                fsync_interval: Duration::from_millis(u64::from(cfg.fsync_interval_ms.max(1))),
                metrics: metrics.clone(),
                written: pos.clone(),
                failing: !usable,
                durable: durable.clone(),
                rx,
                spare: spare_tx,
                bell: bell_writer,
            };
            threads.push(std::thread::Builder::new().name(format!("log{core}")).spawn(move || w.run())?);
            closers.push(tx.clone());
            written.push(pos);
            parts.push(Some(lane::Parts {
                core,
                metrics: metrics.clone(),
                policy: cfg.fsync,
                flush_every: Duration::from_millis(u64::from(cfg.flush_ms.max(1))),
                durable,
                tx,
                spare: spare_rx,
                bell: bell_worker,
            }));
        }
        Ok(EventLog { parts: Mutex::new(parts), written, idle, closers, threads: Mutex::new(threads) })
    }

    /// Core `core`'s lane, once (its worker builds its service with it).
    pub fn lane(&self, core: usize) -> Option<Rc<Lane>> {
        let mut parts = self.parts.lock().ok()?;
        let p = parts.get_mut(core)?.take()?;
        Some(Rc::new(Lane::new(p)))
    }

    /// Every core's written position now (what a snapshot taken now covers at least).
    pub fn positions(&self) -> Vec<Position> {
        let running =
            self.written.iter().enumerate().map(|(core, w)| unpack(core as u32, w.load(Ordering::Acquire)));
        running.chain(self.idle.iter().copied()).collect()
    }

    /// Shutdown, after the workers drained: every writer writes what it was handed, syncs
    /// and renames its file `.done`, and ends.
    pub fn finish(&self) {
        for c in &self.closers {
            let _ = c.send(Msg::Close);
        }
        let threads = self.threads.lock().map(|mut t| std::mem::take(&mut *t)).unwrap_or_default();
        for t in threads {
            let _ = t.join();
        }
    }
}

/// Creates `dir` if it is missing; `false` (logged, once) if it cannot be created. Start-up
/// then neither replays nor renames anything, and the writers count drops.
pub fn prepare_dir(dir: &Path) -> bool {
    match std::fs::create_dir_all(dir) {
        Ok(()) => true,
        Err(e) => {
            crate::log!(
                Error,
                "event log: cannot create {} ({e}); records are dropped and counted \
                 (dcsd_eventlog_dropped_total{{reason=\"io\"}}) until it can be written",
                dir.display()
            );
            false
        }
    }
}

/// The next sequence number of every core that has files in `dir` (1 for a core without):
/// one past the highest file of that core.
fn next_sequences(dir: &Path) -> Vec<u64> {
    let mut next = Vec::new();
    match read::list(dir) {
        Ok(files) => {
            for (name, _) in files {
                let core = name.core as usize;
                if next.len() <= core {
                    next.resize(core + 1, 1);
                }
                next[core] = next[core].max(name.seq + 1);
            }
        }
        Err(e) => crate::log!(Error, "event log: cannot list {} ({e})", dir.display()),
    }
    next
}

/// Renames every file a previous run left open (`.ndjson`: a crash) to `.done`, so shippers
/// take it; its last line may be torn (readers drop it). Returns how many were renamed.
pub fn seal_leftovers(dir: &Path) -> usize {
    let Ok(files) = read::list(dir) else { return 0 };
    let mut sealed = 0;
    for (name, path) in files.into_iter().filter(|(n, _)| !n.done) {
        let done = dir.join(read::FileName { done: true, ..name }.to_name());
        match std::fs::rename(&path, &done) {
            Ok(()) => sealed += 1,
            Err(e) => crate::log!(Error, "event log: cannot rename {} to .done ({e})", path.display()),
        }
    }
    sealed
}

/// The snapshot's note of the log positions it covers: `eventlog v1` then one
/// `core seq offset` line per core.
pub fn encode_note(positions: &[Position]) -> Vec<u8> {
    let mut s = String::from("eventlog v1\n");
    for p in positions {
        s.push_str(&format!("{} {} {}\n", p.core, p.seq, p.offset));
    }
    s.into_bytes()
}

/// The positions of a snapshot's note; `None` if the note is not one (no log, or another
/// format).
pub fn decode_note(note: &[u8]) -> Option<Vec<Position>> {
    let text = std::str::from_utf8(note).ok()?;
    let mut lines = text.lines();
    if lines.next()? != "eventlog v1" {
        return None;
    }
    lines
        .map(|l| {
            let mut f = l.split(' ');
            let p = Position {
                core: f.next()?.parse().ok()?,
                seq: f.next()?.parse().ok()?,
                offset: f.next()?.parse().ok()?,
            };
            f.next().is_none().then_some(p)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_round_trip_and_others_are_refused() {
        let p = vec![Position { core: 0, seq: 3, offset: 17 }, Position { core: 1, seq: 1, offset: 0 }];
        assert_eq!(decode_note(&encode_note(&p)), Some(p));
        assert_eq!(decode_note(b""), None);
        assert_eq!(decode_note(b"eventlog v1\n0 1\n"), None);
        assert_eq!(decode_note(b"eventlog v2\n"), None);
        assert_eq!(unpack(2, pack(5, 1 << 39)), Position { core: 2, seq: 5, offset: 1 << 39 });
    }
}

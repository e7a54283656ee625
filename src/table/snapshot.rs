//! Snapshot and restore of a [`ProfileTable`]: the whole table (profiles with their opt-outs
//! and denylist counters, declared-ID and ECID maps) in one checksummed file.
//!
//! ```text
//! header   b"DCSDSNAP" · u32 version (3) · u32 reserved (0) · u32 note length · note
//! record*  u8 kind (1 profile, 2 declared ID, 3 ECID, 4 ID denylist) · varint klen · key ·
//!          varint vlen · value
//! trailer  u8 0xFF · u64 record count · u32 CRC-32 (IEEE) of every byte before it
//! ```
//! Integers little-endian. The note is opaque to the table: the caller's record of what the
//! snapshot covers (the event log's positions, `crate::eventlog::encode_note`), taken just
//! before the walk starts, so everything before it is in the file. Version 2 files (no note)
//! are still read. [`write()`] streams to `<path>.tmp`, fsyncs it, renames it over
//! `path` and fsyncs the directory, so `path` always holds a complete snapshot or the previous
//! one; a failed write deletes its temp file. It walks the shards under short epoch guards and
//! never blocks writers; each bucket is copied as of one instant, the file as a whole is not a
//! single instant (an update racing the walk is in the file or not). [`restore`] builds a new
//! table, validates every record (the profile codec checks every invariant) and returns it
//! only if the trailer's count and CRC match and nothing follows: a truncated or corrupt file
//! yields one [`SnapshotError`] and no table, never half of one. CRC-32 via `crc32fast` (SIMD,
//! ~10 GB/s): a 100 MB snapshot costs ~10 ms of checksum.
//!
//! The last good snapshot is never lost to an empty or shrunken table (docs/configuration.md
//! §3.8):
//! * a file restore refused is renamed to `<path>.refused-<UTC time>` by start-up
//!   ([`move_aside`]) before anything is written, and left for the operator; start-up also
//!   deletes the `<path>.tmp*` files a crashed writer left ([`remove_stale_temps`]);
//! * the shrink guard in [`write()`]: a snapshot holding fewer than `store.snapshot_shrink_ratio`
//!   × the profiles of the file it replaces first keeps that file as `<path>.previous`, warns
//!   and counts in [`SnapshotReport::shrink_guards`]. The count compared with is the table's
//!   memory of its file (set by [`restore`], then by each successful write): no extra read.
//!
//! Reading lives in `read`, the side files and their renames in `files`. Not done here:
//! deciding what start-up does with a refused file, or whether to write at all this run
//! (`pipeline::shared`); keeping more than one `.previous`.
//!
//! Blocking file IO, so it runs on its own thread, on the main thread at start-up before any
//! worker exists and at shutdown after the drain, never on a worker. State: the table's
//! `SnapshotStatus`, shared atomics written by one writer at a time (the final write joins
//! the thread first).

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::entry::put_varint;
use super::{Kind, ProfileTable};

pub(super) mod files;
mod read;

pub use files::{move_aside, previous_path, remove_stale_temps, StaleTemp};
pub use read::{restore, restore_noted};

const MAGIC: &[u8; 8] = b"DCSDSNAP";
/// 3: the note. 2: declared-ID mappings carry their time; the ID denylist. Version 1 files
/// are refused.
const VERSION: u32 = 3;
/// Longest note restore accepts.
const MAX_NOTE_BYTES: usize = 1 << 20;
const TRAILER: u8 = 0xFF;
/// Every map, in file order.
const KINDS: [Kind; 4] = [Kind::Profile, Kind::Declared, Kind::Ecid, Kind::Denied];
/// Longest key restore accepts (a DPUUID is far shorter).
const MAX_KEY_BYTES: usize = 4096;
/// Longest value restore accepts.
const MAX_VALUE_BYTES: usize = 64 << 20;
const IO_BUFFER_BYTES: usize = 1 << 20;

/// Makes the note of a snapshot about to be written.
pub type NoteFn = Arc<dyn Fn() -> Vec<u8> + Send + Sync>;

/// How a table's snapshots have gone, kept by the table for `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct SnapshotStatus {
    /// Unix seconds when the last successful write finished (0: none yet).
    last_ok_s: AtomicU64,
    /// How long that write took, in microseconds.
    last_us: AtomicU64,
    /// The size of that snapshot.
    last_bytes: AtomicU64,
    /// Writes that failed.
    failures: AtomicU64,
    /// Writes the shrink guard kept the previous file for.
    shrink_guards: AtomicU64,
    /// Profiles in the file at the snapshot path, as this table last restored or wrote it
    /// (0: none): what the shrink guard compares with, so it never has to read the file.
    file_profiles: AtomicU64,
}

/// A copy of a table's `SnapshotStatus`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SnapshotReport {
    /// Unix seconds when the last successful write finished (0: none yet).
    pub last_ok_s: u64,
    /// How long that write took.
    pub last_duration: Duration,
    /// The size of that snapshot in bytes.
    pub last_bytes: u64,
    /// Writes that failed since start.
    pub failures: u64,
    /// Writes since start whose snapshot held fewer than `shrink_ratio` × the previous file's
    /// profiles, so that file was kept as `<path>.previous` first.
    pub shrink_guards: u64,
}

/// What a snapshot holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SnapshotStats {
    /// Profiles.
    pub profiles: u64,
    /// Declared-ID mappings.
    pub declared: u64,
    /// ECID mappings.
    pub ecids: u64,
    /// Declared IDs and ECIDs with denylist counters.
    pub denied: u64,
    /// File size.
    pub bytes: u64,
}

impl SnapshotStats {
    /// Records of every kind.
    pub fn records(&self) -> u64 {
        self.profiles + self.declared + self.ecids + self.denied
    }
}

/// Why a snapshot could not be written or restored.
#[derive(Debug)]
pub enum SnapshotError {
    /// The file could not be opened, read, written or renamed.
    Io(io::Error),
    /// The file ends before its trailer: a torn write.
    Truncated,
    /// The file is not a valid snapshot; says what was wrong.
    Corrupt(&'static str),
}

/// The background snapshot thread; see [`spawn_snapshotter`].
pub struct Snapshotter {
    /// Dropping or sending on it ends the thread's wait.
    stop: mpsc::Sender<()>,
    /// The thread, joined before the final write so two writes never race on `<path>.tmp`.
    thread: JoinHandle<()>,
    /// What is written.
    table: Arc<ProfileTable>,
    /// Where.
    path: PathBuf,
    /// `store.snapshot_shrink_ratio`, for the final write as for the periodic ones.
    shrink_ratio: f64,
    /// The note of each write.
    note: NoteFn,
}

// === impl SnapshotError ===

impl std::fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SnapshotError::Io(e) => write!(f, "snapshot IO error: {e}"),
            SnapshotError::Truncated => f.write_str("snapshot is truncated (ends before its trailer)"),
            SnapshotError::Corrupt(why) => write!(f, "snapshot is corrupt: {why}"),
        }
    }
}

impl std::error::Error for SnapshotError {}

// === impl SnapshotStatus ===

impl SnapshotStatus {
    /// What the counters say now.
    pub(crate) fn report(&self) -> SnapshotReport {
        SnapshotReport {
            last_ok_s: self.last_ok_s.load(Relaxed),
            last_duration: Duration::from_micros(self.last_us.load(Relaxed)),
            last_bytes: self.last_bytes.load(Relaxed),
            failures: self.failures.load(Relaxed),
            shrink_guards: self.shrink_guards.load(Relaxed),
        }
    }

    /// Records the outcome of one write that took `took`.
    fn record(&self, outcome: &Result<SnapshotStats, SnapshotError>, took: Duration) {
        match outcome {
            Ok(stats) => {
                let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
                self.last_us.store(u64::try_from(took.as_micros()).unwrap_or(u64::MAX), Relaxed);
                self.last_bytes.store(stats.bytes, Relaxed);
                self.last_ok_s.store(now.max(1), Relaxed);
                self.file_profiles.store(stats.profiles, Relaxed);
            }
            Err(_) => {
                self.failures.fetch_add(1, Relaxed);
            }
        }
    }
}

impl From<io::Error> for SnapshotError {
    fn from(e: io::Error) -> SnapshotError {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            SnapshotError::Truncated
        } else {
            SnapshotError::Io(e)
        }
    }
}

// === impl Snapshotter ===

impl Snapshotter {
    /// Stops the thread (waiting out a snapshot in progress) and writes a final snapshot,
    /// through the same shrink guard as the periodic ones.
    ///
    /// # Errors
    /// Whatever [`write()`] returns.
    pub fn stop_and_write_final(self) -> Result<SnapshotStats, SnapshotError> {
        let _ = self.stop.send(());
        let _ = self.thread.join();
        write_noted(&self.table, &self.path, self.shrink_ratio, &*self.note)
    }
}

/// Starts a thread named `snapshot` that writes `table` to `path` every `interval` with
/// [`write_noted`] (`shrink_ratio` and `note` as there), logging each write at debug level and failures as
/// warnings (the next interval tries again).
///
/// # Errors
/// If the thread cannot be spawned.
pub fn spawn_snapshotter(
    table: Arc<ProfileTable>,
    path: PathBuf,
    interval: Duration,
    shrink_ratio: f64,
    note: NoteFn,
) -> io::Result<Snapshotter> {
    let (stop, rx) = mpsc::channel::<()>();
    let (t, p, n) = (Arc::clone(&table), path.clone(), note.clone());
    let thread = std::thread::Builder::new().name("snapshot".into()).spawn(move || {
        while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(interval) {
            match write_noted(&t, &p, shrink_ratio, &*n) {
                // What tests (and an operator at debug level) wait for; once per interval.
                Ok(st) => crate::log!(
                    Debug,
                    "periodic snapshot written to {}: {} profiles, {} bytes",
                    p.display(),
                    st.profiles,
                    st.bytes
                ),
                Err(e) => crate::log!(Warn, "{}: {e}", p.display()),
            }
        }
    })?;
    Ok(Snapshotter { stop, thread, table, path, shrink_ratio, note })
}

/// Writes `table` to `path` atomically (temp file, fsync, rename, fsync of the directory), and
/// records the outcome in the table's [`SnapshotReport`].
///
/// The shrink guard: if the new snapshot holds fewer than `shrink_ratio` × the profiles of
/// the file it replaces (as this table last restored or wrote it; `shrink_ratio` 0 never),
/// that file is first kept as `<path>.previous` (replacing an older one) and a warning
/// logged, so a table emptied by accident — a refused restore, a much smaller
/// `store.max_profiles` — cannot silently destroy the last good snapshot.
///
/// # Errors
/// [`SnapshotError::Io`] if any step fails, keeping the previous file for the guard
/// included; `path` then still holds the previous snapshot, and the temp file is removed.
pub fn write(table: &ProfileTable, path: &Path, shrink_ratio: f64) -> Result<SnapshotStats, SnapshotError> {
    write_noted(table, path, shrink_ratio, &Vec::new)
}

/// [`write()`] with the note `note` makes just before the walk (it must describe a state the
/// table already holds, so that the file covers at least what the note says).
///
/// # Errors
/// As [`write()`].
pub fn write_noted(
    table: &ProfileTable,
    path: &Path,
    shrink_ratio: f64,
    note: &dyn Fn() -> Vec<u8>,
) -> Result<SnapshotStats, SnapshotError> {
    let start = Instant::now();
    let tmp = files::tmp_path(path);
    let outcome = write_file(table, path, &tmp, shrink_ratio, note);
    if outcome.is_err() {
        // A torn temp file is useless and as large as the table (disk full is a likely cause
        // of the failure). Already gone if the failure came after the rename.
        let _ = fs::remove_file(&tmp);
    }
    table.snapshots.record(&outcome, start.elapsed());
    outcome
}

/// [`write()`] without the bookkeeping.
fn write_file(
    table: &ProfileTable,
    path: &Path,
    tmp: &Path,
    ratio: f64,
    note: &dyn Fn() -> Vec<u8>,
) -> Result<SnapshotStats, SnapshotError> {
    let stats = write_tmp(table, tmp, note)?;
    guard_shrink(table, path, &stats, ratio)?;
    fs::rename(tmp, path)?;
    files::sync_dir(path)?;
    Ok(stats)
}

/// Streams `table` to `tmp` and fsyncs it.
fn write_tmp(
    table: &ProfileTable,
    tmp: &Path,
    note: &dyn Fn() -> Vec<u8>,
) -> Result<SnapshotStats, SnapshotError> {
    let file = File::create(tmp)?;
    let mut out = BufWriter::with_capacity(IO_BUFFER_BYTES, Crc::new(file));
    out.write_all(MAGIC)?;
    out.write_all(&VERSION.to_le_bytes())?;
    out.write_all(&0u32.to_le_bytes())?;
    let note = note();
    let note_len = u32::try_from(note.len()).ok().filter(|&n| n as usize <= MAX_NOTE_BYTES);
    let note_len =
        note_len.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "snapshot note too long"))?;
    out.write_all(&note_len.to_le_bytes())?;
    out.write_all(&note)?;
    let mut stats = SnapshotStats::default();
    let mut rec = Vec::new();
    let mut put = |kind: Kind, key: &[u8], val: &[u8]| -> io::Result<()> {
        rec.clear();
        rec.push(kind as u8);
        put_varint(&mut rec, key.len() as u64);
        rec.extend_from_slice(key);
        put_varint(&mut rec, val.len() as u64);
        rec.extend_from_slice(val);
        *count_of(&mut stats, kind) += 1;
        out.write_all(&rec)
    };
    for kind in KINDS {
        table.walk_map(kind, &mut put)?;
    }
    let records = stats.records();
    out.write_all(&[TRAILER])?;
    out.write_all(&records.to_le_bytes())?;
    let mut crc = out.into_inner().map_err(io::IntoInnerError::into_error)?;
    let sum = crc.hasher.clone().finalize();
    crc.inner.write_all(&sum.to_le_bytes())?;
    stats.bytes = crc.bytes + 4;
    crc.inner.sync_all()?;
    Ok(stats)
}

/// The shrink guard of [`write()`], between the complete temp file and its rename: the new
/// count is exact only once the walk is done, and the old file must still be at `path`.
fn guard_shrink(table: &ProfileTable, path: &Path, stats: &SnapshotStats, ratio: f64) -> io::Result<()> {
    let previous = table.snapshots.file_profiles.load(Relaxed);
    if !files::shrank(previous, stats.profiles, ratio) {
        return Ok(());
    }
    let (shown, new) = (path.display(), stats.profiles);
    match files::keep_previous(path) {
        Ok(kept) => {
            table.snapshots.shrink_guards.fetch_add(1, Relaxed);
            crate::log!(
                Warn,
                "snapshot {shown}: the new snapshot holds {new} profiles, fewer than \
                 store.snapshot_shrink_ratio {ratio} × the {previous} of the file it replaces; \
                 that file is kept as {}",
                kept.display()
            );
            Ok(())
        }
        // Removed by hand since: nothing left to keep, and refusing would stop snapshots for good.
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            crate::log!(
                Warn,
                "snapshot {shown} (of {previous} profiles) is gone; writing {new} in its place"
            );
            Ok(())
        }
        Err(e) => Err(io::Error::new(e.kind(), format!("cannot keep {shown} as .previous: {e}"))),
    }
}

fn count_of(stats: &mut SnapshotStats, kind: Kind) -> &mut u64 {
    match kind {
        Kind::Profile => &mut stats.profiles,
        Kind::Declared => &mut stats.declared,
        Kind::Ecid => &mut stats.ecids,
        Kind::Denied => &mut stats.denied,
    }
}

/// A reader or writer that checksums and counts the bytes passing through.
struct Crc<T> {
    inner: T,
    hasher: crc32fast::Hasher,
    bytes: u64,
}

impl<T> Crc<T> {
    fn new(inner: T) -> Crc<T> {
        Crc { inner, hasher: crc32fast::Hasher::new(), bytes: 0 }
    }
}

impl<W: Write> Write for Crc<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<R: Read> Read for Crc<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

//! The DCS application state every core shares: the configuration, the current catalog (swapped
//! on reload), the profile table and the metrics. Read-mostly; the only writes on the request
//! path go to the table and the per-core metrics blocks.
//!
//! Building it restores the profile table from its snapshot ([`Shared::new`]), before any
//! listener opens.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use crossbeam_utils::CachePadded;

use crate::catalog::Catalog;
use crate::config::Config;
use crate::eventlog::EventLog;
use crate::metrics::Registry;
use crate::table::snapshot::{self, Snapshotter};
use crate::table::{DenyRule, ProfileTable, TableConfig};

/// State shared by all cores.
pub struct Shared {
    /// The configuration (fixed for the life of the process).
    pub config: Arc<Config>,
    /// The current catalog; a reload swaps it, requests in flight keep the old one.
    pub catalog: ArcSwap<Catalog>,
    /// Bumped after every swap of `catalog`, so workers can cache their `Arc` and re-load it
    /// only when this changes (one relaxed load per request instead of an arc-swap guard).
    pub catalog_generation: CachePadded<AtomicU64>,
    /// Every core's metrics.
    pub metrics: Arc<Registry>,
    /// Every profile and ID mapping (the only shared mutable state on the request path).
    pub table: Arc<ProfileTable>,
    /// The event log, when `eventlog.dir` is set.
    pub eventlog: Option<Arc<EventLog>>,
    /// Whether the snapshot may be written this run: not when a refused snapshot could not
    /// be moved aside, so that no write replaces it.
    snapshot_writable: bool,
}

// === impl Shared ===

impl Shared {
    /// State for `threads` workers; the profile table is restored from `store.snapshot_path`
    /// when one is configured (a missing file starts empty; a refused one is logged and moved
    /// aside; stale temp files are removed). With `eventlog.dir` set, the log records written
    /// after the snapshot are replayed into the table, files a crash left open are renamed
    /// `.done`, and the log's writers start (docs/eventlog.md §5).
    ///
    /// # Errors
    /// A writer thread of the event log cannot be started.
    pub fn new(config: Config, catalog: Catalog, threads: usize) -> std::io::Result<Shared> {
        let (table, writable, note) = restore_table(&config, &catalog);
        let mut shared = Shared {
            snapshot_writable: writable,
            ..Shared::with_table(config, catalog, threads, Arc::new(table))
        };
        let log = &shared.config.eventlog;
        if !log.dir.is_empty() {
            let dir = Path::new(&log.dir);
            let usable = crate::eventlog::prepare_dir(dir);
            if usable {
                replay_and_seal(&shared, dir, note.as_deref());
            }
            shared.eventlog = Some(Arc::new(EventLog::open(log, threads, shared.metrics.clone(), usable)?));
        }
        Ok(shared)
    }

    /// State for `threads` workers around an existing table.
    pub fn with_table(config: Config, catalog: Catalog, threads: usize, table: Arc<ProfileTable>) -> Shared {
        Shared {
            table,
            catalog: ArcSwap::from_pointee(catalog),
            catalog_generation: CachePadded::new(AtomicU64::new(0)),
            config: Arc::new(config),
            metrics: Arc::new(Registry::new(threads)),
            eventlog: None,
            snapshot_writable: true,
        }
    }

    /// Replaces the catalog (reload); workers pick it up on their next request.
    pub fn swap_catalog(&self, c: Catalog) {
        self.catalog.store(Arc::new(c));
        self.catalog_generation.fetch_add(1, Ordering::Release);
    }

    /// Starts the thread that writes the table every `store.snapshot_interval_s`, when
    /// `store.snapshot_path` is set and a refused snapshot is not still in the way (then
    /// `None`: no periodic and no final snapshot this run; start-up logged why).
    ///
    /// # Errors
    /// The thread cannot be started.
    pub fn start_snapshotter(&self) -> std::io::Result<Option<Snapshotter>> {
        let store = &self.config.store;
        if store.snapshot_path.is_empty() || !self.snapshot_writable {
            return Ok(None);
        }
        let interval = Duration::from_secs(u64::from(store.snapshot_interval_s.max(1)));
        let path = store.snapshot_path.clone().into();
        let log = self.eventlog.clone();
        let note: snapshot::NoteFn = Arc::new(move || match &log {
            Some(l) => crate::eventlog::encode_note(&l.positions()),
            None => Vec::new(),
        });
        snapshot::spawn_snapshotter(self.table.clone(), path, interval, store.snapshot_shrink_ratio, note)
            .map(Some)
    }
}

/// Start-up with the event log on: replays the log after the snapshot's `note` (docs/eventlog.md
/// §5) and renames the files a crash left open `.done`, one line each.
fn replay_and_seal(shared: &Shared, dir: &Path, note: Option<&[u8]>) {
    let from = note.and_then(crate::eventlog::decode_note);
    let r = super::replay::replay(dir, from.as_deref(), &shared.table, &shared.catalog.load());
    crate::log!(
        Info,
        "event log: replayed {} records ({} applied) from {} files in {} ms{}{}",
        r.records,
        r.applied,
        r.files,
        r.took.as_millis(),
        if from.is_some() {
            " after the snapshot's positions"
        } else {
            " (no snapshot positions: every file)"
        },
        if r.corrupt > 0 { format!("; {} corrupt lines skipped", r.corrupt) } else { String::new() }
    );
    let sealed = crate::eventlog::seal_leftovers(dir);
    if sealed > 0 {
        crate::log!(Warn, "event log: renamed {sealed} file(s) a previous run left open to .done");
    }
}

/// `[store]`, `[denylist]` and the taxonomy's trait TTL as table limits.
fn table_config(config: &Config, catalog: &Catalog) -> TableConfig {
    TableConfig {
        max_profiles: config.store.max_profiles,
        max_traits_per_profile: config.store.max_traits_per_profile,
        history_days: u16::try_from(catalog.trait_ttl_days()).unwrap_or(u16::MAX),
        deny: DenyRule {
            max_requests: config.denylist.max_requests,
            window_s: config.denylist.window_s,
            ttl_s: config.denylist.ttl_s,
        },
        ..TableConfig::default()
    }
}

/// The table from `store.snapshot_path`, or an empty one, and whether snapshots may be
/// written this run. Stale temp files are removed first. A missing file starts empty; a torn
/// or corrupt one is refused — never half-loaded — and moved aside so the next write cannot
/// replace it (docs/configuration.md §3.8); if it cannot be moved, writes are off instead.
fn restore_table(config: &Config, catalog: &Catalog) -> (ProfileTable, bool, Option<Vec<u8>>) {
    let limits = table_config(config, catalog);
    if config.store.snapshot_path.is_empty() {
        return (ProfileTable::new(limits), true, None);
    }
    let path = Path::new(&config.store.snapshot_path);
    remove_stale_temps(path);
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            crate::log!(Info, "no snapshot at {}; starting with an empty profile table", path.display());
            return (ProfileTable::new(limits), true, None);
        }
        _ => {}
    }
    let t0 = Instant::now();
    match snapshot::restore_noted(path, limits.clone()) {
        Ok((table, st, note)) => {
            let ms = t0.elapsed().as_millis();
            crate::log!(Info, "restored {} profiles from {} in {ms} ms", st.profiles, path.display());
            (table, true, Some(note))
        }
        Err(e) => (ProfileTable::new(limits), set_aside(path, &e), None),
    }
}

/// Deletes the temp files a crashed snapshot writer left beside `path`, one line each.
fn remove_stale_temps(path: &Path) {
    let found = match snapshot::remove_stale_temps(path) {
        Ok(found) => found,
        Err(e) => {
            crate::log!(Warn, "cannot look for stale snapshot temp files beside {}: {e}", path.display());
            return;
        }
    };
    for t in found {
        let (at, bytes) = (t.path.display(), t.bytes);
        match t.removed {
            Ok(()) => {
                crate::log!(Warn, "removed {at} ({bytes} bytes), left by an interrupted snapshot write")
            }
            Err(e) => crate::log!(
                Error,
                "cannot remove {at} ({bytes} bytes), left by an interrupted snapshot write: {e}"
            ),
        }
    }
}

/// Moves a refused snapshot out of the way of the next write, logging why it was refused.
/// Returns whether snapshots may be written: not if it is still at `path`, which the next
/// write would replace.
fn set_aside(path: &Path, why: &snapshot::SnapshotError) -> bool {
    let shown = path.display();
    let bytes = std::fs::symlink_metadata(path).map_or(0, |m| m.len());
    match snapshot::move_aside(path, SystemTime::now()) {
        Ok(aside) => {
            crate::log!(
                Error,
                "snapshot {shown} refused ({why}); moved aside to {} ({bytes} bytes); starting with \
                 an empty profile table",
                aside.display()
            );
            true
        }
        Err(e) => {
            crate::log!(
                Error,
                "snapshot {shown} refused ({why}) and not moved aside ({bytes} bytes; {e}); starting \
                 with an empty profile table"
            );
            crate::log!(
                Error,
                "snapshots are disabled for this run (periodic and at shutdown) so that {shown} is not \
                 overwritten; move it away and restart to have snapshots again"
            );
            false
        }
    }
}

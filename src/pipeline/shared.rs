//! The DCS application state every core shares: the configuration, the current catalog (swapped
//! on reload), the profile table and the metrics. Read-mostly; the only writes on the request
//! path go to the table and the per-core metrics blocks.
//!
//! Building it restores the profile table from its snapshot ([`Shared::new`]), before any
//! listener opens.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use crossbeam_utils::CachePadded;

use crate::catalog::Catalog;
use crate::config::Config;
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
}

// === impl Shared ===

impl Shared {
    /// State for `threads` workers; the profile table is restored from `store.snapshot_path`
    /// when one is configured (a missing file starts empty; a refused one is logged).
    pub fn new(config: Config, catalog: Catalog, threads: usize) -> Shared {
        let table = Arc::new(restore_table(&config, &catalog));
        Shared::with_table(config, catalog, threads, table)
    }

    /// State for `threads` workers around an existing table.
    pub fn with_table(config: Config, catalog: Catalog, threads: usize, table: Arc<ProfileTable>) -> Shared {
        Shared {
            table,
            catalog: ArcSwap::from_pointee(catalog),
            catalog_generation: CachePadded::new(AtomicU64::new(0)),
            config: Arc::new(config),
            metrics: Arc::new(Registry::new(threads)),
        }
    }

    /// Replaces the catalog (reload); workers pick it up on their next request.
    pub fn swap_catalog(&self, c: Catalog) {
        self.catalog.store(Arc::new(c));
        self.catalog_generation.fetch_add(1, Ordering::Release);
    }

    /// Starts the thread that writes the table every `store.snapshot_interval_s`, when
    /// `store.snapshot_path` is set.
    ///
    /// # Errors
    /// The thread cannot be started.
    pub fn start_snapshotter(&self) -> std::io::Result<Option<Snapshotter>> {
        let store = &self.config.store;
        if store.snapshot_path.is_empty() {
            return Ok(None);
        }
        let interval = Duration::from_secs(u64::from(store.snapshot_interval_s.max(1)));
        snapshot::spawn_snapshotter(self.table.clone(), store.snapshot_path.clone().into(), interval)
            .map(Some)
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

/// The table from `store.snapshot_path`, or an empty one. A missing file starts empty; a torn
/// or corrupt one is refused with one log line and the daemon starts empty — never half-loaded.
fn restore_table(config: &Config, catalog: &Catalog) -> ProfileTable {
    let limits = table_config(config, catalog);
    let path = std::path::Path::new(&config.store.snapshot_path);
    if config.store.snapshot_path.is_empty() {
        return ProfileTable::new(limits);
    }
    if !path.exists() {
        crate::log!(Info, "no snapshot at {}; starting with an empty profile table", path.display());
        return ProfileTable::new(limits);
    }
    let t0 = Instant::now();
    match snapshot::restore(path, limits.clone()) {
        Ok((table, st)) => {
            let ms = t0.elapsed().as_millis();
            crate::log!(Info, "restored {} profiles from {} in {ms} ms", st.profiles, path.display());
            table
        }
        Err(e) => {
            crate::log!(
                Error,
                "snapshot {} refused ({e}); starting with an empty profile table",
                path.display()
            );
            ProfileTable::new(limits)
        }
    }
}

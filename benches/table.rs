//! The profile table: get and update latency against `RwLock<HashMap>` and `DashMap`, with 1
//! and 2 threads, over 100k profiles at random (cache-cold) and over a hot set of 1 000, beside
//! the machine's floor for two dependent cache misses; and, with the `1m` filter, a one-shot
//! measurement of bytes per profile (after filling 1M profiles and after 1M more users evict as
//! many), snapshot time and restore time.
//!
//! Run: `cargo bench --bench table -- --warm-up-time 1 --measurement-time 3` (latency) and
//! `cargo bench --bench table -- 1m` (memory, snapshot, restore; ~1 GB of RAM, ~130 MB of disk
//! in the temp dir). The allocator is mimalloc, as in the daemon, wrapped to count live bytes.
#![allow(missing_docs, clippy::expect_used, clippy::unwrap_used)]
// The counting allocator (support/counting_alloc.rs) needs `unsafe impl GlobalAlloc`; it only
// forwards to mimalloc.
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::Ordering;
use std::sync::{Barrier, PoisonError, RwLock};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use dashmap::DashMap;
use dcsd::identity::Uuid;
use dcsd::table::snapshot;
use dcsd::table::{Profile, ProfileTable, TableConfig, DAY_S};

#[path = "support/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::LIVE;

const NOW: u64 = 20_500 * DAY_S;
/// Profiles in every store; the cold runs pick keys uniformly among them, so most operations
/// miss the CPU caches (the table and both reference maps hold ~15-25 MB).
const KEYS: u64 = 100_000;
/// The hot runs pick among the first 1 000 keys only: their buckets stay in the caches, so the time is
/// the maps' own work rather than DRAM latency.
const HOT_KEYS: u64 = 1_000;

/// The benchmark profile: 8 traits realized today, 2 segments, 1 synced ID.
fn fill(p: &mut Profile, n: u64) {
    for t in 0..8 {
        p.realize(420_000 + t * 17 + (n % 5) as u32, NOW);
    }
    p.set_segments([984_263, 985_264]);
    p.set_synced_id(20_914, &format!("crm{n:09}"), NOW);
}

/// The three stores under test.
trait Store: Sync {
    fn get(&self, k: u64) -> bool;
    fn update(&self, k: u64);
}

impl Store for ProfileTable {
    fn get(&self, k: u64) -> bool {
        self.get(Uuid(k.into()), NOW).is_some()
    }
    fn update(&self, k: u64) {
        self.update(Uuid(k.into()), NOW, |p| p.realize(420_001, NOW));
    }
}

impl Store for RwLock<HashMap<u64, Profile>> {
    fn get(&self, k: u64) -> bool {
        // Cloned, like the table's `get`, so callers may keep it.
        self.read().unwrap_or_else(PoisonError::into_inner).get(&k).cloned().is_some()
    }
    fn update(&self, k: u64) {
        self.write().unwrap_or_else(PoisonError::into_inner).entry(k).or_default().realize(420_001, NOW);
    }
}

impl Store for DashMap<u64, Profile> {
    fn get(&self, k: u64) -> bool {
        self.get(&k).map(|r| r.clone()).is_some()
    }
    fn update(&self, k: u64) {
        self.entry(k).or_default().realize(420_001, NOW);
    }
}

fn stores() -> Vec<(&'static str, Box<dyn Store>)> {
    let cfg = TableConfig { max_profiles: 1_000_000, ..TableConfig::default() };
    let table = ProfileTable::new(cfg);
    let (rw, dash) = (RwLock::new(HashMap::new()), DashMap::new());
    for k in 0..KEYS {
        table.update(Uuid(k.into()), NOW, |p| fill(p, k));
        fill(rw.write().unwrap().entry(k).or_default(), k);
        fill(&mut dash.entry(k).or_default(), k);
    }
    vec![("table", Box::new(table)), ("rwlock_hashmap", Box::new(rw)), ("dashmap", Box::new(dash))]
}

/// Each of `threads` threads does `iters` operations on pseudo-random keys; returns the wall
/// time between the start and end barriers (per-thread latency = time / iters).
fn run(store: &dyn Store, threads: u64, iters: u64, update: bool, keys: u64) -> Duration {
    let barrier = Barrier::new(threads as usize + 1);
    std::thread::scope(|s| {
        for t in 0..threads {
            let barrier = &barrier;
            s.spawn(move || {
                barrier.wait();
                let mut k = t.wrapping_mul(0x9E37_79B9_7F4A_7C15);
                for _ in 0..iters {
                    k = k.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                    let key = (k >> 33) % keys;
                    if update {
                        store.update(key);
                    } else {
                        black_box(store.get(key));
                    }
                }
                barrier.wait();
            });
        }
        barrier.wait();
        let start = Instant::now();
        barrier.wait();
        start.elapsed()
    })
}

/// The floor under every cold operation: two dependent loads from random places in 32 MiB
/// (a slot, then the record it points to), chased through a random cycle so the CPU can neither
/// prefetch nor overlap them.
fn memory_floor(c: &mut Criterion) {
    const N: usize = 8 << 20;
    let mut next: Vec<u32> = (0..N as u32).collect();
    // Sattolo's shuffle: one cycle through every index.
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    for i in (1..N).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        next.swap(i, (x % i as u64) as usize);
    }
    let mut at = 0u32;
    c.bench_function("memory_floor/2_dependent_misses", |b| {
        b.iter(|| {
            at = next[next[at as usize] as usize];
            black_box(at)
        });
    });
}

fn latency(c: &mut Criterion) {
    memory_floor(c);
    let stores = stores();
    for op in ["get", "update"] {
        let mut g = c.benchmark_group(format!("table_{op}"));
        for (keys, set) in [(KEYS, "100k"), (HOT_KEYS, "hot")] {
            for threads in [1, 2] {
                for (name, store) in &stores {
                    g.bench_function(BenchmarkId::new(*name, format!("{threads}t_{set}")), |b| {
                        b.iter_custom(|iters| run(store.as_ref(), threads, iters, op == "update", keys));
                    });
                }
            }
        }
        g.finish();
    }
}

fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    pages * 4096
}

/// Bytes per profile, snapshot and restore at 1M profiles.
fn one_million() {
    const N: u64 = 1_000_000;
    let cfg = TableConfig { max_profiles: N as usize, ..TableConfig::default() };
    let (live0, rss0) = (LIVE.load(Ordering::Relaxed), rss_bytes());
    let table = ProfileTable::new(cfg.clone());
    let insert = |k: u64| {
        let uuid =
            Uuid(u128::from(k).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835) % 10u128.pow(38));
        table.update(uuid, NOW, |p| fill(p, k));
        table.map_declared(20_914, &format!("crm{k:09}"), uuid);
    };
    let start = Instant::now();
    for k in 0..N {
        insert(k);
    }
    let fill_s = start.elapsed().as_secs_f64();
    let (live, rss, n) = (LIVE.load(Ordering::Relaxed) - live0, rss_bytes() - rss0, table.len());
    println!("1m: {n} profiles ({:?} mappings) filled in {fill_s:.2} s", table.mapping_len());
    println!("1m: heap bytes requested per profile: {:.1}", live as f64 / n as f64);
    println!("1m: RSS growth per profile: {:.1}", rss as f64 / n as f64);
    // Steady state: 1M more new users, each evicting the least recently seen.
    let start = Instant::now();
    for k in N..2 * N {
        insert(k);
    }
    let (live, rss, n) = (LIVE.load(Ordering::Relaxed) - live0, rss_bytes() - rss0, table.len());
    println!("1m: {} more users inserted and evicted in {:.2} s", N, start.elapsed().as_secs_f64());
    println!(
        "1m: after eviction: heap bytes requested per profile {:.1}, RSS growth per profile {:.1}",
        live as f64 / n as f64,
        rss as f64 / n as f64
    );
    let path = std::env::temp_dir().join(format!("dcsd-bench-{}.snap", std::process::id()));
    let start = Instant::now();
    let stats = snapshot::write(&table, &path, 0.0).unwrap();
    println!("1m: snapshot {} bytes in {:.3} s", stats.bytes, start.elapsed().as_secs_f64());
    drop(table);
    let start = Instant::now();
    let (restored, _) = snapshot::restore(&path, cfg).unwrap();
    println!("1m: restore {} profiles in {:.3} s", restored.len(), start.elapsed().as_secs_f64());
    std::fs::remove_file(path).unwrap();
}

fn main() {
    if std::env::args().any(|a| a == "1m") {
        one_million();
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    latency(&mut c);
    c.final_summary();
}

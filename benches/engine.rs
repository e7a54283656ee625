//! The taxonomy engine on a generated 100,000-trait / 10,000-segment taxonomy: realizing a
//! 20-signal request, evaluating segments for a profile holding ~20 traits, rendering
//! destinations; plus a one-shot load+compile time and the compiled taxonomy's live heap bytes.
//!
//! Run: `nice -n 19 cargo bench --bench engine -j 1` (add `-- realize` to filter). The
//! allocator is mimalloc, as in the daemon, wrapped to count live bytes.
#![allow(missing_docs, clippy::expect_used, clippy::unwrap_used)]
// The counting allocator (support/counting_alloc.rs) needs `unsafe impl GlobalAlloc`; it only
// forwards to mimalloc.
#![allow(unsafe_code)]

use std::hint::black_box;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use dcsd::catalog::Catalog;
use dcsd::engine::gen::{generate, GenParams};
use dcsd::engine::{DestRequest, EngineScratch, RealizeCtx};

#[path = "support/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::{ALLOCS, LIVE};

const TODAY: u16 = 20_500;

fn main() {
    let g = generate(GenParams::bench());
    let before = LIVE.load(Ordering::Relaxed);
    let t0 = Instant::now();
    let tax = Catalog::from_json(g.json.as_bytes()).expect("generated taxonomy loads");
    let load = t0.elapsed();
    let bytes = LIVE.load(Ordering::Relaxed) - before;
    println!(
        "load+compile: {:.0} ms for {} bytes of JSON; live heap after load: {:.1} MB ({:?})",
        load.as_secs_f64() * 1e3,
        g.json.len(),
        bytes as f64 / 1e6,
        tax.engine
    );

    let requests: Vec<Vec<(Vec<u8>, Vec<u8>)>> = (0..256).map(|s| g.request(s, 20)).collect();
    let profiles: Vec<_> = (0..64).map(|s| g.profile(s, 20, TODAY)).collect();
    let mut scratch = EngineScratch::default();
    let (mut out, mut segs) = (Vec::new(), Vec::new());
    let ctx = RealizeCtx { customer: 1, ..RealizeCtx::default() };
    let (mut hits, mut seg_hits) = (0, 0);
    for r in &requests {
        tax.engine.realize(&mut scratch, r.iter().map(|(k, v)| (&k[..], &v[..])), &ctx, &mut out);
        hits += out.len();
    }
    for p in &profiles {
        tax.engine.segments(p, TODAY, 1, &mut segs);
        seg_hits += segs.len();
    }
    println!(
        "per request: {:.1} traits realized; per profile: {:.1} segments",
        hits as f64 / requests.len() as f64,
        seg_hits as f64 / profiles.len() as f64
    );
    let allocs = ALLOCS.load(Ordering::Relaxed);
    for r in &requests {
        tax.engine.realize(&mut scratch, r.iter().map(|(k, v)| (&k[..], &v[..])), &ctx, &mut out);
    }
    for p in &profiles {
        tax.engine.segments(p, TODAY, 1, &mut segs);
    }
    println!(
        "allocations in {} steady-state realize + {} segments calls: {}",
        requests.len(),
        profiles.len(),
        ALLOCS.load(Ordering::Relaxed) - allocs
    );

    let mut c = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let mut grp = c.benchmark_group("engine");
    grp.throughput(Throughput::Elements(20));
    let mut i = 0;
    grp.bench_function("realize_20_signals", |b| {
        b.iter(|| {
            i = (i + 1) % requests.len();
            let r = &requests[i];
            tax.engine.realize(&mut scratch, r.iter().map(|(k, v)| (&k[..], &v[..])), &ctx, &mut out);
            black_box(out.len())
        })
    });
    grp.throughput(Throughput::Elements(1));
    grp.bench_function("segments_profile_20_traits", |b| {
        b.iter(|| {
            i = (i + 1) % profiles.len();
            tax.engine.segments(&profiles[i], TODAY, 1, &mut segs);
            black_box(segs.len())
        })
    });
    let seg_lists: Vec<Vec<u32>> = profiles
        .iter()
        .map(|p| {
            let mut s = Vec::new();
            tax.engine.segments(p, TODAY, 1, &mut s);
            s
        })
        .collect();
    let (mut stuff, mut dests) = (Vec::new(), Vec::new());
    grp.bench_function("render_destinations", |b| {
        b.iter(|| {
            i = (i + 1) % seg_lists.len();
            let req = DestRequest {
                customer: 1,
                segments: &seg_lists[i],
                uuid: "12345678901234567890123456789012345678",
                ..DestRequest::default()
            };
            stuff.clear();
            dests.clear();
            tax.engine.render_destinations(&mut scratch, &req, &mut stuff, &mut dests);
            black_box(stuff.len() + dests.len())
        })
    });
    grp.finish();
    c.final_summary();
}

//! Writes a profile-table snapshot of N synthetic users, to time a restart with a full table:
//! `cargo run --release --example gen_snapshot -- PATH [N]` (default 1,000,000). Each user has
//! the benchmark profile of `benches/table.rs`: 8 traits realized today, 2 segments and one
//! declared ID (DPID 20914), mapped in the declared-ID table too.
#![allow(missing_docs)]

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use dcsd::identity::Uuid;
use dcsd::table::{snapshot, ProfileTable, TableConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: gen_snapshot PATH [N]")?;
    let n: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1_000_000);
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let table = ProfileTable::new(TableConfig { max_profiles: n as usize, ..TableConfig::default() });
    let start = Instant::now();
    for k in 0..n {
        let uuid =
            Uuid(u128::from(k).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835) % 10u128.pow(38));
        let dpuuid = format!("crm{k:09}");
        table.update(uuid, now, |p| {
            for t in 0..8 {
                p.realize(420_000 + t * 17 + (k % 5) as u32, now);
            }
            p.set_segments([984_263, 985_264]);
            p.set_synced_id(20_914, &dpuuid, now);
        });
        table.map_declared(20_914, &dpuuid, uuid);
    }
    let stats = snapshot::write(&table, std::path::Path::new(&path), 0.0)?;
    eprintln!(
        "{} profiles ({} asked; per-shard bounds evict a few) in {:.2} s; snapshot {path}: {} bytes",
        table.len(),
        n,
        start.elapsed().as_secs_f64(),
        stats.bytes
    );
    Ok(())
}

//! Writes a profile-table snapshot of N synthetic users, to time a restart with a full table:
//! `cargo run --release --example gen_snapshot -- PATH [N]` (default 1,000,000). Each user has
//! the benchmark profile of `benches/table.rs`: 8 traits realized today, 2 segments and one
//! declared ID (DPID 20914), mapped in the declared-ID table too.
//!
//! With `LOGDIR RECORDS` after N (`… -- PATH N LOGDIR RECORDS`), it also writes RECORDS
//! event-log records that came after the snapshot (the snapshot's note says so: every core at
//! the start of its first file), spread over 2 cores' files in LOGDIR: `/event` records of the
//! same users, each realizing 2 traits of the demo taxonomy's customer 1, with one declared ID
//! — a restart then restores the snapshot and replays them (docs/eventlog.md §5).
#![allow(missing_docs)]

use std::io::Write as _;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use dcsd::eventlog::read::FileName;
use dcsd::eventlog::record::{self, Kind, Outcome, Profile};
use dcsd::eventlog::{encode_note, Position};
use dcsd::identity::Uuid;
use dcsd::table::{snapshot, ProfileTable, TableConfig};

/// The synthetic user `k`.
fn user(k: u64) -> Uuid {
    Uuid(u128::from(k).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835) % 10u128.pow(38))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: gen_snapshot PATH [N]")?;
    let n: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1_000_000);
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let table = ProfileTable::new(TableConfig { max_profiles: n as usize, ..TableConfig::default() });
    let start = Instant::now();
    for k in 0..n {
        let uuid = user(k);
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
    let log = match (args.next(), args.next()) {
        (Some(dir), Some(r)) => Some((std::path::PathBuf::from(dir), r.parse::<u64>()?)),
        _ => None,
    };
    let positions: Vec<Position> = (0..2).map(|core| Position { core, seq: 1, offset: 0 }).collect();
    let note = if log.is_some() { encode_note(&positions) } else { Vec::new() };
    let stats = snapshot::write_noted(&table, std::path::Path::new(&path), 0.0, &|| note.clone())?;
    eprintln!(
        "{} profiles ({} asked; per-shard bounds evict a few) in {:.2} s; snapshot {path}: {} bytes",
        table.len(),
        n,
        start.elapsed().as_secs_f64(),
        stats.bytes
    );
    if let Some((dir, records)) = log {
        write_log(&dir, records, n, now)?;
    }
    Ok(())
}

/// RECORDS `/event` records of users 0..N, alternating between cores 0 and 1.
fn write_log(dir: &std::path::Path, records: u64, n: u64, now: u64) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut files = Vec::new();
    for core in 0..2 {
        let name = FileName { core, seq: 1, done: true }.to_name();
        files.push(std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(dir.join(name))?));
    }
    let mut buf = Vec::with_capacity(1024);
    let ip = std::net::IpAddr::from([203, 0, 113, 0]);
    let signals: [(&[u8], &[u8]); 3] = [
        (b"c_likes", b"famous popstar"),
        (b"h_host", b"acme.dcs.example"),
        (b"h_user-agent", b"Mozilla/5.0"),
    ];
    for i in 0..records {
        let k = i % n.max(1);
        let digits = user(k).to_digits();
        let mut declared = Vec::new();
        record::push_declared(&mut declared, 20_914, &format!("crm{k:09}"), 1);
        buf.clear();
        record::open(&mut buf, now * 1000 + i % 1000, b"AAAAAAAAAAA=", Kind::Event);
        record::request(&mut buf, b"acme.dcs.example", ip, 7, || signals.iter().copied());
        let p = Profile {
            customer: Some(1),
            uuid: Some(&digits),
            ecid: None,
            declared: &declared,
            opt_out: None,
        };
        let o = Outcome { traits: &[1234, 420_000], segments: &[], expires_s: None, mode: "pixel" };
        record::close(&mut buf, &p, &o, std::iter::empty(), std::iter::empty());
        buf.push(b'\n');
        files[(i % 2) as usize].write_all(&buf)?;
    }
    for f in &mut files {
        f.flush()?;
    }
    eprintln!("{records} event-log records after the snapshot in {}", dir.display());
    Ok(())
}

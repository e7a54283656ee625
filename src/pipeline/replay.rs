//! Start-up replay of the event log into the profile table (docs/eventlog.md §5): the records
//! written after the positions the restored snapshot covers — or every file in the directory
//! when the snapshot has no note (none, or written without the log) — applied in file order,
//! each core's files on their own thread, before any listener opens.
//!
//! What a record gives back: the realizations at their time (`ts`), the customer's segments,
//! the declared-ID and ECID mappings, opt-outs, and partner answers cached until
//! `expires_s`. A torn last line ends its file (a crash left it); a corrupt line in the middle
//! is logged with its file and line and skipped. Records not yet written when the snapshot
//! started, and records written during its walk, are in both and are applied again: a
//! realization counted twice is the price of never losing one.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::catalog::Catalog;
use crate::eventlog::read::{self, Record};
use crate::eventlog::Position;
use crate::identity::Uuid;
use crate::table::ProfileTable;

use super::partners::set_customer_segments;

/// What a replay did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Replayed {
    /// Records applied to the table.
    pub applied: u64,
    /// Records read (applied or with nothing to apply).
    pub records: u64,
    /// Files read.
    pub files: u64,
    /// Corrupt lines skipped.
    pub corrupt: u64,
    /// Files that ended in a torn line.
    pub torn: u64,
    /// How long it took.
    pub took: Duration,
}

/// Replays the log in `dir` into `table`: after `from` (a snapshot note's positions; a core
/// without one, and every core when `from` is `None`, from its first file).
pub fn replay(dir: &Path, from: Option<&[Position]>, table: &ProfileTable, catalog: &Catalog) -> Replayed {
    let t0 = Instant::now();
    let files = match read::list(dir) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            crate::log!(Error, "event log: cannot list {} for replay ({e})", dir.display());
            Vec::new()
        }
    };
    // Each core's files from its position on, in sequence order.
    let mut per_core: Vec<Vec<(PathBuf, u64)>> = Vec::new();
    for (name, path) in files {
        let start = from.and_then(|ps| ps.iter().find(|p| p.core == name.core));
        let offset = match start {
            Some(p) if name.seq < p.seq => continue,
            Some(p) if name.seq == p.seq => p.offset,
            _ => 0,
        };
        let i = name.core as usize;
        if per_core.len() <= i {
            per_core.resize_with(i + 1, Vec::new);
        }
        per_core[i].push((path, offset));
    }
    let mut total = std::thread::scope(|s| {
        let threads: Vec<_> = per_core
            .iter()
            .filter(|f| !f.is_empty())
            .map(|files| s.spawn(move || replay_files(files, table, catalog)))
            .collect();
        threads.into_iter().filter_map(|t| t.join().ok()).fold(Replayed::default(), |a, b| Replayed {
            applied: a.applied + b.applied,
            records: a.records + b.records,
            files: a.files + b.files,
            corrupt: a.corrupt + b.corrupt,
            torn: a.torn + b.torn,
            took: Duration::ZERO,
        })
    });
    total.took = t0.elapsed();
    total
}

/// One core's files, in order.
fn replay_files(files: &[(PathBuf, u64)], table: &ProfileTable, catalog: &Catalog) -> Replayed {
    let mut r = Replayed::default();
    let mut merged = Vec::new();
    for (path, offset) in files {
        r.files += 1;
        let read = read::read_lines(path, *offset, |l| {
            match read::parse_record(l.bytes) {
                Ok(rec) => {
                    r.records += 1;
                    if apply(&rec, table, catalog, &mut merged) {
                        r.applied += 1;
                    }
                }
                Err(e) => {
                    r.corrupt += 1;
                    crate::log!(Warn, "event log replay: {}:{}: skipped ({e})", path.display(), l.line_no);
                }
            }
            ControlFlow::Continue(())
        });
        match read {
            Ok(tail) if tail.torn.is_some() => r.torn += 1,
            Ok(_) => {}
            Err(e) => crate::log!(Error, "event log replay: cannot read {} ({e})", path.display()),
        }
    }
    r
}

/// Applies one record; `false` when it holds nothing for the table.
fn apply(rec: &Record, table: &ProfileTable, catalog: &Catalog, merged: &mut Vec<u32>) -> bool {
    use crate::eventlog::read::{Kind, OptOut, Outcome};
    let Some(uuid) = rec.uuid.as_deref().and_then(|u| Uuid::parse(u.as_bytes())) else { return false };
    let ts = rec.ts / 1000;
    let ecid = rec.ecid.as_deref().and_then(|e| Uuid::parse(e.as_bytes())).map(|u| u.0);
    if rec.opt_out == Some(OptOut::Global) {
        table.update(uuid, ts, |p| p.opt_out_globally());
        return true;
    }
    let partner = rec.kind == Kind::Partner;
    let nothing = rec.traits.is_empty() && rec.declared.is_empty() && ecid.is_none() && rec.opt_out.is_none();
    if nothing && !partner {
        return false;
    }
    let engine = &catalog.engine;
    let replaced: Vec<Option<String>> = table.update(uuid, ts, |p| {
        if let (Some(OptOut::Customer), Some(c)) = (rec.opt_out, rec.customer) {
            p.opt_out_customer(c);
        }
        let replaced = rec.declared.iter().map(|(dpid, id, _)| p.set_synced_id(*dpid, id, ts)).collect();
        if ecid.is_some() {
            p.set_ecid(ecid);
        }
        for &t in &rec.traits {
            p.realize(t, ts);
        }
        if partner {
            let expires = u32::try_from(rec.expires_s.unwrap_or(0)).unwrap_or(u32::MAX);
            for (dpid, outcome) in &rec.partners {
                if matches!(outcome, Outcome::Ok | Outcome::Empty | Outcome::Late) {
                    p.set_partner_result(*dpid, expires, Vec::new());
                }
            }
        }
        // A partner answer without traits changed no segment (`pipeline::partners::land`).
        let segments_known = !partner || !rec.traits.is_empty();
        if let (None, Some(c), true) = (rec.opt_out, rec.customer, segments_known) {
            set_customer_segments(engine, p, c, &rec.segments, merged);
        }
        replaced
    });
    for ((dpid, id, _), old) in rec.declared.iter().zip(&replaced) {
        table.remap_declared(uuid, *dpid, old.as_deref(), id);
    }
    if let Some(e) = ecid {
        table.map_ecid(e, uuid);
    }
    true
}

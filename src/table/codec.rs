//! The stored form of a [`Profile`]: a compact byte string (about 80 bytes for 8 traits
//! realized once, 2 segments and 1 synced ID; the accounting is in `mod.rs`).
//!
//! ```text
//! u8 flags         1 opted out · 2 denylist counters follow · 4 ECID follows ·
//!                  8 extras follow · 16 denylisted (only with 2)
//! u32 last_seen_s  little-endian
//! [u128 ecid]      little-endian
//! [varint window_start_s, varint count [, varint blocked_until_s (≠ 0) if 16]]
//! varint traits    then, if any, u16 base day (the newest), and per trait:
//!                  varint id delta (first absolute, then ≥ 1), varint days, and per day
//!                  varint day delta (from base, then from the previous day, ≥ 1), varint count
//! varint segments  then ID deltas (first absolute, then ≥ 1)
//! varint synced    per ID: varint dpid (increasing), varint len, bytes, varint day delta
//!                  (last-seen day minus sync day, wrapping)
//! [extras]         varint customers + ID deltas; varint partner results, per result:
//!                  varint dpid (increasing), u32 expires_s, varint values, per value len + bytes
//! ```
//! Deltas make every sorted list strictly increasing by construction; [`decode`] refuses any
//! byte string that breaks an invariant of [`Profile`], so restore can trust what it loads.

use super::entry::{put_varint, Reader};
use super::profile::{day_of, Denylist, PartnerResult, Profile, Realization, SyncedId};

const OPTED_OUT: u8 = 1;
const DENYLIST: u8 = 2;
const ECID: u8 = 4;
const EXTRAS: u8 = 8;
const BLOCKED: u8 = 16;

/// Appends the stored form of `p` to `out`.
pub(crate) fn encode(p: &Profile, out: &mut Vec<u8>) {
    let extras = !p.opted_out_customers.is_empty() || !p.partner_results.is_empty();
    let deny = p.denylist != Denylist::default();
    let flags = flag(p.opted_out, OPTED_OUT)
        | flag(deny, DENYLIST)
        | flag(p.ecid.is_some(), ECID)
        | flag(extras, EXTRAS)
        | flag(p.denylist.blocked_until_s != 0, BLOCKED);
    out.push(flags);
    out.extend_from_slice(&p.last_seen_s.to_le_bytes());
    if let Some(ecid) = p.ecid {
        out.extend_from_slice(&ecid.to_le_bytes());
    }
    if deny {
        put_varint(out, p.denylist.window_start_s.into());
        put_varint(out, p.denylist.count.into());
        if p.denylist.blocked_until_s != 0 {
            put_varint(out, p.denylist.blocked_until_s.into());
        }
    }
    encode_traits(&p.realizations, out);
    put_ids(out, &p.segments);
    let seen_day = day_of(p.last_seen_s.into());
    put_varint(out, p.synced.len() as u64);
    for s in &p.synced {
        put_varint(out, s.dpid.into());
        put_str(out, &s.id);
        put_varint(out, seen_day.wrapping_sub(s.day).into());
    }
    if extras {
        put_ids(out, &p.opted_out_customers);
        encode_results(&p.partner_results, out);
    }
}

/// Parses a stored profile; `None` if it is malformed or breaks an invariant.
pub(crate) fn decode(bytes: &[u8]) -> Option<Profile> {
    let mut p = Profile::default();
    decode_into(bytes, &mut p)?;
    Some(p)
}

/// Parses a stored profile into `p`, reusing its buffers (no allocation once they are big
/// enough). On `None`, `p` holds a partial profile and must not be used.
pub(crate) fn decode_into(bytes: &[u8], p: &mut Profile) -> Option<()> {
    let mut r = Reader::new(bytes);
    let flags = r.u8()?;
    p.last_seen_s = r.u32()?;
    p.opted_out = flags & OPTED_OUT != 0;
    p.ecid = if flags & ECID != 0 { Some(r.u128()?) } else { None };
    p.denylist = Denylist::default();
    if flags & DENYLIST != 0 {
        let (window_start_s, count) = (r.varint32()?, r.varint32()?);
        let blocked_until_s = if flags & BLOCKED != 0 { r.varint32().filter(|&b| b != 0)? } else { 0 };
        p.denylist = Denylist { window_start_s, count, blocked_until_s };
    } else if flags & BLOCKED != 0 {
        return None;
    }
    decode_traits(&mut r, &mut p.realizations)?;
    get_ids(&mut r, &mut p.segments)?;
    decode_synced(&mut r, day_of(p.last_seen_s.into()), &mut p.synced)?;
    p.opted_out_customers.clear();
    p.partner_results.clear();
    if flags & EXTRAS != 0 {
        get_ids(&mut r, &mut p.opted_out_customers)?;
        decode_results(&mut r, &mut p.partner_results)?;
    }
    r.is_done().then_some(())
}

/// Synced IDs into `out`, overwriting its strings in place.
fn decode_synced(r: &mut Reader<'_>, seen_day: u16, out: &mut Vec<SyncedId>) -> Option<()> {
    let n = r.len()?;
    out.truncate(n);
    for i in 0..n {
        let dpid = r.varint32()?;
        let len = r.len()?;
        let id = std::str::from_utf8(r.bytes(len)?).ok()?;
        let day = seen_day.wrapping_sub(u16::try_from(r.varint()?).ok()?);
        match out.get_mut(i) {
            Some(s) => {
                (s.dpid, s.day) = (dpid, day);
                s.id.clear();
                s.id.push_str(id);
            }
            None => out.push(SyncedId { dpid, id: id.to_owned(), day }),
        }
    }
    increasing(out.iter().map(|s| s.dpid))
}

fn flag(on: bool, bit: u8) -> u8 {
    if on {
        bit
    } else {
        0
    }
}

fn encode_traits(rs: &[Realization], out: &mut Vec<u8>) {
    let groups = || rs.chunk_by(|a, b| a.trait_id == b.trait_id);
    put_varint(out, groups().count() as u64);
    let Some(base) = rs.iter().map(|r| r.day).max() else {
        return;
    };
    out.extend_from_slice(&base.to_le_bytes());
    let mut prev_id = 0;
    for g in groups() {
        put_varint(out, (g[0].trait_id - prev_id).into());
        prev_id = g[0].trait_id;
        put_varint(out, g.len() as u64);
        let mut prev_day = base;
        for r in g {
            put_varint(out, (prev_day - r.day).into());
            put_varint(out, r.count.into());
            prev_day = r.day;
        }
    }
}

fn decode_traits(r: &mut Reader<'_>, out: &mut Vec<Realization>) -> Option<()> {
    out.clear();
    let traits = r.len()?;
    if traits == 0 {
        return Some(());
    }
    let base = r.u16()?;
    let mut trait_id = 0u32;
    for t in 0..traits {
        trait_id = trait_id.checked_add(nonzero_after_first(r.varint32()?, t)?)?;
        let (mut day, days) = (base, r.len()?);
        if days == 0 {
            return None;
        }
        for d in 0..days {
            let delta = u16::try_from(r.varint()?).ok()?;
            day = day.checked_sub(nonzero_after_first(delta, d)?)?;
            let count = u16::try_from(r.varint()?).ok()?;
            out.push(Realization { trait_id, day, count });
        }
    }
    Some(())
}

fn encode_results(rs: &[PartnerResult], out: &mut Vec<u8>) {
    put_varint(out, rs.len() as u64);
    for r in rs {
        put_varint(out, r.dpid.into());
        out.extend_from_slice(&r.expires_s.to_le_bytes());
        put_varint(out, r.values.len() as u64);
        for v in &r.values {
            put_str(out, v);
        }
    }
}

fn decode_results(r: &mut Reader<'_>, out: &mut Vec<PartnerResult>) -> Option<()> {
    for _ in 0..r.len()? {
        let (dpid, expires_s) = (r.varint32()?, r.u32()?);
        let values = (0..r.len()?).map(|_| get_str(r)).collect::<Option<Vec<_>>>()?;
        out.push(PartnerResult { dpid, expires_s, values });
    }
    increasing(out.iter().map(|r| r.dpid))
}

/// A sorted, unique ID list as a count and deltas.
fn put_ids(out: &mut Vec<u8>, ids: &[u32]) {
    put_varint(out, ids.len() as u64);
    let mut prev = 0;
    for &id in ids {
        put_varint(out, (id - prev).into());
        prev = id;
    }
}

fn get_ids(r: &mut Reader<'_>, out: &mut Vec<u32>) -> Option<()> {
    out.clear();
    let n = r.len()?;
    let mut id = 0u32;
    for i in 0..n {
        id = id.checked_add(nonzero_after_first(r.varint32()?, i)?)?;
        out.push(id);
    }
    Some(())
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn get_str(r: &mut Reader<'_>) -> Option<String> {
    let n = r.len()?;
    String::from_utf8(r.bytes(n)?.to_vec()).ok()
}

/// A delta must be positive except for the first element of a list (which is absolute).
fn nonzero_after_first<T: Default + PartialEq>(delta: T, index: usize) -> Option<T> {
    (index == 0 || delta != T::default()).then_some(delta)
}

/// `Some` if the sequence strictly increases.
fn increasing(mut it: impl Iterator<Item = u32>) -> Option<()> {
    let Some(mut prev) = it.next() else {
        return Some(());
    };
    for x in it {
        if x <= prev {
            return None;
        }
        prev = x;
    }
    Some(())
}

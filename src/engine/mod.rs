//! The taxonomy engine (docs/architecture.md §3): trait rules, segments and destinations, compiled once per
//! taxonomy load into an immutable [`Engine`] that every core reads; pure, no IO.
//!
//! * [`rule`] parses trait rules (docs/taxonomy.md §2); [`index`] compiles them into a per-key index
//!   so that a request costs in proportion to its signals ([`Engine::realize`]).
//! * [`segment`] parses and evaluates segment rules (docs/taxonomy.md §3) with recency, frequency
//!   and trait TTL ([`Engine::segments`]).
//! * [`dest`] renders URL and cookie destinations ([`Engine::render_destinations`]).
//! * [`gen`] generates realistic taxonomies and requests for benches and tests.
//!
//! Per-request state lives in an [`EngineScratch`] the caller keeps per core; once grown to the
//! taxonomy's size, evaluating a request does not allocate.
//!
//! Realization rules (docs/taxonomy.md §1, docs/http-api.md §4):
//! * a rule trait realizes only when its data source is owned by or shared with the host's
//!   customer, and with `d_tdpid` only when it belongs to that data source;
//! * `d_sid` realizes a trait directly (`d_tdpid` does not filter it: it names traits, it does
//!   not evaluate rules); an unknown ID, a folder trait (`"folder": true`: a grouping that is
//!   realized through its members' rules, never named directly) or a trait of a data source
//!   the customer may not use is ignored and counted in [`RealizeStats`];
//! * each trait is reported once per request.
//!
//! Measured 2026-11-22 (`cargo bench --bench engine`, generated 100,000 traits / 10,000
//! segments, shared 2-core dev VM; two runs, criterion medians): realizing a 20-signal request
//! 1.12–1.48 µs (13.5 traits realized on average); segments for a profile holding 20 traits
//! 0.88–1.34 µs (11.7 segments); destinations 0.63–0.96 µs; load + compile of the 6.3 MB JSON
//! 268–333 ms; live heap of the loaded taxonomy (serde structs + engine) 22.9 MB; no
//! allocation in steady state.

pub mod dest;
pub mod gen;
pub mod index;
mod lex;
pub mod rule;
pub mod segment;

use std::fmt;

use rustc_hash::FxHashMap;

pub use dest::DestRequest;

use crate::config::taxonomy::Taxonomy;
use crate::table::Profile;

/// The compiled taxonomy: trait index, segments, destinations.
#[derive(Default)]
pub struct Engine {
    /// Trait ID per trait index (taxonomy order).
    trait_sids: Vec<u32>,
    /// DPID per trait index.
    trait_dpids: Vec<u32>,
    /// Data-source index (taxonomy order) per trait index; `u32::MAX` when undeclared.
    trait_sources: Vec<u32>,
    /// Folder flag per trait index.
    trait_folder: Vec<bool>,
    /// Per trait index: its data source has a `realtime` block, so only that partner's
    /// answers realize it (never a request's own signals or `d_sid`).
    trait_partner: Vec<bool>,
    /// Trait ID → trait index.
    by_sid: FxHashMap<u32, u32>,
    /// Customer → per data-source index, whether the customer may use it (customers × data
    /// sources, not × traits, so that many customers stay cheap).
    allowed: FxHashMap<u32, Box<[bool]>>,
    /// Compiled rules.
    index: index::TraitIndex,
    /// Compiled segments.
    segments: segment::SegmentIndex,
    /// Compiled destinations.
    dests: dest::Destinations,
}

/// What a request adds to realization besides its signals.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealizeCtx<'a> {
    /// The host's customer.
    pub customer: u32,
    /// `d_tdpid` / `d_tdpid_ic` (resolved to a DPID): only rule traits of this data source.
    pub tdpid: Option<u32>,
    /// `d_sid` values.
    pub d_sid: &'a [u64],
    /// The signals are a partner's answer: only traits of real-time data sources realize (set
    /// `tdpid` to the partner's DPID). Otherwise those traits never realize, so a request
    /// cannot forge partner data.
    pub partner: bool,
}

/// `d_sid` values ignored by [`Engine::realize`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RealizeStats {
    /// Not a trait of the taxonomy.
    pub sid_unknown: u32,
    /// A folder trait.
    pub sid_folder: u32,
    /// A trait of a data source the customer may not use.
    pub sid_foreign: u32,
}

/// Per-core state for [`Engine`] calls; reuse it across requests (and across reloads: it
/// grows to a larger taxonomy on first use).
#[derive(Debug, Default)]
pub struct EngineScratch {
    /// Trait evaluation state.
    traits: index::Scratch,
    /// Destination rendering buffers.
    dests: dest::Work,
}

// === impl Engine ===

impl Engine {
    /// Compiles a taxonomy whose shape and references were validated (an unresolved reference
    /// makes the affected traits unrealizable rather than failing here).
    ///
    /// # Errors
    /// Every bad rule and out-of-range ID, as `$.traits[3].rule: at 14: expected operator`.
    pub fn compile(t: &Taxonomy) -> Result<Engine, Vec<String>> {
        let mut errs = Vec::new();
        let mut e = Engine::default();
        let mut b = index::Builder::default();
        let sources: FxHashMap<u32, u32> =
            t.data_sources.iter().enumerate().map(|(i, d)| (d.dpid, i as u32)).collect();
        let realtime: rustc_hash::FxHashSet<u32> =
            t.data_sources.iter().filter(|d| d.realtime.is_some()).map(|d| d.dpid).collect();
        for (i, tr) in t.traits.iter().enumerate() {
            let Ok(sid) = u32::try_from(tr.sid) else {
                errs.push(format!("$.traits[{i}].sid: {} does not fit in 32 bits", tr.sid));
                continue;
            };
            let ti = e.trait_sids.len() as u32;
            e.trait_sids.push(sid);
            e.trait_dpids.push(tr.dpid);
            e.trait_sources.push(sources.get(&tr.dpid).copied().unwrap_or(u32::MAX));
            e.trait_folder.push(tr.folder);
            e.trait_partner.push(realtime.contains(&tr.dpid));
            e.by_sid.insert(sid, ti);
            let Some(text) = &tr.rule else { continue };
            let added = rule::parse(text).map_err(|r| (r.pos, r.msg)).and_then(|ast| b.add(ti, &ast));
            if let Err((pos, msg)) = added {
                errs.push(format!("$.traits[{i}].rule: at {pos}: {msg}"));
            }
        }
        e.index = b.build();
        for c in &t.customers {
            let ok = t.data_sources.iter().map(|d| d.allows(c.id)).collect();
            e.allowed.insert(c.id, ok);
        }
        e.segments = segment::SegmentIndex::new(t.trait_ttl_days);
        e.compile_segments(t, &mut errs);
        e.dests = dest::Destinations::compile(t);
        if errs.is_empty() {
            Ok(e)
        } else {
            Err(errs)
        }
    }

    fn compile_segments(&mut self, t: &Taxonomy, errs: &mut Vec<String>) {
        let mut order: Vec<usize> = (0..t.segments.len()).collect();
        order.sort_by_key(|&i| t.segments[i].sid);
        for i in order {
            let s = &t.segments[i];
            let Ok(sid) = u32::try_from(s.sid) else {
                errs.push(format!("$.segments[{i}].sid: {} does not fit in 32 bits", s.sid));
                continue;
            };
            let ast = match segment::parse(&s.rule) {
                Ok(ast) => ast,
                Err(r) => {
                    errs.push(format!("$.segments[{i}].rule: {r}"));
                    continue;
                }
            };
            let mut ts = Vec::new();
            ast.traits(&mut ts);
            if let Some((t, pos)) = ts.iter().find(|(t, _)| !self.by_sid.contains_key(t)) {
                errs.push(format!("$.segments[{i}].rule: at {pos}: unknown trait {t}"));
                continue;
            }
            if let Err(msg) = self.segments.add(sid, s.legacy_id, s.customer, &ast) {
                errs.push(format!("$.segments[{i}].rule: {msg}"));
            }
        }
        self.segments.finish();
    }

    /// The rule traits a request's signals realize plus its `d_sid` traits, for the host's
    /// customer: trait IDs appended to `out` (cleared first), ascending and unique.
    pub fn realize<'s>(
        &self,
        scratch: &mut EngineScratch,
        signals: impl IntoIterator<Item = (&'s [u8], &'s [u8])>,
        ctx: &RealizeCtx<'_>,
        out: &mut Vec<u32>,
    ) -> RealizeStats {
        out.clear();
        let s = &mut scratch.traits;
        let (leaves, keys, rules) = self.index.sizes();
        s.begin(leaves, keys, rules, self.trait_sids.len());
        let mut stats = RealizeStats::default();
        let Some(allowed) = self.allowed.get(&ctx.customer) else {
            stats.sid_foreign = ctx.d_sid.len() as u32;
            return stats;
        };
        for (k, v) in signals {
            self.index.signal(s, k, v);
        }
        self.index.finish(s, |s, t| {
            let ok = self.may_use(allowed, t)
                && self.trait_partner[t as usize] == ctx.partner
                && ctx.tdpid.is_none_or(|d| self.trait_dpids[t as usize] == d);
            if ok && s.first_time(t) {
                out.push(self.trait_sids[t as usize]);
            }
        });
        for &sid in ctx.d_sid {
            let Some(&t) = u32::try_from(sid).ok().and_then(|sid| self.by_sid.get(&sid)) else {
                stats.sid_unknown += 1;
                continue;
            };
            if self.trait_folder[t as usize] {
                stats.sid_folder += 1;
            } else if !self.may_use(allowed, t) || self.trait_partner[t as usize] {
                stats.sid_foreign += 1;
            } else if s.first_time(t) {
                out.push(sid as u32);
            }
        }
        out.sort_unstable();
        stats
    }

    /// Whether the customer whose data-source permissions are `allowed` may realize trait `t`.
    fn may_use(&self, allowed: &[bool], t: u32) -> bool {
        allowed.get(self.trait_sources[t as usize] as usize).copied().unwrap_or(false)
    }

    /// The segments of `customer` that `profile` is in on UTC day `today` (see
    /// [`crate::table::day_of`]), ascending, into `out` (cleared first). Only segments that
    /// mention a trait the profile holds live are evaluated.
    pub fn segments(&self, profile: &Profile, today: u16, customer: u32, out: &mut Vec<u32>) {
        self.segments.segments(profile, today, customer, out);
    }

    /// The legacy ID of a segment (`d_cts=1`), if it has one.
    pub fn legacy_id(&self, segment: u32) -> Option<u64> {
        self.segments.legacy_id(segment)
    }

    /// Whether some trait rule tests `key` (so a caller can skip building signals no rule
    /// reads, such as header-derived ones).
    pub fn uses_key(&self, key: &[u8]) -> bool {
        self.index.has_key(key)
    }

    /// The customer segment `sid` belongs to.
    pub fn segment_customer(&self, sid: u32) -> Option<u32> {
        self.segments.customer(sid)
    }

    /// The legacy IDs of `segments` (`d_cts=1`), ascending, into `out` (cleared first);
    /// segments without one are left out.
    pub fn legacy_ids_into(&self, segments: &[u32], out: &mut Vec<u64>) {
        out.clear();
        out.extend(segments.iter().filter_map(|&s| self.legacy_id(s)));
        out.sort_unstable();
    }

    /// Whether `sid` is a trait of the taxonomy.
    pub fn has_trait(&self, sid: u32) -> bool {
        self.by_sid.contains_key(&sid)
    }

    /// Appends the `stuff` array to `stuff` and the `dests` array to `dests` (JSON text,
    /// brackets included) for the request's current segments.
    pub fn render_destinations(
        &self,
        scratch: &mut EngineScratch,
        req: &DestRequest<'_>,
        stuff: &mut Vec<u8>,
        dests: &mut Vec<u8>,
    ) {
        self.dests.render(req, &mut scratch.dests, stuff, dests);
    }
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (leaves, keys, rules) = self.index.sizes();
        f.debug_struct("Engine")
            .field("traits", &self.trait_sids.len())
            .field("keys", &keys)
            .field("leaves", &leaves)
            .field("compound_rules", &rules)
            .field("always_evaluated", &self.index.always_len())
            .field("segments", &self.segments.sids.len())
            .finish()
    }
}

#[cfg(test)]
mod tests;

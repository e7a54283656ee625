//! The partner client: real-time calls to data partners (docs/partner-protocol.md).
//!
//! * [`spec`] — a data source's `realtime` block compiled at taxonomy load: the URL template,
//!   the address resolved then, limits; it renders each call's request bytes.
//! * [`pool`] — per core, per data source: keep-alive connections, the circuit breaker, and
//!   one call under the partner's time-out.
//! * [`answer`] — the partner's answer, parsed (simd-json) or refused.
//! * [`PartnerSet`] — one core's pools, following the catalog across reloads.
//!
//! What to call for a request, how long to wait and what to do with the answers is the DCS
//! pipeline's business; this module only knows how to call a partner well. A partner failure
//! is an [`Outcome`] to count, never an error of the client request.
//!
//! Per-core state; nothing here is shared between cores except the immutable specs and the
//! metrics blocks.

pub mod answer;
pub mod pool;
pub mod spec;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use rustc_hash::FxHashMap;

use crate::metrics::{PartnerCounters, PartnerRegistry};

pub use answer::Answer;
pub use pool::{CallResult, Lease, Pool};
pub use spec::{CallMethod, CallValues, PartnerSpec, SpecError};

/// How a partner call for one request ended (docs/partner-protocol.md §6); the discriminant is
/// the metrics label index ([`crate::metrics::partner::OUTCOMES`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Outcome {
    /// A 200 with segments.
    Ok = 0,
    /// A 200 without segments, a 204 or a 404: the partner knows nothing.
    Empty = 1,
    /// `timeout_ms` passed (connect included).
    Timeout = 2,
    /// Any other failure: connect, reset, close, bad status, bad JSON, wrong shape, over-size.
    Error = 3,
    /// Answered after the request's budget, within `timeout_ms`; stored for later requests.
    Late = 4,
    /// Not called: the profile holds a fresh result.
    SkippedCached = 5,
    /// Not called: the URL needs `${DPUUID}` and no ID is synced for the data source.
    SkippedNoId = 6,
    /// Not called: every connection of this core's pool is in use.
    PoolExhausted = 7,
    /// Not called: the circuit breaker is open on this core.
    CircuitOpen = 8,
}

/// One core's pools, one per real-time data source of the current catalog.
#[derive(Default)]
pub struct PartnerSet {
    pools: RefCell<FxHashMap<u32, Rc<Pool>>>,
    /// Metrics blocks of this core, kept across pool replacements so counters never reset.
    counters: RefCell<FxHashMap<u32, Arc<PartnerCounters>>>,
    /// The catalog generation the pools follow.
    generation: RefCell<Option<u64>>,
}

// === impl Outcome ===

impl Outcome {
    /// The label (`ok`, `timeout`, …), as in `/metrics` and the event log.
    pub fn label(self) -> &'static str {
        crate::metrics::partner::OUTCOMES[self as usize]
    }

    /// Whether the partner was actually called.
    pub fn called(self) -> bool {
        matches!(self, Outcome::Ok | Outcome::Empty | Outcome::Timeout | Outcome::Error | Outcome::Late)
    }
}

// === impl PartnerSet ===

impl PartnerSet {
    /// Makes the pools follow `specs` (the catalog of `generation`): a partner whose endpoint
    /// is unchanged keeps its pool (and connections), one whose address or `Host` changed gets
    /// a fresh pool, one no longer there is retired (idle connections closed now, leased ones
    /// when they return). Cheap when the generation is the one already followed.
    pub fn follow(&self, generation: u64, specs: &[Arc<PartnerSpec>], registry: &PartnerRegistry) {
        if *self.generation.borrow() == Some(generation) {
            return;
        }
        *self.generation.borrow_mut() = Some(generation);
        let mut pools = self.pools.borrow_mut();
        let mut next = FxHashMap::default();
        for spec in specs {
            let counters = self
                .counters
                .borrow_mut()
                .entry(spec.dpid)
                .or_insert_with(|| registry.register(spec.dpid))
                .clone();
            let pool = match pools.remove(&spec.dpid) {
                Some(old) if old.spec().same_endpoint(spec) => {
                    // Same endpoint: keep the connections, take the new limits and template.
                    old.update(spec.clone());
                    old
                }
                Some(old) => {
                    old.retire();
                    Pool::new(spec.clone(), counters)
                }
                None => Pool::new(spec.clone(), counters),
            };
            next.insert(spec.dpid, pool);
        }
        for (_, gone) in pools.drain() {
            gone.retire();
        }
        *pools = next;
    }

    /// The pool of data source `dpid`, if the catalog followed has one.
    pub fn pool(&self, dpid: u32) -> Option<Rc<Pool>> {
        self.pools.borrow().get(&dpid).cloned()
    }

    /// Closes idle connections past their time-out, in every pool.
    pub fn sweep(&self, now: Instant) {
        let pools: Vec<Rc<Pool>> = self.pools.borrow().values().cloned().collect();
        for p in pools {
            p.sweep(now);
        }
    }
}

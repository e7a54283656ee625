//! Partner-call metrics per data source (docs/partner-protocol.md §6): calls, outcomes, a
//! latency histogram, open and idle connections, circuit state.
//!
//! One [`PartnerCounters`] block per (core, data source), written only by its core (relaxed
//! load and store, as the core blocks); blocks are registered once, when a core first builds a
//! pool for the data source, behind a mutex that the request path never takes. A scrape sums
//! the blocks of each data source.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{bump, header, BUCKETS_US};

/// Outcome labels, indexed by the partner client's outcome number.
pub const OUTCOMES: [&str; 9] = [
    "ok",
    "empty",
    "timeout",
    "error",
    "late",
    "skipped_cached",
    "skipped_no_id",
    "pool_exhausted",
    "circuit_open",
];

const NB: usize = BUCKETS_US.len() + 1;

/// One core's counters for one data source.
pub struct PartnerCounters {
    /// The data source.
    pub dpid: u32,
    /// Calls made (a connection used or opened), whatever their outcome.
    calls: AtomicU64,
    /// Outcomes, by [`OUTCOMES`] index (skips included).
    outcomes: [AtomicU64; OUTCOMES.len()],
    /// Latency of calls made, non-cumulative buckets (last: +Inf).
    latency: [AtomicU64; NB],
    /// Sum of call latencies, nanoseconds.
    latency_sum_ns: AtomicU64,
    /// Connections open (idle included).
    conns_open: AtomicU64,
    /// Connections idle in the pool.
    conns_idle: AtomicU64,
    /// 1 while the circuit is open (or half-open) on this core.
    circuit_open: AtomicU64,
}

/// Every core's partner counters.
#[derive(Default)]
pub struct PartnerRegistry {
    blocks: Mutex<Vec<Arc<PartnerCounters>>>,
}

// === impl PartnerCounters ===

impl PartnerCounters {
    fn new(dpid: u32) -> PartnerCounters {
        PartnerCounters {
            dpid,
            calls: AtomicU64::new(0),
            outcomes: std::array::from_fn(|_| AtomicU64::new(0)),
            latency: std::array::from_fn(|_| AtomicU64::new(0)),
            latency_sum_ns: AtomicU64::new(0),
            conns_open: AtomicU64::new(0),
            conns_idle: AtomicU64::new(0),
            circuit_open: AtomicU64::new(0),
        }
    }

    /// A call ended after `elapsed` (connect, write and read).
    pub fn call(&self, elapsed: Duration) {
        bump(&self.calls, 1);
        let us = elapsed.as_micros() as u64;
        let b = BUCKETS_US.iter().position(|&le| us <= le).unwrap_or(NB - 1);
        bump(&self.latency[b], 1);
        bump(&self.latency_sum_ns, elapsed.as_nanos() as u64);
    }

    /// Counts one outcome ([`OUTCOMES`] index).
    pub fn outcome(&self, i: usize) {
        bump(&self.outcomes[i.min(OUTCOMES.len() - 1)], 1);
    }

    /// Sets the connection gauges.
    pub fn connections(&self, open: usize, idle: usize) {
        self.conns_open.store(open as u64, Relaxed);
        self.conns_idle.store(idle as u64, Relaxed);
    }

    /// Sets the circuit gauge.
    pub fn circuit(&self, open: bool) {
        self.circuit_open.store(u64::from(open), Relaxed);
    }

    /// Outcomes counted so far ([`OUTCOMES`] index); for tests and the scrape.
    pub fn outcomes(&self) -> [u64; OUTCOMES.len()] {
        std::array::from_fn(|i| self.outcomes[i].load(Relaxed))
    }
}

// === impl PartnerRegistry ===

impl PartnerRegistry {
    /// A new block for data source `dpid` on one core. Called when a core first builds a pool
    /// for it (start-up traffic and reloads), never per request.
    pub fn register(&self, dpid: u32) -> Arc<PartnerCounters> {
        let block = Arc::new(PartnerCounters::new(dpid));
        if let Ok(mut blocks) = self.blocks.lock() {
            blocks.push(block.clone());
        }
        block
    }

    /// Prometheus text of every data source's counters, summed over cores.
    pub fn render(&self, out: &mut String) {
        let blocks = match self.blocks.lock() {
            Ok(b) => b.clone(),
            Err(_) => return,
        };
        let mut dpids: Vec<u32> = blocks.iter().map(|b| b.dpid).collect();
        dpids.sort_unstable();
        dpids.dedup();
        let sum = |dpid: u32, f: &dyn Fn(&PartnerCounters) -> u64| -> u64 {
            blocks.iter().filter(|b| b.dpid == dpid).map(|b| f(b)).sum()
        };
        header(out, "dcsd_partner_calls_total", "counter", "Partner calls made, by data source.");
        for &d in &dpids {
            let _ = writeln!(
                out,
                "dcsd_partner_calls_total{{dpid=\"{d}\"}} {}",
                sum(d, &|b| b.calls.load(Relaxed))
            );
        }
        header(
            out,
            "dcsd_partner_outcomes_total",
            "counter",
            "Partner call outcomes and skipped calls, by data source and outcome.",
        );
        for &d in &dpids {
            for (i, o) in OUTCOMES.iter().enumerate() {
                let v = sum(d, &|b| b.outcomes[i].load(Relaxed));
                let _ = writeln!(out, "dcsd_partner_outcomes_total{{dpid=\"{d}\",outcome=\"{o}\"}} {v}");
            }
        }
        header(
            out,
            "dcsd_partner_call_duration_seconds",
            "histogram",
            "Partner call latency (connect, write, read), by data source.",
        );
        for &d in &dpids {
            let mut cum = 0;
            for (k, le) in BUCKETS_US.iter().enumerate() {
                cum += sum(d, &|b| b.latency[k].load(Relaxed));
                let le = *le as f64 / 1e6;
                let _ = writeln!(
                    out,
                    "dcsd_partner_call_duration_seconds_bucket{{dpid=\"{d}\",le=\"{le}\"}} {cum}"
                );
            }
            let count = cum + sum(d, &|b| b.latency[NB - 1].load(Relaxed));
            let secs = sum(d, &|b| b.latency_sum_ns.load(Relaxed)) as f64 / 1e9;
            let _ = writeln!(
                out,
                "dcsd_partner_call_duration_seconds_bucket{{dpid=\"{d}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(out, "dcsd_partner_call_duration_seconds_sum{{dpid=\"{d}\"}} {secs}");
            let _ = writeln!(out, "dcsd_partner_call_duration_seconds_count{{dpid=\"{d}\"}} {count}");
        }
        header(out, "dcsd_partner_connections", "gauge", "Partner connections, by data source and state.");
        for &d in &dpids {
            let open = sum(d, &|b| b.conns_open.load(Relaxed));
            let idle = sum(d, &|b| b.conns_idle.load(Relaxed));
            let _ = writeln!(out, "dcsd_partner_connections{{dpid=\"{d}\",state=\"open\"}} {open}");
            let _ = writeln!(out, "dcsd_partner_connections{{dpid=\"{d}\",state=\"idle\"}} {idle}");
        }
        header(
            out,
            "dcsd_partner_circuit_open",
            "gauge",
            "Cores on which the data source's circuit breaker is open or probing.",
        );
        for &d in &dpids {
            let _ = writeln!(
                out,
                "dcsd_partner_circuit_open{{dpid=\"{d}\"}} {}",
                sum(d, &|b| b.circuit_open.load(Relaxed))
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_sum_per_data_source() {
        let reg = PartnerRegistry::default();
        let (a, b, c) = (reg.register(777), reg.register(777), reg.register(5));
        a.outcome(0);
        b.outcome(0);
        c.outcome(2);
        a.call(Duration::from_micros(40));
        b.call(Duration::from_secs(2));
        a.connections(3, 1);
        b.circuit(true);
        let mut s = String::new();
        reg.render(&mut s);
        assert!(s.contains("dcsd_partner_outcomes_total{dpid=\"777\",outcome=\"ok\"} 2\n"), "{s}");
        assert!(s.contains("dcsd_partner_outcomes_total{dpid=\"5\",outcome=\"timeout\"} 1\n"));
        assert!(s.contains("dcsd_partner_calls_total{dpid=\"777\"} 2\n"));
        assert!(
            s.contains("dcsd_partner_call_duration_seconds_bucket{dpid=\"777\",le=\"0.00005\"} 1\n"),
            "{s}"
        );
        assert!(s.contains("dcsd_partner_call_duration_seconds_bucket{dpid=\"777\",le=\"+Inf\"} 2\n"));
        assert!(s.contains("dcsd_partner_connections{dpid=\"777\",state=\"idle\"} 1\n"));
        assert!(s.contains("dcsd_partner_circuit_open{dpid=\"777\"} 1\n"));
        assert!(s.find("dpid=\"5\"") < s.find("dpid=\"777\""), "sorted by data source");
    }
}

//! Per-core counters and latency histograms, summed over cores only when `/metrics` is scraped.
//!
//! Each core owns one [`CoreMetrics`] block and is its only writer, so updates are a relaxed
//! load and store (no locked instruction); the scraper reads with relaxed loads and may see a
//! count a few nanoseconds old, which Prometheus tolerates. Blocks are cache-line padded so
//! cores never share a line. Labels are fixed and low-cardinality: route × status.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crossbeam_utils::CachePadded;

pub mod eventlog;
pub mod partner;
pub mod tls;

pub use eventlog::EventLogMetrics;
pub use partner::{PartnerCounters, PartnerRegistry};
pub use tls::TlsMetrics;

/// Route labels, indexed by the pipeline's route number.
pub const ROUTES: [&str; 7] = ["event", "ibs", "optout", "healthz", "metrics", "not_found", "none"];
/// The route label for protocol errors answered before routing.
pub const ROUTE_NONE: u8 = 6;
/// Statuses dcsd sends; anything else is counted as the last entry (500).
pub const STATUSES: [u16; 15] = [200, 204, 302, 400, 404, 405, 408, 413, 414, 429, 431, 503, 505, 100, 500];
/// Histogram upper bounds, microseconds (plus +Inf).
pub const BUCKETS_US: [u64; 14] =
    [25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000];

const NB: usize = BUCKETS_US.len() + 1;
const NS: usize = STATUSES.len();
const NR: usize = ROUTES.len();

/// One core's metrics. Written only by its core.
pub struct CoreMetrics {
    /// Latency histogram per route and status (non-cumulative buckets; the last is +Inf).
    buckets: [[[AtomicU64; NB]; NS]; NR],
    /// Sum of latencies per route and status, nanoseconds.
    sum_ns: [[AtomicU64; NS]; NR],
    /// Open client connections on this core.
    conns_open: AtomicU64,
    /// Client connections accepted on this core.
    conns_accepted: AtomicU64,
    /// Client connections closed at once, by [`ConnRejected`] reason.
    conns_rejected: [AtomicU64; 3],
    /// `accept` calls that failed (EMFILE and the like).
    accept_errors: AtomicU64,
    /// Trait realizations recorded.
    traits_realized: AtomicU64,
    /// `d_sid` values ignored, by [`SID_IGNORED`] reason.
    sid_ignored: [AtomicU64; 3],
}

/// Why a new connection was closed at once, without reading it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnRejected {
    /// `limits.max_connections` public connections were open.
    MaxConnections = 0,
    /// Its client address had `limits.max_connections_per_ip` open.
    PerIp = 1,
    /// `limits.admin_max_connections` admin connections were open.
    Admin = 2,
}

/// Why a `d_sid` value was ignored (label of `dcsd_sid_ignored_total`).
pub const SID_IGNORED: [&str; 3] = ["unknown", "folder", "foreign"];

/// All cores' blocks.
pub struct Registry {
    cores: Box<[CachePadded<CoreMetrics>]>,
    /// Partner-call counters per (core, data source).
    pub partners: PartnerRegistry,
    /// TLS handshakes, failures and certificates.
    pub tls: TlsMetrics,
    /// The event log's writers (emitted when the log is on).
    pub eventlog: EventLogMetrics,
}

/// Writes a metric family's `# HELP` and `# TYPE` lines (Prometheus text format 0.0.4).
pub fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Writes a whole metric family: its header, then one `name{labels} value` line per sample
/// (`labels` written as given, e.g. `{kind="ecid"}`, or empty).
pub fn family(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    samples: &[(&str, &dyn std::fmt::Display)],
) {
    header(out, name, kind, help);
    for (labels, value) in samples {
        let _ = writeln!(out, "{name}{labels} {value}");
    }
}

/// Single-writer increment: cheaper than `fetch_add`, correct because only one core writes.
#[inline]
fn bump(a: &AtomicU64, n: u64) {
    a.store(a.load(Relaxed).wrapping_add(n), Relaxed);
}

// === impl CoreMetrics ===

impl CoreMetrics {
    fn new() -> CoreMetrics {
        CoreMetrics {
            buckets: std::array::from_fn(|_| {
                std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0)))
            }),
            sum_ns: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            conns_open: AtomicU64::new(0),
            conns_accepted: AtomicU64::new(0),
            conns_rejected: std::array::from_fn(|_| AtomicU64::new(0)),
            accept_errors: AtomicU64::new(0),
            traits_realized: AtomicU64::new(0),
            sid_ignored: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Records one answered request.
    #[inline]
    pub fn record(&self, route: u8, status: u16, elapsed: Duration) {
        let r = usize::from(route).min(NR - 1);
        let s = STATUSES.iter().position(|&x| x == status).unwrap_or(NS - 1);
        let us = elapsed.as_micros() as u64;
        let b = BUCKETS_US.iter().position(|&le| us <= le).unwrap_or(NB - 1);
        bump(&self.buckets[r][s][b], 1);
        bump(&self.sum_ns[r][s], elapsed.as_nanos() as u64);
    }

    /// A connection was accepted.
    pub fn conn_opened(&self) {
        bump(&self.conns_accepted, 1);
        bump(&self.conns_open, 1);
    }

    /// A connection closed.
    pub fn conn_closed(&self) {
        self.conns_open.store(self.conns_open.load(Relaxed).saturating_sub(1), Relaxed);
    }

    /// A new connection was closed at once.
    pub fn conn_rejected(&self, why: ConnRejected) {
        bump(&self.conns_rejected[why as usize], 1);
    }

    /// An `accept` failed.
    pub fn accept_failed(&self) {
        bump(&self.accept_errors, 1);
    }

    /// A request realized `traits` traits and ignored `sid_ignored[i]` `d_sid` values for
    /// reason [`SID_IGNORED`]`[i]`.
    pub fn realized(&self, traits: usize, sid_ignored: [u32; 3]) {
        bump(&self.traits_realized, traits as u64);
        for (a, n) in self.sid_ignored.iter().zip(sid_ignored) {
            if n > 0 {
                bump(a, u64::from(n));
            }
        }
    }
}

// === impl Registry ===

impl Registry {
    /// One block per core.
    pub fn new(cores: usize) -> Registry {
        Registry {
            cores: (0..cores.max(1)).map(|_| CachePadded::new(CoreMetrics::new())).collect(),
            partners: PartnerRegistry::default(),
            tls: TlsMetrics::new(cores),
            eventlog: EventLogMetrics::new(cores),
        }
    }

    /// The block of core `i`.
    pub fn core(&self, i: usize) -> &CoreMetrics {
        &self.cores[i % self.cores.len()]
    }

    /// Requests answered so far with `route` (index into [`ROUTES`]) and `status`, all cores.
    pub fn requests(&self, route: u8, status: u16) -> u64 {
        let (r, s) = (usize::from(route), STATUSES.iter().position(|&x| x == status).unwrap_or(NS - 1));
        self.cores.iter().map(|c| c.buckets[r][s].iter().map(|b| b.load(Relaxed)).sum::<u64>()).sum()
    }

    /// Prometheus text exposition (format 0.0.4) of all cores together.
    pub fn render(&self, out: &mut String) {
        let sum = |f: &dyn Fn(&CoreMetrics) -> u64| self.cores.iter().map(|c| f(c)).sum::<u64>();
        header(out, "dcsd_http_requests_total", "counter", "Client requests answered, by route and status.");
        let mut series = Vec::new();
        for (r, route) in ROUTES.iter().enumerate() {
            for (s, status) in STATUSES.iter().enumerate() {
                let b: [u64; NB] = std::array::from_fn(|k| sum(&|c| c.buckets[r][s][k].load(Relaxed)));
                let count: u64 = b.iter().sum();
                if count > 0 {
                    let _ = writeln!(
                        out,
                        "dcsd_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {count}"
                    );
                    series.push((r, s, b, count, sum(&|c| c.sum_ns[r][s].load(Relaxed))));
                }
            }
        }
        header(
            out,
            "dcsd_http_request_duration_seconds",
            "histogram",
            "Time from a request's last byte read to its answer written, by route and status.",
        );
        for (r, s, b, count, sum_ns) in series {
            let labels = format!("route=\"{}\",status=\"{}\"", ROUTES[r], STATUSES[s]);
            let mut cum = 0;
            for (k, le) in BUCKETS_US.iter().enumerate() {
                cum += b[k];
                let _ = writeln!(
                    out,
                    "dcsd_http_request_duration_seconds_bucket{{{labels},le=\"{}\"}} {cum}",
                    *le as f64 / 1e6
                );
            }
            let _ =
                writeln!(out, "dcsd_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {count}");
            let _ =
                writeln!(out, "dcsd_http_request_duration_seconds_sum{{{labels}}} {}", sum_ns as f64 / 1e9);
            let _ = writeln!(out, "dcsd_http_request_duration_seconds_count{{{labels}}} {count}");
        }
        let rejected = |why: ConnRejected| sum(&|c| c.conns_rejected[why as usize].load(Relaxed));
        let gauges: [(&str, &str, &str, u64); 6] = [
            (
                "dcsd_http_connections_open",
                "gauge",
                "Open client connections.",
                sum(&|c| c.conns_open.load(Relaxed)),
            ),
            (
                "dcsd_http_connections_accepted_total",
                "counter",
                "Client connections accepted.",
                sum(&|c| c.conns_accepted.load(Relaxed)),
            ),
            (
                "dcsd_http_connections_rejected_total",
                "counter",
                "Public connections closed at once because max_connections was reached.",
                rejected(ConnRejected::MaxConnections),
            ),
            (
                "dcsd_http_connections_rejected_per_ip_total",
                "counter",
                "Public connections closed at once because their address had max_connections_per_ip open.",
                rejected(ConnRejected::PerIp),
            ),
            (
                "dcsd_http_connections_rejected_admin_total",
                "counter",
                "Admin connections closed at once because admin_max_connections was reached.",
                rejected(ConnRejected::Admin),
            ),
            (
                "dcsd_http_accept_errors_total",
                "counter",
                "Failed accept calls (such as EMFILE); the listener backs off and retries.",
                sum(&|c| c.accept_errors.load(Relaxed)),
            ),
        ];
        for (name, kind, help, v) in gauges {
            family(out, name, kind, help, &[("", &v)]);
        }
        let realized = sum(&|c| c.traits_realized.load(Relaxed));
        family(
            out,
            "dcsd_traits_realized_total",
            "counter",
            "Trait realizations recorded in profiles.",
            &[("", &realized)],
        );
        let ignored: [(String, u64); 3] = std::array::from_fn(|i| {
            (format!("{{reason=\"{}\"}}", SID_IGNORED[i]), sum(&|c| c.sid_ignored[i].load(Relaxed)))
        });
        let samples: Vec<(&str, &dyn std::fmt::Display)> =
            ignored.iter().map(|(l, v)| (l.as_str(), v as &dyn std::fmt::Display)).collect();
        family(out, "dcsd_sid_ignored_total", "counter", "d_sid values ignored, by reason.", &samples);
        family(out, "dcsd_workers", "gauge", "Worker threads (one per core).", &[("", &self.cores.len())]);
        self.partners.render(out);
        self.tls.render(out);
        self.eventlog.render(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_sum_over_cores() {
        let reg = Registry::new(2);
        reg.core(0).record(0, 200, Duration::from_micros(30));
        reg.core(1).record(0, 200, Duration::from_micros(2_000_000));
        reg.core(1).record(5, 404, Duration::from_micros(1));
        reg.core(0).conn_opened();
        reg.core(1).conn_rejected(ConnRejected::PerIp);
        reg.core(0).conn_rejected(ConnRejected::PerIp);
        reg.core(0).conn_rejected(ConnRejected::Admin);
        reg.core(1).accept_failed();
        let mut s = String::new();
        reg.render(&mut s);
        assert!(s.contains("dcsd_http_requests_total{route=\"event\",status=\"200\"} 2\n"), "{s}");
        assert!(s.contains("dcsd_http_requests_total{route=\"not_found\",status=\"404\"} 1\n"));
        assert!(s.contains("route=\"event\",status=\"200\",le=\"0.00005\"} 1\n"), "{s}");
        assert!(s.contains("route=\"event\",status=\"200\",le=\"1\"} 1\n"));
        assert!(s.contains("route=\"event\",status=\"200\",le=\"+Inf\"} 2\n"));
        assert!(s.contains("dcsd_http_connections_open 1\n"));
        assert!(s.contains("dcsd_http_connections_rejected_total 0\n"), "{s}");
        assert!(s.contains("dcsd_http_connections_rejected_per_ip_total 2\n"), "{s}");
        assert!(s.contains("dcsd_http_connections_rejected_admin_total 1\n"), "{s}");
        assert!(s.contains("dcsd_http_accept_errors_total 1\n"), "{s}");
        assert_eq!(reg.requests(0, 200), 2);
    }
}

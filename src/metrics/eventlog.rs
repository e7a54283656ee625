//! Event-log metrics (docs/eventlog.md §8): records and bytes written, files rotated, records
//! dropped by reason, IO errors, the fdatasync latency histogram and the bytes waiting for a
//! writer. Emitted only when the log is on.
//!
//! One block per core. A block has two writers that never write the same field: the core's
//! worker (records appended, records dropped for the backlog) and the core's writer thread
//! (everything else); each field is single-writer, so updates are a relaxed load and store.
//! `pending` is the one shared field (added by the worker, subtracted by the writer), so it is
//! a `fetch_add`/`fetch_sub`, once per batch, not per record.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crossbeam_utils::CachePadded;

use super::{bump, family, header, BUCKETS_US};

const NB: usize = BUCKETS_US.len() + 1;

/// Why records were dropped.
pub const DROP_REASONS: [&str; 2] = ["backlog", "io"];

/// One core's event-log counters.
pub struct LogCore {
    /// Records appended (worker).
    records: AtomicU64,
    /// Records dropped because the core's backlog was full (worker).
    dropped_backlog: AtomicU64,
    /// Records dropped because a write failed (writer).
    dropped_io: AtomicU64,
    /// Bytes written to files (writer).
    bytes: AtomicU64,
    /// Files finished and renamed `.done` (writer).
    rotated: AtomicU64,
    /// Failed file operations: open, write, fdatasync, rename (writer).
    io_errors: AtomicU64,
    /// fdatasync latency, non-cumulative buckets of [`BUCKETS_US`] plus +Inf (writer).
    fsync: [AtomicU64; NB],
    /// Sum of fdatasync latencies, nanoseconds (writer).
    fsync_ns: AtomicU64,
    /// Bytes handed to the writer and not yet written (both).
    pending: AtomicU64,
}

/// Every core's event-log counters.
pub struct EventLogMetrics {
    cores: Box<[CachePadded<LogCore>]>,
    enabled: AtomicBool,
}

// === impl LogCore ===

impl LogCore {
    fn new() -> LogCore {
        LogCore {
            records: AtomicU64::new(0),
            dropped_backlog: AtomicU64::new(0),
            dropped_io: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            rotated: AtomicU64::new(0),
            io_errors: AtomicU64::new(0),
            fsync: std::array::from_fn(|_| AtomicU64::new(0)),
            fsync_ns: AtomicU64::new(0),
            pending: AtomicU64::new(0),
        }
    }

    /// Worker: one record appended.
    pub fn appended(&self) {
        bump(&self.records, 1);
    }

    /// Worker: `n` records dropped, the backlog being full.
    pub fn dropped_backlog(&self, n: u64) {
        bump(&self.dropped_backlog, n);
    }

    /// Writer: `n` records lost to a failed write.
    pub fn dropped_io(&self, n: u64) {
        bump(&self.dropped_io, n);
    }

    /// Writer: `n` bytes written.
    pub fn written(&self, n: u64) {
        bump(&self.bytes, n);
    }

    /// Writer: a file finished.
    pub fn rotated(&self) {
        bump(&self.rotated, 1);
    }

    /// Writer: a file operation failed.
    pub fn io_error(&self) {
        bump(&self.io_errors, 1);
    }

    /// Writer: one fdatasync took `d`.
    pub fn fsynced(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let b = BUCKETS_US.iter().position(|&le| us <= le).unwrap_or(NB - 1);
        bump(&self.fsync[b], 1);
        bump(&self.fsync_ns, u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Bytes handed to the writer and not yet written.
    pub fn pending(&self) -> u64 {
        self.pending.load(Relaxed)
    }

    /// Worker: `n` bytes handed to the writer.
    pub fn handed(&self, n: u64) {
        self.pending.fetch_add(n, Relaxed);
    }

    /// Writer (or the worker taking a refused batch back): `n` handed bytes are done with.
    pub fn done_with(&self, n: u64) {
        self.pending.fetch_sub(n, Relaxed);
    }

    /// Records dropped so far, both reasons.
    pub fn dropped(&self) -> u64 {
        self.dropped_backlog.load(Relaxed) + self.dropped_io.load(Relaxed)
    }
}

// === impl EventLogMetrics ===

impl EventLogMetrics {
    /// One block per core.
    pub fn new(cores: usize) -> EventLogMetrics {
        EventLogMetrics {
            cores: (0..cores.max(1)).map(|_| CachePadded::new(LogCore::new())).collect(),
            enabled: AtomicBool::new(false),
        }
    }

    /// The log is on: the families are emitted.
    pub fn enable(&self) {
        self.enabled.store(true, Relaxed);
    }

    /// The block of core `i`.
    pub fn core(&self, i: usize) -> &LogCore {
        &self.cores[i % self.cores.len()]
    }

    /// The families, if the log is on.
    pub fn render(&self, out: &mut String) {
        if !self.enabled.load(Relaxed) {
            return;
        }
        let sum =
            |f: &dyn Fn(&LogCore) -> &AtomicU64| self.cores.iter().map(|c| f(c).load(Relaxed)).sum::<u64>();
        let counters: [(&str, &str, &str, u64); 5] = [
            (
                "dcsd_eventlog_records_total",
                "counter",
                "Event-log records appended (written unless counted in dcsd_eventlog_dropped_total).",
                sum(&|c| &c.records),
            ),
            ("dcsd_eventlog_bytes_total", "counter", "Event-log bytes written to files.", sum(&|c| &c.bytes)),
            (
                "dcsd_eventlog_files_rotated_total",
                "counter",
                "Event-log files finished and renamed .done.",
                sum(&|c| &c.rotated),
            ),
            (
                "dcsd_eventlog_io_errors_total",
                "counter",
                "Failed event-log file operations (open, write, fdatasync, rename).",
                sum(&|c| &c.io_errors),
            ),
            (
                "dcsd_eventlog_pending_bytes",
                "gauge",
                "Event-log bytes handed to the writer threads and not yet written.",
                sum(&|c| &c.pending),
            ),
        ];
        for (name, kind, help, v) in counters {
            family(out, name, kind, help, &[("", &v)]);
        }
        let (backlog, io) = (sum(&|c| &c.dropped_backlog), sum(&|c| &c.dropped_io));
        let by_reason =
            [(r#"{reason="backlog"}"#, &backlog as &dyn std::fmt::Display), (r#"{reason="io"}"#, &io)];
        family(
            out,
            "dcsd_eventlog_dropped_total",
            "counter",
            "Event-log records dropped: the writer could not keep up (backlog) or a write failed (io).",
            &by_reason,
        );
        family(
            out,
            "eventlog_dropped_total",
            "counter",
            "Alias of the sum of dcsd_eventlog_dropped_total (the contract's name).",
            &[("", &(backlog + io))],
        );
        header(out, "dcsd_eventlog_fsync_seconds", "histogram", "Event-log fdatasync latency.");
        let mut cum = 0;
        for (k, le) in BUCKETS_US.iter().enumerate() {
            cum += sum(&|c| &c.fsync[k]);
            let _ = writeln!(out, "dcsd_eventlog_fsync_seconds_bucket{{le=\"{}\"}} {cum}", *le as f64 / 1e6);
        }
        cum += sum(&|c| &c.fsync[NB - 1]);
        let _ = writeln!(out, "dcsd_eventlog_fsync_seconds_bucket{{le=\"+Inf\"}} {cum}");
        let _ = writeln!(out, "dcsd_eventlog_fsync_seconds_sum {}", sum(&|c| &c.fsync_ns) as f64 / 1e9);
        let _ = writeln!(out, "dcsd_eventlog_fsync_seconds_count {cum}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_appear_only_when_enabled_and_sum_cores() {
        let m = EventLogMetrics::new(2);
        let mut s = String::new();
        m.render(&mut s);
        assert!(s.is_empty());
        m.enable();
        m.core(0).appended();
        m.core(1).appended();
        m.core(1).dropped_backlog(3);
        m.core(0).dropped_io(1);
        m.core(0).fsynced(Duration::from_micros(700));
        m.core(1).handed(10);
        m.core(1).done_with(4);
        m.render(&mut s);
        assert!(s.contains("dcsd_eventlog_records_total 2\n"), "{s}");
        assert!(s.contains("dcsd_eventlog_dropped_total{reason=\"backlog\"} 3\n"), "{s}");
        assert!(s.contains("dcsd_eventlog_dropped_total{reason=\"io\"} 1\n"), "{s}");
        assert!(s.contains("eventlog_dropped_total 4\n"), "{s}");
        assert!(s.contains("dcsd_eventlog_fsync_seconds_bucket{le=\"0.0005\"} 0\n"), "{s}");
        assert!(s.contains("dcsd_eventlog_fsync_seconds_bucket{le=\"0.001\"} 1\n"), "{s}");
        assert!(s.contains("dcsd_eventlog_pending_bytes 6\n"), "{s}");
    }
}

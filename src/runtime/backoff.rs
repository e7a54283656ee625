//! What an accept loop does when `accept` fails (EMFILE, ENFILE, ENOBUFS, …): wait, longer each
//! time, instead of spinning on a listener whose backlog stays readable; and warn at most once
//! a second per worker, with the count of failures since the previous line.
//!
//! Per core: an [`AcceptBackoff`] per accept loop, a [`WarnEvery`] per worker. Pure (the
//! caller passes the clock), so the schedule is unit-tested.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// First wait after a failed accept.
pub(super) const BACKOFF_FIRST: Duration = Duration::from_millis(5);
/// Longest wait between tries.
pub(super) const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Shortest time between two accept warnings of one worker.
pub(super) const WARN_EVERY: Duration = Duration::from_secs(1);

/// Exponential back-off: 5 ms doubling to 1 s; a successful accept starts it over.
#[derive(Debug)]
pub(super) struct AcceptBackoff {
    next: Duration,
}

/// Rate limit for one worker's accept warnings.
#[derive(Debug, Default)]
pub(super) struct WarnEvery {
    /// When the last line was written.
    last: Cell<Option<Instant>>,
    /// Failures since then.
    pending: Cell<u64>,
}

// === impl AcceptBackoff ===

impl Default for AcceptBackoff {
    fn default() -> Self {
        AcceptBackoff { next: BACKOFF_FIRST }
    }
}

impl AcceptBackoff {
    /// An accept failed: how long to wait before the next one.
    pub(super) fn failed(&mut self) -> Duration {
        let wait = self.next;
        self.next = (wait * 2).min(BACKOFF_MAX);
        wait
    }

    /// An accept succeeded.
    pub(super) fn succeeded(&mut self) {
        self.next = BACKOFF_FIRST;
    }
}

// === impl WarnEvery ===

impl WarnEvery {
    /// Records a failure at `now`; returns the failures to report when a warning is due (the
    /// first failure, then at most one line per [`WARN_EVERY`]).
    pub(super) fn failed(&self, now: Instant) -> Option<u64> {
        let n = self.pending.get() + 1;
        let due = self.last.get().is_none_or(|t| now.saturating_duration_since(t) >= WARN_EVERY);
        if !due {
            self.pending.set(n);
            return None;
        }
        self.last.set(Some(now));
        self.pending.set(0);
        Some(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_a_second_and_resets() {
        let mut b = AcceptBackoff::default();
        let waits: Vec<u64> = (0..10).map(|_| b.failed().as_millis() as u64).collect();
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        b.succeeded();
        assert_eq!(b.failed(), BACKOFF_FIRST);
    }

    #[test]
    fn warns_once_a_second_with_the_count() {
        let w = WarnEvery::default();
        let t0 = Instant::now();
        assert_eq!(w.failed(t0), Some(1), "the first failure is reported at once");
        for ms in [5, 15, 35, 75, 155, 315, 635] {
            assert_eq!(w.failed(t0 + Duration::from_millis(ms)), None);
        }
        assert_eq!(w.failed(t0 + Duration::from_millis(1000)), Some(8));
        assert_eq!(w.failed(t0 + Duration::from_millis(1500)), None);
        assert_eq!(w.failed(t0 + Duration::from_millis(2100)), Some(2));
        // A clock reading older than the last line (another loop's) is not due.
        assert_eq!(w.failed(t0), None);
    }
}

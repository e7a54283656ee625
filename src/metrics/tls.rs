//! TLS metrics (docs/configuration.md §5): handshakes by version and kind (full or resumed),
//! handshake failures by reason, certificate reloads, and the earliest certificate expiry.
//!
//! Counters are per core and written only by their core (relaxed load and store, as the core
//! blocks); the expiry and reload counts are written by the main thread. All are emitted only
//! when TLS is configured.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};

use crossbeam_utils::CachePadded;

use super::{bump, family};

/// Handshake failure reasons, in the order of `crate::tls::HandshakeError::ALL`.
pub const FAILURE_REASONS: [&str; 5] = ["timeout", "closed", "incompatible", "alert", "protocol"];

/// One core's TLS counters.
#[derive(Default)]
struct TlsCore {
    /// Finished handshakes: [TLS 1.2 full, 1.2 resumed, 1.3 full, 1.3 resumed].
    handshakes: [AtomicU64; 4],
    /// Failed handshakes by [`FAILURE_REASONS`] index.
    failures: [AtomicU64; FAILURE_REASONS.len()],
}

/// Every core's TLS counters and the certificate facts.
pub struct TlsMetrics {
    cores: Box<[CachePadded<TlsCore>]>,
    /// TLS is configured: the families are emitted.
    enabled: AtomicBool,
    /// The earliest `notAfter` of the certificates in use, Unix seconds.
    not_after: AtomicI64,
    /// Certificate reloads: [applied, refused].
    reloads: [AtomicU64; 2],
}

// === impl TlsMetrics ===

impl TlsMetrics {
    /// One block per core.
    pub fn new(cores: usize) -> TlsMetrics {
        TlsMetrics {
            cores: (0..cores.max(1)).map(|_| CachePadded::new(TlsCore::default())).collect(),
            enabled: AtomicBool::new(false),
            not_after: AtomicI64::new(0),
            reloads: Default::default(),
        }
    }

    /// TLS is configured; its certificates expire at `not_after` (Unix seconds).
    pub fn certificates(&self, not_after: i64) {
        self.enabled.store(true, Relaxed);
        self.not_after.store(not_after, Relaxed);
    }

    /// A certificate reload was applied (`true`) or refused.
    pub fn reloaded(&self, applied: bool) {
        self.reloads[usize::from(!applied)].fetch_add(1, Relaxed);
    }

    /// Core `core` finished a handshake.
    pub fn handshake(&self, core: usize, tls13: bool, resumed: bool) {
        let c = &self.cores[core % self.cores.len()];
        bump(&c.handshakes[usize::from(tls13) * 2 + usize::from(resumed)], 1);
    }

    /// Core `core` saw a handshake fail for reason [`FAILURE_REASONS`]`[reason]`.
    pub fn failure(&self, core: usize, reason: usize) {
        let c = &self.cores[core % self.cores.len()];
        bump(&c.failures[reason.min(FAILURE_REASONS.len() - 1)], 1);
    }

    /// The families, if TLS is configured.
    pub fn render(&self, out: &mut String) {
        if !self.enabled.load(Relaxed) {
            return;
        }
        let sum =
            |f: &dyn Fn(&TlsCore) -> &AtomicU64| self.cores.iter().map(|c| f(c).load(Relaxed)).sum::<u64>();
        let kinds: [(String, u64); 4] = std::array::from_fn(|i| {
            let version = if i >= 2 { "1.3" } else { "1.2" };
            let kind = if i % 2 == 1 { "resumed" } else { "full" };
            (format!("{{version=\"{version}\",kind=\"{kind}\"}}"), sum(&|c| &c.handshakes[i]))
        });
        let samples: Vec<(&str, &dyn std::fmt::Display)> =
            kinds.iter().map(|(l, v)| (l.as_str(), v as &dyn std::fmt::Display)).collect();
        family(
            out,
            "dcsd_tls_handshakes_total",
            "counter",
            "TLS handshakes finished, by version and kind.",
            &samples,
        );
        let failures: [(String, u64); FAILURE_REASONS.len()] = std::array::from_fn(|i| {
            (format!("{{reason=\"{}\"}}", FAILURE_REASONS[i]), sum(&|c| &c.failures[i]))
        });
        let samples: Vec<(&str, &dyn std::fmt::Display)> =
            failures.iter().map(|(l, v)| (l.as_str(), v as &dyn std::fmt::Display)).collect();
        family(
            out,
            "dcsd_tls_handshake_failures_total",
            "counter",
            "TLS handshakes that failed, by reason.",
            &samples,
        );
        let reloads = [self.reloads[0].load(Relaxed), self.reloads[1].load(Relaxed)];
        family(
            out,
            "dcsd_tls_certificate_reloads_total",
            "counter",
            "Certificate reloads on SIGHUP, applied or refused (the previous certificates stay).",
            &[("{result=\"applied\"}", &reloads[0]), ("{result=\"refused\"}", &reloads[1])],
        );
        family(
            out,
            "dcsd_tls_certificate_expiry_timestamp_seconds",
            "gauge",
            "Earliest notAfter of the certificates in use, Unix time.",
            &[("", &self.not_after.load(Relaxed))],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_appear_once_tls_is_configured() {
        let m = TlsMetrics::new(2);
        let mut s = String::new();
        m.render(&mut s);
        assert!(s.is_empty());
        m.certificates(1_900_000_000);
        m.handshake(0, true, false);
        m.handshake(1, true, false);
        m.handshake(1, false, true);
        m.failure(0, 0);
        m.reloaded(false);
        m.render(&mut s);
        assert!(s.contains("dcsd_tls_handshakes_total{version=\"1.3\",kind=\"full\"} 2\n"), "{s}");
        assert!(s.contains("dcsd_tls_handshakes_total{version=\"1.2\",kind=\"resumed\"} 1\n"));
        assert!(s.contains("dcsd_tls_handshake_failures_total{reason=\"timeout\"} 1\n"));
        assert!(s.contains("dcsd_tls_certificate_reloads_total{result=\"refused\"} 1\n"));
        assert!(s.contains("dcsd_tls_certificate_expiry_timestamp_seconds 1900000000\n"));
    }
}

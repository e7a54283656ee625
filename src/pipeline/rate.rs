//! Per-client rate limiting (`[rate_limit]` in `dcsd.toml`): a token bucket per client IP,
//! per core (docs/configuration.md §3). A request that finds its bucket empty gets `429 Too Many Requests`
//! with `Retry-After` (docs/http-api.md §1; docs/http-api.md §12: 429 is the only non-200 answer to
//! otherwise well-formed DCS calls).
//!
//! Each core keeps its own buckets, so a client spread over `n` cores by `SO_REUSEPORT` gets
//! up to `n` times the configured rate in all; the per-core form keeps the request path free of
//! shared state. IPv6 clients are keyed by their /64 (one host's address block, which it can
//! rotate through freely); IPv4 clients by the full address. Memory is bounded: when a core
//! tracks [`MAX_CLIENTS`] addresses it drops those whose bucket has refilled (idle clients lose
//! nothing), and if that frees less than half it forgets every bucket — the bound wins over
//! exactness under a flood of distinct addresses.

use std::net::IpAddr;
use std::time::Instant;

use rustc_hash::FxHashMap;

use crate::config::file::RateLimit;

/// Client addresses one core tracks before it sweeps.
pub const MAX_CLIENTS: usize = 65_536;

/// One core's buckets.
#[derive(Debug)]
pub struct Limiter {
    /// Tokens added per second; 0 = rate limiting off.
    rate: f64,
    /// Bucket depth (`burst`, or the rate when `burst` is 0; at least 1).
    depth: f64,
    buckets: FxHashMap<u128, Bucket>,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

// === impl Limiter ===

impl Limiter {
    /// Buckets for `cfg`.
    pub fn new(cfg: &RateLimit) -> Limiter {
        let rate = f64::from(cfg.per_ip_rps);
        let depth = if cfg.burst > 0 { f64::from(cfg.burst) } else { rate }.max(1.0);
        Limiter { rate, depth, buckets: FxHashMap::default() }
    }

    /// Takes a token for `ip` at `now`; `Err(seconds)` (≥ 1) when the bucket is empty: the
    /// `Retry-After` until a token is back.
    pub fn admit(&mut self, ip: IpAddr, now: Instant) -> Result<(), u32> {
        if self.rate == 0.0 {
            return Ok(());
        }
        if self.buckets.len() >= MAX_CLIENTS {
            self.sweep(now);
        }
        let (rate, depth) = (self.rate, self.depth);
        let b = self.buckets.entry(client_key(ip)).or_insert(Bucket { tokens: depth, at: now });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(depth);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return Ok(());
        }
        let wait = ((1.0 - b.tokens) / rate).ceil();
        Err(if wait >= f64::from(u32::MAX) { u32::MAX } else { (wait as u32).max(1) })
    }

    /// Clients tracked now.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Whether no client is tracked.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    fn sweep(&mut self, now: Instant) {
        let (rate, depth) = (self.rate, self.depth);
        self.buckets
            .retain(|_, b| b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate < depth);
        if self.buckets.len() > MAX_CLIENTS / 2 {
            self.buckets.clear();
        }
    }
}

/// IPv4 as is; IPv6 by its /64.
fn client_key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => u128::from(u32::from(v4)),
            None => (u128::from(v6) >> 64 << 64) | 1,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limiter(per_ip_rps: u32, burst: u32) -> Limiter {
        Limiter::new(&RateLimit { per_ip_rps, burst })
    }

    #[test]
    fn off_admits_everything() {
        let (mut l, t) = (limiter(0, 0), Instant::now());
        assert!((0..10_000).all(|_| l.admit("10.0.0.1".parse().unwrap(), t).is_ok()));
        assert!(l.is_empty());
    }

    #[test]
    fn a_burst_then_the_rate() {
        let (mut l, t) = (limiter(2, 3), Instant::now());
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        assert!((0..3).all(|_| l.admit(ip, t).is_ok()));
        assert_eq!(l.admit(ip, t), Err(1));
        assert!(l.admit("10.0.0.2".parse().unwrap(), t).is_ok(), "another client has its own bucket");
        assert!(l.admit(ip, t + Duration::from_millis(500)).is_ok(), "one token back after 1/rate");
        assert_eq!(l.admit(ip, t + Duration::from_millis(500)), Err(1));
        let slow = limiter(1, 1);
        let mut slow = slow;
        assert!(slow.admit(ip, t).is_ok());
        assert_eq!(slow.admit(ip, t + Duration::from_millis(100)), Err(1));
    }

    #[test]
    fn retry_after_covers_the_wait() {
        let (mut l, t) = (Limiter { rate: 0.25, depth: 1.0, buckets: FxHashMap::default() }, Instant::now());
        let ip: IpAddr = "::1".parse().unwrap();
        assert!(l.admit(ip, t).is_ok());
        assert_eq!(l.admit(ip, t), Err(4));
    }

    #[test]
    fn ipv6_clients_share_their_64() {
        let (mut l, t) = (limiter(1, 1), Instant::now());
        assert!(l.admit("2001:db8::1".parse().unwrap(), t).is_ok());
        assert!(l.admit("2001:db8::2".parse().unwrap(), t).is_err());
        assert!(l.admit("2001:db8:0:1::1".parse().unwrap(), t).is_ok());
        assert!(l.admit("::ffff:10.0.0.9".parse().unwrap(), t).is_ok());
        assert!(l.admit("10.0.0.9".parse().unwrap(), t).is_err(), "v4-mapped is the v4 client");
    }

    #[test]
    fn memory_stays_bounded() {
        let (mut l, t) = (limiter(1, 1), Instant::now());
        let mut most = 0;
        for i in 0..(3 * MAX_CLIENTS as u32) {
            let _ = l.admit(IpAddr::V4(i.into()), t);
            most = most.max(l.len());
        }
        assert_eq!(most, MAX_CLIENTS, "a flood of busy clients is forgotten at the bound");
    }

    #[test]
    fn the_sweep_drops_idle_clients_and_keeps_busy_ones() {
        let (mut l, t) = (limiter(1, 1), Instant::now());
        let busy: Vec<IpAddr> = (0..10u32).map(|i| IpAddr::V4((0x0a00_0000 + i).into())).collect();
        // Clients seen 5 s ago: their buckets have refilled since, so they are idle now.
        for i in 0..(MAX_CLIENTS - busy.len()) as u32 {
            assert!(l.admit(IpAddr::V4(i.into()), t).is_ok());
        }
        let now = t + Duration::from_secs(5);
        for &ip in &busy {
            assert!(l.admit(ip, now).is_ok());
        }
        assert_eq!(l.len(), MAX_CLIENTS);
        // The next new client sweeps: the idle ones go, the busy ones keep their empty buckets.
        assert!(l.admit("192.0.2.1".parse().unwrap(), now).is_ok());
        assert_eq!(l.len(), busy.len() + 1, "the busy clients and the new one are left");
        for &ip in &busy {
            assert_eq!(l.admit(ip, now), Err(1), "{ip} lost its bucket in the sweep");
        }
    }
}

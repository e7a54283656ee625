//! `limits.max_connections_per_ip`: open connections per client address, process-wide, with
//! no lock on the accept path (docs/configuration.md §3.2).
//!
//! A count-min sketch: two rows of `R` `AtomicU32` counters; an address is hashed to one
//! counter in each row. Accept increments both and refuses when the smaller previous value had
//! already reached the cap (then takes both back); close decrements both. Every counter is at
//! least the true count of each address hashed to it, so an address is never let past its cap;
//! it can be refused early when other addresses share *both* its counters.
//!
//! **False positives.** A row holds at most `N` connections in all (`N` = the public
//! `max_connections`), so at most `N / cap` of its counters can reach the cap. With a keyed
//! hash (SipHash with the process's random key: a client cannot choose addresses that collide)
//! an address that is not itself at the cap lands on such a counter with probability at most
//! `N / (cap·R)` per row, and is refused only if that happens in both rows: at most
//! `(N / (cap·R))²`. `R` is `N` rounded up to a power of two (1024..=2^20), so the bound is
//! `1 / cap²` even when the whole budget is held by addresses at the cap: 10⁻⁶ at the default
//! cap of 1000, 0.25 % at a cap of 20; in ordinary traffic, far less.
//!
//! **Memory.** `2 · R · 4` bytes: 1 MiB at the default 100,000 connections, 8 KiB at the
//! smallest, 8 MiB at the largest.
//!
//! **Cost**, measured 2026-11-29 on the 2-core development VM (release build, epoll driver,
//! user-space instructions under callgrind, 2,000 sequential `/event` requests): one
//! connection per request 15,172 → 15,386 and 15,184 → 15,437 instructions per request with
//! the cap on (~230, of which ~160 the SipHash), i.e. ~1.5 % of dcsd's own instructions and
//! ~0.3 % of the server's CPU per request (the kernel's TCP path is most of it); keep-alive
//! requests 9,385 → 9,429 and 9,377 → 9,390 (nothing: the cap acts only on accept). wrk
//! (`-t1 -c64 -d10s`, server CPU from schedstat) could not resolve the difference on that
//! VM under a load average of 7–9: medians cap on / off 10.6 / 10.0 and 11.2 / 10.5 µs per
//! keep-alive request, 25.1 / 26.8 and 29.0 / 25.8 µs per connection-per-request, with
//! 8–14 µs between runs of one setting.
//!
//! **Races.** Two cores accepting the same address at once may both see the other's increment
//! and both refuse, one connection under the cap; never one over it.
//!
//! Shared by every core; the counters are written only on accept and close.

use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

/// Fewest counters per row.
const MIN_ROW: usize = 1 << 10;
/// Most counters per row (8 MiB for both rows).
const MAX_ROW: usize = 1 << 20;

/// The two-row sketch of open connections per client address.
pub(super) struct PerIpCounts {
    /// Connections allowed per address.
    cap: u32,
    /// Row 0 is `counters[..row]`, row 1 `counters[row..]`.
    counters: Box<[AtomicU32]>,
    /// Counters per row, a power of two.
    row: usize,
    /// SipHash keyed at random once per process.
    hasher: std::collections::hash_map::RandomState,
}

/// The counters one accepted connection holds; given back on close.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct IpSlots(u32, u32);

/// The address a cap applies to: IPv4 addresses (IPv4-mapped IPv6 ones included) whole, IPv6
/// addresses by their /64, the smallest block a host or home network is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum ClientKey {
    /// An IPv4 address.
    V4(u32),
    /// The upper 64 bits of an IPv6 address.
    V6(u64),
}

// === impl PerIpCounts ===

impl PerIpCounts {
    /// A sketch for `cap` connections per address under a public budget of `max_connections`.
    pub(super) fn new(cap: u32, max_connections: usize) -> PerIpCounts {
        let row = max_connections.clamp(MIN_ROW, MAX_ROW).next_power_of_two();
        PerIpCounts {
            cap,
            counters: (0..2 * row).map(|_| AtomicU32::new(0)).collect(),
            row,
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }

    /// Counts one more connection from `ip`, or `None` (counting nothing) when it already has
    /// `cap` open, as far as the sketch can tell.
    pub(super) fn try_add(&self, ip: IpAddr) -> Option<IpSlots> {
        let slots = self.slots(ClientKey::of(ip));
        let (a, b) = self.pair(slots);
        let before = a.fetch_add(1, Relaxed).min(b.fetch_add(1, Relaxed));
        if before >= self.cap {
            self.remove(slots);
            return None;
        }
        Some(slots)
    }

    /// Gives back a connection's counters.
    pub(super) fn remove(&self, slots: IpSlots) {
        let (a, b) = self.pair(slots);
        a.fetch_sub(1, Relaxed);
        b.fetch_sub(1, Relaxed);
    }

    /// Bytes the counters take.
    pub(super) fn bytes(&self) -> usize {
        self.counters.len() * std::mem::size_of::<AtomicU32>()
    }

    /// One counter per row: the low and the high half of one keyed 64-bit hash.
    fn slots(&self, key: ClientKey) -> IpSlots {
        let h = self.hasher.hash_one(key);
        let mask = (self.row - 1) as u64;
        IpSlots((h & mask) as u32, ((h >> 32) & mask) as u32)
    }

    fn pair(&self, s: IpSlots) -> (&AtomicU32, &AtomicU32) {
        (&self.counters[s.0 as usize], &self.counters[self.row + s.1 as usize])
    }
}

// === impl ClientKey ===

impl ClientKey {
    /// The key `ip` is counted under.
    pub(super) fn of(ip: IpAddr) -> ClientKey {
        match ip {
            IpAddr::V4(v4) => ClientKey::V4(u32::from(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey::V4(u32::from(v4)),
                None => ClientKey::V6((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn keys() {
        assert_eq!(ClientKey::of(ip("::ffff:10.1.2.3")), ClientKey::of(ip("10.1.2.3")));
        assert_eq!(ClientKey::of(ip("2001:db8:1:2::1")), ClientKey::of(ip("2001:db8:1:2:ffff::9")));
        assert_ne!(ClientKey::of(ip("2001:db8:1:2::1")), ClientKey::of(ip("2001:db8:1:3::1")));
        assert_ne!(ClientKey::of(ip("10.1.2.3")), ClientKey::of(ip("10.1.2.4")));
        // An IPv6 /64 whose prefix happens to equal an IPv4 address is another key.
        assert_ne!(ClientKey::of(ip("::a01:203")), ClientKey::of(ip("10.1.2.3")));
    }

    #[test]
    fn caps_one_address_and_not_another() {
        let s = PerIpCounts::new(3, 1000);
        let held: Vec<_> = (0..3).map(|_| s.try_add(ip("192.0.2.1")).unwrap()).collect();
        assert_eq!(s.try_add(ip("192.0.2.1")), None);
        assert_eq!(s.try_add(ip("::ffff:192.0.2.1")), None, "mapped counts as the IPv4 address");
        assert!(s.try_add(ip("192.0.2.2")).is_some());
        s.remove(held[0]);
        assert!(s.try_add(ip("192.0.2.1")).is_some(), "a closed connection frees its place");
        assert_eq!(s.try_add(ip("192.0.2.1")), None);
    }

    #[test]
    fn a_refusal_counts_nothing() {
        let s = PerIpCounts::new(1, 1000);
        let a = s.try_add(ip("2001:db8::1")).unwrap();
        for _ in 0..10 {
            assert_eq!(s.try_add(ip("2001:db8::2")), None, "same /64");
        }
        s.remove(a);
        assert!(s.counters.iter().all(|c| c.load(Relaxed) == 0));
    }

    #[test]
    fn sizing() {
        assert_eq!(PerIpCounts::new(1, 1).bytes(), 2 * 1024 * 4);
        assert_eq!(PerIpCounts::new(1, 100_000).bytes(), 1 << 20);
        assert_eq!(PerIpCounts::new(1, usize::MAX).bytes(), 8 << 20);
    }

    /// The whole budget held by addresses at the cap: fresh addresses are refused at most at
    /// the documented rate, 1 / cap².
    #[test]
    fn false_positives_stay_under_the_bound() {
        let (n, cap) = (100_000usize, 20u32);
        let s = PerIpCounts::new(cap, n);
        for i in 0..(n / cap as usize) as u32 {
            let a = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000u32 + i));
            // (A heavy address sharing both counters with others is itself refused early.)
            for _ in 0..cap {
                let _ = s.try_add(a);
            }
        }
        let trials = 100_000u32;
        let refused = (0..trials)
            .filter(|i| match s.try_add(IpAddr::from(std::net::Ipv4Addr::from(0xc000_0000u32 + i))) {
                Some(slots) => {
                    s.remove(slots);
                    false
                }
                None => true,
            })
            .count();
        let bound = f64::from(trials) / f64::from(cap * cap);
        assert!((refused as f64) < bound, "{refused} of {trials} refused; bound {bound}");
    }
}

//! Which segments a user gets: a stable choice from the pool by the user key, so that a test
//! (in dcsd or at a partner) can compute the answer the simulator will give.
//!
//! The choice is rendezvous hashing: each pool entry gets the score
//! `fmix64(fnv1a64(key ‖ 0xFF ‖ segment))` (FNV-1a 64-bit, then MurmurHash3's 64-bit finalizer
//! so that the last bytes reach every bit); the `k` lowest scores win (ties: the earlier pool
//! entry) and are answered in pool order. The hash is fixed by this doc, not std's randomized
//! `Hasher`, so it is the same in every process and on every machine; adding a segment to the
//! pool changes the answer of only the users for whom the new one scores in their top `k`.
//! Pure functions, no state.

/// The default pool (`--segments`).
pub const DEFAULT_SEGMENTS: [&str; 6] = ["auto-intender", "sports", "travel", "finance", "parent", "gamer"];

/// FNV-1a 64-bit offset basis.
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
/// FNV-1a 64-bit prime.
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a 64-bit of `bytes`, continued from `state` (start with [`fnv1a64`]).
fn fnv1a64_from(mut state: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        state ^= u64::from(b);
        state = state.wrapping_mul(FNV_PRIME);
    }
    state
}

/// FNV-1a 64-bit hash of `bytes`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    fnv1a64_from(FNV_OFFSET, bytes)
}

/// MurmurHash3's 64-bit finalizer: every input bit flips each output bit with probability ~½.
fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The `k` segments of `pool` that the user with `key` gets, in pool order (the whole pool
/// when `k` is at least its length). The key is the decoded user ID: the `uid`, `dpuuid` or
/// `uuid` query parameter after percent-decoding, or the POST body's `dpuuid`/`uuid` string;
/// empty when there is none.
pub fn segments_for(key: &[u8], pool: &[String], k: usize) -> Vec<String> {
    if k >= pool.len() {
        return pool.to_vec();
    }
    let prefix = fnv1a64_from(fnv1a64(key), &[0xFF]);
    let mut scored: Vec<(u64, usize)> =
        pool.iter().enumerate().map(|(i, s)| (fmix64(fnv1a64_from(prefix, s.as_bytes())), i)).collect();
    scored.sort_unstable();
    let mut chosen: Vec<usize> = scored[..k].iter().map(|&(_, i)| i).collect();
    chosen.sort_unstable();
    chosen.into_iter().map(|i| pool[i].clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> Vec<String> {
        DEFAULT_SEGMENTS.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn fnv_reference_values() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn stable_distinct_and_in_pool_order() {
        let p = pool();
        let a = segments_for(b"user-1", &p, 2);
        assert_eq!(a, segments_for(b"user-1", &p, 2));
        assert_eq!(a.len(), 2);
        assert_ne!(a[0], a[1]);
        let pos = |s: &String| p.iter().position(|x| x == s).unwrap();
        assert!(pos(&a[0]) < pos(&a[1]));
        // Pinned (computed by an independent implementation of the doc's algorithm), so that
        // a change of the documented hash is noticed.
        assert_eq!(segments_for(b"abc", &p, 2), ["finance", "parent"]);
        assert_eq!(segments_for(b"", &p, 2), ["auto-intender", "sports"]);
        assert_eq!(segments_for(b"user-42", &p, 2), ["sports", "finance"]);
        assert_eq!(segments_for(b"12345678901234567890123456789012345678", &p, 2), ["travel", "finance"]);
    }

    #[test]
    fn edge_sizes() {
        let p = pool();
        assert!(segments_for(b"x", &p, 0).is_empty());
        assert_eq!(segments_for(b"x", &p, 6), p);
        assert_eq!(segments_for(b"x", &p, 99), p);
        assert!(segments_for(b"x", &[], 2).is_empty());
    }

    #[test]
    fn choice_is_spread_over_the_pool() {
        let p = pool();
        let mut counts = [0usize; 6];
        for i in 0..6000 {
            for s in segments_for(format!("{i}").as_bytes(), &p, 2) {
                counts[p.iter().position(|x| *x == s).unwrap()] += 1;
            }
        }
        // 12000 picks over 6 entries: 2000 each, give or take sampling noise.
        assert!(counts.iter().all(|&c| (1700..=2300).contains(&c)), "{counts:?}");
    }

    #[test]
    fn a_larger_pool_keeps_most_answers() {
        let p = pool();
        let mut q = p.clone();
        q.push("new".to_string());
        let same = (0..1000)
            .filter(|i| {
                segments_for(format!("{i}").as_bytes(), &p, 2)
                    == segments_for(format!("{i}").as_bytes(), &q, 2)
            })
            .count();
        // Only users whose top 2 now include "new" (about 2/7) change.
        assert!(same > 600, "{same}");
    }
}

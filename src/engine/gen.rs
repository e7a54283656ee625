//! A deterministic taxonomy generator for benches and tests: realistic key and value
//! distributions, emitted as JSON text so that it goes through the real loader, plus matching
//! requests and profiles.
//!
//! Shape (fractions of the traits): 72% `c_k<K> == v<V>` over [`GenParams::keys`] keys
//! (Zipf-like) and 16 × [`GenParams::values`] values (uniform: mostly one trait per pair, as
//! real taxonomies rarely repeat a rule), while requests draw values Zipf-like, so frequent
//! values hit and rare ones miss; 5% numeric `==` and 2% bounded ranges (`c_r<K> >= a AND
//! c_r<K> <= b`, few per key); 3% `contains`/`startswith`/`endswith` on 30 URL-like keys;
//! 0.5% `!=` on 100 dedicated keys; ~10% other compound rules (`AND`, `OR`, `AND NOT`); one
//! regex per 10,000 traits; the rest `d_sid`-only. Segments: single traits, `AND`, `OR`,
//! `AND NOT` and `FREQUENCY` with recency, over the first fifth of the traits (uniformly), from
//! which profiles draw too. Two customers; the second owns one data source it shares with the
//! first and one it keeps.

use std::fmt::Write as _;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::table::Profile;

/// What to generate.
#[derive(Clone, Copy, Debug)]
pub struct GenParams {
    /// Seed; the same parameters give the same taxonomy.
    pub seed: u64,
    /// Number of traits.
    pub traits: usize,
    /// Number of segments.
    pub segments: usize,
    /// Number of destinations (half URL, half cookie).
    pub destinations: usize,
    /// Keys used by `==` rules.
    pub keys: usize,
    /// Distinct values per key.
    pub values: usize,
}

/// A generated taxonomy and what is needed to make requests for it.
#[derive(Clone, Debug)]
pub struct Generated {
    /// The taxonomy document.
    pub json: String,
    /// The parameters it was made with.
    pub params: GenParams,
}

/// First trait ID.
pub const FIRST_TRAIT: u32 = 1_000_000;
/// First segment ID.
pub const FIRST_SEGMENT: u32 = 5_000_000;

const NUM_KEYS: usize = 100;
const RANGE_KEYS: usize = 1000;
const URL_KEYS: usize = 30;
const NE_KEYS: usize = 100;

// === impl GenParams ===

impl GenParams {
    /// The bench taxonomy: 100,000 traits, 10,000 segments, 20 destinations.
    pub fn bench() -> GenParams {
        GenParams { seed: 1, traits: 100_000, segments: 10_000, destinations: 20, keys: 300, values: 1000 }
    }

    /// A small taxonomy for tests.
    pub fn small(seed: u64) -> GenParams {
        GenParams { seed, traits: 2000, segments: 300, destinations: 4, keys: 30, values: 50 }
    }
}

/// Generates a taxonomy.
pub fn generate(p: GenParams) -> Generated {
    let mut rng = StdRng::seed_from_u64(p.seed);
    let mut j = String::with_capacity(p.traits * 80 + p.segments * 60);
    j.push_str(
        r#"{"version":"generated","trait_ttl_days":120,
"customers":[{"id":1,"name":"one","hosts":["one.example"],"cts":true},
 {"id":2,"name":"two","hosts":["two.example"],"cts":false}],
"data_sources":[{"dpid":1,"ic":"one-a","owner":1},{"dpid":2,"ic":"one-b","owner":1},
 {"dpid":3,"ic":"two-shared","owner":2,"shared_with":[1]},{"dpid":4,"ic":"two-own","owner":2}],
"traits":["#,
    );
    for i in 0..p.traits {
        let dpid = [1, 1, 1, 2, 2, 3, 4][rng.random_range(0..7)];
        let rule = trait_rule(&mut rng, &p, i);
        let sep = if i == 0 { "" } else { ",\n" };
        let _ = write!(j, r#"{sep}{{"sid":{},"dpid":{dpid},"rule":"#, FIRST_TRAIT as usize + i);
        match rule {
            Some(r) => json_str(&mut j, &r),
            None => j.push_str("null"),
        }
        j.push('}');
    }
    j.push_str("],\n\"segments\":[");
    for s in 0..p.segments {
        let customer = if rng.random_range(0..10) == 0 { 2 } else { 1 };
        let rule = segment_rule(&mut rng, &p);
        let sep = if s == 0 { "" } else { ",\n" };
        let _ = write!(j, r#"{sep}{{"sid":{},"customer":{customer},"#, FIRST_SEGMENT as usize + s);
        if s % 2 == 0 {
            let _ = write!(j, r#""legacy_id":{},"#, 100 + s);
        }
        j.push_str(r#""rule":"#);
        json_str(&mut j, &rule);
        j.push('}');
    }
    j.push_str("],\n\"destinations\":[");
    for d in 0..p.destinations {
        destination(&mut j, &mut rng, &p, d);
    }
    j.push_str("]}\n");
    Generated { json: j, params: p }
}

/// Segments and profiles use the first fifth of the traits, so that each of those is in about
/// one segment (for 2 terms per segment and segments = traits / 10).
fn hot_traits(p: &GenParams) -> usize {
    (p.traits / 5).max(1)
}

/// Distinct values per `c_k` key.
fn vocab(p: &GenParams) -> usize {
    p.values * 16
}

/// Zipf-like rank in `0..n` (log-uniform: rank r has weight about 1/r).
fn zipf(rng: &mut StdRng, n: usize) -> usize {
    let x = (n as f64 + 1.0).powf(rng.random::<f64>()) - 1.0;
    (x as usize).min(n.saturating_sub(1))
}

fn eq_cmp(rng: &mut StdRng, p: &GenParams) -> String {
    // Keys are skewed; values uniform, so that a (key, value) pair has about one trait.
    let (k, v) = (zipf(rng, p.keys), rng.random_range(0..vocab(p)));
    match rng.random_range(0..4) {
        0 => format!("c_k{k}=v{v}"),
        1 => format!("c_k{k} == v{v}"),
        _ => format!("c_k{k} == \"v{v}\""),
    }
}

fn trait_rule(rng: &mut StdRng, p: &GenParams, i: usize) -> Option<String> {
    if i % 10_000 == 9_999 {
        return Some(format!("c_url{} matchesregex \"seg[0-9]+x\"", zipf(rng, URL_KEYS)));
    }
    let r = rng.random_range(0..1000);
    Some(match r {
        0..720 => eq_cmp(rng, p),
        720..770 => format!("c_n{} == {}", rng.random_range(0..NUM_KEYS), rng.random_range(0..1000)),
        770..790 => {
            let (k, a) = (rng.random_range(0..RANGE_KEYS), rng.random_range(0..1000));
            format!("(c_r{k} >= {a}.00 AND c_r{k} <= {}.00)", a + rng.random_range(1..50))
        }
        790..820 => {
            let k = zipf(rng, URL_KEYS);
            match rng.random_range(0..3) {
                0 => format!("c_url{k} contains \"seg{}\"", rng.random_range(0..200)),
                1 => format!("c_url{k} startswith \"/p{}/\"", rng.random_range(0..50)),
                _ => format!("c_url{k} endsWith \".e{}\"", rng.random_range(0..30)),
            }
        }
        820..825 => format!("c_s{} != x{}", rng.random_range(0..NE_KEYS), rng.random_range(0..5)),
        825..925 => match rng.random_range(0..3) {
            0 => format!("{} AND {}", eq_cmp(rng, p), eq_cmp(rng, p)),
            1 => format!("({} OR {}) AND NOT {}", eq_cmp(rng, p), eq_cmp(rng, p), eq_cmp(rng, p)),
            _ => format!("{} or {}", eq_cmp(rng, p), eq_cmp(rng, p)),
        },
        _ => return None,
    })
}

fn segment_rule(rng: &mut StdRng, p: &GenParams) -> String {
    let mut t = || FIRST_TRAIT as usize + rng.random_range(0..hot_traits(p));
    let (a, b, c) = (t(), t(), t());
    match rng.random_range(0..10) {
        0..3 => format!("{a}T"),
        3..5 => format!("{a}T AND {b}T"),
        5..7 => format!("{a}T OR {b}T OR {c}T"),
        7 => format!("({a}T OR {b}T) AND NOT {c}T"),
        8 => format!("FREQUENCY([{a}T,{b}T] <= 7D) >= 3"),
        _ => format!("FREQUENCY([{a}T]) >= 2 AND {b}T"),
    }
}

fn destination(j: &mut String, rng: &mut StdRng, p: &GenParams, d: usize) {
    let sep = if d == 0 { "" } else { ",\n" };
    let platform = ["all", "all", "all", "ios"][d % 4];
    let mut maps = String::new();
    for m in 0..(p.segments / 50).max(1) {
        let seg = FIRST_SEGMENT as usize + rng.random_range(0..p.segments);
        let comma = if m == 0 { "" } else { "," };
        if d % 2 == 0 {
            let _ = write!(maps, r#"{comma}{{"segment":{seg},"alias":"a{seg}"}}"#);
        } else {
            let _ = write!(maps, r#"{comma}{{"segment":{seg},"key":"k{m}","value":"{seg}"}}"#);
        }
    }
    if d % 2 == 0 {
        let _ = write!(
            j,
            r#"{sep}{{"id":{d},"customer":1,"type":"url","platform":"{platform}",
"url":"http://d{d}.example/px?s=%alias%&u=%did%&r=%rnd%","secure_url":"https://d{d}.example/px?s=%alias%&g=${{GDPR}}",
"serialize":{},"delimiter":",","mappings":[{maps}]}}"#,
            d % 4 == 0
        );
    } else {
        let fmt = if d % 4 == 1 { "single_key" } else { "key_value" };
        let _ = write!(
            j,
            r#"{sep}{{"id":{d},"customer":1,"type":"cookie","platform":"{platform}","name":"c{d}",
"domain":".one.example","ttl_days":30,"format":"{fmt}","key":"seg","max_size":512,"mappings":[{maps}]}}"#
        );
    }
}

/// Appends `s` as a JSON string.
fn json_str(j: &mut String, s: &str) {
    let mut b = Vec::with_capacity(s.len());
    crate::json::escape_into(s.as_bytes(), &mut b);
    j.push('"');
    j.push_str(&String::from_utf8_lossy(&b));
    j.push('"');
}

// === impl Generated ===

impl Generated {
    /// A request of `n` signals drawn like the rules' keys and values: mostly `c_k` pairs
    /// (frequent ones hit, some values miss), some numeric, URL-like and unknown keys.
    pub fn request(&self, seed: u64, n: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
        let p = &self.params;
        let mut rng = StdRng::seed_from_u64(seed);
        (0..n)
            .map(|_| {
                let (k, v) = match rng.random_range(0..20) {
                    0..12 => {
                        let v =
                            if rng.random_range(0..4) == 0 { vocab(p) } else { 0 } + zipf(&mut rng, vocab(p));
                        (format!("c_k{}", zipf(&mut rng, p.keys)), format!("v{v}"))
                    }
                    12 => {
                        (format!("c_n{}", rng.random_range(0..NUM_KEYS)), format!("{}", zipf(&mut rng, 1000)))
                    }
                    13 => (
                        format!("c_r{}", rng.random_range(0..RANGE_KEYS)),
                        format!("{}.5", rng.random_range(0..1000)),
                    ),
                    14 | 15 => (
                        format!("c_url{}", zipf(&mut rng, URL_KEYS)),
                        format!(
                            "/p{}/a/seg{}x/b.e{}",
                            rng.random_range(0..60),
                            rng.random_range(0..300),
                            rng.random_range(0..40)
                        ),
                    ),
                    16 => (
                        format!("c_s{}", rng.random_range(0..NE_KEYS)),
                        format!("x{}", rng.random_range(0..8)),
                    ),
                    _ => (format!("c_other{}", rng.random_range(0..50)), "whatever".to_string()),
                };
                (k.into_bytes(), v.into_bytes())
            })
            .collect()
    }

    /// A profile holding `n` traits (drawn like the segments' traits), each realized on a few
    /// days up to `today`.
    pub fn profile(&self, seed: u64, n: usize, today: u16) -> Profile {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut p = Profile::default();
        for _ in 0..n {
            let t = FIRST_TRAIT + rng.random_range(0..hot_traits(&self.params)) as u32;
            for _ in 0..rng.random_range(1..4) {
                p.realize_n(t, today.saturating_sub(rng.random_range(0..10)), rng.random_range(1..3));
            }
        }
        p
    }
}

//! Writes a generated taxonomy to stdout: `cargo run --example gen_taxonomy -- [TRAITS
//! [SEGMENTS [SEED]]]` (defaults: the bench taxonomy, 100,000 traits and 10,000 segments).
//! With `--query N` it writes instead the query string of a realistic N-signal request for that
//! taxonomy (percent-encoded, for `Host: one.example`), as the daemon-level benchmark sends: of
//! 64 generated requests, the one that realizes the median number of traits (printed to stderr).
#![allow(missing_docs)]

use std::io::Write;

use dcsd::engine::gen::{generate, GenParams};

fn main() -> std::io::Result<()> {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let query = raw.iter().position(|a| a == "--query").and_then(|i| raw.get(i + 1)?.parse::<usize>().ok());
    let args: Vec<u64> = raw
        .iter()
        .enumerate()
        .filter(|(i, a)| *a != "--query" && !(*i > 0 && raw[i - 1] == "--query"))
        .filter_map(|(_, a)| a.parse().ok())
        .collect();
    let mut p = GenParams::bench();
    if let Some(&t) = args.first() {
        p.traits = t as usize;
    }
    if let Some(&s) = args.get(1) {
        p.segments = s as usize;
    }
    if let Some(&seed) = args.get(2) {
        p.seed = seed;
    }
    let g = generate(p);
    let mut out = std::io::stdout().lock();
    match query {
        Some(n) => {
            let tax = dcsd::catalog::Catalog::from_json(g.json.as_bytes())
                .map_err(|e| std::io::Error::other(e.join("; ")))?;
            let mut scratch = dcsd::engine::EngineScratch::default();
            let ctx = dcsd::engine::RealizeCtx { customer: 1, ..Default::default() };
            let mut by_count: Vec<(usize, u64)> = (0..64u64)
                .map(|seed| {
                    let req = g.request(seed, n);
                    let mut out = Vec::new();
                    let signals = req.iter().map(|(k, v)| (&k[..], &v[..]));
                    tax.engine.realize(&mut scratch, signals, &ctx, &mut out);
                    (out.len(), seed)
                })
                .collect();
            by_count.sort_unstable();
            let (realized, seed) = by_count[by_count.len() / 2];
            eprintln!("request seed {seed}: {realized} traits realized (median of 64)");
            let mut q = Vec::new();
            for (i, (k, v)) in g.request(seed, n).iter().enumerate() {
                if i > 0 {
                    q.push(b'&');
                }
                dcsd::engine::dest::percent_encode(k, &mut q);
                q.push(b'=');
                dcsd::engine::dest::percent_encode(v, &mut q);
            }
            out.write_all(&q)?;
            out.write_all(b"\n")
        }
        None => out.write_all(g.json.as_bytes()),
    }
}

//! Writes a generated taxonomy to stdout: `cargo run --example gen_taxonomy -- [TRAITS
//! [SEGMENTS [SEED]]]` (defaults: the bench taxonomy, 100,000 traits and 10,000 segments).
#![allow(missing_docs)]

use std::io::Write;

use dcsd::engine::gen::{generate, GenParams};

fn main() -> std::io::Result<()> {
    let args: Vec<u64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
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
    std::io::stdout().lock().write_all(generate(p).json.as_bytes())
}

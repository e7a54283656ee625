//! Pair decoder: never panics; every decoded key and value is valid UTF-8; percent-encoding
//! every byte of a valid query decodes to the same pairs.
#![no_main]

use dcsd::pipeline::params::Pairs;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&[u8], &[u8])| {
    let (query, body) = input;
    let mut p = Pairs::default();
    let Ok(v) = p.decode(query, body) else { return };
    let mut seen = Vec::new();
    for pair in v.pairs() {
        assert!(std::str::from_utf8(v.text(pair.key)).is_ok());
        assert!(!v.text(pair.key).is_empty());
        let vals: Vec<Vec<u8>> = v.values(pair).map(|x| x.to_vec()).collect();
        assert!(vals.iter().all(|x| std::str::from_utf8(x).is_ok()));
        seen.push((v.text(pair.key).to_vec(), vals));
    }
    // Re-encode: escape every byte of each key and value except the separators.
    let mut enc = Vec::new();
    for raw in query.split(|&b| b == b'&') {
        if !enc.is_empty() {
            enc.push(b'&');
        }
        for (i, part) in raw.splitn(2, |&b| b == b'=').enumerate() {
            if i == 1 {
                enc.push(b'=');
            }
            let mut dec = Vec::new();
            dcsd::pipeline::params::percent_decode_into(part, &mut dec).expect("valid above");
            for b in dec {
                enc.extend_from_slice(format!("%{b:02X}").as_bytes());
            }
        }
    }
    let mut q = Pairs::default();
    let Ok(w) = q.decode(&enc, body) else { panic!("re-encoded query rejected") };
    // Escaped commas still split, so the pair keys and the joined values must agree.
    let keys: Vec<Vec<u8>> = w.pairs().map(|p| w.text(p.key).to_vec()).collect();
    assert_eq!(keys, seen.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>());
});

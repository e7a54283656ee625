//! TC-string decoder: never panics on any input; vendor checks beyond the declared maximum
//! are false; decoding is deterministic.
#![no_main]

use dcsd::privacy::tcf::TcString;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u16, &[u8])| {
    let (vendor, s) = input;
    if let Ok(tc) = TcString::parse(s) {
        let a = tc.allows(vendor);
        assert_eq!(a, TcString::parse(s).map(|t| t.allows(vendor)).unwrap_or(Ok(false)));
        for p in 0..=30 {
            let _ = tc.purpose(p);
        }
        assert_eq!(tc.vendor(0), Ok(false));
    }
});

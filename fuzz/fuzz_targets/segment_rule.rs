//! Segment rule parser: never panics and an error points inside the rule.
#![no_main]

use dcsd::engine::segment::parse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|rule: &str| {
    if let Err(e) = parse(rule) {
        assert!(e.pos <= rule.len(), "{e}");
    }
});

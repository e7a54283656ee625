//! Certificate fields reader (`tls::x509`): never panics on any input; what it reads formats
//! (`format_utc`) without panicking; reading is deterministic.
#![no_main]

use dcsd::tls::x509::{format_utc, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|der: &[u8]| {
    if let Ok(info) = parse(der) {
        let _ = format_utc(info.not_before);
        let _ = format_utc(info.not_after);
        assert_eq!(parse(der), Ok(info));
    }
});

//! JSON string escaper: never panics; for UTF-8 input the quoted output is valid JSON (parsed
//! by simd-json) that gives back the input, and never holds a raw U+2028, U+2029, `<`, `>` or
//! control character (C0, DEL, C1); for any bytes, no control byte, `<` or `>` comes out raw.
#![no_main]

use dcsd::json::{escape_into, push_string};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut raw = Vec::new();
    escape_into(data, &mut raw);
    assert!(raw.iter().all(|&b| b >= 0x20 && b != 0x7f && b != b'<' && b != b'>'), "{raw:?}");

    let s = String::from_utf8_lossy(data);
    let mut out = Vec::new();
    push_string(&mut out, &s);
    let text = std::str::from_utf8(&out).expect("UTF-8 in, UTF-8 out");
    assert!(
        !text.chars().any(|c| matches!(c, '\u{2028}' | '\u{2029}' | '<' | '>') || c.is_control()),
        "{text:?}"
    );
    let parsed: String = simd_json::serde::from_slice(&mut out).expect("a valid JSON string");
    assert_eq!(parsed, s);
});

//! Request-head parser: never panics; a complete head's spans lie inside the input and within
//! the limits; the verdict does not depend on bytes after the head.
#![no_main]

use dcsd::http::{parse_head, Body, HeadLimits, Parsed};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for limits in [
        HeadLimits { max_uri_bytes: 8192, max_header_bytes: 16384, max_body_bytes: 32768 },
        HeadLimits { max_uri_bytes: 64, max_header_bytes: 256, max_body_bytes: 16 },
    ] {
        if let Ok(Parsed::Complete(h)) = parse_head(data, &limits) {
            assert!(h.head_len <= data.len());
            for span in
                [Some(h.path), h.query, h.host, h.cookie, h.origin, h.content_type, h.user_agent, h.dcs_token]
            {
                if let Some(s) = span {
                    assert!(s.start <= s.end && (s.end as usize) <= h.head_len);
                }
            }
            assert!(h.path.get(data).len() <= limits.max_uri_bytes);
            if let Body::Length(n) = h.body {
                assert!(n > 0 && n <= limits.max_body_bytes);
            }
            // Bytes after the head (a pipelined request, a body) do not change the head.
            let again = parse_head(&data[..h.head_len], &limits);
            assert!(matches!(again, Ok(Parsed::Complete(g)) if g.head_len == h.head_len));
        }
    }
});

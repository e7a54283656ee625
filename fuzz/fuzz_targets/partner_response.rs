//! The partner response reader (`http::client::ResponseDecoder`) and the answer parser
//! (`partner::answer::parse`): never panic, respect their limits, and feeding the bytes in two
//! pieces (as reads deliver them) gives what feeding them at once gives.
#![no_main]

use dcsd::http::client::{ClientLimits, ResponseDecoder};
use dcsd::partner::answer;
use libfuzzer_sys::fuzz_target;

const LIMITS: ClientLimits = ClientLimits { max_head_bytes: 2048, max_body_bytes: 4096 };

fuzz_target!(|input: (u16, bool, &[u8])| {
    let (split, eof, data) = input;
    let whole = ResponseDecoder::new(false, LIMITS).decode(data, eof);
    if let Ok(Some(d)) = &whole {
        assert!(d.body.len() <= LIMITS.max_body_bytes);
        if let Ok(a) = answer::parse(d.status, d.body.clone()) {
            assert!(matches!(d.status, 200 | 204 | 404));
            assert!(a.segments.iter().all(|s| s.len() <= d.body.len()));
        }
    }
    let cut = usize::from(split) % (data.len() + 1);
    let mut dec = ResponseDecoder::new(false, LIMITS);
    let parts = match dec.decode(&data[..cut], false) {
        Ok(None) => dec.decode(data, eof),
        other => other,
    };
    match (&whole, &parts) {
        (Ok(Some(a)), Ok(Some(b))) if cut == data.len() || a.body == b.body => {}
        (Ok(Some(a)), Ok(Some(b))) => {
            // A prefix may complete a close-delimited or shorter answer; never a different body
            // for a length- or chunk-framed one.
            assert!(!b.reusable || !a.reusable || a.body == b.body, "split at {cut} changed the body");
        }
        _ => {}
    }
});

//! `/ibs:` redirect check and `Location` encoder: never panic; an accepted URL is absolute
//! `http`/`https` without control bytes, and its authority (up to the first `/`, `?` or `#`,
//! as RFC 3986 reads it) is free of `\` (where browsers would end it), `@`, `%`, controls,
//! spaces and non-ASCII bytes, so every parser reads the same host; the encoded output holds
//! only bytes allowed in a header and in a URL, decodes to what the input decodes to, and is
//! the input itself when nothing needed encoding.
#![no_main]

use dcsd::http::url::{encode_location_into, is_origin, is_url_byte, redirect_host};
use libfuzzer_sys::fuzz_target;

/// `%HH` → the byte; anything else as it is.
fn decode(s: &[u8]) -> Vec<u8> {
    let (mut out, mut i) = (Vec::with_capacity(s.len()), 0);
    while i < s.len() {
        let hex = s.get(i + 1..i + 3).filter(|h| h.iter().all(u8::is_ascii_hexdigit));
        match (s[i], hex) {
            (b'%', Some(h)) => {
                out.push(u8::from_str_radix(std::str::from_utf8(h).unwrap(), 16).unwrap());
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// Whether no byte of `s` needs encoding: URL bytes, `%HH` escapes and one `#`.
fn already_encoded(s: &[u8]) -> bool {
    let escapes_ok = s
        .iter()
        .enumerate()
        .all(|(i, &b)| b != b'%' || s.get(i + 1..i + 3).is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)));
    let hashes = s.iter().filter(|&&b| b == b'#').count();
    escapes_ok && hashes <= 1 && s.iter().all(|&b| is_url_byte(b) || b == b'%' || b == b'#')
}

fuzz_target!(|url: &[u8]| {
    let _ = is_origin(url);
    let mut out = Vec::new();
    encode_location_into(url, &mut out);
    assert!(out.iter().all(|&b| is_url_byte(b) || matches!(b, b'%' | b'#' | b'[' | b']')), "{out:?}");
    assert!(out.iter().all(|&b| b.is_ascii_graphic() && !b"\"<>\\^`{|}".contains(&b)));
    assert!(out.iter().filter(|&&b| b == b'#').count() <= 1);
    assert_eq!(decode(&out), decode(url));
    if already_encoded(url) {
        assert_eq!(out, url);
    }

    let Some(host) = redirect_host(url) else { return };
    assert!(url.iter().all(|&b| b >= 0x20 && b != 0x7f), "control byte accepted");
    let lower = url.to_ascii_lowercase();
    assert!(lower.starts_with(b"http://") || lower.starts_with(b"https://"));
    let rest = &url[url.iter().position(|&b| b == b':').unwrap() + 3..];
    let authority = &rest[..rest.iter().position(|&b| matches!(b, b'/' | b'?' | b'#')).unwrap_or(rest.len())];
    assert!(
        authority.iter().all(|&b| b.is_ascii_graphic() && !matches!(b, b'\\' | b'@' | b'%')),
        "authority {authority:?} accepted"
    );
    assert!(!host.is_empty() && authority.starts_with(host));
    // The authority is written as it is (after `scheme://`).
    let head = url.len() - rest.len() + authority.len();
    assert_eq!(&out[..head], &url[..head]);
});

//! URL pieces the daemon reads from configuration and writes into headers: the authority
//! grammar shared by `/ibs:` redirect targets and CORS origins, and the `Location` encoder
//! (docs/http-api.md §7, §8).
//!
//! The checks are deliberately narrower than RFC 3986 so that every URL parser — browsers
//! (WHATWG URL) and the RFC 3986 parsers of proxies, SDKs and log pipelines — reads the same
//! host: an authority is `host[:port]` with a host of letters, digits, `-`, `.` and `_` (or a
//! bracketed IP literal) and a port of digits. User info (`@`), backslashes (a path separator
//! for browsers, an ordinary byte for RFC 3986), percent escapes (decoded in hosts by
//! browsers only), control bytes and non-ASCII bytes (IDNA-mapped by browsers only) never
//! pass. The encoder then writes every byte that the URL grammar does not allow in a path,
//! query or fragment as `%HH`, so a `Location` header holds only URL bytes whatever the input.
//!
//! Pure: no IO, no state.

/// Bytes allowed as they are in a path, query or fragment (RFC 3986 §3.3–§3.5): unreserved
/// (`A-Z a-z 0-9 - . _ ~`), sub-delims (`! $ & ' ( ) * + , ; =`), `:`, `@`, `/` and `?`.
static URL_BYTE: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b':'
                    | b'@'
                    | b'/'
                    | b'?'
            );
        b += 1;
    }
    t
};

/// Longest port: five digits, at most 65535 (WHATWG refuses larger ones, RFC 3986 does not).
const MAX_PORT: u32 = 65_535;

/// Whether `b` may appear unencoded in a path, query or fragment (RFC 3986 §3.3–§3.5).
pub fn is_url_byte(b: u8) -> bool {
    URL_BYTE[usize::from(b)]
}

/// The host of `url` when it may be a redirect target: an absolute `http`/`https` URL
/// (scheme case-insensitive) with no control byte anywhere, whose authority — everything
/// between `://` and the first `/`, `?` or `#` — is `host[:port]` as the module describes.
/// `None` for anything else. The host is returned without the port, as written (compare it
/// case-insensitively).
pub fn redirect_host(url: &[u8]) -> Option<&[u8]> {
    if url.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return None;
    }
    let rest =
        strip_prefix_ignore_case(url, b"https://").or_else(|| strip_prefix_ignore_case(url, b"http://"))?;
    let end = rest.iter().position(|&b| matches!(b, b'/' | b'?' | b'#')).unwrap_or(rest.len());
    authority_host(&rest[..end])
}

/// Whether `s` is a serialized origin as browsers send it in `Origin`:
/// `scheme://host[:port]` with nothing after it (no path, not even `/`), the scheme
/// `ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )` (RFC 3986 §3.1) and the authority as the
/// module describes.
pub fn is_origin(s: &[u8]) -> bool {
    let Some(colon) = s.iter().position(|&b| b == b':') else { return false };
    let (scheme, rest) = s.split_at(colon);
    let scheme_ok = scheme.first().is_some_and(u8::is_ascii_alphabetic)
        && scheme.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    scheme_ok && rest.strip_prefix(b"://").and_then(authority_host).is_some()
}

/// The port of an origin or URL authority that browsers leave out (`:80` for `http`, `:443`
/// for `https`), if `origin` names one; a browser never sends it, so a configured origin with
/// it could never match.
pub fn default_port_written(origin: &[u8]) -> bool {
    (starts_with_ignore_case(origin, b"http://") && origin.ends_with(b":80"))
        || (starts_with_ignore_case(origin, b"https://") && origin.ends_with(b":443"))
}

/// Appends `url` percent-encoded for a `Location` header: every byte the URL grammar does not
/// allow in its place is written as `%HH` (upper-case hex), an existing `%HH` escape is kept as
/// it is, a `%` that starts none becomes `%25`, and a `#` after the first becomes `%23`. In
/// the authority of a `scheme://` URL `[` and `]` (IP literals) are kept too. Whatever the
/// input, the output holds only [`is_url_byte`] bytes, `%`, `#`, `[` and `]` — printable
/// ASCII without spaces or quotes, safe in a header. A URL whose bytes are all allowed comes
/// out unchanged.
pub fn encode_location_into(url: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let authority_end = authority_end(url);
    let mut fragment = false;
    let mut i = 0;
    while i < url.len() {
        let b = url[i];
        let keep = match b {
            b'%' => url.get(i + 1..i + 3).is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)),
            b'#' => !std::mem::replace(&mut fragment, true),
            b'[' | b']' => i < authority_end,
            _ => is_url_byte(b),
        };
        if keep {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]);
        }
        i += 1;
    }
}

/// Where the authority of a `scheme://authority…` URL ends (0 when `url` has none).
fn authority_end(url: &[u8]) -> usize {
    let Some(colon) = url.iter().position(|&b| b == b':') else { return 0 };
    let scheme_ok =
        colon > 0 && url[..colon].iter().all(|&b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
    if !scheme_ok || !url[colon..].starts_with(b"://") {
        return 0;
    }
    let start = colon + 3;
    start + url[start..].iter().position(|&b| matches!(b, b'/' | b'?' | b'#')).unwrap_or(url.len() - start)
}

/// The host of an authority `host[:port]`, or `None` when it is anything else.
fn authority_host(authority: &[u8]) -> Option<&[u8]> {
    let (host, port) = if authority.first() == Some(&b'[') {
        let close = authority.iter().position(|&b| b == b']')?;
        let literal = &authority[1..close];
        let ok =
            !literal.is_empty() && literal.iter().all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
        if !ok {
            return None;
        }
        (&authority[..=close], &authority[close + 1..])
    } else {
        let colon = authority.iter().position(|&b| b == b':').unwrap_or(authority.len());
        let host = &authority[..colon];
        if host.is_empty()
            || !host.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        {
            return None;
        }
        (host, &authority[colon..])
    };
    if let Some(digits) = port.strip_prefix(b":") {
        let ok = (1..=5).contains(&digits.len()) && digits.iter().all(u8::is_ascii_digit);
        if !ok || digits.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0')) > MAX_PORT {
            return None;
        }
    } else if !port.is_empty() {
        return None;
    }
    Some(host)
}

fn starts_with_ignore_case(s: &[u8], prefix: &[u8]) -> bool {
    s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}

fn strip_prefix_ignore_case<'a>(s: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    starts_with_ignore_case(s, prefix).then(|| &s[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(url: &[u8]) -> String {
        let mut out = Vec::new();
        encode_location_into(url, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn redirect_hosts() {
        assert_eq!(redirect_host(b"https://sync.x.example/p?u=1"), Some(&b"sync.x.example"[..]));
        assert_eq!(redirect_host(b"HTTP://sync.x.example:8080"), Some(&b"sync.x.example"[..]));
        assert_eq!(redirect_host(b"https://sync.x.example#f"), Some(&b"sync.x.example"[..]));
        assert_eq!(redirect_host(b"https://[::1]:443/"), Some(&b"[::1]"[..]));
        assert_eq!(redirect_host(b"https://sync.x.example/\"><script>"), Some(&b"sync.x.example"[..]));
        assert_eq!(redirect_host(b"https://sync.x.example/a b"), Some(&b"sync.x.example"[..]));
    }

    #[test]
    fn redirect_authorities_that_parsers_read_differently_are_refused() {
        for bad in [
            &b"https://a.example@evil.example/"[..],
            b"https://sync.partner-x.example\\@evil.com",
            b"https://evil.example\\.sync.x.example/",
            b"https://sync.x.example%2F@evil.example/",
            b"https://evil.example%23.sync.x.example/",
            b"https://sync.x.exampl\xc3\xa9/",
            b"https://sync.x.example\x00/",
            b"https://sync.x.example/\r\nSet-Cookie: a=b",
            b"https://sync.x.example/\ta",
            b"https://sync.x.example/\x7f",
            b"https://sync.x.example:/",
            b"https://sync.x.example:99999/",
            b"https://sync.x.example:8a/",
            b"https://[::1/",
            b"https://[]/",
            b"https://[::1]x/",
            b"https://sync.x.example /",
            b"https:///path",
            b"https:/sync.x.example/",
            b"https:sync.x.example/",
            b"//sync.x.example/",
            b"javascript:alert(1)",
            b" https://sync.x.example/",
            b"https://${DD_UUID}.x.example/",
        ] {
            assert_eq!(redirect_host(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn origins() {
        for good in [
            "https://www.acme.example",
            "http://localhost:8080",
            "HTTPS://A.Example",
            "app+x://h",
            "http://[::1]",
        ] {
            assert!(is_origin(good.as_bytes()), "{good}");
        }
        for bad in [
            "https://www.acme.example/",
            "https://www.acme.example/path",
            "https://u@www.acme.example",
            "https://",
            "www.acme.example",
            "null",
            "1http://a",
            "https://a.example:",
            "https://a.example?x",
            "https://a b",
            "",
        ] {
            assert!(!is_origin(bad.as_bytes()), "{bad}");
        }
        assert!(default_port_written(b"https://a.example:443"));
        assert!(default_port_written(b"HTTP://a.example:80"));
        assert!(!default_port_written(b"https://a.example:80"));
        assert!(!default_port_written(b"https://a.example:8443"));
    }

    #[test]
    fn locations_are_percent_encoded_where_the_grammar_requires() {
        assert_eq!(encode(b"https://p.example/s?u=1&v=a,b;c#top"), "https://p.example/s?u=1&v=a,b;c#top");
        assert_eq!(
            encode(b"https://p.example/\"><script>alert(1)</script>"),
            "https://p.example/%22%3E%3Cscript%3Ealert(1)%3C/script%3E"
        );
        assert_eq!(encode(b"https://p.example/a b\\c^`{|}"), "https://p.example/a%20b%5Cc%5E%60%7B%7C%7D");
        assert_eq!(encode(b"https://p.example/\r\n\x00\x7f\xc3\xa9"), "https://p.example/%0D%0A%00%7F%C3%A9");
        assert_eq!(encode(b"https://p.example/%2F%zz%4"), "https://p.example/%2F%25zz%254");
        assert_eq!(encode(b"https://p.example/#a#b"), "https://p.example/#a%23b");
        assert_eq!(encode(b"https://[::1]:80/[x]"), "https://[::1]:80/%5Bx%5D");
        assert_eq!(encode(b"[x]"), "%5Bx%5D");
        assert_eq!(encode(b""), "");
    }
}

//! What one request asks of the simulator: the `sim_*` overrides in its query string and the
//! user key its segments depend on. Pure functions over the request's bytes, no IO.
//!
//! Query values are percent-decoded (RFC 3986; `+` stays a plus sign, because dcsd encodes
//! spaces as `%20`). A query parameter that starts with `sim_` but is not one of the known
//! overrides is an error, so a typo in a test's URL template fails loudly instead of being
//! ignored.

use std::time::Duration;

use super::mode::{parse_status, Delay, Mode, ParseError};

/// The `sim_*` overrides of one request; `None` means "use the simulator's option".
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Overrides {
    /// `sim_mode=MODE` or `sim_status=CODE`.
    pub mode: Option<Mode>,
    /// `sim_delay=DIST`, `sim_delay_ms=N` or `sim_delay_us=N`.
    pub delay: Option<Delay>,
    /// `sim_ttl=S`.
    pub ttl_s: Option<u64>,
    /// `sim_segments=a,b` (empty value: no segments): the answer, instead of the pool's choice.
    pub segments: Option<Vec<String>>,
    /// `sim_per_user=K`.
    pub per_user: Option<usize>,
    /// `sim_fail_rate=P`.
    pub fail_rate: Option<f64>,
    /// `sim_fail_mode=MODE`.
    pub fail_mode: Option<Mode>,
}

/// Query parameters that name the user, in the order they are looked for.
const KEY_PARAMS: [&[u8]; 3] = [b"uid", b"dpuuid", b"uuid"];

// === impl Overrides ===

impl Overrides {
    /// Reads the `sim_*` parameters of `query` (the part after `?`).
    ///
    /// # Errors
    /// An unknown `sim_*` name, a value that does not parse, or two parameters that set the
    /// same thing (`sim_mode` with `sim_status`, two of the delay parameters).
    pub fn parse(query: &[u8]) -> Result<Overrides, ParseError> {
        let mut o = Overrides::default();
        let mut delays = 0;
        let mut modes = 0;
        for (name, value) in pairs(query) {
            if !name.starts_with(b"sim_") {
                continue;
            }
            let value = String::from_utf8_lossy(&value).into_owned();
            match &name[..] {
                b"sim_mode" => {
                    modes += 1;
                    o.mode = Some(value.parse()?);
                }
                b"sim_status" => {
                    modes += 1;
                    o.mode = Some(Mode::Status(parse_status(&value)?));
                }
                b"sim_delay" => {
                    delays += 1;
                    o.delay = Some(value.parse()?);
                }
                b"sim_delay_ms" => {
                    delays += 1;
                    o.delay = Some(Delay::Fixed(Duration::from_millis(number(&value, "sim_delay_ms")?)));
                }
                b"sim_delay_us" => {
                    delays += 1;
                    o.delay = Some(Delay::Fixed(Duration::from_micros(number(&value, "sim_delay_us")?)));
                }
                b"sim_ttl" => o.ttl_s = Some(number(&value, "sim_ttl")?),
                b"sim_segments" => o.segments = Some(split_list(&value)),
                b"sim_per_user" => o.per_user = Some(number(&value, "sim_per_user")? as usize),
                b"sim_fail_rate" => o.fail_rate = Some(parse_rate(&value)?),
                b"sim_fail_mode" => o.fail_mode = Some(value.parse()?),
                other => {
                    return Err(ParseError(format!(
                        "unknown override {:?}; known: sim_mode, sim_status, sim_delay, sim_delay_ms, \
                         sim_delay_us, sim_ttl, sim_segments, sim_per_user, sim_fail_rate, sim_fail_mode",
                        String::from_utf8_lossy(other)
                    )))
                }
            }
        }
        if modes > 1 {
            return Err(ParseError("give one of sim_mode and sim_status".into()));
        }
        if delays > 1 {
            return Err(ParseError("give one of sim_delay, sim_delay_ms and sim_delay_us".into()));
        }
        Ok(o)
    }
}

/// A probability in `[0, 1]` (`--fail-rate`, `sim_fail_rate`).
///
/// # Errors
/// Anything else.
pub fn parse_rate(s: &str) -> Result<f64, ParseError> {
    match s.parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err(ParseError(format!("a rate is a number in 0..=1, not {s:?}"))),
    }
}

/// A comma-separated list; an empty string is the empty list.
pub fn split_list(s: &str) -> Vec<String> {
    if s.is_empty() {
        Vec::new()
    } else {
        s.split(',').map(str::to_string).collect()
    }
}

fn number(s: &str, what: &str) -> Result<u64, ParseError> {
    s.parse().map_err(|_| ParseError(format!("{what}: {s:?} is not a whole number")))
}

/// The key whose segments the request asks for: the first present query parameter of `uid`,
/// `dpuuid`, `uuid`; else, for a POST, the JSON body's `dpuuid`, else its `uuid` (a string
/// as it is, a number as written; `null` counts as absent); else empty.
pub fn user_key(query: Option<&[u8]>, post: bool, body: &[u8]) -> Vec<u8> {
    if let Some(q) = query {
        for want in KEY_PARAMS {
            if let Some((_, v)) = pairs(q).find(|(n, _)| n == want) {
                return v;
            }
        }
    }
    if post && !body.is_empty() {
        if let Some(k) = body_key(body) {
            return k;
        }
    }
    Vec::new()
}

/// `dpuuid`, else `uuid`, of a JSON object body.
fn body_key(body: &[u8]) -> Option<Vec<u8>> {
    use simd_json::BorrowedValue as V;
    let mut copy = body.to_vec();
    let V::Object(obj) = simd_json::to_borrowed_value(&mut copy).ok()? else {
        return None;
    };
    ["dpuuid", "uuid"].iter().find_map(|name| match obj.get(*name)? {
        V::String(s) => Some(s.as_bytes().to_vec()),
        V::Static(simd_json::StaticNode::Null) => None,
        V::Static(n) => Some(n.to_string().into_bytes()),
        _ => None,
    })
}

/// The `name=value` pairs of a query string, both percent-decoded; a pair without `=` has an
/// empty value.
pub fn pairs(query: &[u8]) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> + '_ {
    query.split(|&b| b == b'&').filter(|p| !p.is_empty()).map(|p| {
        let (n, v) = match p.iter().position(|&b| b == b'=') {
            Some(i) => (&p[..i], &p[i + 1..]),
            None => (p, &p[p.len()..]),
        };
        (percent_decode(n), percent_decode(v))
    })
}

/// Percent-decodes `s`; a `%` not followed by two hex digits stays as it is.
pub fn percent_decode(s: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' && i + 2 < s.len() {
            if let (Some(h), Some(l)) = (hex(s[i + 1]), hex(s[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_parse() {
        let o = Overrides::parse(b"uid=1&sim_mode=status:503&sim_delay_ms=7&sim_ttl=60&sim_segments=a%2Cb,c")
            .unwrap();
        assert_eq!(o.mode, Some(Mode::Status(503)));
        assert_eq!(o.delay, Some(Delay::Fixed(Duration::from_millis(7))));
        assert_eq!(o.ttl_s, Some(60));
        assert_eq!(o.segments, Some(vec!["a".to_string(), "b".to_string(), "c".to_string()]));
        assert_eq!(Overrides::parse(b"sim_segments=").unwrap().segments, Some(vec![]));
        assert_eq!(Overrides::parse(b"sim_status=404").unwrap().mode, Some(Mode::Status(404)));
        assert_eq!(Overrides::parse(b"").unwrap(), Overrides::default());
    }

    #[test]
    fn bad_overrides_are_errors() {
        for q in [
            &b"sim_bogus=1"[..],
            b"sim_mode=explode",
            b"sim_status=99",
            b"sim_delay_ms=-1",
            b"sim_delay=uniform:5:1",
            b"sim_mode=ok&sim_status=500",
            b"sim_delay_ms=1&sim_delay_us=5",
            b"sim_fail_rate=2",
            b"sim_mode=close-after:0",
        ] {
            assert!(Overrides::parse(q).is_err(), "{}", String::from_utf8_lossy(q));
        }
    }

    #[test]
    fn user_key_order() {
        assert_eq!(user_key(Some(b"uuid=3&dpuuid=2&uid=1"), false, b""), b"1");
        assert_eq!(user_key(Some(b"uuid=3&dpuuid=a%20b"), false, b""), b"a b");
        assert_eq!(user_key(Some(b"x=1"), true, br#"{"uuid":"u","dpuuid":"d"}"#), b"d");
        assert_eq!(user_key(None, true, br#"{"uuid":"u","dpuuid":null}"#), b"u");
        assert_eq!(user_key(None, true, br#"{"uuid":42}"#), b"42");
        assert_eq!(user_key(None, false, br#"{"uuid":"u"}"#), b"");
        assert_eq!(user_key(None, true, b"not json"), b"");
        assert_eq!(user_key(Some(b"uid="), true, br#"{"uuid":"u"}"#), b"");
    }

    #[test]
    fn percent_decoding_edges() {
        assert_eq!(percent_decode(b"a%41%zz%4"), b"aA%zz%4");
        assert_eq!(percent_decode(b"%"), b"%");
        assert_eq!(percent_decode(b"a+b%2b"), b"a+b+");
    }
}

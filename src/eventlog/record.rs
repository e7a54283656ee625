//! Writing one record (docs/eventlog.md §3): pure appends to a byte buffer, no IO and no
//! allocation. A record is written in three parts, in this order, so that an answer that
//! waits for partners can render the request's part while it still has the request and the
//! rest when it answers:
//!
//! 1. [`open`] — `{"ts":…,"tid":…,"kind":…`
//! 2. [`request`] — `,"host":…,"ip":…,"region":…,"signals":{…}` (or [`no_request`])
//! 3. [`close`] — the profile, what was realized, the partners' outcomes, the errors and the
//!    mode, then `}`.
//!
//! The line end is the log's business ([`super::Lane::append`]). Strings are escaped by
//! [`crate::json`], so a record is one line whatever a request sent.

use std::io::Write as _;
use std::net::IpAddr;

use crate::http::response::push_u64;
use crate::json::escape_into;

// One definition of the kinds and opt-outs for writing and reading records.
pub use super::read::{Kind, OptOut};

/// The profile part of a record.
#[derive(Clone, Copy, Debug, Default)]
pub struct Profile<'a> {
    /// The host's customer, when the host named one.
    pub customer: Option<u32>,
    /// The profile ID (38 digits): the answer's, or the profile the request opted out.
    pub uuid: Option<&'a [u8; 38]>,
    /// The ECID recorded in the profile.
    pub ecid: Option<u128>,
    /// The declared IDs recorded: the inside of a JSON array of
    /// `{"dpid":…,"dpuuid":…,"auth":…}` objects ([`push_declared`]).
    pub declared: &'a [u8],
    /// An opt-out the request made.
    pub opt_out: Option<OptOut>,
}

/// What the request did besides the profile.
#[derive(Clone, Copy, Debug, Default)]
pub struct Outcome<'a> {
    /// Traits realized.
    pub traits: &'a [u32],
    /// The customer's segments the profile is in.
    pub segments: &'a [u32],
    /// Until when a partner's answer is cached (`partner` records).
    pub expires_s: Option<u64>,
    /// `mode`: `pixel`, `json`, `jsonp`, `redirect` or `none`.
    pub mode: &'a str,
}

/// `{"ts":…,"tid":"…","kind":"…"` — `ts` in Unix milliseconds, `tid` the answer's
/// transaction ID (base64).
pub fn open(out: &mut Vec<u8>, ts_ms: u64, tid: &[u8; 12], kind: Kind) {
    out.extend_from_slice(b"{\"ts\":");
    push_u64(out, ts_ms);
    out.extend_from_slice(b",\"tid\":\"");
    out.extend_from_slice(tid);
    out.extend_from_slice(b"\",\"kind\":\"");
    out.extend_from_slice(kind.as_str().as_bytes());
    out.push(b'"');
}

/// `,"host":…,"ip":…,"region":…,"signals":{…}`. `signals` makes the request's signals, in
/// request order, as often as needed: each key is written once with all its values, and `p_`
/// and `d_` keys never (they are not stored; `d_` pairs are control parameters).
pub fn request<'s, I>(out: &mut Vec<u8>, host: &[u8], ip: IpAddr, region: u32, signals: impl Fn() -> I)
where
    I: Iterator<Item = (&'s [u8], &'s [u8])>,
{
    push_head(out, host, ip, region);
    out.extend_from_slice(b",\"signals\":{");
    let mut first = true;
    for (i, (key, _)) in signals().enumerate() {
        if key.starts_with(b"p_") || key.starts_with(b"d_") || signals().take(i).any(|(k, _)| k == key) {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        push_str(out, key);
        out.extend_from_slice(b":[");
        for (j, (_, v)) in signals().skip(i).filter(|(k, _)| *k == key).enumerate() {
            if j > 0 {
                out.push(b',');
            }
            push_str(out, v);
        }
        out.push(b']');
    }
    out.push(b'}');
}

/// The request part of a record without signals: an invalid request, or a `partner` record.
pub fn no_request(out: &mut Vec<u8>, host: &[u8], ip: IpAddr, region: u32) {
    push_head(out, host, ip, region);
    out.extend_from_slice(b",\"signals\":{}");
}

fn push_head(out: &mut Vec<u8>, host: &[u8], ip: IpAddr, region: u32) {
    out.extend_from_slice(b",\"host\":");
    push_str(out, host);
    out.extend_from_slice(b",\"ip\":\"");
    // An address always formats; the buffer grows as needed.
    let _ = write!(out, "{}", ip.to_canonical());
    out.extend_from_slice(b"\",\"region\":");
    push_u64(out, u64::from(region));
}

/// Appends one declared ID to the inside of a `declared` array.
pub fn push_declared(out: &mut Vec<u8>, dpid: u32, dpuuid: &str, auth: u8) {
    if !out.is_empty() {
        out.push(b',');
    }
    out.extend_from_slice(b"{\"dpid\":");
    push_u64(out, u64::from(dpid));
    out.extend_from_slice(b",\"dpuuid\":");
    push_str(out, dpuuid.as_bytes());
    out.extend_from_slice(b",\"auth\":");
    push_u64(out, u64::from(auth));
    out.push(b'}');
}

/// The rest of the record and its closing brace. `partners` are (data source, outcome label);
/// `errors` (code, message) in the order they arose.
pub fn close<'e>(
    out: &mut Vec<u8>,
    p: &Profile<'_>,
    o: &Outcome<'_>,
    partners: impl Iterator<Item = (u32, &'static str)>,
    errors: impl Iterator<Item = (u16, &'e str)>,
) {
    out.extend_from_slice(b",\"customer\":");
    match p.customer {
        Some(c) => push_u64(out, u64::from(c)),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"uuid\":");
    match p.uuid {
        Some(u) => {
            out.push(b'"');
            out.extend_from_slice(u);
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
    if let Some(e) = p.ecid {
        out.extend_from_slice(b",\"ecid\":\"");
        out.extend_from_slice(&crate::identity::Uuid(e).to_digits());
        out.push(b'"');
    }
    out.extend_from_slice(b",\"declared\":[");
    out.extend_from_slice(p.declared);
    out.push(b']');
    if let Some(o) = p.opt_out {
        out.extend_from_slice(b",\"opt_out\":\"");
        out.extend_from_slice(o.as_str().as_bytes());
        out.push(b'"');
    }
    let id = |out: &mut Vec<u8>, id: &u32| push_u64(out, u64::from(*id));
    push_joined(out, b",\"traits\":[", o.traits.iter(), id, b"]");
    push_joined(out, b",\"segments\":[", o.segments.iter(), id, b"]");
    let partner = |out: &mut Vec<u8>, (dpid, label): (u32, &str)| {
        out.push(b'"');
        push_u64(out, u64::from(dpid));
        out.extend_from_slice(b"\":\"");
        out.extend_from_slice(label.as_bytes());
        out.push(b'"');
    };
    push_joined(out, b",\"partners\":{", partners, partner, b"}");
    if let Some(e) = o.expires_s {
        out.extend_from_slice(b",\"expires_s\":");
        push_u64(out, e);
    }
    let error = |out: &mut Vec<u8>, (code, msg): (u16, &str)| {
        out.extend_from_slice(b"{\"code\":");
        push_u64(out, u64::from(code));
        out.extend_from_slice(b",\"msg\":");
        push_str(out, msg.as_bytes());
        out.push(b'}');
    };
    push_joined(out, b",\"errors\":[", errors, error, b"]");
    out.extend_from_slice(b",\"mode\":\"");
    out.extend_from_slice(o.mode.as_bytes());
    out.extend_from_slice(b"\"}");
}

/// `open`, each item written by `each` with commas between, `close`.
fn push_joined<T>(
    out: &mut Vec<u8>,
    open: &[u8],
    items: impl Iterator<Item = T>,
    mut each: impl FnMut(&mut Vec<u8>, T),
    close: &[u8],
) {
    out.extend_from_slice(open);
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        each(out, item);
    }
    out.extend_from_slice(close);
}

/// A JSON string of request text (valid UTF-8 after decoding; anything else is escaped by
/// [`escape_into`] as it is).
fn push_str(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    escape_into(s, out);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_record_is_one_json_object_with_grouped_signals_and_no_private_keys() {
        let mut out = Vec::new();
        open(&mut out, 1_763_805_600_123, b"ss3OTqPiQp0=", Kind::Event);
        let pairs: [(&[u8], &[u8]); 5] = [
            (b"c_likes", b"famous \"popstar\""),
            (b"p_secret", b"x"),
            (b"k", b"1"),
            (b"c_likes", b"jazz"),
            (b"h_user-agent", b"Mozilla/5.0\n"),
        ];
        request(&mut out, b"acme.dcs.example", "203.0.113.0".parse().unwrap(), 7, || pairs.iter().copied());
        let uuid = [b'7'; 38];
        let mut declared = Vec::new();
        push_declared(&mut declared, 1, "crm-42", 1);
        push_declared(&mut declared, 2, "x\"y", 0);
        let p =
            Profile { customer: Some(1), uuid: Some(&uuid), ecid: None, declared: &declared, opt_out: None };
        let o = Outcome { traits: &[1234], segments: &[984263, 5], expires_s: None, mode: "json" };
        close(
            &mut out,
            &p,
            &o,
            [(777, "ok"), (778, "called")].into_iter(),
            [(304u16, "bad \"id\"")].into_iter(),
        );
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains('\n'));
        let want = concat!(
            r#"{"ts":1763805600123,"tid":"ss3OTqPiQp0=","kind":"event","host":"acme.dcs.example","#,
            r#""ip":"203.0.113.0","region":7,"signals":{"c_likes":["famous \"popstar\"","jazz"],"k":["1"],"#,
            r#""h_user-agent":["Mozilla/5.0\n"]},"customer":1,"#,
        );
        let start = want.len();
        assert_eq!(&text[..start], want);
        let rest = &text[start..];
        assert_eq!(
            rest,
            format!(
                "\"uuid\":\"{}\",\"declared\":[{{\"dpid\":1,\"dpuuid\":\"crm-42\",\"auth\":1}},{{\"dpid\":2,\"dpuuid\":\"x\\\"y\",\"auth\":0}}],\"traits\":[1234],\"segments\":[984263,5],\"partners\":{{\"777\":\"ok\",\"778\":\"called\"}},\"errors\":[{{\"code\":304,\"msg\":\"bad \\\"id\\\"\"}}],\"mode\":\"json\"}}",
                "7".repeat(38)
            )
        );
    }

    #[test]
    fn optional_fields_appear_only_when_set() {
        let mut out = Vec::new();
        open(&mut out, 1, b"AAAAAAAAAAA=", Kind::Optout);
        no_request(&mut out, b"h", "::ffff:10.0.0.1".parse().unwrap(), 0);
        let uuid = [b'1'; 38];
        let p = Profile {
            customer: None,
            uuid: Some(&uuid),
            ecid: Some(5),
            declared: b"",
            opt_out: Some(OptOut::Global),
        };
        let o = Outcome { expires_s: Some(99), mode: "pixel", ..Outcome::default() };
        close(&mut out, &p, &o, std::iter::empty(), std::iter::empty());
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains(r#""ip":"10.0.0.1","region":0,"signals":{}"#), "{text}");
        assert!(text.contains(r#""customer":null"#));
        assert!(text.contains(&format!(r#""ecid":"{}5""#, "0".repeat(37))));
        assert!(text.contains(r#""opt_out":"global""#));
        assert!(text.contains(r#""expires_s":99,"errors":[],"mode":"pixel"}"#));
    }
}

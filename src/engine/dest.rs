//! Destinations (docs/http-api.md §6.4): URL destinations become `dests` entries, cookie destinations
//! `stuff` entries, for the segments a profile is in now.
//!
//! Compiled per load: (customer, segment) → the (destination, mapping) pairs it feeds; URL
//! templates split into literal and macro parts. Rendering appends JSON text to the caller's
//! buffer; order is the taxonomy's destination order, and within a destination the segments'
//! ascending order.
//!
//! Choices the spec leaves open:
//! * `%alias%` inserts each alias percent-encoded (unreserved bytes kept); a serialized
//!   destination joins them with its `delimiter` as written.
//! * `%dpid_<DPID>%` is the request's first declared ID of that data source, percent-encoded,
//!   or empty. `${GDPR}` is the request's `gdpr` (0 or 1); `${GDPR_CONSENT_<vendor>}` is the
//!   request's consent string (percent-encoded) whatever the vendor, or empty.
//! * An unknown `%name%` or `${name}` stays as written (URLs carry `%2F` and the like).
//! * Cookie `cv`: keys and values percent-encoded, the destination's separators as written
//!   (`seg=v1,v2`, `k1=v1,k2=v2`), as a tag writes it into `document.cookie`; values are added
//!   while the length stays within `max_size`; a cookie with no value that fits is left out. Mappings without an alias (URL) or a value (cookie) produce nothing.

use std::fmt::Write as _;

use rustc_hash::FxHashMap;

use crate::config::taxonomy::{CookieDestination, Destination, Taxonomy, UrlDestination};
use crate::json::escape_into;

/// What a request contributes to destination output.
#[derive(Clone, Copy, Debug, Default)]
pub struct DestRequest<'a> {
    /// The host's customer.
    pub customer: u32,
    /// Segment IDs the profile is in now, ascending.
    pub segments: &'a [u32],
    /// The profile ID (38 digits), for `%did%`.
    pub uuid: &'a str,
    /// `d_ptfm`, if given.
    pub platform: Option<&'a [u8]>,
    /// Declared IDs of the request: (DPID, DPUUID), for `%dpid_<DPID>%`.
    pub declared: &'a [(u32, &'a [u8])],
    /// `gdpr` (0 or 1).
    pub gdpr: u8,
    /// `gdpr_consent` (empty when absent).
    pub gdpr_consent: &'a [u8],
    /// `%rnd%`.
    pub rnd: u64,
    /// `%timestamp%`, Unix seconds.
    pub timestamp_s: u64,
    /// `%region%`.
    pub region: u32,
}

/// Compiled destinations.
#[derive(Debug, Default)]
pub(super) struct Destinations {
    /// In taxonomy order.
    dests: Vec<Dest>,
    /// (customer, segment) → `hits[start..start + len]` of (destination, mapping).
    by_segment: FxHashMap<(u32, u32), (u32, u32)>,
    hits: Vec<(u32, u32)>,
}

#[derive(Debug)]
struct Dest {
    /// `None` = all platforms.
    platform: Option<Box<[u8]>>,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Url {
        url: Vec<Part>,
        secure: Vec<Part>,
        iframe: bool,
        serialize: bool,
        delimiter: Box<[u8]>,
        aliases: Vec<Option<Box<[u8]>>>,
    },
    Cookie(Cookie),
}

#[derive(Debug)]
struct Cookie {
    name: Box<str>,
    domain: Box<str>,
    ttl_days: u32,
    /// `key_value` (else `single_key`).
    key_value: bool,
    key: Box<[u8]>,
    key_sep: Box<[u8]>,
    value_sep: Box<[u8]>,
    max_size: usize,
    /// (key, value) per mapping; `None` when the mapping has no value.
    entries: Vec<Option<KeyValue>>,
}

/// A cookie mapping's key and value.
type KeyValue = (Box<[u8]>, Box<[u8]>);

/// A piece of a URL template.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Lit(Box<[u8]>),
    Alias,
    Did,
    Rnd,
    Timestamp,
    Region,
    Dpid(u32),
    Gdpr,
    GdprConsent,
}

// === impl Destinations ===

impl Destinations {
    /// Compiles the taxonomy's destinations; `seg_ok` says whether a segment ID is known.
    pub(super) fn compile(t: &Taxonomy) -> Destinations {
        let mut d = Destinations::default();
        let mut pairs: Vec<((u32, u32), (u32, u32))> = Vec::new();
        for (i, dest) in t.destinations.iter().enumerate() {
            let (customer, platform, segs): (u32, &str, Vec<u64>) = match dest {
                Destination::Url(u) => {
                    (u.customer, &u.platform, u.mappings.iter().map(|m| m.segment).collect())
                }
                Destination::Cookie(c) => {
                    (c.customer, &c.platform, c.mappings.iter().map(|m| m.segment).collect())
                }
            };
            for (j, seg) in segs.into_iter().enumerate() {
                if let Ok(seg) = u32::try_from(seg) {
                    pairs.push(((customer, seg), (i as u32, j as u32)));
                }
            }
            let platform = (platform != "all").then(|| platform.as_bytes().into());
            let kind = match dest {
                Destination::Url(u) => url_kind(u),
                Destination::Cookie(c) => Kind::Cookie(cookie(c)),
            };
            d.dests.push(Dest { platform, kind });
        }
        pairs.sort_unstable();
        for group in pairs.chunk_by(|a, b| a.0 == b.0) {
            d.by_segment.insert(group[0].0, (d.hits.len() as u32, group.len() as u32));
            d.hits.extend(group.iter().map(|p| p.1));
        }
        d
    }

    /// Appends the `stuff` array and the `dests` array (JSON text, brackets included).
    pub(super) fn render(
        &self,
        r: &DestRequest<'_>,
        work: &mut Work,
        stuff: &mut Vec<u8>,
        dests: &mut Vec<u8>,
    ) {
        work.hits.clear();
        for (rank, seg) in r.segments.iter().enumerate() {
            if let Some(&(start, len)) = self.by_segment.get(&(r.customer, *seg)) {
                let hs = &self.hits[start as usize..(start + len) as usize];
                work.hits.extend(hs.iter().map(|&(d, m)| (d, rank as u32, m)));
            }
        }
        work.hits.sort_unstable();
        stuff.push(b'[');
        dests.push(b'[');
        let (mut first_stuff, mut first_dest) = (true, true);
        let mut i = 0;
        while i < work.hits.len() {
            let d = work.hits[i].0;
            let n = work.hits[i..].iter().take_while(|h| h.0 == d).count();
            let dest = &self.dests[d as usize];
            let maps = i..i + n;
            i += n;
            if dest.platform.as_deref().is_some_and(|p| r.platform != Some(p)) {
                continue;
            }
            match &dest.kind {
                Kind::Url { .. } => render_url(dest, r, work, maps, dests, &mut first_dest),
                Kind::Cookie(c) => render_cookie(c, work, maps, stuff, &mut first_stuff),
            }
        }
        stuff.push(b']');
        dests.push(b']');
    }
}

/// Per-core reusable buffers for rendering.
#[derive(Debug, Default)]
pub(super) struct Work {
    /// (destination, segment rank, mapping) of the request's segments.
    hits: Vec<(u32, u32, u32)>,
    /// The `%alias%` text.
    alias: Vec<u8>,
    /// A rendered URL or cookie value.
    text: Vec<u8>,
}

fn url_kind(u: &UrlDestination) -> Kind {
    Kind::Url {
        url: template(u.url.as_bytes()),
        secure: template(u.secure_url.as_bytes()),
        iframe: u.kind == "iframe",
        serialize: u.serialize,
        delimiter: u.delimiter.as_bytes().into(),
        aliases: u.mappings.iter().map(|m| m.alias.as_ref().map(|a| a.as_bytes().into())).collect(),
    }
}

fn cookie(c: &CookieDestination) -> Cookie {
    let key_value = c.format == "key_value";
    Cookie {
        name: c.name.as_str().into(),
        domain: c.domain.as_str().into(),
        ttl_days: c.ttl_days,
        key_value,
        key: c.key.as_bytes().into(),
        key_sep: c.key_separator.as_bytes().into(),
        value_sep: c.value_separator.as_bytes().into(),
        max_size: c.max_size as usize,
        entries: c
            .mappings
            .iter()
            .map(|m| {
                let k = m.key.as_deref().unwrap_or("").as_bytes().into();
                m.value.as_ref().map(|v| (k, v.as_bytes().into()))
            })
            .collect(),
    }
}

fn render_url(
    dest: &Dest,
    r: &DestRequest<'_>,
    work: &mut Work,
    maps: std::ops::Range<usize>,
    out: &mut Vec<u8>,
    first: &mut bool,
) {
    let Kind::Url { url, secure, iframe, serialize, delimiter, aliases } = &dest.kind else { return };
    let mut entry = |alias: &[u8], text: &mut Vec<u8>, out: &mut Vec<u8>| {
        out.extend_from_slice(if *first { b"{\"c\":\"" } else { b",{\"c\":\"" });
        *first = false;
        text.clear();
        expand(url, alias, r, text);
        escape_into(text, out);
        out.extend_from_slice(b"\",\"e\":\"");
        text.clear();
        expand(secure, alias, r, text);
        escape_into(text, out);
        out.extend_from_slice(if *iframe { b"\",\"y\":\"iframe\"}" } else { b"\",\"y\":\"img\"}" });
    };
    let mut alias = std::mem::take(&mut work.alias);
    let mut text = std::mem::take(&mut work.text);
    alias.clear();
    let mut any = false;
    for h in maps {
        let Some(a) = &aliases[work.hits[h].2 as usize] else { continue };
        if *serialize {
            if any {
                alias.extend_from_slice(delimiter);
            }
            percent_encode(a, &mut alias);
        } else {
            alias.clear();
            percent_encode(a, &mut alias);
            entry(&alias, &mut text, out);
        }
        any = true;
    }
    if *serialize && any {
        entry(&alias, &mut text, out);
    }
    work.alias = alias;
    work.text = text;
}

fn render_cookie(
    c: &Cookie,
    work: &mut Work,
    maps: std::ops::Range<usize>,
    out: &mut Vec<u8>,
    first: &mut bool,
) {
    let mut text = std::mem::take(&mut work.text);
    text.clear();
    if !c.key_value {
        percent_encode(&c.key, &mut text);
        text.extend_from_slice(&c.key_sep);
    }
    let mut values = 0;
    for h in maps {
        let Some((k, v)) = &c.entries[work.hits[h].2 as usize] else { continue };
        let before = text.len();
        if values > 0 {
            text.extend_from_slice(&c.value_sep);
        }
        if c.key_value {
            percent_encode(k, &mut text);
            text.extend_from_slice(&c.key_sep);
        }
        percent_encode(v, &mut text);
        if text.len() > c.max_size {
            text.truncate(before);
            break;
        }
        values += 1;
    }
    if values > 0 {
        out.extend_from_slice(if *first { b"{\"cn\":\"" } else { b",{\"cn\":\"" });
        *first = false;
        escape_into(c.name.as_bytes(), out);
        out.extend_from_slice(b"\",\"cv\":\"");
        escape_into(&text, out);
        let _ = write!(VecWriter(out), "\",\"ttl\":{},\"dmn\":\"", c.ttl_days);
        escape_into(c.domain.as_bytes(), out);
        out.extend_from_slice(b"\"}");
    }
    work.text = text;
}

/// Expands a template's macros into `out`.
fn expand(parts: &[Part], alias: &[u8], r: &DestRequest<'_>, out: &mut Vec<u8>) {
    for p in parts {
        match p {
            Part::Lit(l) => out.extend_from_slice(l),
            Part::Alias => out.extend_from_slice(alias),
            Part::Did => out.extend_from_slice(r.uuid.as_bytes()),
            Part::Rnd => push_num(out, r.rnd),
            Part::Timestamp => push_num(out, r.timestamp_s),
            Part::Region => push_num(out, u64::from(r.region)),
            Part::Gdpr => push_num(out, u64::from(r.gdpr)),
            Part::GdprConsent => percent_encode(r.gdpr_consent, out),
            Part::Dpid(d) => {
                if let Some((_, id)) = r.declared.iter().find(|(dpid, _)| dpid == d) {
                    percent_encode(id, out);
                }
            }
        }
    }
}

fn push_num(out: &mut Vec<u8>, n: u64) {
    let _ = write!(VecWriter(out), "{n}");
}

/// `fmt::Write` into a byte vector.
struct VecWriter<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for VecWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// Splits a URL template into literal and macro parts.
fn template(t: &[u8]) -> Vec<Part> {
    let mut parts = Vec::new();
    let mut lit = Vec::new();
    let mut i = 0;
    while i < t.len() {
        let (open, close) = match (t[i], t.get(i + 1)) {
            (b'%', _) => (1, b'%'),
            (b'$', Some(b'{')) => (2, b'}'),
            _ => {
                lit.push(t[i]);
                i += 1;
                continue;
            }
        };
        let name_end = t[i + open..].iter().position(|&b| b == close).map(|p| i + open + p);
        let part = name_end.and_then(|e| macro_part(&t[i + open..e], open == 2));
        match (part, name_end) {
            (Some(p), Some(e)) => {
                if !lit.is_empty() {
                    parts.push(Part::Lit(std::mem::take(&mut lit).into()));
                }
                parts.push(p);
                i = e + 1;
            }
            _ => {
                lit.push(t[i]);
                i += 1;
            }
        }
    }
    if !lit.is_empty() {
        parts.push(Part::Lit(lit.into()));
    }
    parts
}

fn macro_part(name: &[u8], dollar: bool) -> Option<Part> {
    let digits = |d: &[u8]| -> Option<u32> {
        (!d.is_empty() && d.iter().all(u8::is_ascii_digit))
            .then(|| std::str::from_utf8(d).ok()?.parse().ok())?
    };
    if dollar {
        return match name {
            b"GDPR" => Some(Part::Gdpr),
            _ => name.strip_prefix(b"GDPR_CONSENT_").and_then(digits).map(|_| Part::GdprConsent),
        };
    }
    match name {
        b"alias" => Some(Part::Alias),
        b"did" => Some(Part::Did),
        b"rnd" => Some(Part::Rnd),
        b"timestamp" => Some(Part::Timestamp),
        b"region" => Some(Part::Region),
        _ => name.strip_prefix(b"dpid_").and_then(digits).map(Part::Dpid),
    }
}

/// Percent-encodes all but the unreserved bytes (RFC 3986 §2.3).
pub fn percent_encode(s: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in s {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
}

//! Request pairs (docs/http-api.md §3.2, §4): query pairs then form-body pairs, percent- and
//! `+`-decoded, UTF-8-checked, split into values, classified by key prefix.
//!
//! [`Pairs`] is reused per core: decoding writes only into its own vectors, which keep their
//! capacity between requests, so a request allocates nothing. A key or value without `%` or
//! `+` is not copied at all — it is a [`Text`] naming a range of the query or body; only
//! escaped components are decoded into the arena. One bad escape or invalid UTF-8 sequence
//! anywhere makes the whole request invalid ([`Invalid`], error 311), and nothing of it is
//! used.

use std::ops::Range;

use crate::identity::declared::Raw;

/// A decoded byte string: a range of the query, of the form body, or of the arena.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Text {
    src: Src,
    start: u32,
    end: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Src {
    Query,
    Body,
    Arena,
}

/// Key classes (docs/http-api.md §3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyClass {
    /// `c_…`: customer.
    Customer,
    /// `d_…`: platform/control.
    Platform,
    /// `h_…`: header-derived; sent by a request, it is ignored.
    Header,
    /// `p_…`: private, this request only.
    Private,
    /// A control parameter of docs/http-api.md §4 (consumed, not a signal).
    Control,
    /// Anything else: an unprefixed customer key.
    Unprefixed,
}

/// One key and its values, in request order.
#[derive(Clone, Debug)]
pub struct Pair {
    /// The decoded key.
    pub key: Text,
    /// Its class.
    pub class: KeyClass,
    /// Indexes into the value list.
    values: Range<u32>,
}

/// The request is invalid (error 311): a bad escape or invalid UTF-8.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Invalid;

/// A core's reusable pair decoder and its last result.
#[derive(Debug, Default)]
pub struct Pairs {
    arena: Vec<u8>,
    pairs: Vec<Pair>,
    values: Vec<Text>,
}

/// Decoded pairs together with the bytes they point into.
#[derive(Clone, Copy)]
pub struct View<'a> {
    pairs: &'a Pairs,
    query: &'a [u8],
    body: &'a [u8],
}

// === impl Pairs ===

impl Pairs {
    /// Decodes `query`, then `body` (form-encoded), replacing the previous result.
    ///
    /// # Errors
    /// [`Invalid`] on the first bad escape or invalid UTF-8; the result is then empty.
    pub fn decode<'a>(&'a mut self, query: &'a [u8], body: &'a [u8]) -> Result<View<'a>, Invalid> {
        self.arena.clear();
        self.pairs.clear();
        self.values.clear();
        let res = self.decode_part(query, Src::Query).and_then(|()| self.decode_part(body, Src::Body));
        if res.is_err() {
            self.pairs.clear();
            self.values.clear();
        }
        res.map(|()| View { pairs: self, query, body })
    }

    fn decode_part(&mut self, input: &[u8], src: Src) -> Result<(), Invalid> {
        let mut start = 0usize;
        while start <= input.len() {
            let scan = scan_pair(input, start);
            let key = self.component(input, start..scan.key_end, src, scan.key_flags)?;
            // Decoded even when the key is empty: a bad escape anywhere invalidates the request.
            let value = self.component(input, scan.value.clone(), src, scan.value_flags)?;
            if key.start != key.end {
                let class = classify(self.bytes(key, input, src));
                let first = self.values.len() as u32;
                let quoted = input.get(scan.value.start) == Some(&b'"');
                if scan.value_flags & COMMA == 0 && value.src != Src::Arena && !quoted {
                    self.values.push(value); // the common case: one plain value
                } else {
                    self.split_values(value, input, src);
                }
                self.pairs.push(Pair { key, class, values: first..self.values.len() as u32 });
            }
            start = scan.next;
        }
        Ok(())
    }

    /// Decodes one key or value; unescaped input is referenced, not copied, and pure ASCII
    /// needs no UTF-8 check.
    fn component(&mut self, input: &[u8], r: Range<usize>, src: Src, flags: u8) -> Result<Text, Invalid> {
        let raw = &input[r.clone()];
        if flags & ESCAPE == 0 {
            if flags & NON_ASCII != 0 {
                std::str::from_utf8(raw).map_err(|_| Invalid)?;
            }
            return Ok(Text { src, start: r.start as u32, end: r.end as u32 });
        }
        let start = self.arena.len();
        percent_decode_into(raw, &mut self.arena)?;
        std::str::from_utf8(&self.arena[start..]).map_err(|_| Invalid)?;
        Ok(Text { src: Src::Arena, start: start as u32, end: self.arena.len() as u32 })
    }

    /// A quoted value is one value (quotes removed); otherwise it is split on `,`.
    fn split_values(&mut self, v: Text, input: &[u8], src: Src) {
        debug_assert!(v.src == Src::Arena || v.src == src);
        let buf = if v.src == Src::Arena { &self.arena[..] } else { input };
        let bytes = &buf[v.start as usize..v.end as usize];
        if bytes.len() >= 2 && bytes[0] == b'"' && bytes[bytes.len() - 1] == b'"' {
            self.values.push(Text { start: v.start + 1, end: v.end - 1, ..v });
            return;
        }
        let mut at = v.start;
        for part in bytes.split(|&b| b == b',') {
            let end = at + part.len() as u32;
            self.values.push(Text { start: at, end, ..v });
            at = end + 1;
        }
    }

    fn bytes<'b>(&'b self, t: Text, input: &'b [u8], src: Src) -> &'b [u8] {
        let buf = if t.src == Src::Arena {
            &self.arena[..]
        } else {
            debug_assert_eq!(t.src, src);
            input
        };
        &buf[t.start as usize..t.end as usize]
    }
}

// === impl View ===

impl<'a> View<'a> {
    /// The bytes of `t` (valid UTF-8).
    pub fn text(&self, t: Text) -> &'a [u8] {
        let buf = match t.src {
            Src::Query => self.query,
            Src::Body => self.body,
            Src::Arena => &self.pairs.arena[..],
        };
        &buf[t.start as usize..t.end as usize]
    }

    /// Every pair, in request order.
    pub fn pairs(&self) -> impl Iterator<Item = &'a Pair> + 'a {
        self.pairs.pairs.iter()
    }

    /// The values of `pair`, in order.
    pub fn values(&self, pair: &Pair) -> impl Iterator<Item = &'a [u8]> + 'a {
        let this = *self;
        self.pairs.values[pair.values.start as usize..pair.values.end as usize]
            .iter()
            .map(move |t| this.text(*t))
    }

    /// The request's signals (docs/http-api.md §3.2): every value of every pair that is neither a
    /// control parameter nor sent with the `h_` prefix (only headers make `h_` signals), in
    /// request order; `p_` signals included (they are evaluated, never stored).
    pub fn signals(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
        let this = *self;
        self.pairs()
            .filter(|p| !matches!(p.class, KeyClass::Control | KeyClass::Header))
            .flat_map(move |p| this.values(p).map(move |v| (this.text(p.key), v)))
    }

    /// The first value of the first pair named `key`.
    pub fn first(&self, key: &[u8]) -> Option<&'a [u8]> {
        let p = self.pairs().find(|p| self.text(p.key) == key)?;
        self.values(p).next()
    }

    fn joined(&self, p: &Pair) -> Option<&'a [u8]> {
        let vals = &self.pairs.values[p.values.start as usize..p.values.end as usize];
        let (first, last) = (vals.first()?, vals.last()?);
        Some(self.text(Text { end: last.end, ..*first }))
    }

    /// The whole decoded value of the first pair named `key`, commas included (for control
    /// parameters such as `d_cid`, which are not serialized lists).
    pub fn raw_first(&self, key: &[u8]) -> Option<&'a [u8]> {
        let p = self.pairs().find(|p| self.text(p.key) == key)?;
        self.joined(p)
    }
}

/// Byte classes for the one-pass pair scanner.
const AMP: u8 = 1;
const EQ: u8 = 2;
const COMMA: u8 = 4;
const ESCAPE: u8 = 8;
const NON_ASCII: u8 = 16;

static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    t[b'&' as usize] = AMP;
    t[b'=' as usize] = EQ;
    t[b',' as usize] = COMMA;
    t[b'%' as usize] = ESCAPE;
    t[b'+' as usize] = ESCAPE;
    let mut i = 0x80;
    while i < 256 {
        t[i] = NON_ASCII;
        i += 1;
    }
    t
};

/// One pair's boundaries and what its key and value contain.
struct PairScan {
    key_end: usize,
    value: Range<usize>,
    key_flags: u8,
    value_flags: u8,
    /// Where the next pair starts (one past the `&`, or past the end).
    next: usize,
}

/// Finds the end of the pair at `start`, its first `=`, and the classes of bytes in its key
/// and value, in one pass.
fn scan_pair(input: &[u8], start: usize) -> PairScan {
    let mut key_flags = 0u8;
    let mut value_flags = 0u8;
    let mut eq: Option<usize> = None;
    let mut i = start;
    while i < input.len() {
        let c = CLASS[usize::from(input[i])];
        if c != 0 {
            if c == AMP {
                break;
            }
            match eq {
                None if c == EQ => eq = Some(i),
                None => key_flags |= c,
                Some(_) => value_flags |= c,
            }
        }
        i += 1;
    }
    let (key_end, value) = match eq {
        Some(e) => (e, e + 1..i),
        None => (i, i..i),
    };
    PairScan { key_end, value, key_flags, value_flags: value_flags & !EQ, next: i + 1 }
}

/// The control parameters (docs/http-api.md §4).
#[derive(Clone, Debug, Default)]
pub struct Control<'a> {
    /// `d_rtbd=json`
    pub json: bool,
    /// `d_cb`
    pub callback: Option<&'a [u8]>,
    /// `d_dst=1`
    pub dests: bool,
    /// `d_cts`: 0 (absent or other), 1 (legacy segment IDs) or 2.
    pub cts: u8,
    /// `d_sid` values (trait IDs to realize), every value of every `d_sid` pair.
    pub sids: Vec<&'a [u8]>,
    /// `d_tdpid`
    pub tdpid: Option<&'a [u8]>,
    /// `d_tdpid_ic`
    pub tdpid_ic: Option<&'a [u8]>,
    /// `d_ptfm`
    pub platform: Option<&'a [u8]>,
    /// `gdpr=1`
    pub gdpr: bool,
    /// `gdpr_consent`
    pub gdpr_consent: Option<&'a [u8]>,
    /// `d_uuid`
    pub uuid: Option<&'a [u8]>,
    /// `d_coppa=1`
    pub coppa: bool,
    /// `d_mid`: the Experience Cloud ID.
    pub mid: Option<&'a [u8]>,
    /// `d_orgid`
    pub orgid: Option<&'a [u8]>,
    /// Declared IDs in request order: `d_cid`, `d_cid_ic`, then the legacy pairs (allocates
    /// only when the request has some).
    pub declared: Vec<Raw<'a>>,
}

// === impl Control ===

impl<'a> Control<'a> {
    /// From decoded pairs, in one pass; the first occurrence of a single-valued key wins.
    pub fn from_view(v: &View<'a>) -> Control<'a> {
        let mut c = Control::default();
        let (mut rtbd, mut coppa, mut dst, mut cts, mut gdpr) = (None, None, None, None, None);
        let mut legacy: [Option<&'a [u8]>; 4] = [None; 4]; // d_dpid, d_dpuuid, dpid, dpuuid
        let mut ic = Vec::new();
        for p in v.pairs().filter(|p| p.class == KeyClass::Control) {
            let key = v.text(p.key);
            let slot = match key {
                b"d_rtbd" => &mut rtbd,
                b"d_cb" => &mut c.callback,
                b"d_dst" => &mut dst,
                b"d_cts" => &mut cts,
                b"d_tdpid" => &mut c.tdpid,
                b"d_tdpid_ic" => &mut c.tdpid_ic,
                b"d_ptfm" => &mut c.platform,
                b"gdpr" => &mut gdpr,
                b"gdpr_consent" => &mut c.gdpr_consent,
                b"d_sid" => {
                    c.sids.extend(v.values(p));
                    continue;
                }
                b"d_uuid" => &mut c.uuid,
                b"d_coppa" => &mut coppa,
                b"d_mid" => &mut c.mid,
                b"d_orgid" => &mut c.orgid,
                b"d_dpid" => &mut legacy[0],
                b"d_dpuuid" => &mut legacy[1],
                b"dpid" => &mut legacy[2],
                b"dpuuid" => &mut legacy[3],
                b"d_cid" | b"d_cid_ic" => {
                    let raw = v.joined(p).unwrap_or_default();
                    if key == b"d_cid" {
                        c.declared.push(Raw::Cid(raw))
                    } else {
                        ic.push(Raw::CidIc(raw))
                    }
                    continue;
                }
                _ => continue,
            };
            if slot.is_none() {
                *slot = v.joined(p);
            }
        }
        c.json = rtbd == Some(&b"json"[..]);
        c.coppa = coppa == Some(&b"1"[..]);
        c.dests = dst == Some(&b"1"[..]);
        c.gdpr = gdpr == Some(&b"1"[..]);
        c.cts = match cts {
            Some(b"1") => 1,
            Some(b"2") => 2,
            _ => 0,
        };
        c.declared.extend(ic);
        for pair in legacy.chunks(2) {
            if let [Some(dpid), Some(id)] = pair {
                c.declared.push(Raw::Pair(dpid, id));
            }
        }
        c
    }

    /// For an invalid request (311), whose pairs are not decoded: only the answer's form
    /// (`d_rtbd`, `d_cb`) is read, from the raw bytes.
    pub fn scan_raw(query: &'a [u8], form: &'a [u8]) -> Control<'a> {
        let (mut rtbd, mut callback) = (None, None);
        for pair in query.split(|&b| b == b'&').chain(form.split(|&b| b == b'&')) {
            let (k, v) = match pair.iter().position(|&b| b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &b""[..]),
            };
            match k {
                b"d_rtbd" => _ = rtbd.get_or_insert(v),
                b"d_cb" => _ = callback.get_or_insert(v),
                _ => {}
            }
        }
        Control { json: rtbd == Some(&b"json"[..]), callback, ..Control::default() }
    }
}

/// The class of a decoded key.
pub fn classify(key: &[u8]) -> KeyClass {
    match key {
        b"d_rtbd" | b"d_cb" | b"d_dst" | b"d_cts" | b"d_uuid" | b"d_mid" | b"d_orgid" | b"d_cid"
        | b"d_cid_ic" | b"d_dpid" | b"d_dpuuid" | b"dpid" | b"dpuuid" | b"d_sid" | b"d_tdpid"
        | b"d_tdpid_ic" | b"d_ptfm" | b"d_jsonv" | b"d_coppa" | b"d_nsid" | b"d_caller" | b"d_ld"
        | b"d_bust" | b"_ts" | b"gdpr" | b"gdpr_consent" => KeyClass::Control,
        [b'c', b'_', ..] => KeyClass::Customer,
        [b'd', b'_', ..] => KeyClass::Platform,
        [b'h', b'_', ..] => KeyClass::Header,
        [b'p', b'_', ..] => KeyClass::Private,
        _ => KeyClass::Unprefixed,
    }
}

/// Appends the percent- and `+`-decoding of `raw`.
///
/// # Errors
/// [`Invalid`] for a `%` not followed by two hex digits.
pub fn percent_decode_into(raw: &[u8], out: &mut Vec<u8>) -> Result<(), Invalid> {
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'%' => {
                let hi = raw.get(i + 1).and_then(|&b| hex(b)).ok_or(Invalid)?;
                let lo = raw.get(i + 2).and_then(|&b| hex(b)).ok_or(Invalid)?;
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(())
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `^[A-Za-z_$][A-Za-z0-9_$.]{0,63}$` (docs/http-api.md §4).
pub fn valid_callback(cb: &[u8]) -> bool {
    let first_ok = |b: u8| b.is_ascii_alphabetic() || b == b'_' || b == b'$';
    match cb.split_first() {
        Some((&f, rest)) => {
            first_ok(f)
                && rest.len() <= 63
                && rest.iter().all(|&b| first_ok(b) || b.is_ascii_digit() || b == b'.')
        }
        None => false,
    }
}

#[cfg(test)]
mod tests;

//! Segment rules (docs/taxonomy.md §3): parser, compiled programs and evaluation over a profile's
//! realization history.
//!
//! ```text
//! seg   := or;  or := and ("OR" and)*;  and := unary ("AND" unary)*
//! unary := "NOT" unary | "(" or ")" | TRAIT | freq
//! TRAIT := DIGITS "T"
//! freq  := "FREQUENCY" "(" "[" TRAIT ("," TRAIT)* "]" (("<=" | ">=") DIGITS "D")? ")"
//!          (">=" | "<=" | "==") DIGITS
//! ```
//! Keywords and the `T`/`D` suffixes are case-insensitive. Error positions are byte offsets
//! from 0.
//!
//! Semantics, with `today` the current UTC day and `ttl` the taxonomy's `trait_ttl_days`:
//! * a realization on day `d` is *live* when `today - d < ttl`; older ones count for nothing;
//! * `123T` holds when the profile has a live realization of trait 123;
//! * `FREQUENCY([..])` sums the live realizations of the listed traits (one per request and
//!   trait); `<= ND` keeps days with `today - d < N` (the last N UTC days, today included),
//!   `>= ND` keeps days with `today - d >= N` (older than that), so the two partition
//!   history. `N` must be at least 1.
//!
//! A rule that holds for a profile with no realization at all (`NOT 1T`,
//! `FREQUENCY([1T]) <= 5`) is rejected at load. That is also what makes the trait → segment
//! index sound: a segment none of whose traits the profile holds live cannot match, so only
//! segments mentioning a live trait of the profile are evaluated.

use rustc_hash::FxHashMap;

use super::lex::{err, BoolGrammar, Cursor, RuleError};
use crate::table::Profile;

/// A parsed segment rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SegExpr {
    /// `123T` and its byte offset.
    Trait(u32, usize),
    /// `FREQUENCY(...) CMP N`.
    Freq(Freq),
    /// Negation.
    Not(Box<SegExpr>),
    /// Conjunction (two or more).
    And(Vec<SegExpr>),
    /// Disjunction (two or more).
    Or(Vec<SegExpr>),
}

/// A frequency term.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Freq {
    /// The traits counted (ORed) and their byte offsets.
    pub traits: Vec<(u32, usize)>,
    /// `<= ND` (`Some((true, N))`) or `>= ND` (`Some((false, N))`).
    pub recency: Option<(bool, u16)>,
    /// How the count compares.
    pub cmp: CountCmp,
    /// The right-hand side.
    pub n: u32,
}

/// Frequency comparisons.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CountCmp {
    /// `>=`.
    Ge,
    /// `<=`.
    Le,
    /// `==`.
    Eq,
}

/// Compiled segments of a taxonomy.
#[derive(Debug, Default)]
pub(super) struct SegmentIndex {
    /// Segment IDs, ascending (a segment's index is its rank).
    pub(super) sids: Vec<u32>,
    /// Legacy IDs per segment.
    legacy: Vec<Option<u64>>,
    /// Customer per segment.
    customers: Vec<u32>,
    /// Root node per segment.
    roots: Vec<u32>,
    /// (customer, trait ID) → segments mentioning it: `by_trait_list[start..start + len]`.
    by_trait: FxHashMap<(u32, u32), (u32, u32)>,
    by_trait_list: Vec<u32>,
    /// (customer, trait, segment) triples until `finish`.
    pending: Vec<(u32, u32, u32)>,
    /// Program nodes of all segments.
    nodes: Vec<Node>,
    /// Children of `And`/`Or` nodes and trait lists of frequency terms.
    lists: Vec<u32>,
    /// Frequency terms.
    freqs: Vec<FreqNode>,
    /// Realization lifetime, days.
    ttl_days: u32,
}

#[derive(Clone, Copy, Debug)]
enum Node {
    Trait(u32),
    Freq(u32),
    Not(u32),
    And(u32, u32),
    Or(u32, u32),
}

#[derive(Clone, Copy, Debug)]
struct FreqNode {
    traits: (u32, u32),
    recency: Option<(bool, u16)>,
    cmp: CountCmp,
    n: u32,
}

/// Tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tok<'a> {
    Open(u8),
    Close(u8),
    Comma,
    Cmp(&'static str),
    /// Digits and an optional letter suffix (`T`, `D`, upper case).
    Num(u64, Option<u8>),
    Word(&'a [u8]),
    End,
}

struct Parser<'a> {
    cur: Cursor<'a>,
}

/// Parses a segment rule.
///
/// # Errors
/// The first syntax error, with its byte offset.
pub fn parse(rule: &str) -> Result<SegExpr, RuleError> {
    let mut p = Parser { cur: Cursor::new(rule) };
    let e = p.or()?;
    match p.next()? {
        (Tok::End, _) => Ok(e),
        (_, at) => Err(err(at, "expected AND, OR or end of rule")),
    }
}

// === impl SegExpr ===

impl SegExpr {
    /// Every trait ID it mentions, with its byte offset.
    pub fn traits(&self, out: &mut Vec<(u32, usize)>) {
        match self {
            SegExpr::Trait(t, at) => out.push((*t, *at)),
            SegExpr::Freq(f) => out.extend(&f.traits),
            SegExpr::Not(e) => e.traits(out),
            SegExpr::And(es) | SegExpr::Or(es) => es.iter().for_each(|e| e.traits(out)),
        }
    }
}

// === impl SegmentIndex ===

impl SegmentIndex {
    /// An empty index for realizations that live `ttl_days`.
    pub(super) fn new(ttl_days: u32) -> SegmentIndex {
        SegmentIndex { ttl_days, ..SegmentIndex::default() }
    }

    /// Adds a segment (call in ascending `sid` order). `Err` names why it is rejected.
    pub(super) fn add(
        &mut self,
        sid: u32,
        legacy: Option<u64>,
        customer: u32,
        e: &SegExpr,
    ) -> Result<(), String> {
        let root = self.node(e);
        if self.eval(root, &Profile::default(), u16::MAX / 2) {
            return Err("matches a profile that never realized any of its traits \
                        (combine it with a trait or FREQUENCY(...) >= 1)"
                .into());
        }
        let seg = self.sids.len() as u32;
        self.sids.push(sid);
        self.legacy.push(legacy);
        self.customers.push(customer);
        self.roots.push(root);
        let mut ts = Vec::new();
        e.traits(&mut ts);
        self.pending.extend(ts.into_iter().map(|(t, _)| (customer, t, seg)));
        Ok(())
    }

    /// Lays the (customer, trait) → segments lists out contiguously.
    pub(super) fn finish(&mut self) {
        let mut pending = std::mem::take(&mut self.pending);
        pending.sort_unstable();
        pending.dedup();
        self.by_trait_list = pending.iter().map(|p| p.2).collect();
        let mut start = 0;
        for group in pending.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)) {
            self.by_trait.insert((group[0].0, group[0].1), (start, group.len() as u32));
            start += group.len() as u32;
        }
    }

    /// The segments of `customer` that `profile` is in on UTC day `today`, ascending.
    pub(super) fn segments(&self, profile: &Profile, today: u16, customer: u32, out: &mut Vec<u32>) {
        out.clear();
        let live_from = self.live_from(today);
        let mut last = None;
        for r in profile.all_realizations() {
            // Newest day first per trait: the first entry decides liveness.
            if last.replace(r.trait_id) == Some(r.trait_id) || u32::from(r.day) < live_from {
                continue;
            }
            if let Some(&(start, len)) = self.by_trait.get(&(customer, r.trait_id)) {
                out.extend_from_slice(&self.by_trait_list[start as usize..(start + len) as usize]);
            }
        }
        out.sort_unstable();
        out.dedup();
        out.retain(|&seg| self.eval(self.roots[seg as usize], profile, today));
        for seg in out.iter_mut() {
            *seg = self.sids[*seg as usize];
        }
    }

    /// The legacy ID of segment `sid`.
    pub(super) fn legacy_id(&self, sid: u32) -> Option<u64> {
        self.sids.binary_search(&sid).ok().and_then(|i| self.legacy[i])
    }

    /// The customer of segment `sid`.
    pub(super) fn customer(&self, sid: u32) -> Option<u32> {
        self.sids.binary_search(&sid).ok().map(|i| self.customers[i])
    }

    /// First live day.
    fn live_from(&self, today: u16) -> u32 {
        (u32::from(today) + 1).saturating_sub(self.ttl_days)
    }

    fn eval(&self, node: u32, p: &Profile, today: u16) -> bool {
        let kids = |a: u32, n: u32| self.lists[a as usize..(a + n) as usize].iter();
        match self.nodes[node as usize] {
            Node::Trait(t) => p
                .realizations(t)
                .first()
                .is_some_and(|r| u32::from(r.day) >= self.live_from(today) && self.ttl_days > 0),
            Node::Freq(f) => self.freq(&self.freqs[f as usize], p, today),
            Node::Not(c) => !self.eval(c, p, today),
            Node::And(a, n) => kids(a, n).all(|&c| self.eval(c, p, today)),
            Node::Or(a, n) => kids(a, n).any(|&c| self.eval(c, p, today)),
        }
    }

    fn freq(&self, f: &FreqNode, p: &Profile, today: u16) -> bool {
        let today32 = u32::from(today);
        let mut first = self.live_from(today);
        let mut last = u32::from(u16::MAX);
        if self.ttl_days == 0 {
            first = last + 1;
        }
        match f.recency {
            Some((true, n)) => first = first.max((today32 + 1).saturating_sub(u32::from(n))),
            Some((false, n)) if today32 < u32::from(n) => first = last + 1,
            Some((false, n)) => last = today32 - u32::from(n),
            None => {}
        }
        let count: u32 = if first > last {
            0
        } else {
            let (a, b) = (first as u16, last as u16); // both ≤ u16::MAX here
            let ts = &self.lists[f.traits.0 as usize..(f.traits.0 + f.traits.1) as usize];
            ts.iter().map(|&t| p.frequency(t, a, b)).sum()
        };
        match f.cmp {
            CountCmp::Ge => count >= f.n,
            CountCmp::Le => count <= f.n,
            CountCmp::Eq => count == f.n,
        }
    }

    fn node(&mut self, e: &SegExpr) -> u32 {
        let n = match e {
            SegExpr::Trait(t, _) => Node::Trait(*t),
            SegExpr::Freq(f) => {
                let start = self.lists.len() as u32;
                self.lists.extend(f.traits.iter().map(|t| t.0));
                let traits = (start, f.traits.len() as u32);
                self.freqs.push(FreqNode { traits, recency: f.recency, cmp: f.cmp, n: f.n });
                Node::Freq(self.freqs.len() as u32 - 1)
            }
            SegExpr::Not(inner) => Node::Not(self.node(inner)),
            SegExpr::And(es) | SegExpr::Or(es) => {
                let kids: Vec<u32> = es.iter().map(|e| self.node(e)).collect();
                let start = self.lists.len() as u32;
                self.lists.extend(&kids);
                let len = kids.len() as u32;
                if matches!(e, SegExpr::And(_)) {
                    Node::And(start, len)
                } else {
                    Node::Or(start, len)
                }
            }
        };
        self.nodes.push(n);
        self.nodes.len() as u32 - 1
    }
}

// === impl Parser ===

impl<'a> BoolGrammar for Parser<'a> {
    type Expr = SegExpr;

    fn keyword(&mut self, kw: &str) -> bool {
        self.cur.keyword(kw, |b| b.is_ascii_alphabetic())
    }

    fn all(terms: Vec<SegExpr>) -> SegExpr {
        SegExpr::And(terms)
    }

    fn any(terms: Vec<SegExpr>) -> SegExpr {
        SegExpr::Or(terms)
    }

    fn unary(&mut self) -> Result<SegExpr, RuleError> {
        let (tok, at) = self.next()?;
        self.cur.enter(at)?;
        let e = match tok {
            Tok::Word(w) if w.eq_ignore_ascii_case(b"not") => SegExpr::Not(Box::new(self.unary()?)),
            Tok::Open(b'(') => {
                let e = self.or()?;
                self.expect(Tok::Close(b')'), "expected ')'")?;
                e
            }
            Tok::Num(..) => SegExpr::Trait(trait_id(tok, at)?, at),
            Tok::Word(w) if w.eq_ignore_ascii_case(b"frequency") => SegExpr::Freq(self.freq()?),
            _ => return Err(err(at, "expected a trait (123T), FREQUENCY, NOT or '('")),
        };
        self.cur.leave();
        Ok(e)
    }
}

impl<'a> Parser<'a> {
    fn freq(&mut self) -> Result<Freq, RuleError> {
        self.expect(Tok::Open(b'('), "expected '(' after FREQUENCY")?;
        self.expect(Tok::Open(b'['), "expected '['")?;
        let mut traits = Vec::new();
        loop {
            let (tok, at) = self.next()?;
            traits.push((trait_id(tok, at)?, at));
            match self.next()? {
                (Tok::Comma, _) => {}
                (Tok::Close(b']'), _) => break,
                (_, at) => return Err(err(at, "expected ',' or ']'")),
            }
        }
        let recency = match self.next()? {
            (Tok::Close(b')'), _) => None,
            (Tok::Cmp(op @ ("<=" | ">=")), _) => {
                let (tok, at) = self.next()?;
                let n = match tok {
                    Tok::Num(n @ 1..=0xFFFF, Some(b'D')) => n as u16,
                    Tok::Num(_, Some(b'D')) => return Err(err(at, "recency must be 1 to 65535 days")),
                    _ => return Err(err(at, "expected days (7D)")),
                };
                self.expect(Tok::Close(b')'), "expected ')'")?;
                Some((op == "<=", n))
            }
            (_, at) => return Err(err(at, "expected ')', '<=' or '>='")),
        };
        let cmp = match self.next()? {
            (Tok::Cmp(">="), _) => CountCmp::Ge,
            (Tok::Cmp("<="), _) => CountCmp::Le,
            (Tok::Cmp("=="), _) => CountCmp::Eq,
            (_, at) => return Err(err(at, "expected '>=', '<=' or '=='")),
        };
        let n = match self.next()? {
            (Tok::Num(n, None), _) if n <= u64::from(u32::MAX) => n as u32,
            (_, at) => return Err(err(at, "expected a count")),
        };
        Ok(Freq { traits, recency, cmp, n })
    }

    fn expect(&mut self, want: Tok<'_>, msg: &str) -> Result<(), RuleError> {
        match self.next()? {
            (tok, _) if tok == want => Ok(()),
            (_, at) => Err(err(at, msg)),
        }
    }

    fn next(&mut self) -> Result<(Tok<'a>, usize), RuleError> {
        let (at, first) = self.cur.start();
        let Some(b) = first else { return Ok((Tok::End, at)) };
        let s = self.cur.src;
        let two = &s[at..(at + 2).min(s.len())];
        let (tok, len) = match b {
            b'(' | b'[' => (Tok::Open(b), 1),
            b')' | b']' => (Tok::Close(b), 1),
            b',' => (Tok::Comma, 1),
            _ if two == b">=" => (Tok::Cmp(">="), 2),
            _ if two == b"<=" => (Tok::Cmp("<="), 2),
            _ if two == b"==" => (Tok::Cmp("=="), 2),
            b'0'..=b'9' => return self.number(at),
            _ if b.is_ascii_alphabetic() => {
                let w = self.cur.word(at, |b| b.is_ascii_alphabetic());
                (Tok::Word(w), w.len())
            }
            _ => return Err(err(at, "unexpected character")),
        };
        self.cur.pos = at + len;
        Ok((tok, at))
    }

    fn number(&mut self, at: usize) -> Result<(Tok<'a>, usize), RuleError> {
        let s = self.cur.src;
        let len = s[at..].iter().take_while(|b| b.is_ascii_digit()).count();
        let n = std::str::from_utf8(&s[at..at + len])
            .ok()
            .and_then(|d| d.parse::<u64>().ok())
            .ok_or_else(|| err(at, "number too large"))?;
        self.cur.pos = at + len;
        let suffix = match s.get(self.cur.pos) {
            Some(c @ (b'T' | b't' | b'D' | b'd')) => {
                self.cur.pos += 1;
                Some(c.to_ascii_uppercase())
            }
            _ => None,
        };
        if s.get(self.cur.pos).is_some_and(u8::is_ascii_alphanumeric) {
            return Err(err(at, "unexpected character after number"));
        }
        Ok((Tok::Num(n, suffix), at))
    }
}

fn trait_id(tok: Tok<'_>, at: usize) -> Result<u32, RuleError> {
    match tok {
        Tok::Num(n, Some(b'T')) => u32::try_from(n).map_err(|_| err(at, "trait ID does not fit in 32 bits")),
        _ => Err(err(at, "expected a trait (123T)")),
    }
}

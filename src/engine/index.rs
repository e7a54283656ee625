//! The compiled trait index (docs/architecture.md §3): from a request's signals to the rule traits they
//! realize, at a cost that grows with the signals, not with the traits.
//!
//! Every distinct comparison of every rule is one *leaf*. Per key (interned to a `u32`):
//! * string `==` → a hash map value → leaf;
//! * numeric `==`, `<`, `<=`, `>`, `>=` → sorted bounds, one binary search per value, then
//!   only the leaves that hold are touched;
//! * `contains` / `startswith` / `endswith` → direct checks, or one Aho-Corasick automaton
//!   (overlapping matches; start/end positions decide the anchored operators) when the key
//!   has [`AC_MIN_PATTERNS`] or more patterns;
//! * `matchesregex` → the key's regexes, each tried (regexes are rare; their cost is paid
//!   only by values of keys that have them);
//! * `!=` → after all signals, for each present key: fired unless its `==` twin fired.
//!
//! A fired leaf realizes its single-leaf traits directly and queues its compound rules, which
//! are then evaluated once each over the set of fired leaves. A compound rule that is true
//! when no leaf fires (`NOT a == 1`) sits on an "always" list and is evaluated for every
//! request; the generator makes none.
//!
//! The index is immutable and shared; per-request state lives in the caller's [`Scratch`]
//! (one per core), which stops allocating once it has grown to the taxonomy's size.

use aho_corasick::{AhoCorasick, MatchKind};
use regex::bytes::Regex;
use rustc_hash::FxHashMap;

use super::rule::{number, Cmp, Expr, Op, Operand};

/// Keys with at least this many `contains`/`startswith`/`endswith` patterns get an automaton.
pub const AC_MIN_PATTERNS: usize = 4;

/// Marks a consumer that is a compound rule rather than a trait.
const RULE_BIT: u32 = 1 << 31;

/// Per-core, reusable state for one request's evaluation.
#[derive(Debug, Default)]
pub struct Scratch {
    /// Current request's generation; a stamp equal to it means "set in this request".
    gen: u32,
    /// Per leaf: generation in which it fired.
    leaf_stamp: Vec<u32>,
    /// Leaves fired in this request.
    fired: Vec<u32>,
    /// Per key: generation in which it was present.
    key_stamp: Vec<u32>,
    /// Present keys that have `!=` leaves.
    ne_keys: Vec<u32>,
    /// Per compound rule: generation in which it was queued.
    rule_stamp: Vec<u32>,
    /// Compound rules to evaluate.
    rules: Vec<u32>,
    /// Per trait: generation in which it was realized.
    pub(super) trait_stamp: Vec<u32>,
}

/// The compiled rules.
#[derive(Debug, Default)]
pub(super) struct TraitIndex {
    /// Key bytes → key ID.
    keys: FxHashMap<Box<[u8]>, u32>,
    /// Per key ID.
    per_key: Vec<KeyIndex>,
    /// Consumers of leaf `l`: `consumers[starts[l]..starts[l + 1]]`.
    starts: Vec<u32>,
    /// Trait indexes, or `RULE_BIT | rule` for compound rules.
    consumers: Vec<u32>,
    /// Compound rules: (trait index, root node).
    rules: Vec<(u32, u32)>,
    /// Boolean program nodes of all compound rules.
    nodes: Vec<Node>,
    /// Child lists of `And`/`Or` nodes.
    children: Vec<u32>,
    /// Compound rules true when no leaf fires.
    always: Vec<u32>,
}

/// Everything about one key.
#[derive(Debug, Default)]
struct KeyIndex {
    /// String `==` operand → leaf.
    eq: FxHashMap<Box<[u8]>, u32>,
    /// Numeric comparisons.
    num: Option<Box<NumIndex>>,
    /// Patterns checked one by one: (op, pattern, leaf).
    direct: Vec<Pattern>,
    /// Automaton over many patterns, and (op, leaf) per pattern ID.
    ac: Option<(AhoCorasick, Vec<(Op, u32)>)>,
    /// Regexes and their leaves.
    regex: Vec<(Regex, u32)>,
    /// `!=` leaves and their `==` twins.
    ne: Vec<(u32, u32)>,
}

/// A string operator, its pattern and its leaf.
type Pattern = (Op, Box<[u8]>, u32);

/// Sorted (bound, leaf) lists per numeric operator.
#[derive(Debug, Default)]
struct NumIndex {
    eq: Vec<(f64, u32)>,
    lt: Vec<(f64, u32)>,
    le: Vec<(f64, u32)>,
    gt: Vec<(f64, u32)>,
    ge: Vec<(f64, u32)>,
}

/// A node of a compound rule's program.
#[derive(Clone, Copy, Debug)]
enum Node {
    Leaf(u32),
    Not(u32),
    And(u32, u32),
    Or(u32, u32),
}

/// Builds a [`TraitIndex`].
#[derive(Default)]
pub(super) struct Builder {
    index: TraitIndex,
    /// (key, op, operand identity) → leaf.
    leaves: FxHashMap<(u32, Op, LeafVal), u32>,
    /// Consumers per leaf, before flattening.
    leaf_consumers: Vec<Vec<u32>>,
    /// Patterns per key waiting for the automaton decision.
    patterns: Vec<Vec<Pattern>>,
}

/// Operand identity for de-duplicating leaves.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum LeafVal {
    Num(u64),
    Str(Box<[u8]>),
}

// === impl Scratch ===

impl Scratch {
    /// Grows the arrays to the index's sizes and starts a new generation.
    pub(super) fn begin(&mut self, leaves: usize, keys: usize, rules: usize, traits: usize) {
        for (v, n) in [
            (&mut self.leaf_stamp, leaves),
            (&mut self.key_stamp, keys),
            (&mut self.rule_stamp, rules),
            (&mut self.trait_stamp, traits),
        ] {
            if v.len() < n {
                v.resize(n, 0);
            }
        }
        if self.gen == u32::MAX {
            // Wrapped: forget every stamp so that none can look current.
            for v in [&mut self.leaf_stamp, &mut self.key_stamp, &mut self.rule_stamp, &mut self.trait_stamp]
            {
                v.fill(0);
            }
            self.gen = 0;
        }
        self.gen += 1;
        self.fired.clear();
        self.ne_keys.clear();
        self.rules.clear();
    }

    /// Whether trait `t` is new in this request (and marks it).
    pub(super) fn first_time(&mut self, t: u32) -> bool {
        let s = &mut self.trait_stamp[t as usize];
        let first = *s != self.gen;
        *s = self.gen;
        first
    }

    fn fire(&mut self, leaf: u32) {
        let s = &mut self.leaf_stamp[leaf as usize];
        if *s != self.gen {
            *s = self.gen;
            self.fired.push(leaf);
        }
    }

    fn has_fired(&self, leaf: u32) -> bool {
        self.leaf_stamp[leaf as usize] == self.gen
    }
}

// === impl TraitIndex ===

impl TraitIndex {
    /// Number of compound rules evaluated for every request.
    pub(super) fn always_len(&self) -> usize {
        self.always.len()
    }

    /// Number of leaves, keys and compound rules (the scratch sizes).
    pub(super) fn sizes(&self) -> (usize, usize, usize) {
        (self.starts.len().saturating_sub(1), self.per_key.len(), self.rules.len())
    }

    /// Fires the leaves of one signal.
    /// Whether some rule tests `key`.
    pub(super) fn has_key(&self, key: &[u8]) -> bool {
        self.keys.contains_key(key)
    }

    pub(super) fn signal(&self, s: &mut Scratch, key: &[u8], value: &[u8]) {
        let Some(&k) = self.keys.get(key) else { return };
        let ki = &self.per_key[k as usize];
        if !ki.ne.is_empty() && s.key_stamp[k as usize] != s.gen {
            s.key_stamp[k as usize] = s.gen;
            s.ne_keys.push(k);
        }
        if let Some(&l) = ki.eq.get(value) {
            s.fire(l);
        }
        if let Some(num) = &ki.num {
            if let Some(x) = number(value) {
                num.fire(s, x);
            }
        }
        for (op, pat, l) in &ki.direct {
            if pattern_matches(*op, pat, value) {
                s.fire(*l);
            }
        }
        if let Some((ac, ops)) = &ki.ac {
            for m in ac.find_overlapping_iter(value) {
                let (op, l) = ops[m.pattern().as_usize()];
                let hit = match op {
                    Op::StartsWith => m.start() == 0,
                    Op::EndsWith => m.end() == value.len(),
                    _ => true,
                };
                if hit {
                    s.fire(l);
                }
            }
        }
        for (re, l) in &ki.regex {
            if !s.has_fired(*l) && re.is_match(value) {
                s.fire(*l);
            }
        }
    }

    /// After all signals: fires `!=` leaves, then calls `emit` with every trait index whose
    /// rule holds (possibly more than once; `emit` filters).
    pub(super) fn finish(&self, s: &mut Scratch, mut emit: impl FnMut(&mut Scratch, u32)) {
        for i in 0..s.ne_keys.len() {
            let k = s.ne_keys[i];
            for &(ne, eq) in &self.per_key[k as usize].ne {
                if !s.has_fired(eq) {
                    s.fire(ne);
                }
            }
        }
        for i in 0..s.fired.len() {
            let l = s.fired[i] as usize;
            for &c in &self.consumers[self.starts[l] as usize..self.starts[l + 1] as usize] {
                if c & RULE_BIT == 0 {
                    emit(s, c);
                } else if s.rule_stamp[(c & !RULE_BIT) as usize] != s.gen {
                    s.rule_stamp[(c & !RULE_BIT) as usize] = s.gen;
                    s.rules.push(c & !RULE_BIT);
                }
            }
        }
        for &r in &self.always {
            let (t, root) = self.rules[r as usize];
            if self.eval(root, &|l| s.has_fired(l)) {
                emit(s, t);
            }
        }
        for i in 0..s.rules.len() {
            let (t, root) = self.rules[s.rules[i] as usize];
            if self.eval(root, &|l| s.has_fired(l)) {
                emit(s, t);
            }
        }
    }

    /// Evaluates a compound rule's program; `fired` says whether a leaf fired.
    fn eval(&self, node: u32, fired: &dyn Fn(u32) -> bool) -> bool {
        let kids = |a: u32, n: u32| self.children[a as usize..(a + n) as usize].iter();
        match self.nodes[node as usize] {
            Node::Leaf(l) => fired(l),
            Node::Not(c) => !self.eval(c, fired),
            Node::And(a, n) => kids(a, n).all(|&c| self.eval(c, fired)),
            Node::Or(a, n) => kids(a, n).any(|&c| self.eval(c, fired)),
        }
    }
}

fn pattern_matches(op: Op, pat: &[u8], v: &[u8]) -> bool {
    match op {
        Op::StartsWith => v.starts_with(pat),
        Op::EndsWith => v.ends_with(pat),
        _ => pat.is_empty() || memchr::memmem::find(v, pat).is_some(),
    }
}

// === impl NumIndex ===

impl NumIndex {
    fn fire(&self, s: &mut Scratch, x: f64) {
        let below = |v: &[(f64, u32)]| v.partition_point(|(b, _)| *b < x);
        let upto = |v: &[(f64, u32)]| v.partition_point(|(b, _)| *b <= x);
        let ranges = [
            (&self.eq, below(&self.eq), upto(&self.eq)),
            (&self.gt, 0, below(&self.gt)),
            (&self.ge, 0, upto(&self.ge)),
            (&self.lt, upto(&self.lt), self.lt.len()),
            (&self.le, below(&self.le), self.le.len()),
        ];
        for (v, lo, hi) in ranges {
            for &(_, l) in &v[lo..hi] {
                s.fire(l);
            }
        }
    }

    fn list(&mut self, op: Op) -> &mut Vec<(f64, u32)> {
        match op {
            Op::Lt => &mut self.lt,
            Op::Le => &mut self.le,
            Op::Gt => &mut self.gt,
            Op::Ge => &mut self.ge,
            _ => &mut self.eq,
        }
    }
}

// === impl Builder ===

impl Builder {
    /// Adds the rule of trait index `t`.
    ///
    /// # Errors
    /// A regex that does not compile: (byte offset in the rule, message).
    pub(super) fn add(&mut self, t: u32, e: &Expr) -> Result<(), (usize, String)> {
        if let Expr::Cmp(c) = e {
            let l = self.leaf(c)?;
            self.leaf_consumers[l as usize].push(t);
            return Ok(());
        }
        let r = self.index.rules.len() as u32;
        let root = self.node(e, r)?;
        self.index.rules.push((t, root));
        if self.index.eval(root, &|_| false) {
            self.index.always.push(r);
        }
        Ok(())
    }

    /// Flattens the consumer lists and builds the per-key automata.
    pub(super) fn build(mut self) -> TraitIndex {
        let mut starts = Vec::with_capacity(self.leaf_consumers.len() + 1);
        starts.push(0);
        for mut c in self.leaf_consumers {
            c.sort_unstable();
            c.dedup();
            self.index.consumers.extend(c);
            starts.push(self.index.consumers.len() as u32);
        }
        self.index.starts = starts;
        for (k, pats) in self.patterns.into_iter().enumerate() {
            let ki = &mut self.index.per_key[k];
            let (long, short): (Vec<_>, Vec<_>) = pats.into_iter().partition(|(_, p, _)| !p.is_empty());
            ki.direct = short;
            if long.len() < AC_MIN_PATTERNS {
                ki.direct.extend(long);
                continue;
            }
            let ac =
                AhoCorasick::builder().match_kind(MatchKind::Standard).build(long.iter().map(|(_, p, _)| p));
            match ac {
                Ok(ac) => ki.ac = Some((ac, long.iter().map(|(op, _, l)| (*op, *l)).collect())),
                Err(_) => ki.direct.extend(long), // too big for an automaton: check one by one
            }
        }
        for ki in &mut self.index.per_key {
            if let Some(n) = &mut ki.num {
                for op in [Op::Eq, Op::Lt, Op::Le, Op::Gt, Op::Ge] {
                    n.list(op).sort_by(|a, b| a.0.total_cmp(&b.0));
                }
            }
        }
        self.index
    }

    fn node(&mut self, e: &Expr, r: u32) -> Result<u32, (usize, String)> {
        let n = match e {
            Expr::Cmp(c) => {
                let l = self.leaf(c)?;
                self.leaf_consumers[l as usize].push(RULE_BIT | r);
                Node::Leaf(l)
            }
            Expr::Not(inner) => Node::Not(self.node(inner, r)?),
            Expr::And(es) | Expr::Or(es) => {
                let kids = es.iter().map(|e| self.node(e, r)).collect::<Result<Vec<_>, _>>()?;
                let start = self.index.children.len() as u32;
                self.index.children.extend(&kids);
                let len = kids.len() as u32;
                if matches!(e, Expr::And(_)) {
                    Node::And(start, len)
                } else {
                    Node::Or(start, len)
                }
            }
        };
        self.index.nodes.push(n);
        Ok(self.index.nodes.len() as u32 - 1)
    }

    /// The leaf of a comparison, created (and indexed) on first use.
    fn leaf(&mut self, c: &Cmp) -> Result<u32, (usize, String)> {
        let k = self.key(&c.key);
        let val = match (&c.op, &c.value) {
            (Op::Eq | Op::Ne, Operand::Num(n, _)) => LeafVal::Num(n.to_bits()),
            (Op::Lt | Op::Le | Op::Gt | Op::Ge, o) => {
                LeafVal::Num(o.as_number().unwrap_or(f64::NAN).to_bits())
            }
            (_, o) => LeafVal::Str(o.text().into()),
        };
        let id = (k, c.op, val);
        if let Some(&l) = self.leaves.get(&id) {
            return Ok(l);
        }
        let regex = match c.op {
            Op::Regex => Some(compile_regex(c)?),
            _ => None,
        };
        let l = self.leaf_consumers.len() as u32;
        self.leaf_consumers.push(Vec::new());
        self.leaves.insert(id, l);
        let ki = &mut self.index.per_key[k as usize];
        match (c.op, &c.value) {
            (Op::Ne, _) => {
                let twin = self.leaf(&Cmp { op: Op::Eq, ..c.clone() })?;
                self.index.per_key[k as usize].ne.push((l, twin));
            }
            (Op::Eq, Operand::Str(s)) => {
                ki.eq.insert(s.clone(), l);
            }
            (Op::Eq | Op::Lt | Op::Le | Op::Gt | Op::Ge, o) => {
                let b = o.as_number().unwrap_or(f64::NAN);
                ki.num.get_or_insert_with(Box::default).list(c.op).push((b, l));
            }
            (Op::Contains | Op::StartsWith | Op::EndsWith, o) => {
                self.patterns[k as usize].push((c.op, o.text().into(), l));
            }
            (Op::Regex, _) => {
                if let Some(re) = regex {
                    ki.regex.push((re, l));
                }
            }
        }
        Ok(l)
    }

    fn key(&mut self, key: &[u8]) -> u32 {
        if let Some(&k) = self.index.keys.get(key) {
            return k;
        }
        let k = self.index.per_key.len() as u32;
        self.index.keys.insert(key.into(), k);
        self.index.per_key.push(KeyIndex::default());
        self.patterns.push(Vec::new());
        k
    }
}

/// Compiles a `matchesregex` operand (unanchored: found anywhere).
fn compile_regex(c: &Cmp) -> Result<Regex, (usize, String)> {
    let pat =
        std::str::from_utf8(c.value.text()).map_err(|_| (c.value_pos, "regex is not UTF-8".to_string()))?;
    regex::bytes::RegexBuilder::new(pat).size_limit(1 << 20).build().map_err(|e| {
        let msg = e.to_string();
        let last = msg.lines().last().unwrap_or("").trim().trim_start_matches("error: ");
        (c.value_pos, format!("invalid regex: {last}"))
    })
}

//! Trait rules (docs/taxonomy.md §2): lexer, recursive-descent parser and the AST, plus the scalar
//! semantics of one comparison ([`Cmp::matches`]) that both the compiled index and the naive
//! evaluator ([`Expr::eval`], the test oracle) use.
//!
//! Grammar (keywords case-insensitive; keys and values case-sensitive):
//! ```text
//! rule  := or
//! or    := and ("OR" and)*
//! and   := unary ("AND" unary)*          -- "AND NOT x" is "AND" followed by "NOT x"
//! unary := "NOT" unary | "(" or ")" | cmp
//! cmp   := KEY OP VALUE
//! OP    := "==" | "=" | "!=" | "<" | "<=" | ">" | ">=" | "=>"
//!        | "contains" | "startswith" | "endswith" | "matchesregex"
//! ```
//! * A word (KEY, BAREWORD) is a run of bytes other than whitespace and `( ) " = ! < >`.
//!   A word whose text is `-?DIGITS(.DIGITS)?` is a NUMBER. A key named like a keyword
//!   (`not`) cannot be written.
//! * Quoted strings: `\"` is a quote and `\\` a backslash; any other backslash is kept as
//!   written, so regex patterns need no double escaping (`"\d+"` is the regex `\d+`).
//! * Positions in errors are byte offsets from the start of the rule, counting from 0.
//! * Nesting (parentheses and `NOT`) is limited to [`MAX_DEPTH`] so that hostile rules cannot
//!   exhaust the stack.
//!
//! Semantics: `==`/`=` with a NUMBER operand compares numerically when the value is a number
//! (`1` matches `1.0`); with a string operand it is byte equality. `!=` is true when the key is
//! present and no value equals the operand. `<`, `<=`, `>`, `>=` are numeric and false when the
//! value is not a number; an operand that is not a number is rejected at load (such a rule
//! could never be true). Any comparison on an absent key is false.

use super::lex::{err, BoolGrammar, Cursor};

pub use super::lex::{RuleError, MAX_DEPTH};

/// A parsed trait rule.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// One comparison.
    Cmp(Cmp),
    /// Negation.
    Not(Box<Expr>),
    /// Conjunction (two or more).
    And(Vec<Expr>),
    /// Disjunction (two or more).
    Or(Vec<Expr>),
}

/// `KEY OP VALUE`.
#[derive(Clone, Debug, PartialEq)]
pub struct Cmp {
    /// Signal key.
    pub key: Box<[u8]>,
    /// Operator.
    pub op: Op,
    /// Operand.
    pub value: Operand,
    /// Byte offset of the operand in the rule (for load-time errors such as a bad regex).
    pub value_pos: usize,
}

/// Comparison operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    /// `==` or `=`.
    Eq,
    /// `!=`.
    Ne,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `>`.
    Gt,
    /// `>=` or `=>`.
    Ge,
    /// `contains`.
    Contains,
    /// `startswith`.
    StartsWith,
    /// `endswith`.
    EndsWith,
    /// `matchesregex` (found anywhere in the value).
    Regex,
}

/// The right-hand side of a comparison.
#[derive(Clone, Debug, PartialEq)]
pub enum Operand {
    /// A NUMBER token: its value and its text.
    Num(f64, Box<[u8]>),
    /// A quoted string or a bareword.
    Str(Box<[u8]>),
}

/// Tokens.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Tok<'a> {
    LParen,
    RParen,
    Op(Op),
    Word(&'a [u8]),
    Quoted(&'a [u8]),
    End,
}

/// Recursive-descent parser over a one-token lookahead lexer.
struct Parser<'a> {
    cur: Cursor<'a>,
}

/// Parses a trait rule.
///
/// # Errors
/// The first syntax error, with its byte offset.
pub fn parse(rule: &str) -> Result<Expr, RuleError> {
    let mut p = Parser { cur: Cursor::new(rule) };
    let e = p.or()?;
    match p.next()? {
        (Tok::End, _) => Ok(e),
        (_, at) => Err(err(at, "expected AND, OR or end of rule")),
    }
}

/// Parses a value as a NUMBER (`-?DIGITS(.DIGITS)?`); `None` when it is not one.
pub fn number(s: &[u8]) -> Option<f64> {
    let digits = s.strip_prefix(b"-").unwrap_or(s);
    let (int, frac) = match digits.iter().position(|&b| b == b'.') {
        Some(i) => (&digits[..i], Some(&digits[i + 1..])),
        None => (digits, None),
    };
    let all_digits = |d: &[u8]| !d.is_empty() && d.iter().all(u8::is_ascii_digit);
    if !all_digits(int) || frac.is_some_and(|f| !all_digits(f)) {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

fn is_word_byte(b: u8) -> bool {
    !b.is_ascii_whitespace() && !matches!(b, b'(' | b')' | b'"' | b'=' | b'!' | b'<' | b'>')
}

// === impl Expr ===

impl Expr {
    /// Naive evaluation over a request's signals (the oracle the compiled index is tested
    /// against). `regex` answers `matchesregex` for one comparison and one value.
    pub fn eval(&self, signals: &[(&[u8], &[u8])], regex: &dyn Fn(&Cmp, &[u8]) -> bool) -> bool {
        match self {
            Expr::Cmp(c) => c.eval(signals, regex),
            Expr::Not(e) => !e.eval(signals, regex),
            Expr::And(es) => es.iter().all(|e| e.eval(signals, regex)),
            Expr::Or(es) => es.iter().any(|e| e.eval(signals, regex)),
        }
    }

    /// Every comparison, depth first.
    pub fn cmps<'a>(&'a self, out: &mut Vec<&'a Cmp>) {
        match self {
            Expr::Cmp(c) => out.push(c),
            Expr::Not(e) => e.cmps(out),
            Expr::And(es) | Expr::Or(es) => es.iter().for_each(|e| e.cmps(out)),
        }
    }
}

// === impl Cmp ===

impl Cmp {
    /// Whether one value satisfies this comparison, for every operator but `!=` (which is
    /// "present and no value `==`") and `matchesregex` (compiled by the engine).
    pub fn matches(&self, v: &[u8]) -> bool {
        match (&self.op, &self.value) {
            (Op::Eq | Op::Ne, Operand::Num(n, _)) => number(v) == Some(*n),
            (Op::Eq | Op::Ne, Operand::Str(s)) => v == &**s,
            (Op::Lt | Op::Le | Op::Gt | Op::Ge, operand) => {
                let (Some(x), Some(b)) = (number(v), operand.as_number()) else { return false };
                match self.op {
                    Op::Lt => x < b,
                    Op::Le => x <= b,
                    Op::Gt => x > b,
                    _ => x >= b,
                }
            }
            (Op::Contains, o) => contains(v, o.text()),
            (Op::StartsWith, o) => v.starts_with(o.text()),
            (Op::EndsWith, o) => v.ends_with(o.text()),
            (Op::Regex, _) => false,
        }
    }

    fn eval(&self, signals: &[(&[u8], &[u8])], regex: &dyn Fn(&Cmp, &[u8]) -> bool) -> bool {
        let mut values = signals.iter().filter(|(k, _)| *k == &*self.key).map(|(_, v)| *v).peekable();
        match self.op {
            Op::Ne => values.peek().is_some() && !values.any(|v| self.matches(v)),
            Op::Regex => values.any(|v| regex(self, v)),
            _ => values.any(|v| self.matches(v)),
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

// === impl Operand ===

impl Operand {
    /// The operand as written (without quotes).
    pub fn text(&self) -> &[u8] {
        match self {
            Operand::Num(_, t) | Operand::Str(t) => t,
        }
    }

    /// The operand as a number (a quoted `"25"` counts too).
    pub fn as_number(&self) -> Option<f64> {
        match self {
            Operand::Num(n, _) => Some(*n),
            Operand::Str(s) => number(s),
        }
    }
}

// === impl Parser ===

impl<'a> BoolGrammar for Parser<'a> {
    type Expr = Expr;

    fn keyword(&mut self, kw: &str) -> bool {
        self.cur.keyword(kw, is_word_byte)
    }

    fn all(terms: Vec<Expr>) -> Expr {
        Expr::And(terms)
    }

    fn any(terms: Vec<Expr>) -> Expr {
        Expr::Or(terms)
    }

    fn unary(&mut self) -> Result<Expr, RuleError> {
        let (tok, at) = self.next()?;
        match tok {
            Tok::Word(w) if w.eq_ignore_ascii_case(b"not") => {
                self.cur.enter(at)?;
                let e = self.unary()?;
                self.cur.leave();
                Ok(Expr::Not(Box::new(e)))
            }
            Tok::LParen => {
                self.cur.enter(at)?;
                let e = self.or()?;
                self.cur.leave();
                match self.next()? {
                    (Tok::RParen, _) => Ok(e),
                    (_, at) => Err(err(at, "expected ')'")),
                }
            }
            Tok::Word(key) => self.cmp(key),
            _ => Err(err(at, "expected a key, NOT or '('")),
        }
    }
}

impl<'a> Parser<'a> {
    fn cmp(&mut self, key: &'a [u8]) -> Result<Expr, RuleError> {
        let op = match self.next()? {
            (Tok::Op(op), _) => op,
            (Tok::Word(w), at) => match named_op(w) {
                Some(op) => op,
                None => return Err(err(at, "expected operator")),
            },
            (_, at) => return Err(err(at, "expected operator")),
        };
        let (tok, value_pos) = self.next()?;
        let value = match tok {
            Tok::Word(w) => match number(w) {
                Some(n) => Operand::Num(n, w.into()),
                None => Operand::Str(w.into()),
            },
            Tok::Quoted(q) => Operand::Str(unescape(q)),
            _ => return Err(err(value_pos, "expected value")),
        };
        if matches!(op, Op::Lt | Op::Le | Op::Gt | Op::Ge) && value.as_number().is_none() {
            return Err(err(value_pos, "expected a number after a range operator"));
        }
        Ok(Expr::Cmp(Cmp { key: key.into(), op, value, value_pos }))
    }

    /// The next token and its offset.
    fn next(&mut self) -> Result<(Tok<'a>, usize), RuleError> {
        let (at, first) = self.cur.start();
        let Some(b) = first else { return Ok((Tok::End, at)) };
        let two = self.cur.src.get(at + 1).copied();
        let (tok, len) = match (b, two) {
            (b'(', _) => (Tok::LParen, 1),
            (b')', _) => (Tok::RParen, 1),
            (b'=', Some(b'=')) => (Tok::Op(Op::Eq), 2),
            (b'=', Some(b'>')) => (Tok::Op(Op::Ge), 2),
            (b'=', _) => (Tok::Op(Op::Eq), 1),
            (b'!', Some(b'=')) => (Tok::Op(Op::Ne), 2),
            (b'<', Some(b'=')) => (Tok::Op(Op::Le), 2),
            (b'<', _) => (Tok::Op(Op::Lt), 1),
            (b'>', Some(b'=')) => (Tok::Op(Op::Ge), 2),
            (b'>', _) => (Tok::Op(Op::Gt), 1),
            (b'!', _) => return Err(err(at, "expected '!='")),
            (b'"', _) => return self.quoted(at),
            _ => {
                let w = self.cur.word(at, is_word_byte);
                (Tok::Word(w), w.len())
            }
        };
        self.cur.pos = at + len;
        Ok((tok, at))
    }

    /// A quoted string starting at `at` (the opening quote).
    fn quoted(&mut self, at: usize) -> Result<(Tok<'a>, usize), RuleError> {
        let s = self.cur.src;
        let mut i = at + 1;
        while i < s.len() {
            match s[i] {
                b'\\' => i += 2,
                b'"' => {
                    self.cur.pos = i + 1;
                    return Ok((Tok::Quoted(&s[at + 1..i]), at));
                }
                _ => i += 1,
            }
        }
        Err(err(at, "unterminated string"))
    }
}

fn named_op(w: &[u8]) -> Option<Op> {
    let ops = [
        ("contains", Op::Contains),
        ("startswith", Op::StartsWith),
        ("endswith", Op::EndsWith),
        ("matchesregex", Op::Regex),
    ];
    ops.iter().find(|(name, _)| w.eq_ignore_ascii_case(name.as_bytes())).map(|(_, op)| *op)
}

/// `\"` → `"`, `\\` → `\`; other backslashes stay.
fn unescape(q: &[u8]) -> Box<[u8]> {
    let mut out = Vec::with_capacity(q.len());
    let mut i = 0;
    while i < q.len() {
        match (q[i], q.get(i + 1)) {
            (b'\\', Some(&c @ (b'"' | b'\\'))) => {
                out.push(c);
                i += 2;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out.into()
}

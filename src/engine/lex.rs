//! What the trait-rule and segment-rule parsers share: the lexer [`Cursor`] (source, position,
//! nesting depth, keywords) and the boolean layer ([`BoolGrammar`]: `OR` over `AND` over each
//! grammar's unary terms). Each grammar keeps only its own tokens and terms.

use std::fmt;

/// Deepest nesting of parentheses and `NOT` accepted, so that hostile rules cannot exhaust the
/// stack.
pub const MAX_DEPTH: usize = 64;

/// A rule that does not parse (either grammar).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleError {
    /// Byte offset in the rule.
    pub pos: usize,
    /// What was wrong.
    pub msg: String,
}

/// A lexer's position in a rule.
pub(super) struct Cursor<'a> {
    /// The rule's bytes.
    pub src: &'a [u8],
    /// Offset of the next byte to read.
    pub pos: usize,
    /// Parentheses and `NOT`s open.
    depth: usize,
}

/// The boolean layer both rule grammars share (docs/taxonomy.md §2 and §3): `or := and (OR
/// and)*`, `and := unary (AND unary)*`, keywords case-insensitive; `AND NOT x` is `AND`
/// followed by the unary `NOT x`. A grammar supplies its terms (`unary`), its keyword test and
/// how to build a conjunction and a disjunction.
pub(super) trait BoolGrammar {
    /// The expression type.
    type Expr;
    /// Consumes the keyword `kw` if it comes next.
    fn keyword(&mut self, kw: &str) -> bool;
    /// `NOT unary`, `( or )` or a term.
    fn unary(&mut self) -> Result<Self::Expr, RuleError>;
    /// A conjunction of two or more.
    fn all(terms: Vec<Self::Expr>) -> Self::Expr;
    /// A disjunction of two or more.
    fn any(terms: Vec<Self::Expr>) -> Self::Expr;

    /// `and (OR and)*`
    fn or(&mut self) -> Result<Self::Expr, RuleError> {
        let mut terms = vec![self.and()?];
        while self.keyword("or") {
            terms.push(self.and()?);
        }
        Ok(if terms.len() == 1 { terms.remove(0) } else { Self::any(terms) })
    }

    /// `unary (AND unary)*`
    fn and(&mut self) -> Result<Self::Expr, RuleError> {
        let mut terms = vec![self.unary()?];
        while self.keyword("and") {
            terms.push(self.unary()?);
        }
        Ok(if terms.len() == 1 { terms.remove(0) } else { Self::all(terms) })
    }
}

// === impl Cursor ===

impl<'a> Cursor<'a> {
    /// A cursor at the start of `rule`.
    pub fn new(rule: &'a str) -> Cursor<'a> {
        Cursor { src: rule.as_bytes(), pos: 0, depth: 0 }
    }

    /// Skips whitespace; returns the offset of the next token and its first byte (`None` at
    /// the end of the rule).
    pub fn start(&mut self) -> (usize, Option<u8>) {
        while self.pos < self.src.len() && self.src[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
        (self.pos, self.src.get(self.pos).copied())
    }

    /// The run of bytes from `at` for which `is_word` holds.
    pub fn word(&self, at: usize, is_word: fn(u8) -> bool) -> &'a [u8] {
        let len = self.src[at..].iter().take_while(|&&b| is_word(b)).count();
        &self.src[at..at + len]
    }

    /// Consumes the keyword `kw` (case-insensitive) if the next word — a run of bytes for
    /// which `is_word` holds — is it; otherwise consumes nothing. A token that is not a word,
    /// or a lexing error, is left for the grammar's next token read to report.
    pub fn keyword(&mut self, kw: &str, is_word: fn(u8) -> bool) -> bool {
        let save = self.pos;
        let (at, _) = self.start();
        let w = self.word(at, is_word);
        if w.eq_ignore_ascii_case(kw.as_bytes()) {
            self.pos = at + w.len();
            true
        } else {
            self.pos = save;
            false
        }
    }

    /// Opens one nesting level for the token at `at`; an error past [`MAX_DEPTH`].
    pub fn enter(&mut self, at: usize) -> Result<(), RuleError> {
        if self.depth >= MAX_DEPTH {
            return Err(err(at, "nesting too deep"));
        }
        self.depth += 1;
        Ok(())
    }

    /// Closes the level [`Cursor::enter`] opened.
    pub fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }
}

// === impl RuleError ===

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at {}: {}", self.pos, self.msg)
    }
}

impl std::error::Error for RuleError {}

/// A parse error at byte offset `pos`.
pub(super) fn err(pos: usize, msg: &str) -> RuleError {
    RuleError { pos, msg: msg.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alpha(b: u8) -> bool {
        b.is_ascii_alphabetic()
    }

    #[test]
    fn keywords_are_whole_words_case_insensitive() {
        let mut c = Cursor::new("  AnD x");
        assert!(!c.keyword("or", alpha));
        assert_eq!(c.pos, 0, "a keyword that does not match consumes nothing");
        assert!(c.keyword("and", alpha));
        assert_eq!(c.pos, 5);
        let mut c = Cursor::new("andx");
        assert!(!c.keyword("and", alpha), "a longer word is not the keyword");
        let mut c = Cursor::new("and(");
        assert!(c.keyword("and", alpha));
        assert_eq!(c.start(), (3, Some(b'(')));
    }

    #[test]
    fn nesting_is_bounded() {
        let mut c = Cursor::new("");
        for i in 0..MAX_DEPTH {
            c.enter(i).unwrap();
        }
        assert_eq!(c.enter(99).unwrap_err().pos, 99);
        c.leave();
        assert!(c.enter(0).is_ok());
    }
}

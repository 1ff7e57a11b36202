//! CloudWatch Logs filter patterns: which events FilterLogEvents returns.
//!
//! Supported (a subset of AWS's syntax, matched case-sensitively):
//! - empty or blank: every event;
//! - terms: `ERROR "user 42" ?WARN ?FATAL -healthcheck`. Every plain term must occur in the
//!   message, at least one `?` term when there are any, and no `-` term. Terms match as substrings;
//!   quote a term that holds spaces or quotes (`\"` and `\\` escape inside quotes);
//! - JSON: `{ $.level = "ERROR" && ($.ms > 100 || $.user.id != "a*") }` with `=`, `!=`, `<`, `<=`,
//!   `>`, `>=`, `IS TRUE|FALSE|NULL`, `EXISTS`, `NOT EXISTS`, selectors `$.a.b` and `$.a[0]`,
//!   values as quoted or bare strings (`*` is a wildcard), numbers, `true`, `false`, `null`.
//!   Only messages that are JSON documents match;
//! - regular expressions: `%ERROR [0-9]+%`.
//!
//! Space-delimited patterns (`[ip, user, ...]`) are not supported and are rejected as invalid.

use std::fmt;

use regex::Regex;
use serde_json::Value;

/// A filter pattern AWS would reject (or that Lamina does not support).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InvalidPattern;

impl fmt::Display for InvalidPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Invalid filter pattern")
    }
}

impl std::error::Error for InvalidPattern {}

/// A parsed filter pattern.
#[derive(Debug)]
pub(crate) enum FilterPattern {
    All,
    Terms(Terms),
    Json(Expr),
    Regex(Regex),
}

/// An unstructured pattern's terms, by role.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Terms {
    required: Vec<String>,
    any_of: Vec<String>,
    excluded: Vec<String>,
}

/// A JSON pattern's condition.
#[derive(Debug, PartialEq)]
pub(crate) enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Compare { path: Vec<Step>, op: Op, value: Literal },
    Exists { path: Vec<Step>, exists: bool },
}

/// One step of a selector: `.key` or `[index]`.
#[derive(Debug, PartialEq)]
pub(crate) enum Step {
    Key(String),
    Index(usize),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, PartialEq)]
pub(crate) enum Literal {
    /// A string, `*` matching any run of characters.
    Str(String),
    Num(f64),
    Bool(bool),
    Null,
}

/// The regular expressions a pattern may compile to are bounded, so a pattern cannot make the
/// service build a huge automaton.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

impl FilterPattern {
    /// Parses `text` as FilterLogEvents' `filterPattern`.
    pub(crate) fn parse(text: &str) -> Result<Self, InvalidPattern> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(Self::All);
        }
        if let Some(inner) = text.strip_prefix('{') {
            let inner = inner.strip_suffix('}').ok_or(InvalidPattern)?;
            return Ok(Self::Json(JsonParser::new(inner)?.parse()?));
        }
        if text.len() >= 2 && text.starts_with('%') && text.ends_with('%') {
            let body = &text[1..text.len() - 1];
            if body.is_empty() {
                return Err(InvalidPattern);
            }
            let re = regex::RegexBuilder::new(body).size_limit(REGEX_SIZE_LIMIT).build().map_err(|_| InvalidPattern)?;
            return Ok(Self::Regex(re));
        }
        if text.starts_with('[') {
            return Err(InvalidPattern);
        }
        parse_terms(text).map(Self::Terms)
    }

    /// Whether the event with `message` passes.
    pub(crate) fn matches(&self, message: &str) -> bool {
        match self {
            Self::All => true,
            Self::Terms(terms) => terms.matches(message),
            Self::Regex(re) => re.is_match(message),
            Self::Json(expr) => match serde_json::from_str::<Value>(message) {
                Ok(doc) => expr.eval(&doc),
                Err(_) => false,
            },
        }
    }

    /// Whether every event passes (lets the caller skip the per-event check).
    pub(crate) fn is_all(&self) -> bool {
        matches!(self, Self::All)
    }
}

impl Terms {
    fn matches(&self, message: &str) -> bool {
        self.required.iter().all(|t| message.contains(t.as_str()))
            && (self.any_of.is_empty() || self.any_of.iter().any(|t| message.contains(t.as_str())))
            && !self.excluded.iter().any(|t| message.contains(t.as_str()))
    }
}

fn parse_terms(text: &str) -> Result<Terms, InvalidPattern> {
    let mut terms = Terms::default();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let Some(&first) = chars.peek() else { break };
        let role = match first {
            '?' | '-' => {
                chars.next();
                first
            }
            _ => ' ',
        };
        let term = if chars.next_if_eq(&'"').is_some() {
            quoted(&mut chars)?
        } else {
            let mut term = String::new();
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if matches!(c, '"' | '{' | '}') {
                    return Err(InvalidPattern);
                }
                term.push(c);
            }
            term
        };
        if term.is_empty() {
            return Err(InvalidPattern);
        }
        match role {
            '?' => terms.any_of.push(term),
            '-' => terms.excluded.push(term),
            _ => terms.required.push(term),
        }
    }
    Ok(terms)
}

/// The rest of a quoted string whose opening quote was consumed; the next character (if any) must
/// end the token.
fn quoted(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<String, InvalidPattern> {
    let mut out = String::new();
    loop {
        match chars.next().ok_or(InvalidPattern)? {
            '"' => break,
            '\\' => match chars.next().ok_or(InvalidPattern)? {
                c @ ('"' | '\\') => out.push(c),
                c => {
                    out.push('\\');
                    out.push(c);
                }
            },
            c => out.push(c),
        }
    }
    Ok(out)
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open,
    Close,
    And,
    Or,
    Op(Op),
    Selector(String),
    Quoted(String),
    Word(String),
}

struct JsonParser {
    tokens: Vec<Token>,
    at: usize,
}

impl JsonParser {
    fn new(text: &str) -> Result<Self, InvalidPattern> {
        Ok(Self { tokens: tokenize(text)?, at: 0 })
    }

    fn parse(mut self) -> Result<Expr, InvalidPattern> {
        let expr = self.or()?;
        if self.at != self.tokens.len() {
            return Err(InvalidPattern);
        }
        Ok(expr)
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn or(&mut self) -> Result<Expr, InvalidPattern> {
        let mut left = self.and()?;
        while self.peek() == Some(&Token::Or) {
            self.at += 1;
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, InvalidPattern> {
        let mut left = self.unary()?;
        while self.peek() == Some(&Token::And) {
            self.at += 1;
            left = Expr::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, InvalidPattern> {
        match self.next() {
            Some(Token::Open) => {
                let inner = self.or()?;
                match self.next() {
                    Some(Token::Close) => Ok(inner),
                    _ => Err(InvalidPattern),
                }
            }
            Some(Token::Selector(s)) => {
                let path = parse_selector(&s)?;
                self.condition(path)
            }
            _ => Err(InvalidPattern),
        }
    }

    fn keyword(&mut self, word: &str) -> bool {
        if matches!(self.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(word)) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    /// What follows a selector: an operator and a value, `IS ...`, `EXISTS` or `NOT EXISTS`.
    fn condition(&mut self, path: Vec<Step>) -> Result<Expr, InvalidPattern> {
        if self.keyword("IS") {
            let value = match self.next() {
                Some(Token::Word(w)) if w.eq_ignore_ascii_case("TRUE") => Literal::Bool(true),
                Some(Token::Word(w)) if w.eq_ignore_ascii_case("FALSE") => Literal::Bool(false),
                Some(Token::Word(w)) if w.eq_ignore_ascii_case("NULL") => Literal::Null,
                _ => return Err(InvalidPattern),
            };
            return Ok(Expr::Compare { path, op: Op::Eq, value });
        }
        if self.keyword("EXISTS") {
            return Ok(Expr::Exists { path, exists: true });
        }
        if self.keyword("NOT") {
            return if self.keyword("EXISTS") { Ok(Expr::Exists { path, exists: false }) } else { Err(InvalidPattern) };
        }
        let Some(Token::Op(op)) = self.next() else { return Err(InvalidPattern) };
        let value = match self.next() {
            Some(Token::Quoted(s)) => Literal::Str(s),
            Some(Token::Word(w)) => word_literal(&w),
            _ => return Err(InvalidPattern),
        };
        // Strings, booleans and null only compare for (in)equality.
        if !matches!(value, Literal::Num(_)) && !matches!(op, Op::Eq | Op::Ne) {
            return Err(InvalidPattern);
        }
        Ok(Expr::Compare { path, op, value })
    }
}

fn word_literal(word: &str) -> Literal {
    if word.eq_ignore_ascii_case("true") {
        Literal::Bool(true)
    } else if word.eq_ignore_ascii_case("false") {
        Literal::Bool(false)
    } else if word.eq_ignore_ascii_case("null") {
        Literal::Null
    } else if let Some(n) = word.parse::<f64>().ok().filter(|n| n.is_finite()) {
        Literal::Num(n)
    } else {
        Literal::Str(word.to_owned())
    }
}

fn tokenize(text: &str) -> Result<Vec<Token>, InvalidPattern> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let token = match c {
            c if c.is_whitespace() => continue,
            '(' => Token::Open,
            ')' => Token::Close,
            '&' if chars.next_if_eq(&'&').is_some() => Token::And,
            '|' if chars.next_if_eq(&'|').is_some() => Token::Or,
            '=' => Token::Op(Op::Eq),
            '!' if chars.next_if_eq(&'=').is_some() => Token::Op(Op::Ne),
            '<' if chars.next_if_eq(&'=').is_some() => Token::Op(Op::Le),
            '<' => Token::Op(Op::Lt),
            '>' if chars.next_if_eq(&'=').is_some() => Token::Op(Op::Ge),
            '>' => Token::Op(Op::Gt),
            '"' => Token::Quoted(quoted(&mut chars)?),
            '$' => {
                let mut s = String::from('$');
                while let Some(c) = chars.next_if(|c| is_selector_char(*c)) {
                    s.push(c);
                }
                Token::Selector(s)
            }
            c if is_word_char(c) => {
                let mut s = String::from(c);
                while let Some(c) = chars.next_if(|c| is_word_char(*c)) {
                    s.push(c);
                }
                Token::Word(s)
            }
            _ => return Err(InvalidPattern),
        };
        tokens.push(token);
    }
    Ok(tokens)
}

fn is_selector_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '.' | '[' | ']' | '_' | '-' | '@' | '$')
}

fn is_word_char(c: char) -> bool {
    !c.is_whitespace() && !matches!(c, '(' | ')' | '&' | '|' | '=' | '!' | '<' | '>' | '"' | '$')
}

/// `$.a.b[0].c` as steps; `$` alone is the whole document.
fn parse_selector(s: &str) -> Result<Vec<Step>, InvalidPattern> {
    let mut rest = s.strip_prefix('$').ok_or(InvalidPattern)?;
    let mut steps = Vec::new();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            let key = &after[..end];
            if key.is_empty() || key.contains(']') {
                return Err(InvalidPattern);
            }
            steps.push(Step::Key(key.to_owned()));
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let end = after.find(']').ok_or(InvalidPattern)?;
            let index = after[..end].parse::<usize>().map_err(|_| InvalidPattern)?;
            steps.push(Step::Index(index));
            rest = &after[end + 1..];
        } else {
            return Err(InvalidPattern);
        }
    }
    Ok(steps)
}

fn select<'a>(doc: &'a Value, path: &[Step]) -> Option<&'a Value> {
    path.iter().try_fold(doc, |v, step| match step {
        Step::Key(k) => v.as_object()?.get(k),
        Step::Index(i) => v.as_array()?.get(*i),
    })
}

impl Expr {
    fn eval(&self, doc: &Value) -> bool {
        match self {
            Self::And(a, b) => a.eval(doc) && b.eval(doc),
            Self::Or(a, b) => a.eval(doc) || b.eval(doc),
            Self::Exists { path, exists } => select(doc, path).is_some() == *exists,
            Self::Compare { path, op, value } => select(doc, path).is_some_and(|v| compare(v, *op, value)),
        }
    }
}

/// A selected value against a literal; values of another type never match (`!=` included).
fn compare(v: &Value, op: Op, literal: &Literal) -> bool {
    let equal = match (literal, v) {
        (Literal::Str(pattern), Value::String(s)) => wildcard_match(pattern, s),
        (Literal::Bool(b), Value::Bool(x)) => b == x,
        (Literal::Null, Value::Null) => true,
        (Literal::Num(n), Value::Number(x)) => {
            let Some(x) = x.as_f64() else { return false };
            return match op {
                Op::Eq => x == *n,
                Op::Ne => x != *n,
                Op::Lt => x < *n,
                Op::Le => x <= *n,
                Op::Gt => x > *n,
                Op::Ge => x >= *n,
            };
        }
        _ => return false,
    };
    match op {
        Op::Eq => equal,
        Op::Ne => !equal,
        _ => false,
    }
}

/// Whether `text` matches `pattern` as a whole, `*` standing for any run of characters.
fn wildcard_match(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let Some(first) = parts.next() else { return pattern == text };
    let Some(mut rest) = text.strip_prefix(first) else { return false };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else { return rest.is_empty() };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests;

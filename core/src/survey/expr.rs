//! The expression language of skip logic (`relevant`) and constraints
//! (`constraint`), after XLSForm's, kept small and safe: no function reads
//! the clock, the device or the network, so an expression gives the same
//! value on every replica.
//!
//! ```text
//! expr    := or
//! or      := and ("or" and)*
//! and     := not ("and" not)*
//! not     := "not" not | compare
//! compare := sum (("=" | "!=" | "<" | "<=" | ">" | ">=") sum)?
//! sum     := product (("+" | "-") product)*
//! product := unary (("*" | "div" | "mod") unary)*
//! unary   := "-" unary | atom
//! atom    := number | 'text' | "text" | ${id} | id | "." | func "(" args ")" | "(" expr ")"
//! func    := selected(q, 'v') | count-selected(q) | string-length(x)
//! ```
//!
//! `${id}` (or a bare `id`) is the answer to an earlier question; `.` is the
//! answer being checked (constraints only). An unanswered or hidden question
//! is empty: it equals `''`, is not a number, and makes `<`, `>`… false. A
//! multiple-choice answer compares as its values joined by spaces; test it
//! with `selected`. Bare ids may hold `-`, so write spaces around a minus.

use std::fmt;

/// The most characters an expression may have, and how deep it may nest.
const MAX_LEN: usize = 2_000;
const MAX_DEPTH: usize = 40;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Empty,
    Bool(bool),
    Num(f64),
    Str(String),
    List(Vec<String>),
}

impl Value {
    pub fn truthy(&self) -> bool {
        match self {
            Value::Empty => false,
            Value::Bool(b) => *b,
            Value::Num(n) => *n != 0.0 && !n.is_nan(),
            Value::Str(s) => !s.is_empty(),
            Value::List(l) => !l.is_empty(),
        }
    }

    fn number(&self) -> Option<f64> {
        match self {
            Value::Num(n) => Some(*n),
            Value::Str(s) => s.trim().parse::<f64>().ok().filter(|n| n.is_finite()),
            Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            Value::Empty | Value::List(_) => None,
        }
    }

    fn text(&self) -> String {
        match self {
            Value::Empty => String::new(),
            Value::Bool(b) => if *b { "true" } else { "false" }.to_string(),
            Value::Num(n) => format_number(*n),
            Value::Str(s) => s.clone(),
            Value::List(l) => l.join(" "),
        }
    }
}

fn format_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 { format!("{}", n as i64) } else { format!("{n}") }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arith {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    Selected,
    CountSelected,
    StringLength,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Lit(Value),
    Ref(String),
    Current,
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Cmp(Cmp, Box<Expr>, Box<Expr>),
    Arith(Arith, Box<Expr>, Box<Expr>),
    Neg(Box<Expr>),
    Call(Func, Vec<Expr>),
}

/// A parse error: where (a character offset) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExprError {
    pub at: usize,
    pub message: String,
}

impl fmt::Display for ExprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at character {})", self.message, self.at + 1)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(f64),
    Str(String),
    Ref(String),
    Ident(String),
    Dot,
    LParen,
    RParen,
    Comma,
    Op(&'static str),
}

fn lex(src: &str) -> Result<Vec<(usize, Tok)>, ExprError> {
    let chars: Vec<char> = src.chars().collect();
    let err = |at: usize, m: &str| ExprError { at, message: m.to_string() };
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '(' => (out.push((start, Tok::LParen)), i += 1).1,
            ')' => (out.push((start, Tok::RParen)), i += 1).1,
            ',' => (out.push((start, Tok::Comma)), i += 1).1,
            '+' => (out.push((start, Tok::Op("+"))), i += 1).1,
            '-' => (out.push((start, Tok::Op("-"))), i += 1).1,
            '*' => (out.push((start, Tok::Op("*"))), i += 1).1,
            '=' => {
                i += if chars.get(i + 1) == Some(&'=') { 2 } else { 1 };
                out.push((start, Tok::Op("=")));
            }
            '!' if chars.get(i + 1) == Some(&'=') => (out.push((start, Tok::Op("!="))), i += 2).1,
            '<' | '>' => {
                let eq = chars.get(i + 1) == Some(&'=');
                let op = match (c, eq) {
                    ('<', true) => "<=",
                    ('<', false) => "<",
                    (_, true) => ">=",
                    _ => ">",
                };
                i += if eq { 2 } else { 1 };
                out.push((start, Tok::Op(op)));
            }
            '\'' | '"' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(err(start, "unterminated text")),
                        Some(&q) if q == c => break,
                        Some(&ch) => s.push(ch),
                    }
                    i += 1;
                }
                i += 1;
                out.push((start, Tok::Str(s)));
            }
            '$' => {
                if chars.get(i + 1) != Some(&'{') {
                    return Err(err(start, "`$` must start `${question}`"));
                }
                let close = chars[i..].iter().position(|&ch| ch == '}').ok_or_else(|| err(start, "missing `}`"))?;
                let id: String = chars[i + 2..i + close].iter().collect();
                if !crate::doc::valid_token(&id) {
                    return Err(err(start, "a question id is lowercase letters, digits, `-` and `_`"));
                }
                out.push((start, Tok::Ref(id)));
                i += close + 1;
            }
            '.' if !chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()) => (out.push((start, Tok::Dot)), i += 1).1,
            c if c.is_ascii_digit() || c == '.' => {
                while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                let n = text.parse::<f64>().map_err(|_| err(start, "not a number"))?;
                out.push((start, Tok::Num(n)));
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == '-')
                    && !(chars[i] == '-' && chars.get(i + 1).is_none_or(|n| !n.is_ascii_alphanumeric()))
                {
                    i += 1;
                }
                out.push((start, Tok::Ident(chars[start..i].iter().collect())));
            }
            _ => return Err(err(start, &format!("unexpected `{c}`"))),
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<(usize, Tok)>,
    pos: usize,
    end: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(_, t)| t)
    }

    fn at(&self) -> usize {
        self.toks.get(self.pos).map(|(a, _)| *a).unwrap_or(self.end)
    }

    fn err<T>(&self, m: impl Into<String>) -> Result<T, ExprError> {
        Err(ExprError { at: self.at(), message: m.into() })
    }

    fn keyword(&mut self, k: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Ident(s)) if s == k) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn op(&mut self, ops: &[&'static str]) -> Option<&'static str> {
        match self.peek() {
            Some(Tok::Op(o)) if ops.contains(o) => {
                let o = *o;
                self.pos += 1;
                Some(o)
            }
            _ => None,
        }
    }

    fn expect(&mut self, t: Tok, what: &str) -> Result<(), ExprError> {
        if self.peek() == Some(&t) {
            self.pos += 1;
            Ok(())
        } else {
            self.err(format!("expected {what}"))
        }
    }

    fn nested<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T, ExprError>) -> Result<T, ExprError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.err("the expression nests too deeply");
        }
        let r = f(self);
        self.depth -= 1;
        r
    }

    fn or(&mut self) -> Result<Expr, ExprError> {
        let mut e = self.and()?;
        while self.keyword("or") {
            e = Expr::Or(Box::new(e), Box::new(self.and()?));
        }
        Ok(e)
    }

    fn and(&mut self) -> Result<Expr, ExprError> {
        let mut e = self.not()?;
        while self.keyword("and") {
            e = Expr::And(Box::new(e), Box::new(self.not()?));
        }
        Ok(e)
    }

    fn not(&mut self) -> Result<Expr, ExprError> {
        if self.keyword("not") {
            return self.nested(|p| Ok(Expr::Not(Box::new(p.not()?))));
        }
        self.compare()
    }

    fn compare(&mut self) -> Result<Expr, ExprError> {
        let left = self.sum()?;
        let Some(op) = self.op(&["=", "!=", "<", "<=", ">", ">="]) else { return Ok(left) };
        let cmp = match op {
            "=" => Cmp::Eq,
            "!=" => Cmp::Ne,
            "<" => Cmp::Lt,
            "<=" => Cmp::Le,
            ">" => Cmp::Gt,
            _ => Cmp::Ge,
        };
        let right = self.sum()?;
        if matches!(self.peek(), Some(Tok::Op("=" | "!=" | "<" | "<=" | ">" | ">="))) {
            return self.err("comparisons do not chain; join them with `and`");
        }
        Ok(Expr::Cmp(cmp, Box::new(left), Box::new(right)))
    }

    fn sum(&mut self) -> Result<Expr, ExprError> {
        let mut e = self.product()?;
        while let Some(op) = self.op(&["+", "-"]) {
            let a = if op == "+" { Arith::Add } else { Arith::Sub };
            e = Expr::Arith(a, Box::new(e), Box::new(self.product()?));
        }
        Ok(e)
    }

    fn product(&mut self) -> Result<Expr, ExprError> {
        let mut e = self.unary()?;
        loop {
            let a = if self.op(&["*"]).is_some() {
                Arith::Mul
            } else if self.keyword("div") {
                Arith::Div
            } else if self.keyword("mod") {
                Arith::Mod
            } else {
                return Ok(e);
            };
            e = Expr::Arith(a, Box::new(e), Box::new(self.unary()?));
        }
    }

    fn unary(&mut self) -> Result<Expr, ExprError> {
        if self.op(&["-"]).is_some() {
            return self.nested(|p| Ok(Expr::Neg(Box::new(p.unary()?))));
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<Expr, ExprError> {
        let Some(tok) = self.peek().cloned() else { return self.err("the expression ends too soon") };
        self.pos += 1;
        match tok {
            Tok::Num(n) => Ok(Expr::Lit(Value::Num(n))),
            Tok::Str(s) => Ok(Expr::Lit(Value::Str(s))),
            Tok::Ref(id) => Ok(Expr::Ref(id)),
            Tok::Dot => Ok(Expr::Current),
            Tok::LParen => {
                let e = self.nested(|p| p.or())?;
                self.expect(Tok::RParen, "`)`")?;
                Ok(e)
            }
            Tok::Ident(name) if self.peek() == Some(&Tok::LParen) => {
                self.pos += 1;
                let func = match name.as_str() {
                    "selected" => Func::Selected,
                    "count-selected" => Func::CountSelected,
                    "string-length" => Func::StringLength,
                    "not" => {
                        let e = self.nested(|p| p.or())?;
                        self.expect(Tok::RParen, "`)`")?;
                        return Ok(Expr::Not(Box::new(e)));
                    }
                    _ => {
                        self.pos -= 2;
                        return self.err(format!(
                            "unknown function `{name}` (known: selected, count-selected, string-length, not)"
                        ));
                    }
                };
                let mut args = Vec::new();
                if self.peek() != Some(&Tok::RParen) {
                    loop {
                        args.push(self.nested(|p| p.or())?);
                        if self.peek() == Some(&Tok::Comma) {
                            self.pos += 1;
                        } else {
                            break;
                        }
                    }
                }
                self.expect(Tok::RParen, "`)` or `,`")?;
                let want = if func == Func::Selected { 2 } else { 1 };
                if args.len() != want {
                    self.pos -= 1;
                    return self.err(format!("`{name}` takes {want} argument{}", if want == 1 { "" } else { "s" }));
                }
                if matches!(func, Func::Selected | Func::CountSelected)
                    && !matches!(args[0], Expr::Ref(_) | Expr::Current)
                {
                    self.pos -= 1;
                    return self.err(format!("the first argument of `{name}` is a question"));
                }
                Ok(Expr::Call(func, args))
            }
            Tok::Ident(name) if matches!(name.as_str(), "and" | "or" | "not" | "div" | "mod") => {
                self.pos -= 1;
                self.err(format!("`{name}` needs something before it"))
            }
            Tok::Ident(name) => {
                if crate::doc::valid_token(&name) {
                    Ok(Expr::Ref(name))
                } else {
                    self.pos -= 1;
                    self.err("a question id is lowercase letters, digits, `-` and `_`")
                }
            }
            Tok::RParen | Tok::Comma | Tok::Op(_) => {
                self.pos -= 1;
                self.err("expected a value")
            }
        }
    }
}

/// Parse an expression.
pub fn parse(src: &str) -> Result<Expr, ExprError> {
    if src.chars().count() > MAX_LEN {
        return Err(ExprError { at: MAX_LEN, message: format!("longer than {MAX_LEN} characters") });
    }
    let toks = lex(src)?;
    let end = src.chars().count();
    if toks.is_empty() {
        return Err(ExprError { at: 0, message: "the expression is empty".into() });
    }
    let mut p = Parser { toks, pos: 0, end, depth: 0 };
    let e = p.or()?;
    if p.pos < p.toks.len() {
        return p.err("unexpected text after the expression");
    }
    Ok(e)
}

impl Expr {
    /// Every question the expression reads, and whether it reads `.`.
    pub fn refs(&self, out: &mut Vec<String>, current: &mut bool) {
        match self {
            Expr::Lit(_) => {}
            Expr::Ref(id) => out.push(id.clone()),
            Expr::Current => *current = true,
            Expr::Not(e) | Expr::Neg(e) => e.refs(out, current),
            Expr::And(a, b) | Expr::Or(a, b) | Expr::Cmp(_, a, b) | Expr::Arith(_, a, b) => {
                a.refs(out, current);
                b.refs(out, current);
            }
            Expr::Call(_, args) => args.iter().for_each(|a| a.refs(out, current)),
        }
    }

    /// The questions given as first argument of `selected` / `count-selected`.
    pub fn choice_refs(&self, out: &mut Vec<String>) {
        match self {
            Expr::Call(Func::Selected | Func::CountSelected, args) => {
                if let Some(Expr::Ref(id)) = args.first() {
                    out.push(id.clone());
                }
                args.iter().for_each(|a| a.choice_refs(out));
            }
            Expr::Call(_, args) => args.iter().for_each(|a| a.choice_refs(out)),
            Expr::Not(e) | Expr::Neg(e) => e.choice_refs(out),
            Expr::And(a, b) | Expr::Or(a, b) | Expr::Cmp(_, a, b) | Expr::Arith(_, a, b) => {
                a.choice_refs(out);
                b.choice_refs(out);
            }
            Expr::Lit(_) | Expr::Ref(_) | Expr::Current => {}
        }
    }

    /// Evaluate. `answer` gives the value of a question (empty when hidden or
    /// unanswered); `current` is `.`.
    pub fn eval(&self, answer: &dyn Fn(&str) -> Value, current: &Value) -> Value {
        match self {
            Expr::Lit(v) => v.clone(),
            Expr::Ref(id) => answer(id),
            Expr::Current => current.clone(),
            Expr::Not(e) => Value::Bool(!e.eval(answer, current).truthy()),
            Expr::And(a, b) => Value::Bool(a.eval(answer, current).truthy() && b.eval(answer, current).truthy()),
            Expr::Or(a, b) => Value::Bool(a.eval(answer, current).truthy() || b.eval(answer, current).truthy()),
            Expr::Cmp(op, a, b) => Value::Bool(compare(*op, &a.eval(answer, current), &b.eval(answer, current))),
            Expr::Neg(e) => e.eval(answer, current).number().map(|n| Value::Num(-n)).unwrap_or(Value::Empty),
            Expr::Arith(op, a, b) => {
                let (Some(x), Some(y)) = (a.eval(answer, current).number(), b.eval(answer, current).number()) else {
                    return Value::Empty;
                };
                let r = match op {
                    Arith::Add => x + y,
                    Arith::Sub => x - y,
                    Arith::Mul => x * y,
                    Arith::Div => x / y,
                    Arith::Mod => x % y,
                };
                if r.is_finite() { Value::Num(r) } else { Value::Empty }
            }
            Expr::Call(f, args) => {
                let arg = |i: usize| args.get(i).map(|a| a.eval(answer, current)).unwrap_or(Value::Empty);
                match f {
                    Func::Selected => {
                        let want = arg(1).text();
                        Value::Bool(match arg(0) {
                            Value::List(l) => l.contains(&want),
                            Value::Str(s) => s == want,
                            _ => false,
                        })
                    }
                    Func::CountSelected => Value::Num(match arg(0) {
                        Value::List(l) => l.len() as f64,
                        Value::Str(s) if !s.is_empty() => 1.0,
                        _ => 0.0,
                    }),
                    Func::StringLength => Value::Num(arg(0).text().chars().count() as f64),
                }
            }
        }
    }
}

fn compare(op: Cmp, a: &Value, b: &Value) -> bool {
    use std::cmp::Ordering;
    let ord: Option<Ordering> = match (a, b) {
        (Value::Empty, Value::Empty) => Some(Ordering::Equal),
        (Value::Empty, v) | (v, Value::Empty) => {
            // Empty only equals the empty text.
            let eq = matches!(v, Value::Str(s) if s.is_empty());
            return match op {
                Cmp::Eq => eq,
                Cmp::Ne => !eq,
                _ => false,
            };
        }
        (Value::Num(_), _) | (_, Value::Num(_)) => match (a.number(), b.number()) {
            (Some(x), Some(y)) => x.partial_cmp(&y),
            _ => None,
        },
        _ => Some(a.text().cmp(&b.text())),
    };
    match (op, ord) {
        (Cmp::Eq, o) => o == Some(Ordering::Equal),
        (Cmp::Ne, o) => o != Some(Ordering::Equal),
        (_, None) => false,
        (Cmp::Lt, Some(o)) => o == Ordering::Less,
        (Cmp::Le, Some(o)) => o != Ordering::Greater,
        (Cmp::Gt, Some(o)) => o == Ordering::Greater,
        (Cmp::Ge, Some(o)) => o != Ordering::Less,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(src: &str, answers: &[(&str, Value)]) -> bool {
        let e = parse(src).unwrap_or_else(|err| panic!("{src}: {err}"));
        let lookup = |id: &str| answers.iter().find(|(k, _)| *k == id).map(|(_, v)| v.clone()).unwrap_or(Value::Empty);
        e.eval(&lookup, &Value::Num(7.0)).truthy()
    }

    #[test]
    fn comparisons_logic_and_functions() {
        let a = [
            ("age", Value::Num(70.0)),
            ("kids", Value::Num(2.0)),
            ("needs", Value::List(vec!["meals".into(), "visits".into()])),
            ("sex", Value::Str("f".into())),
            ("note", Value::Str("你好".into())),
        ];
        assert!(eval("${age} >= 65", &a));
        assert!(eval("age >= 65 and not(kids = 0)", &a));
        assert!(eval("selected(${needs}, 'meals') or ${age} < 18", &a));
        assert!(!eval("selected(needs, 'repairs')", &a));
        assert!(eval("count-selected(${needs}) = 2", &a));
        assert!(eval("${sex} = 'f' and ${kids} * 2 + 1 = 5", &a));
        assert!(eval("string-length(${note}) = 2", &a));
        assert!(eval(". > 5 and . <= 10", &a));
        assert!(eval("${age} - 60 = 10", &a));
        assert!(eval("7 mod 4 = 3 and 9 div 3 = 3 and -2 < 0", &a));
        assert!(eval("${note} != ''", &a));
        // Hidden or unanswered: empty, equal to '' and never ordered.
        assert!(eval("${missing} = ''", &a));
        assert!(!eval("${missing} > 0", &a));
        assert!(!eval("${missing} < 0", &a));
        assert!(!eval("${missing} + 1 = 1", &a));
        assert!(eval("not (${missing} = 'x')", &a));
        // Dates compare as text, which orders ISO dates.
        assert!(eval("'2026-03-01' < '2026-11-21'", &a));
        // Precedence: and binds tighter than or.
        assert!(eval("1 = 1 or 1 = 2 and 1 = 3", &a));
        assert!(!eval("(1 = 1 or 1 = 2) and 1 = 3", &a));
    }

    #[test]
    fn bad_expressions_say_where() {
        for (src, at, what) in [
            ("${age >= 3", 0, "missing `}`"),
            ("age >=", 6, "ends too soon"),
            ("age > 3 and", 11, "ends too soon"),
            ("lookup(age)", 0, "unknown function"),
            ("selected(age)", 12, "takes 2 arguments"),
            ("selected('x', 'y')", 17, "first argument"),
            ("1 < 2 < 3", 6, "do not chain"),
            ("'open", 0, "unterminated"),
            ("age # 3", 4, "unexpected `#`"),
            ("(1 = 1", 6, "expected `)`"),
            ("", 0, "empty"),
            ("Age > 1", 0, "lowercase"),
        ] {
            let e = parse(src).expect_err(src);
            assert!(e.message.contains(what), "{src}: {e}");
            assert_eq!(e.at, at, "{src}: {e}");
        }
        let deep = format!("{}1{}", "(".repeat(100), ")".repeat(100));
        assert!(parse(&deep).expect_err("deep").message.contains("deeply"));
        assert!(parse(&"1 + ".repeat(1000)).is_err());
    }

    #[test]
    fn references_are_listed() {
        let e = parse("selected(${a}, 'x') and b > . and count-selected(c) = 1").expect("parse");
        let (mut refs, mut cur) = (Vec::new(), false);
        e.refs(&mut refs, &mut cur);
        assert_eq!(refs, ["a", "b", "c"]);
        assert!(cur);
        let mut choice = Vec::new();
        e.choice_refs(&mut choice);
        assert_eq!(choice, ["a", "c"]);
    }
}

//! Survey definitions: the documented JSON format (docs/surveys.md), its
//! import with errors that name the question and the line, and the checks an
//! answer sheet passes before it is submitted and again when it is counted.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use super::expr::{self, Expr, Value};
use crate::doc::valid_token;

/// The format tag of a definition file.
pub const FORMAT: &str = "linli-survey/1";

const MAX_ITEMS: usize = 500;
const MAX_OPTIONS: usize = 200;
const MAX_TEXT: u32 = 10_000;
const DEFAULT_TEXT: u32 = 2_000;
const MAX_GROUP_DEPTH: usize = 3;

/// The value a choice answer takes when "other, please specify" is picked.
pub const OTHER: &str = "other";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Group,
    Single,
    Multiple,
    Text,
    Number,
    Rating,
    Date,
    Ranking,
    Note,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Group => "group",
            Kind::Single => "single",
            Kind::Multiple => "multiple",
            Kind::Text => "text",
            Kind::Number => "number",
            Kind::Rating => "rating",
            Kind::Date => "date",
            Kind::Ranking => "ranking",
            Kind::Note => "note",
        }
    }

    fn has_options(self) -> bool {
        matches!(self, Kind::Single | Kind::Multiple | Kind::Ranking)
    }

    /// Whether the item takes an answer.
    pub fn answerable(self) -> bool {
        !matches!(self, Kind::Group | Kind::Note)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Choice {
    pub value: String,
    pub label: String,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// One item of a survey: a question, a note, or a group shown on one screen.
/// Fields that do not apply to the item's type must be absent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Question {
    #[serde(rename = "type")]
    pub kind: Kind,
    pub id: String,
    #[serde(default)]
    pub label: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hint: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub required: bool,
    /// Skip logic: shown only when this holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relevant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraint_message: Option<String>,
    /// single, multiple, ranking.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<Choice>,
    /// single, multiple: offer "other, please specify".
    #[serde(default, skip_serializing_if = "is_false")]
    pub other: bool,
    /// multiple: fewest / most picks; number: smallest / largest value;
    /// ranking: (max) how many options to rank.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// number: allow decimals (else whole numbers).
    #[serde(default, skip_serializing_if = "is_false")]
    pub decimal: bool,
    /// text: most characters (default 2,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u32>,
    /// rating: the top of the scale (values 1..=scale).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<u32>,
    /// rating: a label per value, for 1 first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// date: earliest and latest allowed (YYYY-MM-DD).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub earliest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest: Option<String>,
    /// group: its items.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<Question>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Per {
    #[default]
    Member,
    Household,
}

/// Who the survey is for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Target {
    #[default]
    Space,
    Grids {
        ids: Vec<String>,
    },
    Buildings {
        names: Vec<String>,
    },
}

/// A survey definition, as imported, exported and stored with each version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SurveyDef {
    pub format: String,
    pub title: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default)]
    pub anonymous: bool,
    #[serde(default)]
    pub per: Per,
    #[serde(default)]
    pub target: Target,
    /// Milliseconds since the epoch; absent: open at publication / until closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opens_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closes_at: Option<i64>,
    pub items: Vec<Question>,
}

// ---------------------------------------------------------------------------
// Errors

/// A problem with a definition or an answer sheet: which question (if one),
/// which line of the file (on import), and what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub question: Option<String>,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(l) = self.line {
            write!(f, "line {l}: ")?;
        }
        if let Some(q) = &self.question {
            write!(f, "question `{q}`: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Problems, shown one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

fn problem(question: Option<&str>, message: impl Into<String>) -> Problem {
    Problem { question: question.map(str::to_string), line: None, message: message.into() }
}

/// The line (1-based) where `"id": "<id>"` is written in a definition file.
fn line_of(text: &str, id: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(pos) = text[from..].find("\"id\"") {
        let start = from + pos;
        let mut i = start + 4;
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if bytes.get(i) == Some(&b':') {
            i += 1;
            while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            let quoted = format!("\"{id}\"");
            if text[i..].starts_with(&quoted) {
                return Some(text[..start].matches('\n').count() + 1);
            }
        }
        from = start + 4;
    }
    None
}

// ---------------------------------------------------------------------------
// Import and export

/// Parse a definition file: JSON syntax (with its line), the shape of every
/// item (naming the innermost item that is wrong), then the rules of
/// [`Form::compile`]. Every problem found is returned, each with its line.
pub fn import(text: &str) -> Result<(SurveyDef, Form), Problems> {
    let json: Json = serde_json::from_str(text).map_err(|e| {
        Problems(vec![Problem { question: None, line: Some(e.line()), message: format!("not valid JSON: {e}") }])
    })?;
    let def = match serde_json::from_value::<SurveyDef>(json.clone()) {
        Ok(d) => d,
        Err(e) => {
            let mut found = Vec::new();
            if let Some(items) = json.get("items").and_then(Json::as_array) {
                for item in items {
                    locate(item, &mut found);
                }
            }
            if found.is_empty() {
                return Err(Problems(vec![problem(None, e.to_string())]));
            }
            let problems = found
                .into_iter()
                .map(|(id, message)| Problem {
                    line: id.as_deref().and_then(|i| line_of(text, i)),
                    question: id,
                    message,
                })
                .collect();
            return Err(Problems(problems));
        }
    };
    match Form::compile(&def) {
        Ok(form) => Ok((def, form)),
        Err(Problems(mut ps)) => {
            for p in &mut ps {
                p.line = p.question.as_deref().and_then(|q| line_of(text, q));
            }
            Err(Problems(ps))
        }
    }
}

/// Find the innermost items that do not deserialize.
fn locate(item: &Json, found: &mut Vec<(Option<String>, String)>) {
    let Err(e) = serde_json::from_value::<Question>(item.clone()) else { return };
    let before = found.len();
    if let Some(children) = item.get("items").and_then(Json::as_array) {
        for c in children {
            locate(c, found);
        }
    }
    if found.len() == before {
        let id = item.get("id").and_then(Json::as_str).map(str::to_string);
        found.push((id, e.to_string()));
    }
}

/// The definition as a file (pretty JSON).
pub fn export(def: &SurveyDef) -> String {
    serde_json::to_string_pretty(def).unwrap_or_default()
}

// ---------------------------------------------------------------------------
// The compiled form

/// A question with its parsed expressions and the skip logic of the groups
/// around it.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub q: Question,
    /// The `relevant` of each enclosing group, outermost first, then its own.
    relevant: Vec<Expr>,
    constraint: Option<Expr>,
    /// The enclosing groups (for the visible list).
    pub groups: Vec<String>,
}

/// A definition ready to check answers: every item in order, groups flattened.
#[derive(Debug, Clone)]
pub struct Form {
    pub def: SurveyDef,
    pub questions: Vec<Compiled>,
    index: HashMap<String, usize>,
}

/// Answers keyed by question id, typed.
pub type Answers = BTreeMap<String, Json>;

/// What checking an answer sheet found.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The answers to keep: hidden questions' answers dropped.
    pub kept: Answers,
    /// One problem per question that has one.
    pub problems: Vec<Problem>,
    /// Per question of [`Form::questions`]: whether the answers show it.
    pub shown: Vec<bool>,
}

impl Form {
    /// Check a definition and parse its expressions.
    pub fn compile(def: &SurveyDef) -> Result<Form, Problems> {
        let mut ps = Vec::new();
        if def.format != FORMAT {
            ps.push(problem(None, format!("`format` must be \"{FORMAT}\"")));
        }
        if def.title.trim().is_empty() {
            ps.push(problem(None, "the survey needs a title"));
        }
        if let (Some(o), Some(c)) = (def.opens_at, def.closes_at)
            && c <= o
        {
            ps.push(problem(None, "`closes_at` must come after `opens_at`"));
        }
        match &def.target {
            Target::Grids { ids } if ids.is_empty() => ps.push(problem(None, "target the grids by id")),
            Target::Buildings { names } if names.is_empty() => ps.push(problem(None, "target the buildings by name")),
            _ => {}
        }
        let mut form = Form { def: def.clone(), questions: Vec::new(), index: HashMap::new() };
        let mut seen = BTreeSet::new();
        let mut count = 0;
        form.walk(&def.items, &[], &[], 1, &mut seen, &mut count, &mut ps);
        if count > MAX_ITEMS {
            ps.push(problem(None, format!("more than {MAX_ITEMS} items")));
        }
        if !form.questions.iter().any(|c| c.q.kind.answerable()) {
            ps.push(problem(None, "the survey has no question to answer"));
        }
        if ps.is_empty() { Ok(form) } else { Err(Problems(ps)) }
    }

    #[allow(clippy::too_many_arguments)]
    fn walk(
        &mut self,
        items: &[Question],
        outer: &[Expr],
        groups: &[String],
        depth: usize,
        seen: &mut BTreeSet<String>,
        count: &mut usize,
        ps: &mut Vec<Problem>,
    ) {
        for q in items {
            *count += 1;
            let id = q.id.as_str();
            if !valid_token(id) {
                ps.push(problem(Some(id), "an id is 1–64 lowercase letters, digits, `-` and `_`"));
                continue;
            }
            if !seen.insert(q.id.clone()) {
                ps.push(problem(Some(id), "the id is used twice"));
                continue;
            }
            let before = ps.len();
            check_fields(q, ps);
            let mut relevant = outer.to_vec();
            if let Some(src) = &q.relevant {
                match expr::parse(src) {
                    Ok(e) => {
                        self.check_refs(q, "relevant", &e, false, ps);
                        relevant.push(e);
                    }
                    Err(e) => ps.push(problem(Some(id), format!("relevant: {e}"))),
                }
            }
            let constraint = match &q.constraint {
                Some(src) => match expr::parse(src) {
                    Ok(e) => {
                        self.check_refs(q, "constraint", &e, true, ps);
                        Some(e)
                    }
                    Err(e) => {
                        ps.push(problem(Some(id), format!("constraint: {e}")));
                        None
                    }
                },
                None => None,
            };
            if q.kind == Kind::Group {
                if depth > MAX_GROUP_DEPTH {
                    ps.push(problem(Some(id), format!("groups nest at most {MAX_GROUP_DEPTH} deep")));
                    continue;
                }
                if q.items.is_empty() {
                    ps.push(problem(Some(id), "a group needs items"));
                }
                let mut inner = groups.to_vec();
                inner.push(q.id.clone());
                self.walk(&q.items, &relevant, &inner, depth + 1, seen, count, ps);
                continue;
            }
            if ps.len() == before {
                self.index.insert(q.id.clone(), self.questions.len());
                self.questions.push(Compiled { q: q.clone(), relevant, constraint, groups: groups.to_vec() });
            }
        }
    }

    /// Expressions read earlier questions only (a constraint may read its own
    /// question as `.` or by id), and `selected` reads choice questions.
    fn check_refs(&self, q: &Question, what: &str, e: &Expr, constraint: bool, ps: &mut Vec<Problem>) {
        let (mut refs, mut current) = (Vec::new(), false);
        e.refs(&mut refs, &mut current);
        if current && !constraint {
            ps.push(problem(Some(&q.id), format!("{what}: `.` is only for constraints")));
        }
        for r in refs {
            if constraint && r == q.id {
                continue;
            }
            if !self.index.contains_key(&r) {
                ps.push(problem(Some(&q.id), format!("{what}: `{r}` is not an earlier question")));
            }
        }
        let mut choice = Vec::new();
        e.choice_refs(&mut choice);
        for r in choice {
            let kind = if r == q.id { Some(q.kind) } else { self.index.get(&r).map(|&i| self.questions[i].q.kind) };
            if kind.is_some_and(|k| !matches!(k, Kind::Single | Kind::Multiple)) {
                ps.push(problem(Some(&q.id), format!("{what}: `{r}` is not a choice question")));
            }
        }
    }

    pub fn question(&self, id: &str) -> Option<&Compiled> {
        self.index.get(id).map(|&i| &self.questions[i])
    }

    /// The answerable questions, in order.
    pub fn answerable(&self) -> impl Iterator<Item = &Compiled> {
        self.questions.iter().filter(|c| c.q.kind.answerable())
    }

    /// The position of a question in [`Form::questions`].
    pub fn position(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }

    /// Check an answer sheet. Returns the answers to keep (hidden questions'
    /// answers dropped, values typed) and the problems, one per question.
    pub fn check(&self, answers: &Map<String, Json>) -> (Answers, Vec<Problem>) {
        let c = self.check_full(answers);
        (c.kept, c.problems)
    }

    /// [`Form::check`], also saying which questions the answers show.
    pub fn check_full(&self, answers: &Map<String, Json>) -> Checked {
        let mut ps = Vec::new();
        let mut shown = vec![false; self.questions.len()];
        for key in answers.keys() {
            let base = key.strip_suffix(":other").unwrap_or(key);
            if self.question(base).is_none_or(|c| !c.q.kind.answerable()) {
                ps.push(problem(Some(base), "no such question in this version"));
            }
        }
        let mut kept: Answers = BTreeMap::new();
        let mut values: HashMap<&str, Value> = HashMap::new();
        for (i, c) in self.questions.iter().enumerate() {
            let id = c.q.id.as_str();
            let lookup = |r: &str| values.get(r).cloned().unwrap_or(Value::Empty);
            if !c.relevant.iter().all(|e| e.eval(&lookup, &Value::Empty).truthy()) {
                continue;
            }
            shown[i] = true;
            if !c.q.kind.answerable() {
                continue;
            }
            let given = answers.get(id).filter(|v| !is_blank(v));
            let other = answers.get(&format!("{id}:other")).and_then(Json::as_str).map(str::trim).unwrap_or("");
            let Some(given) = given else {
                if c.q.required {
                    ps.push(problem(Some(id), "an answer is required"));
                }
                continue;
            };
            let value = match typed(&c.q, given, other) {
                Ok(v) => v,
                Err(m) => {
                    ps.push(problem(Some(id), m));
                    continue;
                }
            };
            if let Some(con) = &c.constraint {
                let current = value.clone();
                let lookup =
                    |r: &str| if r == id { current.clone() } else { values.get(r).cloned().unwrap_or(Value::Empty) };
                if !con.eval(&lookup, &value).truthy() {
                    let m = c.q.constraint_message.clone().unwrap_or_else(|| "the answer is not allowed".into());
                    ps.push(problem(Some(id), m));
                    continue;
                }
            }
            kept.insert(id.to_string(), given.clone());
            if !other.is_empty() && picks(given).contains(&OTHER) {
                kept.insert(format!("{id}:other"), Json::String(other.to_string()));
            }
            values.insert(id, value);
        }
        Checked { kept, problems: ps, shown }
    }

    /// The ids of the items shown for these answers (groups and questions).
    pub fn visible(&self, answers: &Map<String, Json>) -> Vec<String> {
        // A question is shown only when every enclosing group's skip logic
        // holds too, so a group is listed before its first shown item (and
        // a group none of whose items show is not listed).
        let shown = self.check_full(answers).shown;
        let mut out = Vec::new();
        let mut listed = BTreeSet::new();
        for (c, _) in self.questions.iter().zip(&shown).filter(|(_, s)| **s) {
            for g in &c.groups {
                if listed.insert(g.as_str()) {
                    out.push(g.clone());
                }
            }
            out.push(c.q.id.clone());
        }
        out
    }
}

fn is_blank(v: &Json) -> bool {
    match v {
        Json::Null => true,
        Json::String(s) => s.trim().is_empty(),
        Json::Array(a) => a.is_empty(),
        _ => false,
    }
}

fn picks(v: &Json) -> Vec<&str> {
    match v {
        Json::String(s) => vec![s.as_str()],
        Json::Array(a) => a.iter().filter_map(Json::as_str).collect(),
        _ => Vec::new(),
    }
}

/// The typed value of an answer, or why it does not fit the question.
/// Messages never repeat the answer itself.
pub fn typed(q: &Question, v: &Json, other: &str) -> Result<Value, String> {
    let option_ok = |s: &str| q.options.iter().any(|o| o.value == s) || (q.other && s == OTHER);
    match q.kind {
        Kind::Single => {
            let s = v.as_str().ok_or("pick one option")?;
            if !option_ok(s) {
                return Err("not one of the options".into());
            }
            if s == OTHER && other.is_empty() {
                return Err("please specify \"other\"".into());
            }
            Ok(Value::Str(s.to_string()))
        }
        Kind::Multiple | Kind::Ranking => {
            let a = v.as_array().ok_or("a list of options")?;
            let mut out = Vec::with_capacity(a.len());
            for x in a {
                let s = x.as_str().ok_or("a list of options")?;
                if !option_ok(s) || (q.kind == Kind::Ranking && s == OTHER) {
                    return Err("not one of the options".into());
                }
                if out.iter().any(|p: &String| p == s) {
                    return Err("an option is picked twice".into());
                }
                out.push(s.to_string());
            }
            let n = out.len() as f64;
            if q.kind == Kind::Multiple {
                if q.min.is_some_and(|m| n < m) {
                    return Err(format!("pick at least {}", q.min.unwrap_or_default()));
                }
                if q.max.is_some_and(|m| n > m) {
                    return Err(format!("pick at most {}", q.max.unwrap_or_default()));
                }
                if out.iter().any(|s| s == OTHER) && other.is_empty() {
                    return Err("please specify \"other\"".into());
                }
            } else {
                let want = q.max.map(|m| m as usize).unwrap_or(q.options.len());
                if out.len() != want {
                    return Err(format!("rank {want} options"));
                }
            }
            Ok(Value::List(out))
        }
        Kind::Text => {
            let s = v.as_str().ok_or("text")?;
            let max = q.max_length.unwrap_or(DEFAULT_TEXT) as usize;
            if s.chars().count() > max {
                return Err(format!("at most {max} characters"));
            }
            Ok(Value::Str(s.to_string()))
        }
        Kind::Number => {
            let n = v.as_f64().filter(|n| n.is_finite()).ok_or("a number")?;
            if !q.decimal && n.fract() != 0.0 {
                return Err("a whole number".into());
            }
            if q.min.is_some_and(|m| n < m) || q.max.is_some_and(|m| n > m) {
                return Err(range_message(q.min, q.max));
            }
            Ok(Value::Num(n))
        }
        Kind::Rating => {
            let n = v.as_i64().ok_or("a whole number on the scale")?;
            let scale = i64::from(q.scale.unwrap_or(5));
            if !(1..=scale).contains(&n) {
                return Err(format!("a value from 1 to {scale}"));
            }
            Ok(Value::Num(n as f64))
        }
        Kind::Date => {
            let s = v.as_str().ok_or("a date (YYYY-MM-DD)")?;
            if !valid_date(s) {
                return Err("a date (YYYY-MM-DD)".into());
            }
            if q.earliest.as_deref().is_some_and(|e| s < e) || q.latest.as_deref().is_some_and(|l| s > l) {
                return Err(match (&q.earliest, &q.latest) {
                    (Some(e), Some(l)) => format!("a date from {e} to {l}"),
                    (Some(e), None) => format!("a date from {e}"),
                    (_, Some(l)) => format!("a date up to {l}"),
                    _ => String::new(),
                });
            }
            Ok(Value::Str(s.to_string()))
        }
        Kind::Group | Kind::Note => Err("takes no answer".into()),
    }
}

fn range_message(min: Option<f64>, max: Option<f64>) -> String {
    let f = |n: f64| if n.fract() == 0.0 { format!("{}", n as i64) } else { format!("{n}") };
    match (min, max) {
        (Some(a), Some(b)) => format!("a number from {} to {}", f(a), f(b)),
        (Some(a), None) => format!("a number of at least {}", f(a)),
        (None, Some(b)) => format!("a number of at most {}", f(b)),
        _ => "a number".into(),
    }
}

/// A calendar date written YYYY-MM-DD.
pub fn valid_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let num =
        |r: std::ops::Range<usize>| s.get(r).filter(|t| t.bytes().all(|c| c.is_ascii_digit()))?.parse::<u32>().ok();
    let (Some(y), Some(m), Some(d)) = (num(0..4), num(5..7), num(8..10)) else { return false };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&d)
}

/// The rules on which fields each item type takes.
fn check_fields(q: &Question, ps: &mut Vec<Problem>) {
    let id = Some(q.id.as_str());
    let k = q.kind;
    let mut not_for = |field: &str, present: bool| {
        if present {
            ps.push(problem(id, format!("`{field}` does not apply to a {} item", k.as_str())));
        }
    };
    not_for("options", !k.has_options() && !q.options.is_empty());
    not_for("other", !matches!(k, Kind::Single | Kind::Multiple) && q.other);
    not_for("min", !matches!(k, Kind::Multiple | Kind::Number) && q.min.is_some());
    not_for("max", !matches!(k, Kind::Multiple | Kind::Number | Kind::Ranking) && q.max.is_some());
    not_for("decimal", k != Kind::Number && q.decimal);
    not_for("max_length", k != Kind::Text && q.max_length.is_some());
    not_for("scale", k != Kind::Rating && q.scale.is_some());
    not_for("labels", k != Kind::Rating && !q.labels.is_empty());
    not_for("earliest", k != Kind::Date && q.earliest.is_some());
    not_for("latest", k != Kind::Date && q.latest.is_some());
    not_for("items", k != Kind::Group && !q.items.is_empty());
    not_for("required", !k.answerable() && q.required);
    not_for("constraint", !k.answerable() && q.constraint.is_some());
    if q.constraint_message.is_some() && q.constraint.is_none() {
        ps.push(problem(id, "`constraint_message` without a `constraint`"));
    }
    if k != Kind::Group && q.label.trim().is_empty() {
        ps.push(problem(id, "a label is needed"));
    }
    if k.has_options() {
        if q.options.is_empty() {
            ps.push(problem(id, "options are needed"));
        }
        if q.options.len() > MAX_OPTIONS {
            ps.push(problem(id, format!("more than {MAX_OPTIONS} options")));
        }
        let mut values = BTreeSet::new();
        for o in &q.options {
            if !valid_token(&o.value) {
                ps.push(problem(id, format!("option value `{}`: lowercase letters, digits, `-` and `_`", o.value)));
            } else if o.value == OTHER && (q.other || k == Kind::Ranking) {
                ps.push(problem(id, "the option value `other` is kept for \"other, please specify\""));
            } else if !values.insert(o.value.as_str()) {
                ps.push(problem(id, format!("option value `{}` is used twice", o.value)));
            }
            if o.label.trim().is_empty() {
                ps.push(problem(id, format!("option `{}` needs a label", o.value)));
            }
        }
    }
    let whole = |n: Option<f64>| n.is_none_or(|n| n.fract() == 0.0 && n >= 0.0);
    if let (Some(a), Some(b)) = (q.min, q.max)
        && a > b
    {
        ps.push(problem(id, "`min` is larger than `max`"));
    }
    match k {
        Kind::Multiple => {
            let picks = (q.options.len() + usize::from(q.other)) as f64;
            if !whole(q.min) || !whole(q.max) || q.min.is_some_and(|m| m > picks) || q.max.is_some_and(|m| m < 1.0) {
                ps.push(problem(id, "`min` and `max` count picks: whole numbers within the options"));
            }
        }
        Kind::Ranking if !whole(q.max) || q.max.is_some_and(|m| m < 1.0 || m > q.options.len() as f64) => {
            ps.push(problem(id, "`max` is how many options to rank, at most all of them"));
        }
        Kind::Text if q.max_length.is_some_and(|m| m == 0 || m > MAX_TEXT) => {
            ps.push(problem(id, format!("`max_length` is from 1 to {MAX_TEXT}")));
        }
        Kind::Rating => {
            let scale = q.scale.unwrap_or(5);
            if !(2..=10).contains(&scale) {
                ps.push(problem(id, "`scale` is from 2 to 10"));
            }
            if !q.labels.is_empty() && q.labels.len() != scale as usize {
                ps.push(problem(id, format!("{} labels for a scale of {scale}", q.labels.len())));
            }
        }
        Kind::Date => {
            for d in [&q.earliest, &q.latest].into_iter().flatten() {
                if !valid_date(d) {
                    ps.push(problem(id, "dates are written YYYY-MM-DD"));
                }
            }
            if let (Some(a), Some(b)) = (&q.earliest, &q.latest)
                && a > b
            {
                ps.push(problem(id, "`earliest` is after `latest`"));
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn form(items: Json) -> Form {
        let def = json!({"format": FORMAT, "title": "t", "items": items}).to_string();
        import(&def).map(|(_, f)| f).unwrap_or_else(|e| panic!("{e}"))
    }

    fn answers(v: Json) -> Map<String, Json> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn skip_logic_hides_and_drops_answers() {
        let f = form(json!([
            {"type": "number", "id": "age", "label": "年龄", "required": true, "min": 0, "max": 130},
            {"type": "group", "id": "elder", "label": "长者", "relevant": "${age} >= 65", "items": [
                {"type": "single", "id": "alone", "label": "独居?", "required": true,
                 "options": [{"value": "yes", "label": "是"}, {"value": "no", "label": "否"}]},
                {"type": "multiple", "id": "help", "label": "需要", "relevant": "${alone} = 'yes'", "other": true,
                 "min": 1, "max": 2, "options": [{"value": "meals", "label": "助餐"}, {"value": "visits", "label": "探访"}]}
            ]},
            {"type": "text", "id": "note", "label": "备注", "max_length": 5}
        ]));
        // Young: the group is hidden, its answers dropped, not required.
        let (kept, ps) = f.check(&answers(json!({"age": 30, "alone": "yes", "help": ["meals"]})));
        assert!(ps.is_empty(), "{ps:?}");
        assert_eq!(kept.keys().collect::<Vec<_>>(), ["age"]);
        assert_eq!(f.visible(&answers(json!({"age": 30}))), ["age", "note"]);
        // Old and alone: both shown; the required one is enforced.
        let (_, ps) = f.check(&answers(json!({"age": 80})));
        assert_eq!(ps, [problem(Some("alone"), "an answer is required")]);
        assert_eq!(f.visible(&answers(json!({"age": 80, "alone": "yes"}))), ["age", "elder", "alone", "help", "note"]);
        let (kept, ps) = f.check(&answers(json!({"age": 80, "alone": "yes", "help": ["other"], "help:other": "理发"})));
        assert!(ps.is_empty(), "{ps:?}");
        assert_eq!(kept.get("help:other"), Some(&json!("理发")));
        // Each rule gives its own problem on its own question.
        let (_, ps) = f.check(&answers(json!({
            "age": 200, "note": "太长了太长了", "zzz": 1
        })));
        let got: Vec<(Option<&str>, &str)> = ps.iter().map(|p| (p.question.as_deref(), p.message.as_str())).collect();
        assert_eq!(
            got,
            [
                (Some("zzz"), "no such question in this version"),
                (Some("age"), "a number from 0 to 130"),
                (Some("note"), "at most 5 characters")
            ]
        );
        let (_, ps) = f.check(&answers(json!({"age": 70, "alone": "yes", "help": ["meals", "visits", "other"]})));
        assert_eq!(ps[0].message, "pick at most 2");
        let (_, ps) = f.check(&answers(json!({"age": 70, "alone": "yes", "help": ["other"]})));
        assert_eq!(ps[0].message, "please specify \"other\"");
        let (_, ps) = f.check(&answers(json!({"age": 70.5})));
        assert_eq!(ps[0].message, "a whole number");
    }

    #[test]
    fn constraints_speak_their_message() {
        let f = form(json!([
            {"type": "number", "id": "people", "label": "人数", "min": 1},
            {"type": "number", "id": "elders", "label": "老人数", "constraint": ". <= ${people}",
             "constraint_message": "老人数不能超过人数"},
            {"type": "date", "id": "moved", "label": "入住", "earliest": "1950-01-01", "latest": "2026-12-31"},
            {"type": "rating", "id": "sat", "label": "满意度", "scale": 5, "labels": ["很不满意","不满意","基本满意","满意","很满意"]},
            {"type": "ranking", "id": "prio", "label": "优先", "max": 2,
             "options": [{"value": "a", "label": "A"}, {"value": "b", "label": "B"}, {"value": "c", "label": "C"}]}
        ]));
        let (_, ps) = f.check(&answers(json!({"people": 2, "elders": 3})));
        assert_eq!(ps, [problem(Some("elders"), "老人数不能超过人数")]);
        let (_, ps) = f.check(&answers(json!({"people": 3, "elders": 3, "moved": "2026-02-30"})));
        assert_eq!(ps[0].message, "a date (YYYY-MM-DD)");
        let (_, ps) = f.check(&answers(json!({"moved": "1949-12-31"})));
        assert_eq!(ps[0].message, "a date from 1950-01-01 to 2026-12-31");
        let (_, ps) = f.check(&answers(json!({"sat": 6})));
        assert_eq!(ps[0].message, "a value from 1 to 5");
        let (_, ps) = f.check(&answers(json!({"prio": ["a"]})));
        assert_eq!(ps[0].message, "rank 2 options");
        let (_, ps) = f.check(&answers(json!({"prio": ["a", "a"]})));
        assert_eq!(ps[0].message, "an option is picked twice");
        let (kept, ps) =
            f.check(&answers(json!({"people": 4, "elders": 1, "moved": "2024-02-29", "sat": 4, "prio": ["c", "a"]})));
        assert!(ps.is_empty(), "{ps:?}");
        assert_eq!(kept.len(), 5);
    }

    #[test]
    fn a_bad_file_names_the_line_and_the_question() {
        let text = r#"{
  "format": "linli-survey/1",
  "title": "居民需求调查",
  "items": [
    {"type": "single", "id": "q1", "label": "A", "options": [{"value": "a", "label": "A"}]},
    {"type": "text", "id": "q2", "label": "B",
     "relevant": "${q3} = 'x'"},
    {"type": "single", "id": "q3", "label": "C", "options": []}
  ]
}"#;
        let e = import(text).expect_err("bad");
        let got: Vec<String> = e.0.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            got,
            [
                "line 6: question `q2`: relevant: `q3` is not an earlier question",
                "line 8: question `q3`: options are needed",
            ]
        );
        // A field of the wrong shape inside a group names the innermost item.
        let text = "{\"format\": \"linli-survey/1\", \"title\": \"t\", \"items\": [\n {\"type\": \"group\", \"id\": \"g\", \"items\": [\n  {\"type\": \"number\", \"id\": \"n\", \"label\": \"N\", \"min\": \"ten\"}]}]}";
        let e = import(text).expect_err("bad");
        assert_eq!(e.0[0].question.as_deref(), Some("n"));
        assert_eq!(e.0[0].line, Some(3));
        // Syntax errors carry serde's line.
        let e = import("{\n\"format\": \"linli-survey/1\",\n\"title\": }").expect_err("bad");
        assert_eq!(e.0[0].line, Some(3));
        assert!(e.0[0].message.starts_with("not valid JSON"));
        // Unknown type, unknown field, fields that do not apply.
        for (items, want) in [
            (json!([{"type": "slider", "id": "s", "label": "S"}]), "unknown variant `slider`"),
            (json!([{"type": "text", "id": "s", "label": "S", "colour": "red"}]), "unknown field `colour`"),
            (
                json!([{"type": "text", "id": "s", "label": "S", "options": [{"value": "a", "label": "A"}]}]),
                "`options` does not apply",
            ),
            (json!([{"type": "note", "id": "s", "label": "S", "required": true}]), "`required` does not apply"),
            (
                json!([{"type": "rating", "id": "s", "label": "S", "scale": 5, "labels": ["a"]}]),
                "1 labels for a scale of 5",
            ),
            (json!([{"type": "text", "id": "s", "label": "S", "relevant": ". > 1"}]), "only for constraints"),
            (
                json!([{"type": "text", "id": "s", "label": "S"}, {"type": "text", "id": "s", "label": "T"}]),
                "used twice",
            ),
            (
                json!([{"type": "text", "id": "t", "label": "T"}, {"type": "text", "id": "s", "label": "S", "relevant": "selected(t, 'x')"}]),
                "not a choice question",
            ),
            (json!([{"type": "note", "id": "s", "label": "S"}]), "no question to answer"),
            (
                json!([{"type": "single", "id": "s", "label": "S", "other": true, "options": [{"value": "other", "label": "O"}]}]),
                "kept for",
            ),
        ] {
            let text = json!({"format": FORMAT, "title": "t", "items": items}).to_string();
            let e = import(&text).expect_err(want);
            assert!(e.to_string().contains(want), "{want}: {e}");
        }
    }

    #[test]
    fn export_round_trips() {
        let text = json!({"format": FORMAT, "title": "满意度", "anonymous": true, "per": "household",
            "target": {"type": "grids", "ids": ["g1"]},
            "items": [{"type": "rating", "id": "r", "label": "R", "scale": 5, "required": true}]})
        .to_string();
        let (def, _) = import(&text).expect("import");
        let (again, _) = import(&export(&def)).expect("re-import");
        assert_eq!(def, again);
        assert!(valid_date("2000-02-29") && !valid_date("1900-02-29") && !valid_date("2026-13-01"));
    }
}

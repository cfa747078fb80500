//! Counting a survey: which responses count, and what they say. Pure: the
//! same survey document and the same responses give the same results, in
//! whatever order they arrived.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use super::form::{Form, Kind, OTHER, Per};

/// The status of a response that counts (any other is why it was set aside).
pub const COUNTED: &str = "counted";

/// Anonymous results are not shown for a grid or building with fewer
/// counted responses than this, so a filter cannot single people out.
pub const ANONYMITY_FLOOR: i64 = 5;

/// One member the survey is for, frozen when a version is published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Respondent {
    pub member: String,
    /// Who answers for the member: the member, or their household.
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub building: Option<String>,
}

/// A published version of a survey.
#[derive(Debug, Clone)]
pub struct Version {
    /// The entry key in the survey document (`v/<ms>/<random>`).
    pub key: String,
    /// 1 for the first published version, in (time, key) order.
    pub number: i64,
    pub at: i64,
    pub form: Form,
    pub audience: Vec<Respondent>,
}

/// A submitted answer sheet as the member's document holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The member whose device wrote it: the respondent, or an interviewer.
    pub author: String,
    /// The member it counts for (the author, unless an interviewer entered
    /// it for them at their door).
    pub respondent: String,
    pub entry: String,
    pub version: String,
    pub answers: String,
    pub at: i64,
    /// The hash of the change that wrote it: the respondent's receipt.
    pub receipt: [u8; 32],
}

/// Restrict results to the respondents of a grid or a building.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub building: Option<String>,
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        self.grid.is_none() && self.building.is_none()
    }

    /// Whether a respondent is in the filter.
    pub fn admits(&self, r: &Respondent) -> bool {
        self.grid.as_ref().is_none_or(|g| r.grid.as_ref() == Some(g))
            && self.building.as_ref().is_none_or(|b| r.building.as_ref() == Some(b))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptionCount {
    pub value: String,
    pub label: String,
    pub count: i64,
    /// Of the respondents who answered the question, in tenths of a percent.
    pub permille: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankRow {
    pub value: String,
    pub label: String,
    /// Times ranked first.
    pub first: i64,
    /// Times ranked at all.
    pub ranked: i64,
    /// Points: an option ranked r-th of n gets n - r + 1.
    pub points: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuestionResult {
    pub id: String,
    pub kind: String,
    pub label: String,
    /// Counted responses whose version asked the question and showed it.
    pub shown: i64,
    pub answered: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<OptionCount>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ranking: Vec<RankRow>,
    /// number, rating: mean, smallest, median and largest answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub median: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// rating, number, date: how many gave each value, in value order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub distribution: Vec<(String, i64)>,
    /// The versions (numbers) that asked it.
    pub versions: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionRow {
    pub number: i64,
    pub at: i64,
    /// Counted responses that answered this version.
    pub responses: i64,
    /// Questions this version added to the one before, and removed from it.
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// Questions whose definition changed from the version before.
    pub changed: Vec<String>,
}

/// Why each set-aside response was set aside, by receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRow {
    pub receipt: String,
    pub status: String,
    /// The interviewer who entered it for the respondent (named surveys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entered_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Results {
    pub survey: String,
    pub title: String,
    pub anonymous: bool,
    pub per: Per,
    pub filter: Filter,
    /// Respondents (members, or households) the survey is for, in the filter.
    pub audience: i64,
    pub responses: i64,
    /// `responses / audience` in tenths of a percent.
    pub response_permille: i64,
    pub versions: Vec<VersionRow>,
    pub questions: Vec<QuestionResult>,
    /// Count of responses set aside, by reason.
    pub set_aside: BTreeMap<String, i64>,
    /// Every response and its status (receipts only, never names); empty
    /// for an anonymous survey.
    pub audit: Vec<AuditRow>,
}

/// One counted response with what it says, for exports.
#[derive(Debug, Clone)]
pub struct Counted<'a> {
    pub respondent: &'a Respondent,
    pub version: &'a Version,
    pub response: &'a Response,
    pub answers: Map<String, Json>,
    /// Per question of the version's form: whether these answers show it.
    pub shown: Vec<bool>,
}

fn permille(part: i64, whole: i64) -> i64 {
    if whole == 0 { 0 } else { (part * 1000 + whole / 2) / whole }
}

/// Decide which responses count. Rules, in order:
/// 1. the member it is for must be in the audience of some version (the
///    latest version that lists them decides their household, grid and
///    building); answers entered for another member count only when their
///    author is an interviewer (`interviewers`: coordinators), else
///    `not_authorised`;
/// 2. a response dated before the opening or at/after the close is set aside;
/// 3. it must answer a version this survey has, and pass that version's
///    checks (an answer to a hidden question is dropped, not counted);
/// 4. per respondent (a member, or a household) the latest response counts,
///    ties broken by the greater receipt, whoever entered it; earlier ones
///    are history.
pub fn decide<'a>(
    versions: &'a [Version],
    opens_at: i64,
    closes_at: Option<i64>,
    responses: &'a [Response],
    interviewers: &BTreeSet<String>,
) -> (Vec<Counted<'a>>, Vec<AuditRow>) {
    let mut who: BTreeMap<&str, &Respondent> = BTreeMap::new();
    for v in versions {
        for r in &v.audience {
            who.insert(r.member.as_str(), r);
        }
    }
    let by_key: BTreeMap<&str, &Version> = versions.iter().map(|v| (v.key.as_str(), v)).collect();
    let mut audit = Vec::with_capacity(responses.len());
    let row = |resp: &Response, status: &str| AuditRow {
        receipt: hex::encode(resp.receipt),
        status: status.into(),
        entered_by: (resp.author != resp.respondent).then(|| resp.author.clone()),
    };
    // The best candidate per respondent key: (at, receipt) greatest wins.
    let mut best: BTreeMap<&str, (i64, [u8; 32], Counted<'a>)> = BTreeMap::new();
    for resp in responses {
        let status = (|| {
            let Some(&r) = who.get(resp.respondent.as_str()) else { return Err("not_in_audience") };
            if resp.author != resp.respondent && !interviewers.contains(&resp.author) {
                return Err("not_authorised");
            }
            if resp.at < opens_at {
                return Err("before_open");
            }
            if closes_at.is_some_and(|c| resp.at >= c) {
                return Err("after_close");
            }
            let Some(&v) = by_key.get(resp.version.as_str()) else { return Err("unknown_version") };
            let Ok(Json::Object(raw)) = serde_json::from_str::<Json>(&resp.answers) else { return Err("invalid") };
            let checked = v.form.check_full(&raw);
            if !checked.problems.is_empty() {
                return Err("invalid");
            }
            let answers = checked.kept.into_iter().collect();
            Ok(Counted { respondent: r, version: v, response: resp, answers, shown: checked.shown })
        })();
        match status {
            Err(reason) => audit.push(row(resp, reason)),
            Ok(c) => {
                let key = c.respondent.key.as_str();
                let newer = best.get(key).is_none_or(|(at, rc, _)| (resp.at, resp.receipt) > (*at, *rc));
                if newer {
                    if let Some((_, _, old)) = best.insert(key, (resp.at, resp.receipt, c)) {
                        audit.push(row(old.response, "superseded"));
                    }
                } else {
                    audit.push(row(resp, "superseded"));
                }
            }
        }
    }
    let counted: Vec<Counted<'a>> = best.into_values().map(|(_, _, c)| c).collect();
    for c in &counted {
        audit.push(row(c.response, COUNTED));
    }
    audit.sort_by(|a, b| a.receipt.cmp(&b.receipt));
    (counted, audit)
}

/// The audience in a filter: respondent keys of the latest version.
fn audience(versions: &[Version], filter: &Filter) -> i64 {
    let Some(latest) = versions.last() else { return 0 };
    latest.audience.iter().filter(|r| filter.admits(r)).map(|r| r.key.as_str()).collect::<BTreeSet<_>>().len() as i64
}

/// Count a survey.
pub fn count(
    survey: &str,
    versions: &[Version],
    opens_at: i64,
    closes_at: Option<i64>,
    responses: &[Response],
    interviewers: &BTreeSet<String>,
    filter: &Filter,
) -> Results {
    let (counted, mut audit) = decide(versions, opens_at, closes_at, responses, interviewers);
    let counted: Vec<&Counted> = counted.iter().filter(|c| filter.admits(c.respondent)).collect();
    let mut set_aside: BTreeMap<String, i64> = BTreeMap::new();
    for a in &audit {
        if a.status != COUNTED {
            *set_aside.entry(a.status.clone()).or_default() += 1;
        }
    }
    // An anonymous survey's results carry no receipts (a receipt is the
    // hash of a change its respondent's device signed) and name no
    // interviewer: only the counts of what was set aside, and why.
    if versions.last().is_some_and(|v| v.form.def.anonymous) {
        audit.clear();
    }
    let latest = versions.last();
    let title = latest.map(|v| v.form.def.title.clone()).unwrap_or_default();
    // Questions in the order of the latest version, then ones it dropped.
    let mut order: Vec<(&str, &super::form::Compiled)> = Vec::new();
    let mut listed = BTreeSet::new();
    for v in versions.iter().rev() {
        for c in v.form.answerable() {
            if listed.insert(c.q.id.as_str()) {
                order.push((c.q.id.as_str(), c));
            }
        }
    }
    let latest_ids: Vec<&str> =
        latest.map(|v| v.form.answerable().map(|c| c.q.id.as_str()).collect()).unwrap_or_default();
    order.sort_by_key(|(id, _)| latest_ids.iter().position(|l| l == id).unwrap_or(usize::MAX));

    let questions = order.iter().map(|(id, c)| question(id, c, versions, &counted)).collect();

    let mut rows = Vec::new();
    let mut prev: Option<&Version> = None;
    for v in versions {
        let ids: BTreeSet<&str> = v.form.answerable().map(|c| c.q.id.as_str()).collect();
        let before: BTreeSet<&str> =
            prev.map(|p| p.form.answerable().map(|c| c.q.id.as_str()).collect()).unwrap_or_default();
        let changed = prev
            .map(|p| {
                ids.iter()
                    .filter(|id| p.form.question(id).zip(v.form.question(id)).is_some_and(|(a, b)| a.q != b.q))
                    .map(|s| s.to_string())
                    .collect()
            })
            .unwrap_or_default();
        rows.push(VersionRow {
            number: v.number,
            at: v.at,
            responses: counted.iter().filter(|c| c.version.key == v.key).count() as i64,
            added: if prev.is_some() { ids.difference(&before).map(|s| s.to_string()).collect() } else { Vec::new() },
            removed: before.difference(&ids).map(|s| s.to_string()).collect(),
            changed,
        });
        prev = Some(v);
    }
    let audience = audience(versions, filter);
    let responses = counted.len() as i64;
    Results {
        survey: survey.to_string(),
        title,
        anonymous: latest.is_some_and(|v| v.form.def.anonymous),
        per: latest.map(|v| v.form.def.per).unwrap_or_default(),
        filter: filter.clone(),
        audience,
        responses,
        response_permille: permille(responses, audience),
        versions: rows,
        questions,
        set_aside,
        audit,
    }
}

fn question(id: &str, c: &super::form::Compiled, versions: &[Version], counted: &[&Counted]) -> QuestionResult {
    let q = &c.q;
    let asked_in: Vec<i64> = versions.iter().filter(|v| v.form.question(id).is_some()).map(|v| v.number).collect();
    let mut shown = 0;
    let mut answered = 0;
    let mut option_counts: BTreeMap<&str, i64> = BTreeMap::new();
    let mut numbers: Vec<f64> = Vec::new();
    let mut dates: BTreeMap<&str, i64> = BTreeMap::new();
    let mut ranks: BTreeMap<String, (i64, i64, i64)> = BTreeMap::new();
    for r in counted {
        let Some(pos) = r.version.form.position(id) else { continue };
        let vq = &r.version.form.questions[pos];
        let Some(a) = r.answers.get(id) else {
            // Not answered: shown unless skip logic hid it.
            if r.shown.get(pos).copied().unwrap_or(false) {
                shown += 1;
            }
            continue;
        };
        shown += 1;
        answered += 1;
        match vq.q.kind {
            Kind::Single => *option_counts.entry(a.as_str().unwrap_or_default()).or_default() += 1,
            Kind::Multiple => {
                for p in a.as_array().into_iter().flatten().filter_map(Json::as_str) {
                    *option_counts.entry(p).or_default() += 1;
                }
            }
            Kind::Ranking => {
                let list: Vec<&str> = a.as_array().into_iter().flatten().filter_map(Json::as_str).collect();
                let n = vq.q.options.len() as i64;
                for (i, p) in list.iter().enumerate() {
                    let e = ranks.entry(p.to_string()).or_default();
                    if i == 0 {
                        e.0 += 1;
                    }
                    e.1 += 1;
                    e.2 += n - i as i64;
                }
            }
            Kind::Number | Kind::Rating => {
                if let Some(n) = a.as_f64() {
                    numbers.push(n);
                }
            }
            Kind::Date => *dates.entry(a.as_str().unwrap_or_default()).or_default() += 1,
            Kind::Text | Kind::Group | Kind::Note => {}
        }
    }
    let mut options: Vec<OptionCount> = q
        .options
        .iter()
        .map(|o| {
            let count = option_counts.remove(o.value.as_str()).unwrap_or(0);
            OptionCount { value: o.value.clone(), label: o.label.clone(), count, permille: permille(count, answered) }
        })
        .collect();
    // Options an earlier version had, and "other".
    let other = option_counts.remove(OTHER);
    for (value, count) in option_counts {
        let value = value.to_string();
        let label = versions
            .iter()
            .rev()
            .find_map(|v| v.form.question(id)?.q.options.iter().find(|o| o.value == value).map(|o| o.label.clone()))
            .unwrap_or_else(|| value.clone());
        options.push(OptionCount { value, label, count, permille: permille(count, answered) });
    }
    if let Some(count) = other {
        options.push(OptionCount {
            value: OTHER.into(),
            label: "其他".into(),
            count,
            permille: permille(count, answered),
        });
    }
    let ranking = if q.kind == Kind::Ranking {
        let mut rows: Vec<RankRow> = q
            .options
            .iter()
            .map(|o| {
                let (first, ranked, points) = ranks.get(&o.value).copied().unwrap_or_default();
                RankRow { value: o.value.clone(), label: o.label.clone(), first, ranked, points }
            })
            .collect();
        rows.sort_by(|a, b| b.points.cmp(&a.points).then_with(|| a.value.cmp(&b.value)));
        rows
    } else {
        Vec::new()
    };
    let (mean, min, median, max) = if numbers.is_empty() {
        (None, None, None, None)
    } else {
        numbers.sort_by(f64::total_cmp);
        let n = numbers.len();
        // Summed in sorted order, so every replica adds in the same order.
        let mean = numbers.iter().sum::<f64>() / n as f64;
        let median = if n % 2 == 1 { numbers[n / 2] } else { (numbers[n / 2 - 1] + numbers[n / 2]) / 2.0 };
        (Some(mean), numbers.first().copied(), Some(median), numbers.last().copied())
    };
    // Numbers are sorted by now: count each run of equal values.
    let mut distribution: Vec<(String, i64)> = dates.into_iter().map(|(d, n)| (d.to_string(), n)).collect();
    let mut i = 0;
    while i < numbers.len() {
        let run = numbers[i..].iter().take_while(|x| x.total_cmp(&numbers[i]).is_eq()).count();
        distribution.push((number_key(numbers[i]), run as i64));
        i += run;
    }
    if q.kind == Kind::Rating {
        // Every point of the scale, even those nobody chose.
        let scale = q.scale.unwrap_or(5);
        distribution = (1..=scale)
            .map(|s| {
                let k = s.to_string();
                let n = distribution.iter().find(|(v, _)| *v == k).map(|(_, n)| *n).unwrap_or(0);
                (k, n)
            })
            .collect();
    }
    QuestionResult {
        id: id.to_string(),
        kind: q.kind.as_str().to_string(),
        label: q.label.clone(),
        shown,
        answered,
        options: if q.kind == Kind::Ranking { Vec::new() } else { options },
        ranking,
        mean,
        min,
        median,
        max,
        distribution,
        versions: asked_in,
    }
}

fn number_key(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 { format!("{}", n as i64) } else { format!("{n}") }
}

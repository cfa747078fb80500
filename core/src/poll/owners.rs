//! Owners' decisions under PRC Civil Code art. 278, as the Supreme People's
//! Court interpretation on 建筑物区分所有权 (arts. 8–9) counts them.
//!
//! **The denominators** are every unit in the decision's scope, whoever
//! owns it and whether or not anyone can vote for it:
//!
//! - the total exclusive area is the sum of every unit's registered area;
//! - the owners are one head per unit, except that one buyer of several
//!   units counts once (units whose registered owners are the same set of
//!   members are one head) and the developer's unsold or undelivered units
//!   count as one head together.
//!
//! **Who votes for a unit**: its verified owners who are members (active,
//! or invited and waiting for a phone; with a phone or not: a coordinator
//! enters a paper ballot for an owner without one). When a coordinator has designated one co-owner to vote for
//! the unit, and that co-owner is a verified, active owner, only their
//! ballot counts for it; without a designation any verified co-owner may
//! vote, and of several ballots for one head the usual rule picks one: the
//! owner's own over a proxy's over a paper one, then the latest, then the
//! greater receipt. Never "the smallest member id".
//!
//! Owners who are not verified, units with no registered owner, and units
//! whose only owners left the space cannot vote but stay in the
//! denominators; the report lists them so a coordinator sees what
//! verification remains.
//!
//! **Numerators.** A head takes part when a ballot counts for it; its area
//! taking part is the area of its units the counted ballot's voter may vote
//! for. An owners' decision is yes / no / abstain: abstention takes part,
//! and only "yes" approves.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::{Count, Matter, Tally, Threshold, Voter};
use crate::space::{MemberStatus, Relation, SpaceView};

/// What a unit is to an owners' decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitStanding {
    /// A verified owner may vote for it.
    Votes,
    /// It has owners, none of them verified and active.
    Unverified,
    /// No owner is registered for it.
    NoOwner,
}

/// One unit of a head: its area and who may vote for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitShare {
    pub unit: String,
    /// Building-entrance-room, as a public notice names it.
    pub label: String,
    pub area_centi: i64,
    /// The members whose ballot counts for this unit.
    pub voters: Vec<String>,
    pub standing: UnitStanding,
    /// Unsold or undelivered, the developer's.
    #[serde(default)]
    pub developer: bool,
}

/// A unit as a report or notice lists it (no names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitLine {
    pub unit: String,
    pub label: String,
    pub area_centi: i64,
}

impl From<&UnitShare> for UnitLine {
    fn from(u: &UnitShare) -> Self {
        UnitLine { unit: u.unit.clone(), label: u.label.clone(), area_centi: u.area_centi }
    }
}

/// The art. 278 report of an owners' decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnersReport {
    pub matter: Matter,
    pub participation_area: Threshold,
    pub participation_heads: Threshold,
    pub approval_area: Threshold,
    pub approval_heads: Threshold,
    /// Enough owners took part.
    pub quorate: bool,
    /// Quorate and approved.
    pub passed: bool,
    /// The denominators: every head and the total exclusive area in scope.
    #[serde(default)]
    pub total: Count,
    #[serde(default)]
    pub approving: Count,
    #[serde(default)]
    pub opposing: Count,
    #[serde(default)]
    pub abstaining: Count,
    /// The units that took part, in unit order.
    #[serde(default)]
    pub took_part: Vec<UnitLine>,
    /// Units a verified owner could have voted for that did not take part.
    #[serde(default)]
    pub absent: Vec<UnitLine>,
    /// Units whose owners are registered but none verified.
    #[serde(default)]
    pub unverified: Vec<UnitLine>,
    /// Units with no registered owner.
    #[serde(default)]
    pub no_owner: Vec<UnitLine>,
    /// Units still the developer's (one head together).
    #[serde(default)]
    pub developer_units: Vec<UnitLine>,
}

/// The head key of a unit: the developer's units are one head; a unit with
/// owners is keyed by the set of its owners (one buyer of several units is
/// one head); a unit with none is a head of its own.
fn head_key(unit: &str, developer: bool, owners: &BTreeSet<&str>) -> String {
    if developer {
        "developer".into()
    } else if owners.is_empty() {
        format!("unit:{unit}")
    } else {
        format!("owners:{}", owners.iter().copied().collect::<Vec<_>>().join(","))
    }
}

/// The heads of an owners' decision over the units in scope (a building, a
/// grid, or the whole space), from the register as it is now. Every unit in
/// scope is in exactly one head.
pub fn electorate(view: &SpaceView, building: Option<&str>, grid: Option<&str>) -> Vec<Voter> {
    let status = |m: &str| view.members.get(m).map(|m| m.status);
    let mut owners: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut verified: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for l in view.links.values().filter(|l| l.relation == Relation::Owner) {
        match status(&l.member) {
            None | Some(MemberStatus::Removed) => continue,
            Some(s) => {
                owners.entry(l.unit.as_str()).or_default().insert(l.member.as_str());
                // An owner invited but without a phone yet votes too (on paper).
                if l.verified && matches!(s, MemberStatus::Active | MemberStatus::Invited) {
                    verified.entry(l.unit.as_str()).or_default().insert(l.member.as_str());
                }
            }
        }
    }
    let empty = BTreeSet::new();
    let mut heads: BTreeMap<String, Vec<UnitShare>> = BTreeMap::new();
    let in_scope = |u: &crate::space::Unit| {
        building.is_none_or(|b| u.building == b) && grid.is_none_or(|g| u.grid.as_deref() == Some(g))
    };
    for (id, u) in view.units.iter().filter(|(_, u)| in_scope(u)) {
        let all = owners.get(id.as_str()).unwrap_or(&empty);
        let able = verified.get(id.as_str()).unwrap_or(&empty);
        let voters: Vec<String> = match u.voter.as_deref().filter(|d| able.contains(d)) {
            Some(designated) => vec![designated.to_string()],
            None => able.iter().map(|m| m.to_string()).collect(),
        };
        let standing = if !voters.is_empty() {
            UnitStanding::Votes
        } else if all.is_empty() {
            UnitStanding::NoOwner
        } else {
            UnitStanding::Unverified
        };
        heads.entry(head_key(id, u.developer, all)).or_default().push(UnitShare {
            unit: id.clone(),
            label: u.label(),
            area_centi: u.area_centi,
            voters,
            standing,
            developer: u.developer,
        });
    }
    heads
        .into_iter()
        .map(|(id, units)| {
            let members: BTreeSet<String> = units.iter().flat_map(|u| u.voters.iter().cloned()).collect();
            Voter {
                id,
                members: members.into_iter().collect(),
                area_centi: units.iter().map(|u| u.area_centi).sum(),
                units,
            }
        })
        .collect()
}

/// The area of `head` that a ballot by `voter` carries: the units it may
/// vote for (the whole entry's area for an electorate made without units).
pub(super) fn area_for(head: &Voter, voter: &str) -> i64 {
    if head.units.is_empty() {
        return head.area_centi;
    }
    head.units.iter().filter(|u| u.voters.iter().any(|v| v == voter)).map(|u| u.area_centi).sum()
}

/// The report, from the electorate and the counted ballot of each head that
/// took part: `(head, voter, choice)`.
pub(super) fn report(matter: Matter, electorate: &[Voter], counted: &[(&Voter, &str, &[u32])]) -> OwnersReport {
    let total = Count { heads: electorate.len() as i64, area_centi: electorate.iter().map(|v| v.area_centi).sum() };
    let (mut participating, mut approving, mut opposing, mut abstaining) =
        (Count::default(), Count::default(), Count::default(), Count::default());
    let mut took_part: Vec<UnitLine> = Vec::new();
    for (head, voter, choice) in counted {
        let area = area_for(head, voter);
        let add = |c: &mut Count| {
            c.heads += 1;
            c.area_centi += area;
        };
        add(&mut participating);
        match choice.first() {
            Some(0) => add(&mut approving),
            Some(1) => add(&mut opposing),
            _ => add(&mut abstaining),
        }
        took_part.extend(head.units.iter().filter(|u| u.voters.iter().any(|v| v == voter)).map(UnitLine::from));
    }
    took_part.sort_by(|a, b| a.unit.cmp(&b.unit));
    let units = || electorate.iter().flat_map(|v| v.units.iter());
    let voted: BTreeSet<&str> = took_part.iter().map(|u| u.unit.as_str()).collect();
    let mut absent: Vec<UnitLine> = units()
        .filter(|u| u.standing == UnitStanding::Votes && !voted.contains(u.unit.as_str()))
        .map(UnitLine::from)
        .collect();
    absent.sort_by(|a, b| a.unit.cmp(&b.unit));
    let listed = |s: UnitStanding| {
        let mut v: Vec<UnitLine> = units().filter(|u| u.standing == s).map(UnitLine::from).collect();
        v.sort_by(|a, b| a.unit.cmp(&b.unit));
        v
    };
    let mut developer_units: Vec<UnitLine> = units().filter(|u| u.developer).map(UnitLine::from).collect();
    developer_units.sort_by(|a, b| a.unit.cmp(&b.unit));
    let (p, q, strict) = match matter {
        Matter::Special => (3, 4, false),
        Matter::Ordinary => (1, 2, true),
    };
    let participation_area = Threshold::new(
        "participating area / total exclusive area",
        participating.area_centi,
        total.area_centi,
        2,
        3,
        false,
    );
    let participation_heads =
        Threshold::new("participating owners / all owners", participating.heads, total.heads, 2, 3, false);
    let approval_area = Threshold::new(
        "approving area / participating area",
        approving.area_centi,
        participating.area_centi,
        p,
        q,
        strict,
    );
    let approval_heads =
        Threshold::new("approving owners / participating owners", approving.heads, participating.heads, p, q, strict);
    let quorate = participation_area.met && participation_heads.met;
    let passed = quorate && approval_area.met && approval_heads.met;
    OwnersReport {
        matter,
        participation_area,
        participation_heads,
        approval_area,
        approval_heads,
        quorate,
        passed,
        total,
        approving,
        opposing,
        abstaining,
        took_part,
        absent,
        unverified: listed(UnitStanding::Unverified),
        no_owner: listed(UnitStanding::NoOwner),
        developer_units,
    }
}

// ---------------------------------------------------------------------------
// The public notice (公示)

/// Square metres from hundredths, exactly: `12345` → `123.45`.
pub fn square_metres(centi: i64) -> String {
    let sign = if centi < 0 { "-" } else { "" };
    let c = centi.unsigned_abs();
    format!("{sign}{}.{:02}", c / 100, c % 100)
}

fn matter_label(m: Matter) -> &'static str {
    match m {
        Matter::Special => "特别事项（民法典第二百七十八条第一款第六项至第八项）",
        Matter::Ordinary => "一般事项",
    }
}

fn bound_label(b: &str) -> String {
    match b {
        ">= 2/3" => "≥ 2/3（三分之二以上）".into(),
        ">= 3/4" => "≥ 3/4（四分之三以上）".into(),
        "> 1/2" => "> 1/2（过半数）".into(),
        other => other.into(),
    }
}

struct Row {
    what: &'static str,
    numerator: String,
    denominator: String,
    bound: String,
    met: bool,
}

fn rows(o: &OwnersReport) -> [Row; 4] {
    let area = |t: &Threshold, what| Row {
        what,
        numerator: format!("{} m²", square_metres(t.numerator)),
        denominator: format!("{} m²", square_metres(t.denominator)),
        bound: bound_label(&t.bound),
        met: t.met,
    };
    let heads = |t: &Threshold, what| Row {
        what,
        numerator: format!("{} 人", t.numerator),
        denominator: format!("{} 人", t.denominator),
        bound: bound_label(&t.bound),
        met: t.met,
    };
    [
        area(&o.participation_area, "参与表决的专有部分面积 / 专有部分总面积"),
        heads(&o.participation_heads, "参与表决的业主人数 / 业主总人数"),
        area(&o.approval_area, "同意的专有部分面积 / 参与表决的专有部分面积"),
        heads(&o.approval_heads, "同意的业主人数 / 参与表决的业主人数"),
    ]
}

fn outcome(o: &OwnersReport) -> &'static str {
    if !o.quorate {
        "未达到参与表决的法定比例，决定不成立"
    } else if o.passed {
        "通过"
    } else {
        "未通过"
    }
}

/// The yes / no / abstain line of a notice.
fn split(o: &OwnersReport) -> String {
    let part = |label: &str, c: &Count| format!("{label} {} 人 / {} m²", c.heads, square_metres(c.area_centi));
    [part("同意", &o.approving), part("反对", &o.opposing), part("弃权", &o.abstaining)].join("；")
}

/// The unit lists of a notice, in order: its heading, what the CSV calls
/// such a unit (the developer's units are listed under their standing
/// there), and the units.
fn sections(o: &OwnersReport) -> Vec<(&'static str, Option<&'static str>, &[UnitLine])> {
    let mut v: Vec<(&'static str, Option<&'static str>, &[UnitLine])> = vec![
        ("参与表决的专有部分", Some("参与表决"), &o.took_part),
        ("未参与表决的专有部分", Some("未参与表决"), &o.absent),
        ("业主身份尚未核实的专有部分", Some("业主身份尚未核实"), &o.unverified),
        ("尚无登记业主的专有部分", Some("尚无登记业主"), &o.no_owner),
    ];
    if !o.developer_units.is_empty() {
        v.push(("建设单位尚未出售或尚未交付的专有部分（合计按一人计算）", None, &o.developer_units));
    }
    v
}

fn met(yes: bool) -> &'static str {
    if yes { "是" } else { "否" }
}

/// The public notice of an owners' decision as Markdown: the units and
/// areas that took part (no names), each threshold with its numbers, and the
/// outcome. `None` for a vote that is not an owners' decision.
pub fn notice_markdown(t: &Tally) -> Option<String> {
    let o = t.owners.as_ref()?;
    let mut s = String::new();
    let _ = writeln!(s, "# 业主共同决定公示：{}\n", t.title);
    let _ = writeln!(s, "- 事项类别：{}", matter_label(o.matter));
    let _ = writeln!(s, "- 表决结果：**{}**", outcome(o));
    let _ = writeln!(s, "- {}\n", split(o));
    let _ = writeln!(s, "## 法定比例\n\n| 项目 | 分子 | 分母 | 标准 | 是否达到 |\n|---|---|---|---|---|");
    for r in rows(o) {
        let _ = writeln!(s, "| {} | {} | {} | {} | {} |", r.what, r.numerator, r.denominator, r.bound, met(r.met));
    }
    for (title, _, units) in sections(o) {
        let _ = writeln!(s, "\n## {title}（{} 户）\n", units.len());
        if units.is_empty() {
            let _ = writeln!(s, "无");
            continue;
        }
        let _ = writeln!(s, "| 房号 | 专有部分面积 |\n|---|---|");
        for u in units {
            let _ = writeln!(s, "| {} | {} m² |", u.label, square_metres(u.area_centi));
        }
    }
    Some(s)
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The public notice as a standalone HTML page (UTF-8), for printing and
/// posting.
pub fn notice_html(t: &Tally) -> Option<String> {
    let o = t.owners.as_ref()?;
    let e = html_escape;
    let title = e(&t.title);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<!doctype html>\n<html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><title>业主共同决定公示：{title}</title></head><body>"
    );
    let _ = writeln!(s, "<h1>业主共同决定公示：{title}</h1>");
    let _ =
        writeln!(s, "<p>事项类别：{}</p>\n<p>表决结果：<strong>{}</strong></p>", matter_label(o.matter), outcome(o));
    let _ = writeln!(s, "<p>{}</p>", split(o));
    let _ = writeln!(
        s,
        "<h2>法定比例</h2>\n<table border=\"1\"><tr><th>项目</th><th>分子</th><th>分母</th><th>标准</th><th>是否达到</th></tr>"
    );
    for r in rows(o) {
        let _ = writeln!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            r.what,
            r.numerator,
            r.denominator,
            e(&r.bound),
            met(r.met)
        );
    }
    let _ = writeln!(s, "</table>");
    for (heading, _, units) in sections(o) {
        let _ = writeln!(s, "<h2>{heading}（{} 户）</h2>", units.len());
        if units.is_empty() {
            let _ = writeln!(s, "<p>无</p>");
            continue;
        }
        let _ = writeln!(s, "<table border=\"1\"><tr><th>房号</th><th>专有部分面积</th></tr>");
        for u in units {
            let _ = writeln!(s, "<tr><td>{}</td><td>{} m²</td></tr>", e(&u.label), square_metres(u.area_centi));
        }
        let _ = writeln!(s, "</table>");
    }
    let _ = writeln!(s, "</body></html>");
    Some(s)
}

/// The public notice as CSV that opens correctly in Excel and WPS (UTF-8
/// with a BOM, CRLF, cells guarded against formulas): a section of
/// thresholds, then one row per unit with what it was to the decision.
pub fn notice_csv(t: &Tally) -> Option<String> {
    let o = t.owners.as_ref()?;
    let mut s = String::from("\u{feff}");
    let line = |s: &mut String, fields: &[&str]| {
        let row: Vec<String> = fields.iter().map(|f| crate::store::csv_cell(f, true)).collect();
        s.push_str(&row.join(","));
        s.push_str("\r\n");
    };
    line(&mut s, &["表决事项", &t.title]);
    line(&mut s, &["事项类别", matter_label(o.matter)]);
    line(&mut s, &["表决结果", outcome(o)]);
    line(&mut s, &["项目", "分子", "分母", "标准", "是否达到"]);
    for r in rows(o) {
        line(&mut s, &[r.what, &r.numerator, &r.denominator, &r.bound, met(r.met)]);
    }
    line(&mut s, &["房号", "专有部分面积（m²）", "情况"]);
    let mut units: Vec<(&UnitLine, &str)> = sections(o)
        .into_iter()
        .filter_map(|(_, what, units)| what.map(|w| units.iter().map(move |u| (u, w))))
        .flatten()
        .collect();
    units.sort_by(|a, b| a.0.unit.cmp(&b.0.unit));
    for (u, what) in units {
        line(&mut s, &[&u.label, &square_metres(u.area_centi), what]);
    }
    Some(s)
}

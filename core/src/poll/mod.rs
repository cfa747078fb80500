//! Module 2: votes, satisfaction votes and owners' decisions (表决 / 满意度测评).
//!
//! **Documents.** A vote is an item: its definition and lifecycle live in
//! `item/<vote>`, written by coordinators:
//!
//! ```text
//! kind: "vote", spec: <VoteSpec as JSON>, created_at
//! opened: { at, by, electorate: <Vec<Voter> as JSON> }   -- written once, at open
//! closed: { at, by }                                      -- written once, at close
//! hidden: true                                            -- set once, never cleared
//! ```
//!
//! The result lives in `results/<vote>`, which every member reads: one entry
//! per publication, `p/<ms>/<random>: { tally, at, by }`; the latest is the
//! official result and the earlier ones stay, dated. Publishing is that one
//! write, so it is atomic; a vote is published once the document holds a
//! publication (votes published before kept `published_at` in the item).
//!
//! Ballots are entries in the voter's own document `own/<member>/<vis>/<vote>`
//! (`pub` when every member may see ballots, `priv` when only coordinators
//! may: the read scopes of sync enforce it). Each entry sits at the root
//! under a unique key `b/<ms>/<random>`: `{ item, for, mode, choice, at }`, where
//! `item` names the vote (an entry naming another counts nowhere) and
//! `mode` is `own`, `proxy` (cast by a proxy holder for `for`) or `paper`
//! (entered by a coordinator at a meeting). A proxy grant is an entry
//! `g/<ms>/<random>`: `{ item, to, at }` in the grantor's public document
//! `own/<member>/pub/<vote>`, which the holder's phone reads. The receipt of
//! a ballot is the hash of the change that wrote its entry.
//!
//! **The tally** ([`tally`]) is a pure function of the vote's item document
//! and the set of ballot and grant entries, whatever order they arrived in:
//!
//! 1. The electorate is the one frozen in the open event (so a member added
//!    later does not move the thresholds).
//! 2. A ballot dated before the open or at/after the close is set aside
//!    (`before_open`, `after_close`): a ballot cast offline before the close
//!    and synced later counts; one cast after it does not. The date is the
//!    one the voter's device signed.
//! 3. A ballot must be cast by the voter (`own`), by a holder of the voter's
//!    proxy in force at the ballot's time and within the proxy limit
//!    (`proxy`), or by a coordinator (`paper`); else `not_authorised`.
//!    A voter outside the electorate: `not_eligible`; a choice the kind does
//!    not allow: `invalid_choice`.
//! 4. Per electorate entry one ballot counts: **the voter's own ballot beats a
//!    proxy's, which beats a paper one** (the member's own act is the most
//!    direct evidence of their will; a paper ballot entered for someone who
//!    also voted on their phone is most likely a mistake); within a mode the
//!    latest counts, ties broken by the greater receipt hash. The others are
//!    `superseded`.
//! 5. For owners' decisions (PRC Civil Code art. 278) the electorate is one
//!    entry per head over every unit in scope, weighted by floor area, with
//!    the denominators as the law counts them ([`owners`]). Thresholds are
//!    compared in exact integer arithmetic: participation ≥ 2/3 of the total
//!    exclusive area and ≥ 2/3 of all owners; a special matter passes with
//!    ≥ 3/4 of the participating area and heads, any other with more than
//!    half of both. An owners' decision is yes / no / abstain; its matter is
//!    fixed in the open event.

pub mod owners;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use automerge::transaction::Transactable;
use automerge::{ObjType, ROOT, ReadDoc};
use rusqlite::params;
use serde::{Deserialize, Serialize};

use crate::doc::DocId;
use crate::error::{Error, Result};
use crate::space::{Role, SpaceView, get_i64, get_str, map_at};
use crate::store::{Store, new_id, now_ms};
pub use owners::{OwnersReport, UnitLine, UnitShare, UnitStanding};

/// The audit status of a ballot that counted (any other status is the
/// reason it was set aside).
pub const COUNTED: &str = "counted";

/// The five standard satisfaction labels, best first.
pub const SATISFACTION: [&str; 5] = ["很满意", "满意", "基本满意", "不满意", "很不满意"];
/// Labels of a yes / no / abstain vote.
pub const YES_NO_ABSTAIN: [&str; 3] = ["同意", "反对", "弃权"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum VoteKind {
    YesNoAbstain,
    Single { options: Vec<String> },
    Multi { options: Vec<String>, min: u32, max: u32 },
    Satisfaction,
}

impl VoteKind {
    pub fn labels(&self) -> Vec<String> {
        match self {
            VoteKind::YesNoAbstain => YES_NO_ABSTAIN.iter().map(|s| s.to_string()).collect(),
            VoteKind::Satisfaction => SATISFACTION.iter().map(|s| s.to_string()).collect(),
            VoteKind::Single { options } | VoteKind::Multi { options, .. } => options.clone(),
        }
    }

    /// How many options a ballot chooses from.
    pub fn option_count(&self) -> usize {
        match self {
            VoteKind::YesNoAbstain => YES_NO_ABSTAIN.len(),
            VoteKind::Satisfaction => SATISFACTION.len(),
            VoteKind::Single { options } | VoteKind::Multi { options, .. } => options.len(),
        }
    }

    /// Whether `choice` (option indexes) is a valid ballot of this kind.
    pub fn accepts(&self, choice: &[u32]) -> bool {
        let n = self.option_count() as u32;
        let distinct: BTreeSet<u32> = choice.iter().copied().collect();
        if distinct.len() != choice.len() || choice.iter().any(|c| *c >= n) {
            return false;
        }
        match self {
            VoteKind::Multi { min, max, .. } => (*min..=*max).contains(&(choice.len() as u32)),
            _ => choice.len() == 1,
        }
    }
}

/// Owners' matters under art. 278: the special ones need 3/4, the others more than half.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Matter {
    /// Raising maintenance funds, rebuilding, changing the use of common parts
    /// or running a business on them.
    Special,
    /// Using maintenance funds, hiring the property manager, rules, …
    Ordinary,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Eligibility {
    AllMembers,
    Role {
        role: String,
    },
    Grid {
        grid: String,
    },
    Building {
        building: String,
    },
    /// One ballot per household.
    Household,
    /// An owners' decision (art. 278): verified owners vote, weighted by
    /// floor area, over the units of the whole space, or of one building
    /// and/or one grid.
    VerifiedOwners {
        matter: Matter,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        building: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        grid: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BallotVisibility {
    /// Every member may see individual ballots.
    AllMembers,
    /// Only coordinators (and the voter) see them.
    CoordinatorsOnly,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoteSpec {
    pub title: String,
    pub kind: VoteKind,
    pub eligibility: Eligibility,
    pub visibility: BallotVisibility,
    /// Results stay hidden until the close (one-way: cannot be revealed early).
    pub hide_results: bool,
    /// How many members one person may hold proxies for.
    pub proxy_limit: u32,
}

impl VoteSpec {
    fn validate(&self) -> Result<()> {
        if self.title.trim().is_empty() {
            return Err(Error::Invalid("a vote needs a title".into()));
        }
        match &self.kind {
            VoteKind::Single { options } if options.len() < 2 => {
                Err(Error::Invalid("a choice needs two options".into()))
            }
            VoteKind::Multi { options, min, max }
                if options.len() < 2 || min > max || *max as usize > options.len() =>
            {
                Err(Error::Invalid("multiple choice needs options and 0 ≤ min ≤ max ≤ options".into()))
            }
            _ if matches!(self.eligibility, Eligibility::VerifiedOwners { .. })
                && self.kind != VoteKind::YesNoAbstain =>
            {
                Err(Error::Invalid("an owners' decision is a yes / no / abstain vote".into()))
            }
            _ => Ok(()),
        }
    }

    fn ballot_doc(&self, member: &str, vote: &str) -> DocId {
        match self.visibility {
            BallotVisibility::AllMembers => DocId::own_public(member, vote),
            BallotVisibility::CoordinatorsOnly => DocId::own_private(member, vote),
        }
    }
}

/// One entry of the electorate: who may cast it and what it weighs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Voter {
    /// A member id, or a household id for per-household votes.
    pub id: String,
    /// The members whose ballots count for this entry.
    pub members: Vec<String>,
    /// Floor area in hundredths of m² (owners' decisions; 0 otherwise).
    pub area_centi: i64,
    /// Owners' decisions: the head's units, and who may vote for each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub units: Vec<UnitShare>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Draft,
    Open,
    Closed,
    Published,
}

/// A vote as its item document says it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vote {
    pub id: String,
    pub spec: VoteSpec,
    pub stage: Stage,
    pub opened_at: Option<i64>,
    pub closed_at: Option<i64>,
    pub electorate: Vec<Voter>,
    pub hidden: bool,
    /// An owners' decision's matter as the open event fixed it.
    pub matter: Option<Matter>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Own,
    Proxy,
    Paper,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Own => "own",
            Mode::Proxy => "proxy",
            Mode::Paper => "paper",
        }
    }

    fn parse(s: &str) -> Option<Mode> {
        [Mode::Own, Mode::Proxy, Mode::Paper].into_iter().find(|m| m.as_str() == s)
    }

    /// Higher wins: own over proxy over paper.
    fn rank(self) -> u8 {
        match self {
            Mode::Own => 2,
            Mode::Proxy => 1,
            Mode::Paper => 0,
        }
    }
}

/// A ballot entry as cast, from whichever document holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cast {
    /// The member whose document holds the entry (the one who cast it).
    pub author: String,
    /// The member it is for.
    pub voter: String,
    pub mode: Mode,
    pub choice: Vec<u32>,
    pub at: i64,
    /// The hash of the change that wrote the entry.
    pub receipt: [u8; 32],
}

/// A proxy grant entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub grantor: String,
    /// The member given the proxy; empty withdraws it.
    pub proxy: String,
    pub at: i64,
    pub entry: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Count {
    pub heads: i64,
    pub area_centi: i64,
}

/// A fraction compared against a bound, exactly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Threshold {
    pub what: String,
    pub numerator: i64,
    pub denominator: i64,
    /// `">= 2/3"`, `">= 3/4"` or `"> 1/2"`.
    pub bound: String,
    pub met: bool,
}

impl Threshold {
    /// `num/den >= p/q` (or `>` when `strict`), in exact integer arithmetic.
    pub(crate) fn new(what: &str, numerator: i64, denominator: i64, p: i64, q: i64, strict: bool) -> Threshold {
        let lhs = i128::from(numerator) * i128::from(q);
        let rhs = i128::from(denominator) * i128::from(p);
        let met = denominator > 0 && if strict { lhs > rhs } else { lhs >= rhs };
        let bound = format!("{} {p}/{q}", if strict { ">" } else { ">=" });
        Threshold { what: what.into(), numerator, denominator, bound, met }
    }
}

/// (很满意 + 满意 + 基本满意) / valid ballots, exactly, and in basis points.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SatisfactionRate {
    pub satisfied: i64,
    pub valid: i64,
    /// Rounded half up; 9_250 means 92.50 %.
    pub basis_points: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OptionResult {
    pub label: String,
    pub count: Count,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRow {
    pub author: String,
    pub voter: String,
    pub mode: Mode,
    pub receipt: String,
    /// `counted`, or the reason it was set aside.
    pub status: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    pub vote: String,
    pub title: String,
    pub eligible: Count,
    pub participating: Count,
    pub options: Vec<OptionResult>,
    pub satisfaction: Option<SatisfactionRate>,
    pub owners: Option<OwnersReport>,
    pub counted: i64,
    /// How many ballots were set aside, by reason.
    pub set_aside: BTreeMap<String, i64>,
    /// Every ballot entry with what became of it, in receipt order.
    pub audit: Vec<AuditRow>,
}

impl Tally {
    /// Whether the ballot with this receipt counted.
    pub fn counts(&self, receipt: &str) -> bool {
        self.audit.iter().any(|a| a.receipt == receipt && a.status == COUNTED)
    }

    /// The receipts of the ballots that counted.
    pub fn counted_receipts(&self) -> Vec<String> {
        self.audit.iter().filter(|a| a.status == COUNTED).map(|a| a.receipt.clone()).collect()
    }
}

// ---------------------------------------------------------------------------
// The electorate

/// The electorate of a vote, from the register as it is now (called when the
/// vote opens; the result is frozen into the open event).
pub fn electorate(view: &SpaceView, eligibility: &Eligibility) -> Vec<Voter> {
    let active = view.members.iter().filter(|(_, m)| m.status == crate::space::MemberStatus::Active);
    let single =
        |id: &str| Voter { id: id.to_string(), members: vec![id.to_string()], area_centi: 0, units: Vec::new() };
    let linked_to = |pred: &dyn Fn(&crate::space::Unit) -> bool| -> BTreeSet<String> {
        view.links.values().filter(|l| view.units.get(&l.unit).is_some_and(pred)).map(|l| l.member.clone()).collect()
    };
    match eligibility {
        Eligibility::AllMembers => active.map(|(id, _)| single(id)).collect(),
        Eligibility::Role { role } => {
            let role = Role::parse(role);
            active.filter(|(_, m)| role.is_some_and(|r| m.has(r))).map(|(id, _)| single(id)).collect()
        }
        Eligibility::Grid { grid } => {
            let members = linked_to(&|u| u.grid.as_deref() == Some(grid.as_str()));
            active.filter(|(id, _)| members.contains(*id)).map(|(id, _)| single(id)).collect()
        }
        Eligibility::Building { building } => {
            let members = linked_to(&|u| u.building == *building);
            active.filter(|(id, _)| members.contains(*id)).map(|(id, _)| single(id)).collect()
        }
        Eligibility::Household => {
            let mut by_household: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for (id, m) in active {
                let h = m.household.clone().unwrap_or_else(|| format!("member:{id}"));
                by_household.entry(h).or_default().push(id.clone());
            }
            by_household
                .into_iter()
                .map(|(id, members)| Voter { id, members, area_centi: 0, units: Vec::new() })
                .collect()
        }
        Eligibility::VerifiedOwners { building, grid, .. } => {
            owners::electorate(view, building.as_deref(), grid.as_deref())
        }
    }
}

// ---------------------------------------------------------------------------
// The tally

/// Count a vote. Pure: the same vote, casts and grants give the same tally
/// whatever order they are listed in. `coordinators` are the members who may
/// enter paper ballots.
pub fn tally(vote: &Vote, casts: &[Cast], grants: &[Grant], coordinators: &BTreeSet<String>) -> Tally {
    let spec = &vote.spec;
    let labels = spec.kind.labels();
    let opened = vote.opened_at.unwrap_or(i64::MAX);
    let closed = vote.closed_at.unwrap_or(i64::MAX);
    // A member may vote for several entries (an owner of two units with
    // different co-owners is in two heads).
    let mut entries_of: HashMap<&str, Vec<usize>> = HashMap::new();
    for (n, v) in vote.electorate.iter().enumerate() {
        for m in &v.members {
            entries_of.entry(m.as_str()).or_default().push(n);
        }
    }

    // Proxies in force: per grantor, grants in time order (then entry key);
    // per proxy holder, the first `proxy_limit` grantors by grant time.
    let mut by_grantor: BTreeMap<&str, Vec<&Grant>> = BTreeMap::new();
    for g in grants.iter().filter(|g| g.at < closed) {
        by_grantor.entry(g.grantor.as_str()).or_default().push(g);
    }
    for gs in by_grantor.values_mut() {
        gs.sort_by(|a, b| (a.at, &a.entry).cmp(&(b.at, &b.entry)));
    }
    let final_grant: BTreeMap<&str, &Grant> =
        by_grantor.iter().filter_map(|(k, gs)| gs.last().map(|g| (*k, *g))).collect();
    let mut held: BTreeMap<&str, Vec<(i64, &str)>> = BTreeMap::new();
    for (grantor, g) in &final_grant {
        if !g.proxy.is_empty() {
            held.entry(g.proxy.as_str()).or_default().push((g.at, grantor));
        }
    }
    let mut honoured: BTreeSet<(&str, &str)> = BTreeSet::new(); // (proxy, grantor)
    for (proxy, mut gs) in held {
        gs.sort();
        for (_, grantor) in gs.into_iter().take(spec.proxy_limit as usize) {
            honoured.insert((proxy, grantor));
        }
    }
    let proxy_in_force = |proxy: &str, grantor: &str, at: i64| -> bool {
        honoured.contains(&(proxy, grantor))
            && by_grantor
                .get(grantor)
                .and_then(|gs| gs.iter().rev().find(|g| g.at <= at))
                .is_some_and(|g| g.proxy == proxy)
    };

    // Judge every cast, in a fixed order.
    let mut order: Vec<&Cast> = casts.iter().collect();
    order.sort_by(|a, b| a.receipt.cmp(&b.receipt).then(a.at.cmp(&b.at)));
    let mut status: Vec<String> = Vec::with_capacity(order.len());
    let mut best: BTreeMap<usize, usize> = BTreeMap::new(); // electorate entry -> index in order
    let key = |c: &Cast| (c.mode.rank(), c.at, c.receipt);
    for (i, c) in order.iter().enumerate() {
        let verdict = if c.at < opened {
            Err("before_open")
        } else if c.at >= closed {
            Err("after_close")
        } else if !match c.mode {
            Mode::Own => c.author == c.voter,
            Mode::Proxy => proxy_in_force(&c.author, &c.voter, c.at),
            Mode::Paper => coordinators.contains(&c.author),
        } {
            Err("not_authorised")
        } else if !spec.kind.accepts(&c.choice) {
            Err("invalid_choice")
        } else {
            entries_of.get(c.voter.as_str()).ok_or("not_eligible")
        };
        match verdict {
            Err(reason) => status.push(reason.to_string()),
            Ok(entries) => {
                status.push("superseded".into());
                for &entry in entries {
                    if best.get(&entry).is_none_or(|&j| key(order[j]) < key(c)) {
                        best.insert(entry, i);
                    }
                }
            }
        }
    }
    for &i in best.values() {
        status[i] = COUNTED.into();
    }

    let eligible =
        Count { heads: vote.electorate.len() as i64, area_centi: vote.electorate.iter().map(|v| v.area_centi).sum() };
    let mut participating = Count::default();
    let mut options: Vec<OptionResult> =
        labels.iter().map(|l| OptionResult { label: l.clone(), count: Count::default() }).collect();
    let mut counted: Vec<(&Voter, &str, &[u32])> = Vec::with_capacity(best.len());
    for (&entry, &i) in &best {
        let Some(head) = vote.electorate.get(entry) else { continue };
        let c = order[i];
        let area = owners::area_for(head, &c.voter);
        participating.heads += 1;
        participating.area_centi += area;
        for &choice in &c.choice {
            if let Some(o) = options.get_mut(choice as usize) {
                o.count.heads += 1;
                o.count.area_centi += area;
            }
        }
        counted.push((head, c.voter.as_str(), c.choice.as_slice()));
    }
    let satisfaction = matches!(spec.kind, VoteKind::Satisfaction).then(|| {
        let satisfied: i64 = options.iter().take(3).map(|o| o.count.heads).sum();
        let valid = participating.heads;
        let basis_points = if valid == 0 { 0 } else { (satisfied * 20_000 + valid) / (2 * valid) };
        SatisfactionRate { satisfied, valid, basis_points }
    });
    let owners = match &spec.eligibility {
        Eligibility::VerifiedOwners { matter, .. } => {
            Some(owners::report(vote.matter.unwrap_or(*matter), &vote.electorate, &counted))
        }
        _ => None,
    };
    let mut set_aside: BTreeMap<String, i64> = BTreeMap::new();
    for s in status.iter().filter(|s| *s != COUNTED) {
        *set_aside.entry(s.clone()).or_default() += 1;
    }
    let audit = order
        .iter()
        .zip(&status)
        .map(|(c, s)| AuditRow {
            author: c.author.clone(),
            voter: c.voter.clone(),
            mode: c.mode,
            receipt: hex::encode(c.receipt),
            status: s.clone(),
        })
        .collect();
    Tally {
        vote: vote.id.clone(),
        title: spec.title.clone(),
        eligible,
        participating,
        options,
        satisfaction,
        owners,
        counted: counted.len() as i64,
        set_aside,
        audit,
    }
}

// ---------------------------------------------------------------------------
// Reading and writing through the store

fn item(vote: &str) -> DocId {
    DocId::Item { item: vote.to_string() }
}

/// The vote as its item document says.
pub fn vote(store: &Store, space: &str, vote_id: &str) -> Result<Vote> {
    load_vote(store, space, vote_id, true)
}

/// The vote, with or without its electorate (parsing it is the costly part).
fn load_vote(store: &Store, space: &str, vote_id: &str, with_electorate: bool) -> Result<Vote> {
    let parsed = store.read(space, &item(vote_id), |d| -> Result<Option<Vote>> {
        let Some(spec) = get_str(d, &ROOT, "spec") else { return Ok(None) };
        let spec: VoteSpec = serde_json::from_str(&spec)?;
        let opened = map_at(d, &ROOT, "opened");
        let closed = map_at(d, &ROOT, "closed");
        let electorate = match opened.as_ref().and_then(|o| get_str(d, o, "electorate")) {
            Some(e) if with_electorate => serde_json::from_str(&e)?,
            _ => Vec::new(),
        };
        let published = get_i64(d, &ROOT, "published_at").is_some();
        // An opening or a close dated after the change that wrote it moves nothing.
        let opened_at = opened.as_ref().and_then(|o| crate::space::attested_i64(d, o, "at"));
        let closed_at = closed.as_ref().and_then(|o| crate::space::attested_i64(d, o, "at"));
        let stage = match (opened_at, closed_at, published) {
            (_, Some(_), true) => Stage::Published,
            (_, Some(_), false) => Stage::Closed,
            (Some(_), None, _) => Stage::Open,
            _ => Stage::Draft,
        };
        // Hidden is one-way: any value ever written at `hidden` keeps it hidden.
        let hidden = spec.hide_results || d.get_all(ROOT, "hidden").map(|v| !v.is_empty()).unwrap_or(false);
        let matter = opened
            .as_ref()
            .and_then(|o| get_str(d, o, "matter"))
            .and_then(|m| serde_json::from_value(serde_json::Value::String(m)).ok());
        Ok(Some(Vote { id: vote_id.to_string(), spec, stage, opened_at, closed_at, electorate, hidden, matter }))
    })??;
    let mut v = parsed.ok_or_else(|| Error::NotFound("vote".into()))?;
    // A publication is one write, to the results document (atomic): the vote
    // is published once that document holds one.
    if v.stage == Stage::Closed
        && store.read(space, &DocId::Results { item: vote_id.to_string() }, |d| {
            d.keys(ROOT).any(|k| k.starts_with("p/") || k == "tally")
        })?
    {
        v.stage = Stage::Published;
    }
    Ok(v)
}

/// Create a vote in draft. Returns its id.
pub fn create(store: &Store, space: &str, spec: &VoteSpec) -> Result<String> {
    spec.validate()?;
    store.my_coordinator(space, "run votes")?;
    let id = new_id()?;
    let json = serde_json::to_string(spec)?;
    store.write_item(space, &id, "vote", &spec.title, |tx| {
        tx.put(ROOT, "kind", "vote")?;
        tx.put(ROOT, "spec", json.as_str())?;
        tx.put(ROOT, "created_at", now_ms())?;
        if spec.hide_results {
            tx.put(ROOT, "hidden", true)?;
        }
        Ok(())
    })?;
    Ok(id)
}

/// Change a draft. Once the vote is open its definition is fixed.
pub fn edit(store: &Store, space: &str, vote_id: &str, spec: &VoteSpec) -> Result<()> {
    spec.validate()?;
    store.my_coordinator(space, "run votes")?;
    let v = vote(store, space, vote_id)?;
    if v.stage != Stage::Draft {
        return Err(Error::Invalid("an open vote's definition cannot change".into()));
    }
    if v.hidden && !spec.hide_results {
        return Err(Error::Invalid("hidden results cannot be revealed early".into()));
    }
    let json = serde_json::to_string(spec)?;
    store.write(space, &item(vote_id), |tx| {
        tx.put(ROOT, "spec", json.as_str())?;
        if spec.hide_results {
            tx.put(ROOT, "hidden", true)?;
        }
        Ok(())
    })?;
    Ok(())
}

/// Hide the results until the close (one-way).
pub fn hide_results(store: &Store, space: &str, vote_id: &str) -> Result<()> {
    store.my_coordinator(space, "run votes")?;
    vote(store, space, vote_id)?;
    store.write(space, &item(vote_id), |tx| {
        tx.put(ROOT, "hidden", true)?;
        Ok(())
    })?;
    Ok(())
}

/// Open the vote: the electorate is fixed from the register as it is now.
pub fn open(store: &Store, space: &str, vote_id: &str) -> Result<usize> {
    let me = store.my_coordinator(space, "run votes")?;
    let v = vote(store, space, vote_id)?;
    if v.stage != Stage::Draft {
        return Err(Error::Invalid("the vote is already open".into()));
    }
    let voters = store.with_view(space, |view| electorate(view, &v.spec.eligibility))?;
    let json = serde_json::to_string(&voters)?;
    store.write(space, &item(vote_id), |tx| {
        let o = tx.put_object(ROOT, "opened", ObjType::Map)?;
        tx.put(&o, "at", now_ms())?;
        tx.put(&o, "by", me.as_str())?;
        tx.put(&o, "electorate", json.as_str())?;
        if let Eligibility::VerifiedOwners { matter, .. } = &v.spec.eligibility {
            let matter = match matter {
                Matter::Special => "special",
                Matter::Ordinary => "ordinary",
            };
            tx.put(&o, "matter", matter)?;
        }
        // Who may cast, for a cheap check when a ballot is cast.
        let members = tx.put_object(&o, "members", ObjType::Map)?;
        let mut listed = BTreeSet::new();
        for v in &voters {
            for m in v.members.iter().filter(|m| listed.insert(m.as_str())) {
                tx.put(&members, m.as_str(), v.id.as_str())?;
            }
        }
        Ok(())
    })?;
    Ok(voters.len())
}

/// Close the vote. Ballots dated from now on are set aside.
pub fn close(store: &Store, space: &str, vote_id: &str) -> Result<()> {
    let me = store.my_coordinator(space, "run votes")?;
    let v = vote(store, space, vote_id)?;
    if v.stage != Stage::Open {
        return Err(Error::Invalid("only an open vote can be closed".into()));
    }
    let latest: i64 = store.query(|c| {
        // Ballots whose time their change cannot attest (stored as the
        // largest time) fall after the close anyway.
        Ok(c.prepare_cached(
            "SELECT coalesce(max(at), 0) FROM ballots WHERE space_id = ?1 AND vote_id = ?2 AND at < 9223372036854775807",
        )?
            .query_row(params![space, vote_id], |r| r.get(0))?)
    })?;
    store.close_item(space, vote_id, &me, latest)
}

/// Publish the result: the tally as this coordinator computes it goes into
/// `results/<vote>`, which every member may read, as a dated publication
/// entry `p/<ms>/<random>: { tally, at, by }`. A ballot cast before the close
/// that arrives after a publication is counted by publishing again: every
/// publication is kept, and the latest is the official result. Publishing
/// again when nothing changed is refused.
///
/// In a vote whose ballots only coordinators may read, the published audit
/// names no one: each row keeps its receipt, mode and status, so every voter
/// finds their own ballot, and the turnout is there, but not who voted.
pub fn publish(store: &Store, space: &str, vote_id: &str) -> Result<Tally> {
    let me = store.my_coordinator(space, "run votes")?;
    let v = vote(store, space, vote_id)?;
    if !matches!(v.stage, Stage::Closed | Stage::Published) {
        return Err(Error::Invalid("only a closed vote can be published".into()));
    }
    let casts = casts(store, space, vote_id)?;
    let mut t = tally(&v, &casts, &grants(store, space, vote_id)?, &coordinators(store, space)?);
    let took = took_part_in(&t, &casts);
    if v.spec.visibility == BallotVisibility::CoordinatorsOnly {
        for row in &mut t.audit {
            row.author.clear();
            row.voter.clear();
        }
    }
    if published(store, space, vote_id)?.is_some_and(|p| p == t) {
        return Err(Error::Invalid("the published result is already the current tally".into()));
    }
    let json = serde_json::to_string(&t)?;
    let at = now_ms();
    let key = format!("p/{at:013}/{}", new_id()?);
    store.write(space, &DocId::Results { item: vote_id.to_string() }, |tx| {
        let p = tx.put_object(ROOT, key.as_str(), ObjType::Map)?;
        tx.put(&p, "tally", json.as_str())?;
        tx.put(&p, "at", at)?;
        tx.put(&p, "by", me.as_str())?;
        Ok(())
    })?;
    // Who took part earns by the space's participation rules, from a public
    // award every reader of the ledger holds (idempotent: a crash between
    // the two writes is made good by the next publication or award).
    crate::ledger::award(store, space, "vote", vote_id, took)?;
    Ok(t)
}

/// One publication of a vote's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    pub at: i64,
    /// The coordinator who published it.
    pub by: String,
    pub tally: Tally,
}

/// Every publication of the result, oldest first (by date, then entry key).
/// Publications that name another vote are not listed.
pub fn publications(store: &Store, space: &str, vote_id: &str) -> Result<Vec<Publication>> {
    let raw = store.read(space, &DocId::Results { item: vote_id.to_string() }, |d| {
        let mut out: Vec<(i64, String, String, String)> = Vec::new();
        // The first publications were written at the root.
        if let Some(json) = get_str(d, &ROOT, "tally") {
            out.push((get_i64(d, &ROOT, "published_at").unwrap_or_default(), String::new(), String::new(), json));
        }
        for key in d.keys(ROOT).filter(|k| k.starts_with("p/")) {
            let Some(p) = map_at(d, &ROOT, &key) else { continue };
            let Some(json) = get_str(d, &p, "tally") else { continue };
            // A publication dated after its change is no publication.
            let Some(at) = crate::space::attested_i64(d, &p, "at") else { continue };
            out.push((at, key, get_str(d, &p, "by").unwrap_or_default(), json));
        }
        out
    })?;
    let mut out: Vec<(i64, String, Publication)> = Vec::new();
    for (at, key, by, json) in raw {
        let Ok(tally) = serde_json::from_str::<Tally>(&json) else { continue };
        // A result names its vote: another vote's tally shown here counts nowhere.
        if tally.vote == vote_id {
            out.push((at, key, Publication { at, by, tally }));
        }
    }
    out.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    Ok(out.into_iter().map(|(_, _, p)| p).collect())
}

/// The official result: the latest publication, if there is one.
pub fn published(store: &Store, space: &str, vote_id: &str) -> Result<Option<Tally>> {
    Ok(publications(store, space, vote_id)?.pop().map(|p| p.tally))
}

fn write_ballot(
    store: &Store,
    space: &str,
    v: &Vote,
    author: &str,
    voter: &str,
    mode: Mode,
    choice: &[u32],
) -> Result<String> {
    if v.stage != Stage::Open {
        return Err(Error::Invalid("the vote is not open".into()));
    }
    if !v.spec.kind.accepts(choice) {
        return Err(Error::Invalid("the choice does not fit this vote".into()));
    }
    let eligible = store.read(space, &item(&v.id), |d| {
        map_at(d, &ROOT, "opened")
            .and_then(|o| map_at(d, &o, "members"))
            .is_some_and(|m| get_str(d, &m, voter).is_some())
    })?;
    if !eligible {
        return Err(Error::NotAllowed("not in this vote's electorate".into()));
    }
    // A device's later ballot is always dated later than its earlier ones,
    // even within one millisecond.
    let last: i64 = store.query(|conn| {
        Ok(conn
            .prepare_cached(
                "SELECT coalesce(max(at), 0) FROM ballots WHERE space_id = ?1 AND vote_id = ?2 AND author = ?3
                    AND at < 9223372036854775807",
            )?
            .query_row(params![space, v.id, author], |r| r.get(0))?)
    })?;
    let at = now_ms().max(last.saturating_add(1));
    let key = format!("b/{at:013}/{}", new_id()?);
    let choice = serde_json::to_string(choice)?;
    // The change is dated no earlier than the ballot, which it must attest.
    let hash = store.write_dated(space, &v.spec.ballot_doc(author, &v.id), at, |tx| {
        let b = tx.put_object(ROOT, key.as_str(), ObjType::Map)?;
        tx.put(&b, "item", v.id.as_str())?;
        tx.put(&b, "for", voter)?;
        tx.put(&b, "mode", mode.as_str())?;
        tx.put(&b, "choice", choice.as_str())?;
        tx.put(&b, "at", at)?;
        Ok(())
    })?;
    hash.map(|h| hex::encode(h.0)).ok_or_else(|| Error::Internal("the ballot wrote nothing".into()))
}

/// Cast (or change) this member's ballot. Returns the receipt: the hash of the
/// change that cast it, which the voter can look for in the published audit.
pub fn cast(store: &Store, space: &str, vote_id: &str, choice: &[u32]) -> Result<String> {
    let me = store.my_member(space)?;
    let v = load_vote(store, space, vote_id, false)?;
    write_ballot(store, space, &v, &me, &me, Mode::Own, choice)
}

/// Cast a ballot for a member who gave this member their proxy.
pub fn cast_as_proxy(store: &Store, space: &str, vote_id: &str, voter: &str, choice: &[u32]) -> Result<String> {
    let me = store.my_member(space)?;
    let v = load_vote(store, space, vote_id, false)?;
    let granted = grants(store, space, vote_id)?
        .into_iter()
        .filter(|g| g.grantor == voter)
        .max_by(|a, b| (a.at, &a.entry).cmp(&(b.at, &b.entry)));
    if granted.is_none_or(|g| g.proxy != me) {
        return Err(Error::NotAllowed("no proxy from that member".into()));
    }
    write_ballot(store, space, &v, &me, voter, Mode::Proxy, choice)
}

/// Enter a paper ballot at a meeting for a member without a phone (coordinators).
pub fn enter_paper_ballot(store: &Store, space: &str, vote_id: &str, voter: &str, choice: &[u32]) -> Result<String> {
    let me = store.my_coordinator(space, "run votes")?;
    let v = load_vote(store, space, vote_id, false)?;
    write_ballot(store, space, &v, &me, voter, Mode::Paper, choice)
}

/// Give this member's proxy for a vote to another member (empty `to` withdraws it).
pub fn grant_proxy(store: &Store, space: &str, vote_id: &str, to: &str) -> Result<()> {
    let me = store.my_member(space)?;
    vote(store, space, vote_id)?;
    if !to.is_empty() && (to == me || !store.with_view(space, |v| v.members.contains_key(to))?) {
        return Err(Error::Invalid("a proxy goes to another member".into()));
    }
    let at = now_ms();
    let key = format!("g/{at:013}/{}", new_id()?);
    // In the grantor's public document, whatever the ballots' visibility:
    // the holder's phone must read the grant to use it, and a proxy is a
    // public fact of the meeting.
    store.write(space, &DocId::own_public(&me, vote_id), |tx| {
        let g = tx.put_object(ROOT, key.as_str(), ObjType::Map)?;
        tx.put(&g, "item", vote_id)?;
        tx.put(&g, "to", to)?;
        tx.put(&g, "at", at)?;
        Ok(())
    })?;
    Ok(())
}

fn casts(store: &Store, space: &str, vote_id: &str) -> Result<Vec<Cast>> {
    store.query(|conn| {
        let mut stmt = conn.prepare_cached(
            "SELECT author, voter, mode, choice, at, receipt FROM ballots WHERE space_id = ?1 AND vote_id = ?2",
        )?;
        let rows = stmt.query_map(params![space, vote_id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, Vec<u8>>(5)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (author, voter, mode, choice, at, receipt) = row?;
            // An entry that does not parse is an invalid choice, not an error.
            let choice: Vec<u32> = serde_json::from_str(&choice).unwrap_or_else(|_| vec![u32::MAX]);
            let (Some(mode), Ok(receipt)) = (Mode::parse(&mode), <[u8; 32]>::try_from(receipt.as_slice())) else {
                continue;
            };
            out.push(Cast { author, voter, mode, choice, at, receipt });
        }
        Ok(out)
    })
}

fn grants(store: &Store, space: &str, vote_id: &str) -> Result<Vec<Grant>> {
    store.query(|conn| {
        let mut stmt = conn.prepare_cached(
            "SELECT grantor, proxy, at, entry FROM proxy_grants WHERE space_id = ?1 AND vote_id = ?2",
        )?;
        let rows = stmt.query_map(params![space, vote_id], |r| {
            Ok(Grant { grantor: r.get(0)?, proxy: r.get(1)?, at: r.get(2)?, entry: r.get(3)? })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    })
}

fn coordinators(store: &Store, space: &str) -> Result<BTreeSet<String>> {
    store.with_view(space, |view| {
        view.members.iter().filter(|(_, m)| m.is_privileged()).map(|(id, _)| id.clone()).collect()
    })
}

fn count(store: &Store, space: &str, v: &Vote) -> Result<Tally> {
    Ok(tally(v, &casts(store, space, &v.id)?, &grants(store, space, &v.id)?, &coordinators(store, space)?))
}

/// Who took part in a vote, as the tally counts it: the voter of every
/// ballot that counted (cast by them, by their proxy or on paper for them),
/// with the time of that ballot. Ballots set aside take no part. From the
/// ballots this device holds: a coordinator's device holds them all.
pub fn took_part(store: &Store, space: &str, vote_id: &str) -> Result<Vec<(String, i64)>> {
    let v = vote(store, space, vote_id)?;
    let casts = casts(store, space, vote_id)?;
    let t = tally(&v, &casts, &grants(store, space, vote_id)?, &coordinators(store, space)?);
    Ok(took_part_in(&t, &casts))
}

/// The voters of the ballots that counted in `t`, with their ballots' times.
fn took_part_in(t: &Tally, casts: &[Cast]) -> Vec<(String, i64)> {
    let counted: BTreeSet<String> = t.counted_receipts().into_iter().collect();
    casts.iter().filter(|c| counted.contains(&hex::encode(c.receipt))).map(|c| (c.voter.clone(), c.at)).collect()
}

/// The tally from the ballots this device holds. `None` while the results are
/// hidden and the vote is not closed.
pub fn results(store: &Store, space: &str, vote_id: &str) -> Result<Option<Tally>> {
    let v = vote(store, space, vote_id)?;
    if v.hidden && v.closed_at.is_none() {
        return Ok(None);
    }
    count(store, space, &v).map(Some)
}

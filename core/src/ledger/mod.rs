//! Module 3: points for services (积分换服务) — a timebank whose ledger
//! stays right when phones spend offline.
//!
//! **Documents** (the writer rule of each is the authorisation):
//! * `item/points` (coordinators): the catalogue — categories `cat/<id>` and
//!   their rates `rate/<cat>/<from>`, rewards `reward/<id>` and their prices
//!   `price/<reward>/<from>`, participation rules `rule/<id>`, members'
//!   limits `limit/<member>`.
//! * `own/<member>/pub/ledger-<year>` (that member's devices): hours given
//!   `h/<id>`, answers to hours received `c/<hours>`, transfers and
//!   redemptions `d/<id>`, activity sign-ups `j/<activity>/<stamp>`, offers
//!   and requests `o/<id>`. Hours, debits and offers are keyed
//!   `<member>-<year>-<random>` and live in that year's document.
//! * `item/ledger-<year>` (coordinators): decisions on hours `c/<hours>` and
//!   resolutions of flags `r/<movement>/<stamp>`.
//! * `item/<activity>` (coordinators): a volunteer activity and its
//!   check-ins `i/<member>`, each a credit.
//!
//! The ledger is public within the space, like a timebank's list of
//! exchanges: every member's device holds it and can check every balance
//! (ADR 0004). Movements are derived from these documents ([`book`]) and
//! settled ([`settle`]); nothing is stored as truth but the signed entries.

pub mod book;
pub mod settle;

use std::collections::{BTreeMap, BTreeSet};

use automerge::transaction::{Transactable, Transaction};
use automerge::{ObjType, ROOT, ReadDoc};
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

pub use book::{Book, SetAside};
pub use settle::{COMMUNITY, Flag, FlagKind, Movement, Resolution, Settled, settle};

use crate::doc::{DocId, valid_token};
use crate::error::{Error, Result};
use crate::store::{Store, iso_utc, new_id, now_ms, year_of};

/// The item id of the points catalogue.
pub const CATALOGUE: &str = "points";

/// The highest rate a category may have, in points per hour.
pub const MAX_RATE: i64 = 10_000;

/// The most points one transfer, reward or rule may move.
pub const MAX_POINTS: i64 = 1_000_000;

fn catalogue() -> DocId {
    DocId::Item { item: CATALOGUE.into() }
}

fn coordination(year: u16) -> DocId {
    DocId::Item { item: format!("ledger-{year}") }
}

fn ledger_doc(member: &str, year: u16) -> DocId {
    DocId::own_public(member, &format!("ledger-{year}"))
}

fn entry_id(member: &str, year: u16) -> Result<String> {
    Ok(format!("{member}-{year}-{}", new_id()?))
}

fn text(s: &str, what: &str, max: usize) -> Result<()> {
    if s.trim().is_empty() {
        return Err(Error::Invalid(format!("{what} is empty")));
    }
    if s.chars().count() > max {
        return Err(Error::Invalid(format!("{what} is longer than {max} characters")));
    }
    Ok(())
}

fn id_or_new(id: Option<&str>) -> Result<String> {
    match id {
        Some(id) if valid_token(id) => Ok(id.to_string()),
        Some(_) => Err(Error::Invalid("an id is lowercase letters, digits, - and _".into())),
        None => new_id(),
    }
}

/// Mark a coordination document with its kind (idempotent).
fn kind(tx: &mut Transaction<'_>, kind: &str) -> Result<()> {
    if tx.get(ROOT, "kind")?.is_none() {
        tx.put(ROOT, "kind", kind)?;
    }
    Ok(())
}

fn active_member(store: &Store, space: &str, member: &str) -> Result<()> {
    let ok = store
        .with_view(space, |v| v.members.get(member).is_some_and(|m| m.status == crate::space::MemberStatus::Active))?;
    if ok { Ok(()) } else { Err(Error::NotFound("member".into())) }
}

// ---------------------------------------------------------------------------
// The catalogue (coordinators)

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Category {
    pub id: String,
    pub name: String,
    /// Points per hour, as in force now.
    pub rate: i64,
    pub active: bool,
}

/// Create or change a service category. A new rate applies to services
/// given from now on; hours already given keep the rate of their day.
pub fn set_category(
    store: &Store,
    space: &str,
    id: Option<&str>,
    name: &str,
    rate: i64,
    active: bool,
) -> Result<String> {
    store.my_coordinator(space, "set the points catalogue")?;
    text(name, "a category name", 80)?;
    if !(1..=MAX_RATE).contains(&rate) {
        return Err(Error::Invalid(format!("a rate is 1 to {MAX_RATE} points an hour")));
    }
    let id = id_or_new(id)?;
    let current = categories(store, space)?.into_iter().find(|c| c.id == id).map(|c| c.rate);
    let now = now_ms();
    store.write(space, &catalogue(), |tx| {
        kind(tx, "points")?;
        let c = tx.put_object(ROOT, format!("cat/{id}"), ObjType::Map)?;
        tx.put(&c, "name", name)?;
        tx.put(&c, "active", active)?;
        if current != Some(rate) {
            let r = tx.put_object(ROOT, format!("rate/{id}/{now}"), ObjType::Map)?;
            tx.put(&r, "rate", rate)?;
        }
        Ok(())
    })?;
    Ok(id)
}

pub fn categories(store: &Store, space: &str) -> Result<Vec<Category>> {
    store.query(|c| {
        let mut stmt = c.prepare_cached(
            "SELECT k.category_id, k.name, k.active,
                (SELECT rate FROM ledger_rates r WHERE r.space_id = k.space_id AND r.category_id = k.category_id
                 ORDER BY from_ms DESC LIMIT 1)
             FROM ledger_categories k WHERE k.space_id = ?1 ORDER BY k.name, k.category_id",
        )?;
        let rows = stmt.query_map(params![space], |r| {
            Ok(Category {
                id: r.get(0)?,
                name: r.get(1)?,
                active: r.get(2)?,
                rate: r.get::<_, Option<i64>>(3)?.unwrap_or(0),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    })
}

fn category_exists(store: &Store, space: &str, id: &str) -> Result<()> {
    if categories(store, space)?.iter().any(|c| c.id == id && c.active) {
        Ok(())
    } else {
        Err(Error::NotFound("category".into()))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RewardInput {
    /// None: a new reward.
    pub id: Option<String>,
    pub name: String,
    pub description: String,
    pub price: i64,
    /// How many can be redeemed (goods, slots); None: no limit.
    pub stock: Option<i64>,
    /// Who is paid: a member providing the service, or None for the community.
    pub provider: Option<String>,
    pub active: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reward {
    pub id: String,
    pub name: String,
    pub description: String,
    pub price: i64,
    pub provider: String,
    pub stock: Option<i64>,
    /// What is left of the stock after the redemptions this device holds.
    pub left: Option<i64>,
    pub active: bool,
}

/// Create or change a reward. A new price applies to redemptions from now on.
pub fn set_reward(store: &Store, space: &str, input: &RewardInput) -> Result<String> {
    store.my_coordinator(space, "set the points catalogue")?;
    text(&input.name, "a reward name", 80)?;
    if !(1..=MAX_POINTS).contains(&input.price) {
        return Err(Error::Invalid(format!("a price is 1 to {MAX_POINTS} points")));
    }
    if input.stock.is_some_and(|n| !(0..=MAX_POINTS).contains(&n)) {
        return Err(Error::Invalid("a stock is 0 or more".into()));
    }
    let provider = input.provider.clone().unwrap_or_else(|| COMMUNITY.to_string());
    if provider != COMMUNITY {
        active_member(store, space, &provider)?;
    }
    let id = id_or_new(input.id.as_deref())?;
    let current: Option<i64> = store.query(|c| {
        Ok(c.prepare_cached(
            "SELECT price FROM ledger_prices WHERE space_id = ?1 AND reward_id = ?2 ORDER BY from_ms DESC LIMIT 1",
        )?
        .query_row(params![space, id], |r| r.get(0))
        .optional()?)
    })?;
    let now = now_ms();
    store.write(space, &catalogue(), |tx| {
        kind(tx, "points")?;
        let w = tx.put_object(ROOT, format!("reward/{id}"), ObjType::Map)?;
        tx.put(&w, "name", input.name.as_str())?;
        tx.put(&w, "description", input.description.as_str())?;
        tx.put(&w, "provider", provider.as_str())?;
        tx.put(&w, "stock", input.stock.unwrap_or(-1))?;
        tx.put(&w, "active", input.active)?;
        if current != Some(input.price) {
            let p = tx.put_object(ROOT, format!("price/{id}/{now}"), ObjType::Map)?;
            tx.put(&p, "price", input.price)?;
        }
        Ok(())
    })?;
    Ok(id)
}

pub fn rewards(store: &Store, space: &str) -> Result<Vec<Reward>> {
    let (mut out, taken) = store.query(|c| {
        let mut stmt = c.prepare_cached(
            "SELECT w.reward_id, w.name, w.description, w.provider, w.stock, w.active,
                (SELECT price FROM ledger_prices p WHERE p.space_id = w.space_id AND p.reward_id = w.reward_id
                 ORDER BY from_ms DESC LIMIT 1)
             FROM ledger_rewards w WHERE w.space_id = ?1 ORDER BY w.name, w.reward_id",
        )?;
        let rows = stmt.query_map(params![space], |r| {
            Ok(Reward {
                id: r.get(0)?,
                name: r.get(1)?,
                description: r.get(2)?,
                provider: r.get(3)?,
                stock: r.get(4)?,
                active: r.get(5)?,
                price: r.get::<_, Option<i64>>(6)?.unwrap_or(0),
                left: None,
            })
        })?;
        let out: Vec<Reward> = rows.collect::<Result<_, _>>()?;
        let mut taken: BTreeMap<String, i64> = BTreeMap::new();
        if out.iter().any(|r| r.stock.is_some()) {
            let b = book::load_stock(c, space)?;
            let s = settle(&b.movements, &b.limits, &b.stock, &b.resolutions);
            let applied: BTreeSet<&String> = s.order.iter().collect();
            for m in b.movements.iter().filter(|m| applied.contains(&m.id)) {
                if let Some(r) = &m.reward {
                    *taken.entry(r.clone()).or_default() += 1;
                }
            }
        }
        Ok((out, taken))
    })?;
    for r in &mut out {
        r.left = r.stock.map(|n| n - taken.get(&r.id).copied().unwrap_or(0));
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleOn {
    /// Answering a survey.
    Survey,
    /// Casting one's own ballot (or a paper one) in a vote.
    Vote,
    /// Being marked present at a consultation.
    Meeting,
}

impl RuleOn {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleOn::Survey => "survey",
            RuleOn::Vote => "vote",
            RuleOn::Meeting => "meeting",
        }
    }

    fn parse(s: &str) -> Option<RuleOn> {
        [RuleOn::Survey, RuleOn::Vote, RuleOn::Meeting].into_iter().find(|r| r.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub id: String,
    pub on: RuleOn,
    /// One item, or None for every item of that kind.
    pub item: Option<String>,
    pub points: i64,
    /// Participation from this time on earns the points…
    pub from: i64,
    /// …until this time, if the rule was ended.
    pub until: Option<i64>,
}

/// A participation rule: `points` for each member who takes part in `item`
/// (or any item of the kind), from now on. Paid once per member per item.
pub fn add_rule(store: &Store, space: &str, on: RuleOn, item: Option<&str>, points: i64) -> Result<String> {
    store.my_coordinator(space, "set the points catalogue")?;
    if !(1..=MAX_POINTS).contains(&points) {
        return Err(Error::Invalid(format!("a rule awards 1 to {MAX_POINTS} points")));
    }
    if item.is_some_and(|i| !valid_token(i)) {
        return Err(Error::Invalid("item id".into()));
    }
    let id = new_id()?;
    let now = now_ms();
    store.write(space, &catalogue(), |tx| {
        kind(tx, "points")?;
        let r = tx.put_object(ROOT, format!("rule/{id}"), ObjType::Map)?;
        tx.put(&r, "on", on.as_str())?;
        tx.put(&r, "item", item.unwrap_or(""))?;
        tx.put(&r, "points", points)?;
        tx.put(&r, "from", now)?;
        tx.put(&r, "until", 0)?;
        Ok(())
    })?;
    Ok(id)
}

/// Award participation in a vote or a survey (coordinators): for every
/// member the item's own module counts as having taken part — a ballot that
/// counted, a response that counted — an award entry
/// `a/<kind>/<item>/<member>: { at, by }` in `item/ledger-<year>`, which every
/// reader of the ledger holds, so every phone computes the same balances
/// from it (never from private ballots or answers it cannot read). Awards
/// already there are not written again; nothing set aside is awarded.
/// Publishing a result awards too. Returns how many awards were written.
pub fn award_participation(store: &Store, space: &str, item: &str) -> Result<usize> {
    store.my_coordinator(space, "award participation")?;
    let item_kind =
        store.read(space, &DocId::Item { item: item.to_string() }, |d| crate::space::get_str(d, &ROOT, "kind"))?;
    let (what, took_part) = match item_kind.as_deref() {
        Some("vote") => ("vote", crate::poll::took_part(store, space, item)?),
        Some("survey") => ("survey", crate::survey::took_part(store, space, item)?),
        _ => return Err(Error::Invalid("participation is awarded for a vote or a survey".into())),
    };
    award(store, space, what, item, took_part)
}

/// Write the awards of `took_part` (member, time) in item `item` of kind
/// `what` (`vote` or `survey`), as the item's module counted them; those
/// already there are not written again. Coordinators.
pub(crate) fn award(
    store: &Store,
    space: &str,
    what: &str,
    item: &str,
    took_part: Vec<(String, i64)>,
) -> Result<usize> {
    let me = store.my_coordinator(space, "award participation")?;
    let awarded: BTreeSet<String> = store.query(|c| {
        let mut stmt =
            c.prepare_cached("SELECT member FROM ledger_awards WHERE space_id = ?1 AND kind = ?2 AND item_id = ?3")?;
        let rows = stmt.query_map(params![space, what, item], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    })?;
    // Facts no rule could pay are not written (every phone holds them).
    let paid =
        rules(store, space)?.iter().any(|r| r.on.as_str() == what && r.item.as_deref().is_none_or(|i| i == item));
    if !paid {
        return Ok(0);
    }
    let mut first: BTreeMap<String, i64> = BTreeMap::new();
    for (member, at) in took_part {
        let e = first.entry(member).or_insert(at);
        *e = (*e).min(at);
    }
    first.retain(|m, _| !awarded.contains(m) && valid_token(m));
    if first.is_empty() {
        return Ok(0);
    }
    let now = now_ms();
    store.write(space, &coordination(year_of(now)), |tx| {
        kind(tx, "ledger")?;
        for (member, at) in &first {
            let a = tx.put_object(ROOT, format!("a/{what}/{item}/{member}"), ObjType::Map)?;
            tx.put(&a, "at", (*at).min(now))?;
            tx.put(&a, "by", me.as_str())?;
        }
        Ok(())
    })?;
    Ok(first.len())
}

/// End a rule: participation from now on earns nothing by it; what it
/// already earned stays.
pub fn end_rule(store: &Store, space: &str, rule: &str) -> Result<()> {
    store.my_coordinator(space, "set the points catalogue")?;
    if !rules(store, space)?.iter().any(|r| r.id == rule) {
        return Err(Error::NotFound("rule".into()));
    }
    store.write(space, &catalogue(), |tx| {
        let r = tx.get(ROOT, format!("rule/{rule}").as_str())?.map(|(_, id)| id);
        let Some(r) = r else { return Err(Error::NotFound("rule".into())) };
        tx.put(&r, "until", now_ms())?;
        Ok(())
    })?;
    Ok(())
}

pub fn rules(store: &Store, space: &str) -> Result<Vec<Rule>> {
    store.query(|c| {
        let mut stmt = c.prepare_cached(
            "SELECT rule_id, on_kind, item_id, points, from_ms, until_ms FROM ledger_rules WHERE space_id = ?1
             ORDER BY from_ms, rule_id",
        )?;
        let rows = stmt.query_map(params![space], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, on, item, points, from, until) = row?;
            let Some(on) = RuleOn::parse(&on) else { continue };
            out.push(Rule { id, on, item: Some(item).filter(|i| !i.is_empty()), points, from, until });
        }
        Ok(out)
    })
}

/// A member's limit: the lowest balance they may reach before a spend is
/// flagged (0 by default; a negative limit lets them run into credit).
pub fn set_limit(store: &Store, space: &str, member: &str, min: i64) -> Result<()> {
    store.my_coordinator(space, "set limits")?;
    active_member(store, space, member)?;
    if !(-MAX_POINTS..=0).contains(&min) {
        return Err(Error::Invalid("a limit is 0 or below".into()));
    }
    store.write(space, &catalogue(), |tx| {
        kind(tx, "points")?;
        let l = tx.put_object(ROOT, format!("limit/{member}"), ObjType::Map)?;
        tx.put(&l, "min", min)?;
        Ok(())
    })?;
    Ok(())
}

// ---------------------------------------------------------------------------
// Offers and requests

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OfferKind {
    /// "I can fix bikes."
    Offer,
    /// "Need someone to walk with my mother."
    Request,
}

impl OfferKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OfferKind::Offer => "offer",
            OfferKind::Request => "request",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferInput {
    pub kind: OfferKind,
    pub category: String,
    pub title: String,
    pub description: String,
    /// When: "weekday evenings", "Saturday mornings".
    pub availability: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    pub id: String,
    pub author: String,
    pub kind: String,
    pub category: String,
    pub title: String,
    pub description: String,
    pub availability: String,
    /// `open` or `closed`.
    pub status: String,
    pub at: i64,
}

/// An offer and its status changes stay in the document of the year it was
/// posted (its id says which), so one entry holds it.
fn write_offer(store: &Store, space: &str, id: &str, input: &OfferInput, status: &str) -> Result<()> {
    let me = store.my_member(space)?;
    store.write(space, &ledger_doc(&me, year_of_entry(id)?), |tx| {
        let o = tx.put_object(ROOT, format!("o/{id}"), ObjType::Map)?;
        tx.put(&o, "kind", input.kind.as_str())?;
        tx.put(&o, "category", input.category.as_str())?;
        tx.put(&o, "title", input.title.as_str())?;
        tx.put(&o, "description", input.description.as_str())?;
        tx.put(&o, "availability", input.availability.as_str())?;
        tx.put(&o, "status", status)?;
        tx.put(&o, "at", now_ms())?;
        Ok(())
    })?;
    Ok(())
}

/// Post an offer or a request. Returns its id.
pub fn post_offer(store: &Store, space: &str, input: &OfferInput) -> Result<String> {
    let me = store.my_member(space)?;
    text(&input.title, "a title", 120)?;
    if input.description.chars().count() > 2000 || input.availability.chars().count() > 200 {
        return Err(Error::Invalid("the description or availability is too long".into()));
    }
    category_exists(store, space, &input.category)?;
    let id = entry_id(&me, year_of(now_ms()))?;
    write_offer(store, space, &id, input, "open")?;
    Ok(id)
}

/// Close (or reopen) one's own offer or request.
pub fn set_offer_open(store: &Store, space: &str, offer: &str, open: bool) -> Result<()> {
    let me = store.my_member(space)?;
    let o = offers(store, space, None, false)?
        .into_iter()
        .find(|o| o.id == offer && o.author == me)
        .ok_or_else(|| Error::NotFound("offer of yours".into()))?;
    let kind = if o.kind == "request" { OfferKind::Request } else { OfferKind::Offer };
    let input = OfferInput {
        kind,
        category: o.category,
        title: o.title,
        description: o.description,
        availability: o.availability,
    };
    write_offer(store, space, offer, &input, if open { "open" } else { "closed" })
}

/// Offers and requests, newest first.
pub fn offers(store: &Store, space: &str, kind: Option<OfferKind>, open_only: bool) -> Result<Vec<Offer>> {
    store.query(|c| {
        let mut stmt = c.prepare_cached(
            "SELECT offer_id, author, kind, category_id, title, description, availability, status, at FROM offers
             WHERE space_id = ?1 AND (?2 IS NULL OR kind = ?2) AND (?3 = 0 OR status = 'open')
             ORDER BY at DESC, offer_id",
        )?;
        let rows = stmt.query_map(params![space, kind.map(OfferKind::as_str), open_only], |r| {
            Ok(Offer {
                id: r.get(0)?,
                author: r.get(1)?,
                kind: r.get(2)?,
                category: r.get(3)?,
                title: r.get(4)?,
                description: r.get(5)?,
                availability: r.get(6)?,
                status: r.get(7)?,
                at: r.get(8)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    })
}

// ---------------------------------------------------------------------------
// Earning

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoursInput {
    /// The member the service was given to…
    pub to: Option<String>,
    /// …or the volunteer activity it was for (exactly one of the two).
    pub activity: Option<String>,
    pub category: String,
    pub minutes: i64,
    /// When the service was given (milliseconds).
    pub on: i64,
    pub note: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum HoursStatus {
    /// Waiting for the recipient (or, for an activity, a coordinator).
    Pending,
    /// The recipient confirmed: the points are credited.
    Confirmed,
    /// The recipient declined: a coordinator decides.
    Declined { reason: String },
    /// A coordinator credited them (over a decline, or for an activity).
    Credited,
    /// A coordinator rejected them.
    Rejected { reason: String },
    /// Confirmed, but they can never move points.
    SetAside { reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hours {
    pub id: String,
    pub volunteer: String,
    pub recipient: Option<String>,
    pub activity: Option<String>,
    pub category: String,
    pub minutes: i64,
    pub on: i64,
    pub note: String,
    pub at: i64,
    pub status: HoursStatus,
    /// The points credited, once they are.
    pub points: Option<i64>,
    /// The coordinator who logged them for a volunteer without a phone.
    pub entered_by: Option<String>,
}

/// Log hours given. Nothing is credited until the recipient (or a
/// coordinator) confirms. Returns the hours' id.
pub fn log_hours(store: &Store, space: &str, input: &HoursInput) -> Result<String> {
    let me = store.my_member(space)?;
    write_hours(store, space, &me, &me, input)
}

/// A coordinator logs hours that `volunteer`, a member without a phone,
/// gave. The entry sits in the coordinator's ledger document and names the
/// volunteer, who is credited once the recipient (or another coordinator)
/// confirms; whoever logged them cannot confirm them. Returns the hours' id.
pub fn log_hours_for(store: &Store, space: &str, volunteer: &str, input: &HoursInput) -> Result<String> {
    let me = store.my_coordinator(space, "log hours for a member")?;
    if volunteer == me {
        return Err(Error::Invalid("log your own hours with log_hours".into()));
    }
    active_member(store, space, volunteer)?;
    write_hours(store, space, &me, volunteer, input)
}

fn write_hours(store: &Store, space: &str, me: &str, volunteer: &str, input: &HoursInput) -> Result<String> {
    category_exists(store, space, &input.category)?;
    if !(1..=book::MAX_MINUTES).contains(&input.minutes) {
        return Err(Error::Invalid(format!("minutes are 1 to {}", book::MAX_MINUTES)));
    }
    let now = now_ms();
    if input.on > now + 86_400_000 || input.on < now - 366 * 86_400_000 {
        return Err(Error::Invalid("the service was given within the last year".into()));
    }
    if input.note.chars().count() > 500 {
        return Err(Error::Invalid("a note is at most 500 characters".into()));
    }
    match (&input.to, &input.activity) {
        (Some(to), None) => {
            if to == volunteer {
                return Err(Error::Invalid("hours are given to someone else".into()));
            }
            active_member(store, space, to)?;
        }
        (None, Some(a)) => {
            activity(store, space, a)?;
        }
        _ => return Err(Error::Invalid("hours are given to a member or for an activity, one of the two".into())),
    }
    let year = year_of(now);
    let id = entry_id(me, year)?;
    store.write(space, &ledger_doc(me, year), |tx| {
        let h = tx.put_object(ROOT, format!("h/{id}"), ObjType::Map)?;
        tx.put(&h, "to", input.to.as_deref().unwrap_or(""))?;
        tx.put(&h, "activity", input.activity.as_deref().unwrap_or(""))?;
        tx.put(&h, "category", input.category.as_str())?;
        tx.put(&h, "minutes", input.minutes)?;
        tx.put(&h, "on", input.on)?;
        tx.put(&h, "note", input.note.as_str())?;
        tx.put(&h, "at", now)?;
        if volunteer != me {
            tx.put(&h, "for", volunteer)?;
        }
        Ok(())
    })?;
    Ok(id)
}

fn the_hours(store: &Store, space: &str, id: &str) -> Result<Hours> {
    hours_where(store, space, "", "h.hours_id = ?2", id)?.pop().ok_or_else(|| Error::NotFound("hours".into()))
}

fn write_answer(store: &Store, space: &str, doc: &DocId, hours: &str, answer: &str, reason: &str) -> Result<()> {
    let me = store.my_member(space)?;
    store.write(space, doc, |tx| {
        if matches!(doc, DocId::Item { .. }) {
            kind(tx, "ledger")?;
        }
        let c = tx.put_object(ROOT, format!("c/{hours}"), ObjType::Map)?;
        tx.put(&c, "answer", answer)?;
        tx.put(&c, "reason", reason)?;
        tx.put(&c, "by", me.as_str())?;
        tx.put(&c, "at", now_ms())?;
        Ok(())
    })?;
    Ok(())
}

fn year_of_entry(id: &str) -> Result<u16> {
    book::entry_of(id).map(|(_, y)| y).ok_or_else(|| Error::Invalid("malformed entry id".into()))
}

/// The recipient confirms hours given to them: the volunteer is credited.
pub fn confirm_hours(store: &Store, space: &str, hours: &str) -> Result<()> {
    answer_as_recipient(store, space, hours, "confirm", "")
}

/// The recipient declines hours logged for them, with a reason; a
/// coordinator decides.
pub fn decline_hours(store: &Store, space: &str, hours: &str, reason: &str) -> Result<()> {
    text(reason, "a reason", 500)?;
    answer_as_recipient(store, space, hours, "decline", reason)
}

fn answer_as_recipient(store: &Store, space: &str, hours: &str, answer: &str, reason: &str) -> Result<()> {
    let me = store.my_member(space)?;
    let h = the_hours(store, space, hours)?;
    if h.recipient.as_deref() != Some(me.as_str()) {
        return Err(Error::NotAllowed("only the member the hours were given to answers them".into()));
    }
    write_answer(store, space, &ledger_doc(&me, year_of_entry(hours)?), hours, answer, reason)
}

/// A coordinator decides on hours: over a recipient's decline (a dispute),
/// for an activity, or for a recipient who has no phone. The decision
/// overrides the recipient's answer. Coordinators cannot decide on their
/// own hours.
pub fn decide_hours(store: &Store, space: &str, hours: &str, credit: bool, reason: &str) -> Result<()> {
    let me = store.my_coordinator(space, "decide on hours")?;
    let h = the_hours(store, space, hours)?;
    if h.volunteer == me || h.entered_by.as_deref() == Some(me.as_str()) {
        return Err(Error::NotAllowed("a coordinator does not decide on hours they gave or logged".into()));
    }
    if !credit {
        text(reason, "a reason", 500)?;
    }
    let answer = if credit { "confirm" } else { "decline" };
    write_answer(store, space, &coordination(year_of_entry(hours)?), hours, answer, reason)
}

/// Hours given or received by `member`, newest first.
pub fn hours(store: &Store, space: &str, member: &str) -> Result<Vec<Hours>> {
    let mut out = hours_where(store, space, BY_VOLUNTEER, "h.volunteer = ?2", member)?;
    out.extend(hours_where(store, space, BY_RECIPIENT, "h.recipient = ?2", member)?);
    out.sort_by(|a, b| (b.at, &b.id).cmp(&(a.at, &a.id)));
    Ok(out)
}

/// What waits for this device's member: hours given to them to answer and,
/// for coordinators, declined hours and activity hours to decide.
pub fn hours_to_answer(store: &Store, space: &str) -> Result<Vec<Hours>> {
    let me = store.my_member(space)?;
    let mut out: Vec<Hours> = hours_where(store, space, BY_RECIPIENT, "h.recipient = ?2", &me)?
        .into_iter()
        .filter(|h| h.status == HoursStatus::Pending)
        .collect();
    if store.my_coordinator(space, "decide").is_ok() {
        out.extend(hours_where(store, space, "", "h.volunteer <> ?2 AND h.entered_by <> ?2", &me)?.into_iter().filter(
            |h| {
                matches!(h.status, HoursStatus::Declined { .. })
                    || (h.status == HoursStatus::Pending && h.activity.is_some())
            },
        ));
    }
    out.sort_by(|a, b| (a.at, &a.id).cmp(&(b.at, &b.id)));
    out.dedup_by(|a, b| a.id == b.id);
    Ok(out)
}

const BY_VOLUNTEER: &str = "INDEXED BY ledger_hours_by_volunteer";
const BY_RECIPIENT: &str = "INDEXED BY ledger_hours_by_recipient";

/// Hours matching `clause` on `?2 = arg`, read through `index`, with where they stand.
fn hours_where(store: &Store, space: &str, index: &str, clause: &str, arg: &str) -> Result<Vec<Hours>> {
    store.query(|c| {
        let rates = book::Rates::load(c, space)?;
        let rows = book::hours_rows(c, space, index, clause, Some(arg))?;
        Ok(rows
            .iter()
            .map(|h| {
                let (status, points) = match h.outcome(&rates) {
                    book::Outcome::Pending => (HoursStatus::Pending, None),
                    book::Outcome::Refused { by_coordinators: true, reason } => {
                        (HoursStatus::Rejected { reason: reason.into() }, None)
                    }
                    book::Outcome::Refused { by_coordinators: false, reason } => {
                        (HoursStatus::Declined { reason: reason.into() }, None)
                    }
                    book::Outcome::SetAside(reason) => (HoursStatus::SetAside { reason: reason.into() }, None),
                    book::Outcome::Credit { by_coordinators: true, points, .. } => {
                        (HoursStatus::Credited, Some(points))
                    }
                    book::Outcome::Credit { by_coordinators: false, points, .. } => {
                        (HoursStatus::Confirmed, Some(points))
                    }
                };
                Hours {
                    id: h.id.clone(),
                    volunteer: h.volunteer.clone(),
                    entered_by: Some(h.entered_by.clone()).filter(|s| !s.is_empty()),
                    recipient: Some(h.recipient.clone()).filter(|s| !s.is_empty()),
                    activity: Some(h.activity.clone()).filter(|s| !s.is_empty()),
                    category: h.category.clone(),
                    minutes: h.minutes,
                    on: h.on,
                    note: h.note.clone(),
                    at: h.at,
                    status,
                    points,
                }
            })
            .collect())
    })
}

// ---------------------------------------------------------------------------
// Activities

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityInput {
    pub title: String,
    pub category: String,
    pub starts_at: i64,
    pub place: String,
    /// How many volunteers it needs; None: no limit.
    pub slots: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activity {
    pub id: String,
    pub title: String,
    pub category: String,
    pub starts_at: i64,
    pub place: String,
    pub slots: Option<i64>,
}

/// A volunteer activity ("clean the courtyard on Saturday"). Returns its id.
pub fn create_activity(store: &Store, space: &str, input: &ActivityInput) -> Result<String> {
    store.my_coordinator(space, "run activities")?;
    text(&input.title, "a title", 120)?;
    category_exists(store, space, &input.category)?;
    if input.slots.is_some_and(|n| !(1..=10_000).contains(&n)) {
        return Err(Error::Invalid("slots are 1 to 10000".into()));
    }
    let id = new_id()?;
    store.write_item(space, &id, "activity", &input.title, |tx| {
        tx.put(ROOT, "kind", "activity")?;
        tx.put(ROOT, "title", input.title.as_str())?;
        tx.put(ROOT, "category", input.category.as_str())?;
        tx.put(ROOT, "starts_at", input.starts_at)?;
        tx.put(ROOT, "place", input.place.as_str())?;
        tx.put(ROOT, "slots", input.slots.unwrap_or(0))?;
        Ok(())
    })?;
    Ok(id)
}

pub fn activity(store: &Store, space: &str, id: &str) -> Result<Activity> {
    activities(store, space)?.into_iter().find(|a| a.id == id).ok_or_else(|| Error::NotFound("activity".into()))
}

/// Activities, soonest first.
pub fn activities(store: &Store, space: &str) -> Result<Vec<Activity>> {
    store.query(|c| {
        let mut stmt = c.prepare_cached(
            "SELECT activity_id, title, category_id, starts_at, place, slots FROM activities WHERE space_id = ?1
             ORDER BY starts_at, activity_id",
        )?;
        let rows = stmt.query_map(params![space], |r| {
            Ok(Activity {
                id: r.get(0)?,
                title: r.get(1)?,
                category: r.get(2)?,
                starts_at: r.get(3)?,
                place: r.get(4)?,
                slots: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    })
}

/// Sign up for an activity (or withdraw): the entry is in the member's own
/// document, so it is theirs alone. Each sign-up or withdrawal is a new
/// entry (`j/<activity>/<stamp>`) and the latest counts, so two devices of
/// the member never write the same key.
pub fn sign_up(store: &Store, space: &str, activity_id: &str, join: bool) -> Result<()> {
    let me = store.my_member(space)?;
    activity(store, space, activity_id)?;
    let now = now_ms();
    let stamp = format!("{now:013}-{}", new_id()?);
    store.write(space, &ledger_doc(&me, year_of(now)), |tx| {
        let j = tx.put_object(ROOT, format!("j/{activity_id}/{stamp}"), ObjType::Map)?;
        tx.put(&j, "withdrawn", !join)?;
        tx.put(&j, "at", now)?;
        Ok(())
    })?;
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterEntry {
    pub member: String,
    pub name: String,
    /// When they signed up; None for someone checked in without signing up.
    pub signed_up_at: Option<i64>,
    /// Beyond the activity's slots, in sign-up order.
    pub waitlisted: bool,
    /// The minutes they were checked in for, if they were.
    pub minutes: Option<i64>,
}

/// The roster: sign-ups in order (those beyond the slots wait-listed), then
/// anyone checked in who had not signed up.
pub fn roster(store: &Store, space: &str, activity_id: &str) -> Result<Vec<RosterEntry>> {
    let a = activity(store, space, activity_id)?;
    let (signups, checkins) = store.query(|c| {
        let mut stmt = c.prepare_cached(
            "SELECT member, at FROM activity_signups WHERE space_id = ?1 AND activity_id = ?2 AND withdrawn = 0
             ORDER BY at, member",
        )?;
        let s: Vec<(String, i64)> =
            stmt.query_map(params![space, activity_id], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?;
        let mut stmt = c.prepare_cached(
            "SELECT member, minutes FROM activity_checkins WHERE space_id = ?1 AND activity_id = ?2 ORDER BY member",
        )?;
        let k: BTreeMap<String, i64> =
            stmt.query_map(params![space, activity_id], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?;
        Ok((s, k))
    })?;
    let view = store.view(space)?;
    let name = |m: &str| view.members.get(m).map(|x| x.name.clone()).unwrap_or_default();
    let mut out: Vec<RosterEntry> = signups
        .iter()
        .enumerate()
        .map(|(n, (m, at))| RosterEntry {
            member: m.clone(),
            name: name(m),
            signed_up_at: Some(*at),
            waitlisted: a.slots.is_some_and(|s| n as i64 >= s),
            minutes: checkins.get(m).copied(),
        })
        .collect();
    for (m, minutes) in &checkins {
        if !signups.iter().any(|(s, _)| s == m) {
            out.push(RosterEntry {
                member: m.clone(),
                name: name(m),
                signed_up_at: None,
                waitlisted: false,
                minutes: Some(*minutes),
            });
        }
    }
    Ok(out)
}

/// Check members in at an activity and credit each at once (a group
/// credit): `(member, minutes)`; 0 minutes takes a check-in back. One
/// change, one credit per member whatever devices check them in.
pub fn check_in(store: &Store, space: &str, activity_id: &str, attendees: &[(String, i64)]) -> Result<()> {
    let me = store.my_coordinator(space, "run activities")?;
    activity(store, space, activity_id)?;
    for (m, minutes) in attendees {
        active_member(store, space, m)?;
        if !(0..=book::MAX_MINUTES).contains(minutes) {
            return Err(Error::Invalid(format!("minutes are 0 to {}", book::MAX_MINUTES)));
        }
    }
    let now = now_ms();
    store.write(space, &DocId::Item { item: activity_id.to_string() }, |tx| {
        for (m, minutes) in attendees {
            let i = tx.put_object(ROOT, format!("i/{m}"), ObjType::Map)?;
            tx.put(&i, "minutes", *minutes)?;
            tx.put(&i, "by", me.as_str())?;
            tx.put(&i, "at", now)?;
        }
        Ok(())
    })?;
    Ok(())
}

// ---------------------------------------------------------------------------
// Spending

/// This device's view of a member's balance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balance {
    pub member: String,
    pub points: i64,
    /// The lowest balance they may reach.
    pub limit: i64,
    /// Their movements flagged and not yet resolved.
    pub flagged: usize,
}

fn settle_account(store: &Store, space: &str, account: &str) -> Result<(Book, Settled)> {
    // The community account touches every issuance: it needs the whole book.
    let only = Some(account).filter(|a| *a != COMMUNITY);
    let b = store.query(|c| book::load(c, space, only))?;
    let s = settle(&b.movements, &b.limits, &b.stock, &b.resolutions);
    Ok((b, s))
}

/// A member's balance (or the community account's: minus the points in
/// circulation).
pub fn balance(store: &Store, space: &str, member: &str) -> Result<Balance> {
    let (b, s) = settle_account(store, space, member)?;
    Ok(Balance {
        member: member.to_string(),
        points: s.balances.get(member).copied().unwrap_or(0),
        limit: b.limits.get(member).copied().unwrap_or(0),
        flagged: s.flags.iter().filter(|f| involves(&b, &f.movement, member)).count(),
    })
}

fn involves(b: &Book, movement: &str, account: &str) -> bool {
    b.movements.iter().any(|m| m.id == movement && (m.from == account || m.to == account))
}

fn debit(store: &Store, space: &str, to: &str, points: i64, kind: &str, reward: &str, note: &str) -> Result<String> {
    let me = store.my_member(space)?;
    let b = balance(store, space, &me)?;
    if b.points - points < b.limit {
        return Err(Error::Invalid(format!("not enough points: the balance is {}, the limit {}", b.points, b.limit)));
    }
    let now = now_ms();
    let year = year_of(now);
    let id = entry_id(&me, year)?;
    store.write(space, &ledger_doc(&me, year), |tx| {
        let d = tx.put_object(ROOT, format!("d/{id}"), ObjType::Map)?;
        tx.put(&d, "to", to)?;
        tx.put(&d, "points", points)?;
        tx.put(&d, "kind", kind)?;
        tx.put(&d, "reward", reward)?;
        tx.put(&d, "note", note)?;
        tx.put(&d, "at", now)?;
        Ok(())
    })?;
    Ok(id)
}

/// Give points to a neighbour (for a service between neighbours), or to
/// the community. Refused here if this device knows the balance would go
/// below the limit; two devices spending the same points offline are
/// flagged after they merge. Returns the debit's id.
pub fn transfer(store: &Store, space: &str, to: &str, points: i64, note: &str) -> Result<String> {
    let me = store.my_member(space)?;
    if to == me {
        return Err(Error::Invalid("a transfer is to someone else".into()));
    }
    if to != COMMUNITY {
        active_member(store, space, to)?;
    }
    if !(1..=MAX_POINTS).contains(&points) {
        return Err(Error::Invalid(format!("a transfer is 1 to {MAX_POINTS} points")));
    }
    if note.chars().count() > 500 {
        return Err(Error::Invalid("a note is at most 500 characters".into()));
    }
    debit(store, space, to, points, "transfer", "", note)
}

/// Redeem a reward at its current price. Returns the debit's id.
pub fn redeem(store: &Store, space: &str, reward: &str) -> Result<String> {
    let r = rewards(store, space)?
        .into_iter()
        .find(|r| r.id == reward && r.active)
        .ok_or_else(|| Error::NotFound("reward".into()))?;
    if r.left.is_some_and(|n| n <= 0) {
        return Err(Error::Invalid("the reward is out of stock".into()));
    }
    if r.provider == store.my_member(space)? {
        return Err(Error::Invalid("a provider does not redeem their own reward".into()));
    }
    debit(store, space, &r.provider, r.price, "redeem", reward, &r.name)
}

// ---------------------------------------------------------------------------
// The ledger: flags, resolutions, statements, reports

/// The whole ledger as this device holds it: every movement, settled.
pub fn ledger(store: &Store, space: &str) -> Result<(Book, Settled)> {
    let b = store.query(|c| book::load(c, space, None))?;
    let s = settle(&b.movements, &b.limits, &b.stock, &b.resolutions);
    Ok((b, s))
}

/// Unresolved flags, in ledger order (coordinators resolve them).
pub fn flags(store: &Store, space: &str) -> Result<Vec<Flag>> {
    Ok(ledger(store, space)?.1.flags)
}

/// Resolve a flagged movement: accept the overdraft (or the redemption
/// beyond stock) or void the movement. Recorded in the ledger.
pub fn resolve(store: &Store, space: &str, movement: &str, resolution: Resolution, reason: &str) -> Result<()> {
    let me = store.my_coordinator(space, "resolve flags")?;
    text(reason, "a reason", 500)?;
    let (b, _) = ledger(store, space)?;
    if !b.movements.iter().any(|m| m.id == movement) {
        return Err(Error::NotFound("movement".into()));
    }
    let now = now_ms();
    store.write(space, &coordination(year_of(now)), |tx| {
        kind(tx, "ledger")?;
        // A new entry each time (`r/<movement>/<stamp>`): the latest
        // decision stands, and no two coordinators write the same key.
        let r = tx.put_object(ROOT, format!("r/{movement}/{now:013}-{}", new_id()?), ObjType::Map)?;
        tx.put(
            &r,
            "resolution",
            match resolution {
                Resolution::Accept => "accept",
                Resolution::Void => "void",
            },
        )?;
        tx.put(&r, "reason", reason)?;
        tx.put(&r, "by", me.as_str())?;
        tx.put(&r, "at", now)?;
        Ok(())
    })?;
    Ok(())
}

/// One line of a statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    pub movement: String,
    pub at: i64,
    /// `hours`, `activity`, `participation`, `transfer`, `redeem`.
    pub reason: String,
    /// The other account.
    pub counterpart: String,
    /// Positive: credited to the member; negative: debited.
    pub points: i64,
    /// The balance after this line (voided lines do not change it).
    pub balance: i64,
    /// `applied`, `flagged`, `accepted` or `voided`.
    pub status: String,
    pub category: String,
    pub minutes: i64,
    pub link: Option<String>,
    pub note: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    pub member: String,
    pub from: Option<i64>,
    pub until: Option<i64>,
    /// The balance before `from`.
    pub opening: i64,
    pub closing: i64,
    pub lines: Vec<Line>,
    /// Entries of the member's that can never move points, and why.
    pub set_aside: Vec<SetAside>,
}

fn within(at: i64, from: Option<i64>, until: Option<i64>) -> bool {
    from.is_none_or(|f| at >= f) && until.is_none_or(|u| at < u)
}

/// A member's statement over `[from, until)`: the member or coordinators.
pub fn statement(store: &Store, space: &str, member: &str, from: Option<i64>, until: Option<i64>) -> Result<Statement> {
    if store.my_member(space)? != member {
        store.my_coordinator(space, "read another member's statement")?;
    }
    let (b, s) = settle_account(store, space, member)?;
    let flagged: BTreeSet<&str> = s
        .flags
        .iter()
        .filter(|f| f.account == member || f.kind == FlagKind::OutOfStock)
        .map(|f| f.movement.as_str())
        .collect();
    let mut ordered: Vec<&Movement> = b.movements.iter().filter(|m| m.from == member || m.to == member).collect();
    ordered.sort_by(|a, b| (a.at, &a.receipt, &a.id).cmp(&(b.at, &b.receipt, &b.id)));
    ordered.dedup_by(|a, b| a.id == b.id);
    let mut balance = 0;
    let mut opening = 0;
    let mut lines = Vec::new();
    for m in ordered {
        let signed = if m.to == member { m.points } else { -m.points };
        let status = if s.voided.contains(&m.id) {
            "voided"
        } else if s.malformed.contains(&m.id) {
            continue;
        } else if flagged.contains(m.id.as_str()) {
            "flagged"
        } else if s.accepted.contains(&m.id) {
            "accepted"
        } else {
            "applied"
        };
        if status != "voided" {
            balance += signed;
        }
        if from.is_some_and(|f| m.at < f) {
            opening = balance;
            continue;
        }
        if !within(m.at, from, until) {
            continue;
        }
        let d = b.details.get(&m.id).cloned().unwrap_or_default();
        lines.push(Line {
            movement: m.id.clone(),
            at: m.at,
            reason: m.reason.clone(),
            counterpart: if m.to == member { m.from.clone() } else { m.to.clone() },
            points: signed,
            balance,
            status: status.into(),
            category: d.category,
            minutes: d.minutes,
            link: m.link.clone(),
            note: d.note,
        });
    }
    let closing = lines.last().map_or(opening, |l| l.balance);
    let set_aside = b
        .set_aside
        .into_iter()
        .filter(|a| {
            let id = a.entry.split_once('/').map_or("", |(_, r)| r);
            book::entry_of(id).is_some_and(|(m, _)| m == member)
        })
        .collect();
    Ok(Statement { member: member.into(), from, until, opening, closing, lines, set_aside })
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategoryTotal {
    pub category: String,
    pub name: String,
    pub minutes: i64,
    pub points: i64,
    pub entries: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonthTotal {
    /// `YYYY-MM` (UTC).
    pub month: String,
    /// Points issued by the community (hours, activities, participation).
    pub issued: i64,
    /// Points spent on rewards.
    pub redeemed: i64,
    /// Points moved between members.
    pub transferred: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub from: Option<i64>,
    pub until: Option<i64>,
    pub issued: i64,
    pub redeemed: i64,
    pub transferred: i64,
    /// Points held by members at the end of the period (all time up to it).
    pub in_circulation: i64,
    pub by_category: Vec<CategoryTotal>,
    /// Points by reason: hours, activity, participation, transfer, redeem.
    pub by_reason: BTreeMap<String, i64>,
    pub by_month: Vec<MonthTotal>,
    pub movements: usize,
    pub flags: usize,
}

/// The space's totals over `[from, until)`, voided movements left out.
pub fn totals(store: &Store, space: &str, from: Option<i64>, until: Option<i64>) -> Result<Totals> {
    let (b, s) = ledger(store, space)?;
    let names: BTreeMap<String, String> = categories(store, space)?.into_iter().map(|c| (c.id, c.name)).collect();
    let applied: BTreeSet<&String> = s.order.iter().collect();
    let mut t = Totals { from, until, flags: s.flags.len(), ..Totals::default() };
    let mut cats: BTreeMap<String, CategoryTotal> = BTreeMap::new();
    let mut months: BTreeMap<String, MonthTotal> = BTreeMap::new();
    for m in b.movements.iter().filter(|m| applied.contains(&m.id)) {
        if until.is_none_or(|u| m.at < u) {
            if m.from == COMMUNITY {
                t.in_circulation += m.points;
            }
            if m.to == COMMUNITY {
                t.in_circulation -= m.points;
            }
        }
        if !within(m.at, from, until) {
            continue;
        }
        t.movements += 1;
        *t.by_reason.entry(m.reason.clone()).or_default() += m.points;
        let month = months.entry(iso_utc(m.at)[..7].to_string()).or_default();
        if m.from == COMMUNITY {
            t.issued += m.points;
            month.issued += m.points;
        } else if m.reason == "redeem" {
            t.redeemed += m.points;
            month.redeemed += m.points;
        } else {
            t.transferred += m.points;
            month.transferred += m.points;
        }
        if let Some(d) = b.details.get(&m.id).filter(|_| m.reason == "hours" || m.reason == "activity") {
            let c = cats.entry(d.category.clone()).or_default();
            c.minutes += d.minutes;
            c.points += m.points;
            c.entries += 1;
        }
    }
    t.by_category = cats
        .into_iter()
        .map(|(id, c)| CategoryTotal { name: names.get(&id).cloned().unwrap_or_default(), category: id, ..c })
        .collect();
    t.by_month = months.into_iter().map(|(month, m)| MonthTotal { month, ..m }).collect();
    Ok(t)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolunteerHours {
    pub member: String,
    pub name: String,
    pub minutes: i64,
    pub points: i64,
    pub entries: i64,
}

/// Volunteer hours credited by member over `[from, until)`, most first.
pub fn volunteer_hours(
    store: &Store,
    space: &str,
    from: Option<i64>,
    until: Option<i64>,
) -> Result<Vec<VolunteerHours>> {
    let (b, s) = ledger(store, space)?;
    let applied: BTreeSet<&String> = s.order.iter().collect();
    let view = store.view(space)?;
    let mut by: BTreeMap<String, VolunteerHours> = BTreeMap::new();
    for m in b.movements.iter().filter(|m| applied.contains(&m.id) && within(m.at, from, until)) {
        if m.reason != "hours" && m.reason != "activity" {
            continue;
        }
        let minutes = b.details.get(&m.id).map_or(0, |d| d.minutes);
        let v = by.entry(m.to.clone()).or_insert_with(|| VolunteerHours {
            member: m.to.clone(),
            name: view.members.get(&m.to).map(|x| x.name.clone()).unwrap_or_default(),
            minutes: 0,
            points: 0,
            entries: 0,
        });
        v.minutes += minutes;
        v.points += m.points;
        v.entries += 1;
    }
    let mut out: Vec<VolunteerHours> = by.into_values().collect();
    out.sort_by(|a, b| (b.minutes, &a.member).cmp(&(a.minutes, &b.member)));
    Ok(out)
}

/// One exported movement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportRow {
    pub movement: String,
    pub date: String,
    pub from: String,
    pub to: String,
    pub points: i64,
    pub reason: String,
    pub category: String,
    pub minutes: i64,
    pub author: String,
    pub link: String,
    pub note: String,
    pub status: String,
}

fn export_rows(store: &Store, space: &str, from: Option<i64>, until: Option<i64>) -> Result<Vec<ExportRow>> {
    store.my_coordinator(space, "export the ledger")?;
    let (b, s) = ledger(store, space)?;
    let flagged: BTreeSet<&str> = s.flags.iter().map(|f| f.movement.as_str()).collect();
    let position: BTreeMap<&str, usize> = s.order.iter().enumerate().map(|(i, id)| (id.as_str(), i)).collect();
    let mut ms: Vec<&Movement> = b
        .movements
        .iter()
        .filter(|m| within(m.at, from, until) && (position.contains_key(m.id.as_str()) || s.voided.contains(&m.id)))
        .collect();
    ms.sort_by(|a, b| (a.at, &a.receipt, &a.id).cmp(&(b.at, &b.receipt, &b.id)));
    Ok(ms
        .into_iter()
        .map(|m| {
            let d = b.details.get(&m.id).cloned().unwrap_or_default();
            let status = if s.voided.contains(&m.id) {
                "voided"
            } else if flagged.contains(m.id.as_str()) {
                "flagged"
            } else if s.accepted.contains(&m.id) {
                "accepted"
            } else {
                "applied"
            };
            ExportRow {
                movement: m.id.clone(),
                date: iso_utc(m.at),
                from: m.from.clone(),
                to: m.to.clone(),
                points: m.points,
                reason: m.reason.clone(),
                category: d.category,
                minutes: d.minutes,
                author: m.author.clone(),
                link: m.link.clone().unwrap_or_default(),
                note: d.note,
                status: status.into(),
            }
        })
        .collect())
}

/// The ledger over `[from, until)` as CSV for Excel and WPS: UTF-8 with a
/// BOM, CRLF line ends, one row per movement in ledger order. Coordinators.
pub fn export_csv(store: &Store, space: &str, from: Option<i64>, until: Option<i64>) -> Result<String> {
    use crate::store::csv_cell as cell;
    let rows = export_rows(store, space, from, until)?;
    let mut out = String::from("\u{feff}");
    out.push_str("movement,date,from,to,points,reason,category,minutes,author,link,note,status\r\n");
    for r in rows {
        let cells = [
            cell(&r.movement, true),
            cell(&r.date, false),
            cell(&r.from, true),
            cell(&r.to, true),
            r.points.to_string(),
            cell(&r.reason, true),
            cell(&r.category, true),
            r.minutes.to_string(),
            cell(&r.author, true),
            cell(&r.link, true),
            cell(&r.note, true),
            cell(&r.status, true),
        ];
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    Ok(out)
}

/// The same rows as JSON.
pub fn export_json(store: &Store, space: &str, from: Option<i64>, until: Option<i64>) -> Result<String> {
    Ok(serde_json::to_string_pretty(&export_rows(store, space, from, until)?)?)
}

/// Entries that can never move points, and why (coordinators look at these
/// as they look at flags).
pub fn set_aside(store: &Store, space: &str) -> Result<Vec<SetAside>> {
    Ok(ledger(store, space)?.0.set_aside)
}

/// Whether a movement id names an existing movement (for links from
/// elsewhere, e.g. a deliberation task's update).
pub fn hours_exist(store: &Store, space: &str, hours: &str) -> Result<bool> {
    store.query(|c| {
        Ok(c.prepare_cached("SELECT 1 FROM ledger_hours WHERE space_id = ?1 AND hours_id = ?2")?
            .query_row(params![space, hours], |_| Ok(()))
            .optional()?
            .is_some())
    })
}

/// The minutes logged in these hours entries (for what links to them).
pub fn minutes_of(store: &Store, space: &str, hours: &[String]) -> Result<i64> {
    if hours.is_empty() {
        return Ok(0);
    }
    store.query(|c| {
        let mut stmt = c.prepare_cached("SELECT minutes FROM ledger_hours WHERE space_id = ?1 AND hours_id = ?2")?;
        let mut total = 0;
        for h in hours {
            total += stmt.query_row(params![space, h], |r| r.get::<_, i64>(0)).optional()?.unwrap_or(0);
        }
        Ok(total)
    })
}

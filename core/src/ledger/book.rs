//! The book: every movement the ledger settles, derived from the query
//! tables the documents project into. Nothing here is stored: the same
//! documents give the same movements on every replica.
//!
//! | movement id                  | from → to               | when it exists |
//! |------------------------------|-------------------------|----------------|
//! | `h/<hours>`                  | community → volunteer   | the hours are confirmed: by a coordinator's decision if there is one, else by the recipient |
//! | `a/<activity>/<member>`      | community → member      | a coordinator checked the member in with minutes |
//! | `d/<debit>`                  | payer → payee           | the payer's device wrote it (a transfer, or a redemption at the reward's price) |
//! | `p/<rule>/<item>/<member>`   | community → member      | a participation rule matches the member's ballot, response or attendance |
//!
//! Entries that can never move points (a price that is not the reward's, a
//! volunteer confirming their own hours, a category with no rate) are set
//! aside with a reason, not dropped silently.

use std::collections::{BTreeMap, HashMap};

use rusqlite::{Connection, params};
use sha2::Digest;

use super::settle::{COMMUNITY, Movement, Resolution};
use crate::error::Result;

/// The `source` of a decision on hours made by coordinators.
pub const COORDINATORS: &str = "*";

/// The longest service one hours entry may claim: a day.
pub const MAX_MINUTES: i64 = 24 * 60;

/// Hours and debits are keyed `<member>-<year>-<random>`: their author and
/// the year of the document they belong in.
pub fn entry_of(id: &str) -> Option<(&str, u16)> {
    let mut parts = id.rsplitn(3, '-');
    let rand = parts.next()?;
    let year = parts.next()?;
    let member = parts.next()?;
    let ok = !rand.is_empty()
        && rand.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && year.len() == 4
        && crate::doc::valid_token(member);
    let year: u16 = year.parse().ok()?;
    ok.then_some((member, year))
}

/// What a statement or report shows beside a movement.
#[derive(Debug, Clone, Default)]
pub struct Detail {
    pub category: String,
    pub minutes: i64,
    pub note: String,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SetAside {
    pub entry: String,
    pub reason: String,
}

#[derive(Debug, Default)]
pub struct Book {
    pub movements: Vec<Movement>,
    pub details: HashMap<String, Detail>,
    pub set_aside: Vec<SetAside>,
    pub limits: BTreeMap<String, i64>,
    pub stock: BTreeMap<String, i64>,
    pub resolutions: BTreeMap<String, Resolution>,
}

impl Book {
    fn push(&mut self, m: Movement, detail: Detail) {
        self.details.insert(m.id.clone(), detail);
        self.movements.push(m);
    }

    fn aside(&mut self, entry: String, reason: &str) {
        self.set_aside.push(SetAside { entry, reason: reason.to_string() });
    }
}

fn receipt(bytes: Vec<u8>, id: &str) -> [u8; 32] {
    <[u8; 32]>::try_from(bytes.as_slice()).unwrap_or_else(|_| derived_receipt(id))
}

/// Derived movements have no change of their own: their tie-breaker is the
/// hash of their id, the same on every replica.
fn derived_receipt(id: &str) -> [u8; 32] {
    sha2::Sha256::digest(id.as_bytes()).into()
}

/// Points for `minutes` at `rate` points an hour, rounded half up.
pub fn points_for(minutes: i64, rate: i64) -> i64 {
    minutes.saturating_mul(rate).saturating_add(30).div_euclid(60)
}

/// Categories' rates, each a list of (from, points per hour) in time order.
#[derive(Debug)]
pub struct Rates(HashMap<String, Vec<(i64, i64)>>);

impl Rates {
    pub fn load(conn: &Connection, space: &str) -> Result<Rates> {
        let mut stmt = conn.prepare_cached(
            "SELECT category_id, from_ms, rate FROM ledger_rates WHERE space_id = ?1 ORDER BY category_id, from_ms",
        )?;
        let mut out: HashMap<String, Vec<(i64, i64)>> = HashMap::new();
        for row in stmt.query_map(params![space], |r| Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?)))? {
            let (cat, from, rate) = row?;
            out.entry(cat).or_default().push((from, rate));
        }
        Ok(Rates(out))
    }

    /// The rate of a category on a day: the latest set on or before it, else
    /// the first one set (a category made after the service was given).
    pub fn at(&self, category: &str, on: i64) -> Option<i64> {
        let rates = self.0.get(category)?;
        rates.iter().rev().find(|(from, _)| *from <= on).or(rates.first()).map(|(_, r)| *r)
    }
}

/// Without statistics SQLite prefers a table's primary key (space first)
/// to an account's index: name the index when reading one account.
pub fn hint(account: Option<&str>, index: &str) -> String {
    if account.is_some() { format!("INDEXED BY {index}") } else { String::new() }
}

/// A filter on one account (the parameter `?2`), or none.
fn only(account: Option<&str>, clause: &str) -> String {
    if account.is_some() { clause.to_string() } else { "?2 IS NULL".to_string() }
}

/// Read the book of a space, or only what touches `account` (its movements,
/// plus every redemption of a reward with a stock, which decide its flags).
pub fn load(conn: &Connection, space: &str, account: Option<&str>) -> Result<Book> {
    let mut book = Book::default();
    let rates = Rates::load(conn, space)?;
    hours(conn, space, account, &rates, &mut book)?;
    checkins(conn, space, account, &rates, &mut book)?;
    debits(conn, space, account, &mut book)?;
    participation(conn, space, account, &mut book)?;
    terms(conn, space, &mut book)?;
    Ok(book)
}

/// Only what decides the rewards' stock: every redemption of a reward with
/// a stock, and the terms they settle under.
pub fn load_stock(conn: &Connection, space: &str) -> Result<Book> {
    let mut book = Book::default();
    debits_where(
        conn,
        space,
        None,
        "INDEXED BY ledger_debits_by_reward",
        &format!("{STOCKED} AND ?2 IS NULL"),
        &mut book,
    )?;
    terms(conn, space, &mut book)?;
    Ok(book)
}

/// Debits of rewards that have a stock.
const STOCKED: &str = "d.reward_id IN (SELECT reward_id FROM ledger_rewards WHERE space_id = ?1 AND stock IS NOT NULL)";

/// Limits, stock and resolutions: the terms the book settles under.
fn terms(conn: &Connection, space: &str, book: &mut Book) -> Result<()> {
    let mut stmt = conn.prepare_cached("SELECT member, min_balance FROM ledger_limits WHERE space_id = ?1")?;
    for row in stmt.query_map(params![space], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
        let (m, min) = row?;
        book.limits.insert(m, min);
    }
    let mut stmt =
        conn.prepare_cached("SELECT reward_id, stock FROM ledger_rewards WHERE space_id = ?1 AND stock IS NOT NULL")?;
    for row in stmt.query_map(params![space], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
        let (reward, n) = row?;
        book.stock.insert(reward, n);
    }
    let mut stmt = conn.prepare_cached("SELECT movement_id, resolution FROM ledger_resolutions WHERE space_id = ?1")?;
    for row in stmt.query_map(params![space], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))? {
        let (id, res) = row?;
        match res.as_str() {
            "accept" => book.resolutions.insert(id, Resolution::Accept),
            "void" => book.resolutions.insert(id, Resolution::Void),
            _ => None,
        };
    }
    Ok(())
}

/// An answer to hours: by the recipient, or a coordinators' decision.
#[derive(Debug, Clone)]
pub struct Answer {
    pub confirm: bool,
    pub reason: String,
    pub by: String,
    pub at: i64,
    /// The hash of the change that wrote it.
    pub receipt: Vec<u8>,
}

/// Hours as logged, with the answers they have.
#[derive(Debug, Clone)]
pub struct HoursRow {
    pub id: String,
    pub volunteer: String,
    /// Empty for hours given to an activity.
    pub recipient: String,
    pub activity: String,
    pub category: String,
    pub minutes: i64,
    pub on: i64,
    pub note: String,
    pub at: i64,
    pub coordinators: Option<Answer>,
    pub by_recipient: Option<Answer>,
    /// The coordinator who logged them for a volunteer without a phone
    /// (empty when the volunteer logged them).
    pub entered_by: String,
}

/// Where hours stand. The one rule both the ledger and the hours list use.
#[derive(Debug)]
pub enum Outcome<'a> {
    /// No answer yet.
    Pending,
    /// Declined by the recipient, or rejected by a coordinator.
    Refused { by_coordinators: bool, reason: &'a str },
    /// Confirmed, but they can never move points.
    SetAside(&'static str),
    /// Credited: the movement `community → volunteer`.
    Credit { by_coordinators: bool, answer: &'a Answer, points: i64 },
}

impl HoursRow {
    /// A coordinators' decision, when there is one, overrides the
    /// recipient's answer: that is how a dispute ends.
    pub fn outcome(&self, rates: &Rates) -> Outcome<'_> {
        let (answer, by_coordinators) = match (&self.coordinators, &self.by_recipient) {
            (Some(c), _) => (c, true),
            (None, Some(r)) => (r, false),
            (None, None) => return Outcome::Pending,
        };
        if !answer.confirm {
            return Outcome::Refused { by_coordinators, reason: &answer.reason };
        }
        if answer.by == self.volunteer {
            return Outcome::SetAside("a volunteer cannot confirm their own hours");
        }
        if !self.entered_by.is_empty() && answer.by == self.entered_by {
            return Outcome::SetAside("whoever logged hours for a volunteer cannot confirm them");
        }
        match points(self.minutes, rates.at(&self.category, self.on)) {
            Ok(points) => Outcome::Credit { by_coordinators, answer, points },
            Err(reason) => Outcome::SetAside(reason),
        }
    }
}

/// Hours matching `clause` (on `?2 = arg`), read through `index` (see [`hint`]).
pub fn hours_rows(
    conn: &Connection,
    space: &str,
    index: &str,
    clause: &str,
    arg: Option<&str>,
) -> Result<Vec<HoursRow>> {
    let sql = format!(
        "SELECT h.hours_id, h.volunteer, h.recipient, h.activity_id, h.category_id, h.minutes, h.on_ms, h.note, h.at,
                c.answer, c.reason, c.by_member, c.at, c.receipt,
                r.answer, r.reason, r.by_member, r.at, r.receipt, h.entered_by
         FROM ledger_hours h {index}
         LEFT JOIN ledger_answers c ON c.space_id = h.space_id AND c.hours_id = h.hours_id AND c.source = '{COORDINATORS}'
         LEFT JOIN ledger_answers r ON r.space_id = h.space_id AND r.hours_id = h.hours_id AND r.source = h.recipient
              AND h.recipient <> ''
         WHERE h.space_id = ?1 AND {clause}"
    );
    fn answer(r: &rusqlite::Row<'_>, from: usize) -> rusqlite::Result<Option<Answer>> {
        let Some(a) = r.get::<_, Option<String>>(from)? else { return Ok(None) };
        Ok(Some(Answer {
            confirm: a == "confirm",
            reason: r.get::<_, Option<String>>(from + 1)?.unwrap_or_default(),
            by: r.get::<_, Option<String>>(from + 2)?.unwrap_or_default(),
            at: r.get::<_, Option<i64>>(from + 3)?.unwrap_or_default(),
            receipt: r.get::<_, Option<Vec<u8>>>(from + 4)?.unwrap_or_default(),
        }))
    }
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![space, arg], |r| {
        Ok(HoursRow {
            id: r.get(0)?,
            volunteer: r.get(1)?,
            recipient: r.get(2)?,
            activity: r.get(3)?,
            category: r.get(4)?,
            minutes: r.get(5)?,
            on: r.get(6)?,
            note: r.get(7)?,
            at: r.get(8)?,
            coordinators: answer(r, 9)?,
            by_recipient: answer(r, 14)?,
            entered_by: r.get(19)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Hours credited once confirmed.
fn hours(conn: &Connection, space: &str, account: Option<&str>, rates: &Rates, book: &mut Book) -> Result<()> {
    let index = hint(account, "ledger_hours_by_volunteer");
    for h in hours_rows(conn, space, &index, &only(account, "h.volunteer = ?2"), account)? {
        let entry = format!("h/{}", h.id);
        match h.outcome(rates) {
            Outcome::Pending | Outcome::Refused { .. } => {}
            Outcome::SetAside(reason) => book.aside(entry, reason),
            Outcome::Credit { answer, points, .. } => {
                let by = (answer.by.clone(), answer.at, answer.receipt.clone());
                let m = issued(entry, h.volunteer.clone(), points, by, "hours", h.id.clone());
                book.push(m, Detail { category: h.category, minutes: h.minutes, note: h.note });
            }
        }
    }
    Ok(())
}

/// Points issued by the community for service; `by` is who credited them,
/// when, and the hash of that change.
fn issued(entry: String, to: String, points: i64, by: (String, i64, Vec<u8>), reason: &str, link: String) -> Movement {
    let (author, at, rcpt) = by;
    Movement {
        receipt: receipt(rcpt, &entry),
        id: entry,
        from: COMMUNITY.into(),
        to,
        points,
        at,
        author,
        reason: reason.into(),
        link: Some(link),
        reward: None,
    }
}

/// The points `minutes` of service earn at `rate`, or why they never can.
fn points(minutes: i64, rate: Option<i64>) -> Result<i64, &'static str> {
    if !(1..=MAX_MINUTES).contains(&minutes) {
        return Err("minutes out of range");
    }
    match rate {
        None => Err("the category has no rate"),
        Some(r) if !(0..=super::MAX_POINTS).contains(&r) => Err("the category's rate is out of range"),
        Some(r) => Ok(points_for(minutes, r)),
    }
}

/// Check-ins at activities: a coordinator's credit, one per member.
fn checkins(conn: &Connection, space: &str, account: Option<&str>, rates: &Rates, book: &mut Book) -> Result<()> {
    let sql = format!(
        "SELECT c.activity_id, c.member, c.minutes, c.by_member, c.at, c.receipt, a.category_id, a.title, a.starts_at
         FROM activity_checkins c {} JOIN activities a ON a.space_id = c.space_id AND a.activity_id = c.activity_id
         WHERE c.space_id = ?1 AND c.minutes > 0 AND {}",
        hint(account, "activity_checkins_by_member"),
        only(account, "c.member = ?2")
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![space, account], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, i64>(4)?,
            r.get::<_, Vec<u8>>(5)?,
            r.get::<_, String>(6)?,
            r.get::<_, String>(7)?,
            r.get::<_, i64>(8)?,
        ))
    })?;
    for row in rows {
        let (activity, member, minutes, by, at, rcpt, category, title, starts_at) = row?;
        let rate = rates.at(&category, starts_at);
        let entry = format!("a/{activity}/{member}");
        match points(minutes, rate) {
            Err(reason) => book.aside(entry, reason),
            Ok(points) => {
                let m = issued(entry, member, points, (by, at, rcpt), "activity", activity);
                book.push(m, Detail { category, minutes, note: title });
            }
        }
    }
    Ok(())
}

/// Transfers and redemptions, written by the payer's devices.
fn debits(conn: &Connection, space: &str, account: Option<&str>, book: &mut Book) -> Result<()> {
    // One query per way a debit touches the account, each on its index.
    let ways: Vec<(&str, String)> = if account.is_some() {
        vec![
            ("INDEXED BY ledger_debits_by_payer", "d.payer = ?2".into()),
            ("INDEXED BY ledger_debits_by_payee", "d.payee = ?2 AND d.payer <> ?2".into()),
            ("INDEXED BY ledger_debits_by_reward", format!("{STOCKED} AND d.payer <> ?2 AND d.payee <> ?2")),
        ]
    } else {
        vec![("", "?2 IS NULL".into())]
    };
    for (index, clause) in &ways {
        debits_where(conn, space, account, index, clause, book)?;
    }
    Ok(())
}

fn debits_where(
    conn: &Connection,
    space: &str,
    account: Option<&str>,
    index: &str,
    clause: &str,
    book: &mut Book,
) -> Result<()> {
    let sql = format!(
        "SELECT d.debit_id, d.payer, d.payee, d.points, d.kind, d.reward_id, d.note, d.at, d.receipt,
                w.provider,
                COALESCE(
                  (SELECT price FROM ledger_prices p WHERE p.space_id = ?1 AND p.reward_id = d.reward_id
                      AND p.from_ms <= d.at ORDER BY p.from_ms DESC LIMIT 1),
                  (SELECT price FROM ledger_prices p WHERE p.space_id = ?1 AND p.reward_id = d.reward_id
                      ORDER BY p.from_ms LIMIT 1))
         FROM ledger_debits d {index}
         LEFT JOIN ledger_rewards w ON w.space_id = d.space_id AND w.reward_id = d.reward_id AND d.kind = 'redeem'
         WHERE d.space_id = ?1 AND {clause}"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![space, account], |r| {
        Ok((
            (
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, String>(6)?,
            ),
            r.get::<_, i64>(7)?,
            r.get::<_, Vec<u8>>(8)?,
            r.get::<_, Option<String>>(9)?,
            r.get::<_, Option<i64>>(10)?,
        ))
    })?;
    for row in rows {
        let ((id, payer, payee, points, kind, reward, note), at, rcpt, provider, price) = row?;
        let entry = format!("d/{id}");
        // Amounts are range-checked where they enter the ledger: a crafted
        // entry of i64::MAX points is set aside, never summed.
        if !(1..=super::MAX_POINTS).contains(&points) {
            book.aside(entry, "points out of range");
            continue;
        }
        let reward = match kind.as_str() {
            "transfer" => None,
            "redeem" => {
                let Some(provider) = provider else {
                    book.aside(entry, "unknown reward");
                    continue;
                };
                if provider != payee {
                    book.aside(entry, "paid to someone other than the reward's provider");
                    continue;
                }
                if price != Some(points) {
                    book.aside(entry, "not the reward's price");
                    continue;
                }
                Some(reward)
            }
            _ => {
                book.aside(entry, "unknown kind of debit");
                continue;
            }
        };
        if payee.is_empty() {
            book.aside(entry, "no payee");
            continue;
        }
        let m = Movement {
            receipt: receipt(rcpt, &entry),
            id: entry,
            from: payer.clone(),
            to: payee,
            points,
            at,
            author: payer,
            reason: kind,
            link: reward.clone(),
            reward,
        };
        book.push(m, Detail { note, ..Detail::default() });
    }
    Ok(())
}

/// Participation rewards: derived, never written, so they are paid once per
/// (rule, item, member) whatever devices or sync order.
fn participation(conn: &Connection, space: &str, account: Option<&str>, book: &mut Book) -> Result<()> {
    let mut stmt = conn.prepare_cached(
        "SELECT rule_id, on_kind, item_id, points, from_ms, until_ms FROM ledger_rules WHERE space_id = ?1 ORDER BY rule_id",
    )?;
    let rules: Vec<(String, String, String, i64, i64, Option<i64>)> = stmt
        .query_map(params![space], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))?
        .collect::<Result<_, _>>()?;
    for (rule, on, item, points, from, until) in rules {
        if !(1..=super::MAX_POINTS).contains(&points) {
            book.aside(format!("rule/{rule}"), "points out of range");
            continue;
        }
        // Where a member's participation is: (table, item column, member
        // column, which rows count).
        // Every reader of the ledger holds these facts: a coordinator's award
        // for a vote or a survey (never the private ballots and answers
        // behind it), and the attendance in a consultation's item document.
        let (table, i, m, which) = match on.as_str() {
            "vote" => ("ledger_awards", "item_id", "member", "kind = 'vote'"),
            "survey" => ("ledger_awards", "item_id", "member", "kind = 'survey'"),
            "meeting" => ("attendance", "consultation_id", "member", "present = 1"),
            _ => continue,
        };
        let sql = format!(
            "SELECT {i}, {m}, min(at) FROM {table}
             WHERE space_id = ?1 AND {which} AND (?2 = '' OR {i} = ?2) AND at >= ?3 AND (?4 IS NULL OR at <= ?4)
                AND {}
             GROUP BY {i}, {m}",
            only(account, &format!("{m} = ?5")).replace("?2", "?5")
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params![space, item, from, until, account], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?))
        })?;
        for row in rows {
            let (item, member, at) = row?;
            let id = format!("p/{rule}/{item}/{member}");
            let m = Movement {
                receipt: derived_receipt(&id),
                id,
                from: COMMUNITY.into(),
                to: member,
                points,
                at,
                author: COMMUNITY.into(),
                reason: "participation".into(),
                link: Some(item),
                reward: None,
            };
            book.push(m, Detail { category: on.clone(), note: rule.clone(), ..Detail::default() });
        }
    }
    Ok(())
}

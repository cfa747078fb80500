//! Query tables: the rows list views read, derived from documents and written
//! in the same SQLite transaction as the document bytes (see `schema.rs`).
//! Each projection rewrites exactly the rows of the entries a write touched.

use std::collections::BTreeSet;

use automerge::transaction::Transactable;
use automerge::{Automerge, ObjType, ROOT, ReadDoc};
use rusqlite::{Connection, params};

use crate::doc::DocId;
use crate::error::Result;
use crate::space::{Section, SpaceView, Touched, Write, get_bool, get_i64, get_str, map_at};

pub(super) fn space(tx: &Connection, space: &str, v: &SpaceView, touched: &Touched) -> Result<()> {
    for (section, keys) in &touched.0 {
        for key in keys {
            match section {
                Section::Members => {
                    tx.execute("DELETE FROM members WHERE space_id = ?1 AND member_id = ?2", params![space, key])?;
                    tx.execute("DELETE FROM devices WHERE space_id = ?1 AND member_id = ?2", params![space, key])?;
                    if let Some(m) = v.members.get(key) {
                        let roles: Vec<&str> = m.roles.iter().map(|r| r.as_str()).collect();
                        tx.execute(
                            "INSERT INTO members (space_id, member_id, name, status, roles, joined_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                            params![space, key, m.name, m.status.as_str(), roles.join(","), m.joined_at],
                        )?;
                        let mut stmt = tx.prepare_cached("INSERT OR REPLACE INTO devices (space_id, device, member_id, revoked_at) VALUES (?1, ?2, ?3, ?4)")?;
                        for (d, dev) in &m.devices {
                            stmt.execute(params![space, d.0.to_vec(), key, dev.revoked_at])?;
                        }
                    }
                }
                Section::Units => {
                    tx.execute("DELETE FROM units WHERE space_id = ?1 AND unit_id = ?2", params![space, key])?;
                    if let Some(u) = v.units.get(key) {
                        tx.execute(
                            "INSERT INTO units (space_id, unit_id, building, entrance, room, area_centi, grid_id, household_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                            params![space, key, u.building, u.entrance, u.room, u.area_centi, u.grid, u.household],
                        )?;
                    }
                }
                Section::Links => {
                    let (member, unit) = key.split_once(':').unwrap_or((key.as_str(), ""));
                    tx.execute(
                        "DELETE FROM links WHERE space_id = ?1 AND member_id = ?2 AND unit_id = ?3",
                        params![space, member, unit],
                    )?;
                    if let Some(l) = v.links.get(key) {
                        tx.execute(
                            "INSERT INTO links (space_id, member_id, unit_id, relation, verified) VALUES (?1, ?2, ?3, ?4, ?5)",
                            params![space, l.member, l.unit, l.relation.as_str(), l.verified],
                        )?;
                    }
                }
                Section::Grids => {
                    tx.execute("DELETE FROM grids WHERE space_id = ?1 AND grid_id = ?2", params![space, key])?;
                    if let Some(name) = v.grids.get(key) {
                        tx.execute(
                            "INSERT INTO grids (space_id, grid_id, name) VALUES (?1, ?2, ?3)",
                            params![space, key, name],
                        )?;
                    }
                }
                Section::Households => {
                    tx.execute(
                        "DELETE FROM households WHERE space_id = ?1 AND household_id = ?2",
                        params![space, key],
                    )?;
                    if let Some(label) = v.households.get(key) {
                        tx.execute(
                            "INSERT INTO households (space_id, household_id, label) VALUES (?1, ?2, ?3)",
                            params![space, key, label],
                        )?;
                    }
                }
                Section::Invites => {}
            }
        }
    }
    if touched.meta_touched() {
        // A space first seen here (a server or hub hosting it) is recorded
        // without a member of this device's.
        tx.execute(
            "INSERT INTO spaces (space_id, name, member_id, support_threshold) VALUES (?1, ?2, NULL, ?3)
             ON CONFLICT (space_id) DO UPDATE SET name = excluded.name, support_threshold = excluded.support_threshold",
            params![space, v.name, v.support_threshold],
        )?;
    }
    Ok(())
}

/// The item index: `ROOT[<item id>] = { kind, title, created_by, created_at }`.
pub(super) fn write_index_entry<T: Transactable>(
    tx: &mut T,
    item: &str,
    kind: &str,
    title: &str,
    by: &str,
    now: i64,
) -> Result<()> {
    let e = tx.put_object(ROOT, item, ObjType::Map)?;
    tx.put(&e, "kind", kind)?;
    tx.put(&e, "title", title)?;
    tx.put(&e, "created_by", by)?;
    tx.put(&e, "created_at", now)?;
    Ok(())
}

pub(super) fn index(tx: &Connection, space: &str, doc: &Automerge, writes: &[Write]) -> Result<()> {
    for item in super::root_keys(writes) {
        tx.execute("DELETE FROM items WHERE space_id = ?1 AND item_id = ?2", params![space, item])?;
        if let Some(e) = map_at(doc, &ROOT, &item) {
            tx.execute(
                "INSERT INTO items (space_id, item_id, kind, title, created_by, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    space,
                    item,
                    get_str(doc, &e, "kind").unwrap_or_default(),
                    get_str(doc, &e, "title").unwrap_or_default(),
                    get_str(doc, &e, "created_by").unwrap_or_default(),
                    get_i64(doc, &e, "created_at").unwrap_or_default()
                ],
            )?;
        }
    }
    Ok(())
}

/// Members' own documents (`own/<author>/…/<part>`): entries `b/…` are
/// ballots and `g/…` proxy grants (part: the vote), `a/…` survey responses
/// (part: the survey), each naming its item in `item`, `t/ s/ p/ e/ r/ x/` topics, supports, posts, edits,
/// retractions and reactions. Each row keeps the hash of the change that wrote the
/// entry: the voter's receipt.
pub(super) fn own(
    tx: &Connection,
    space: &str,
    author: &str,
    part: &str,
    doc: &Automerge,
    writes: &[Write],
) -> Result<()> {
    if let Some(year) = part.strip_prefix("ledger-").and_then(|y| y.parse::<u16>().ok()) {
        return ledger_own(tx, space, author, year, doc, writes);
    }
    for key in super::root_keys(writes) {
        let Some(e) = map_at(doc, &ROOT, &key) else { continue };
        // An entry names its item; one naming another item counts nowhere
        // (entries written before items were named are read as naming the
        // document's own).
        if get_str(doc, &e, "item").is_some_and(|named| named != part) {
            continue;
        }
        if key.starts_with("b/") {
            let receipt = doc.hash_for_opid(&e).map(|h| h.0.to_vec()).unwrap_or_default();
            tx.prepare_cached(
                "INSERT OR REPLACE INTO ballots (space_id, vote_id, author, entry, voter, mode, choice, at, receipt)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                space,
                part,
                author,
                key,
                get_str(doc, &e, "for").unwrap_or_default(),
                get_str(doc, &e, "mode").unwrap_or_default(),
                get_str(doc, &e, "choice").unwrap_or_default(),
                // A time its change cannot attest falls after every close.
                crate::space::attested_i64(doc, &e, "at").unwrap_or(i64::MAX),
                receipt
            ])?;
        } else if let Some(rest) = key.strip_prefix("t/") {
            if owned(author, rest) {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO topics (space_id, topic_id, author, title, category, description, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?
                .execute(params![
                    space,
                    rest,
                    author,
                    get_str(doc, &e, "title").unwrap_or_default(),
                    get_str(doc, &e, "category").unwrap_or_default(),
                    get_str(doc, &e, "description").unwrap_or_default(),
                    at_of(doc, &e)
                ])?;
            }
        } else if let Some(topic) = key.strip_prefix("s/") {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO supports (space_id, topic_id, member, at) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![space, topic, author, at_of(doc, &e)])?;
        } else if let Some(post) = key.strip_prefix("p/") {
            if owned(author, post) {
                tx.prepare_cached(
                    "INSERT INTO posts (space_id, post_id, topic_id, author, parent, quote, body, at, edited_at, retracted)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, NULL, 0)
                     ON CONFLICT (space_id, post_id) DO UPDATE SET topic_id = excluded.topic_id, parent = excluded.parent,
                        quote = excluded.quote, at = excluded.at",
                )?
                .execute(params![
                    space,
                    post,
                    get_str(doc, &e, "topic").unwrap_or_default(),
                    author,
                    get_str(doc, &e, "parent").filter(|p| !p.is_empty()),
                    get_str(doc, &e, "quote").filter(|q| !q.is_empty()),
                    get_str(doc, &e, "body").unwrap_or_default(),
                    at_of(doc, &e)
                ])?;
                latest_edit(tx, space, author, post, doc)?;
            }
        } else if let Some(rest) = key.strip_prefix("e/") {
            if let Some((post, _)) = rest.split_once('/')
                && owned(author, post)
            {
                latest_edit(tx, space, author, post, doc)?;
            }
        } else if let Some(post) = key.strip_prefix("r/") {
            if owned(author, post) {
                tx.prepare_cached("UPDATE posts SET retracted = 1 WHERE space_id = ?1 AND post_id = ?2")?
                    .execute(params![space, post])?;
            }
        } else if let Some(rest) = key.strip_prefix("x/") {
            if let Some((post, reaction)) = rest.split_once('/') {
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO reactions (space_id, post_id, member, reaction) VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![space, post, author, reaction])?;
            }
        } else if key.starts_with("a/") {
            let receipt = doc.hash_for_opid(&e).map(|h| h.0.to_vec()).unwrap_or_default();
            tx.prepare_cached(
                "INSERT OR REPLACE INTO responses (space_id, survey_id, author, entry, version, answers, at, receipt, respondent)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                space,
                part,
                author,
                key,
                get_str(doc, &e, "version").unwrap_or_default(),
                get_str(doc, &e, "answers").unwrap_or_default(),
                at_of(doc, &e),
                receipt,
                // Answers an interviewer entered name the member they are for.
                get_str(doc, &e, "for").filter(|f| !f.is_empty()).unwrap_or_else(|| author.to_string())
            ])?;
        } else if key.starts_with("g/") {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO proxy_grants (space_id, vote_id, grantor, entry, proxy, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                space,
                part,
                author,
                key,
                get_str(doc, &e, "to").unwrap_or_default(),
                at_of(doc, &e)
            ])?;
        }
    }
    Ok(())
}

/// An entry's time, as shown and as "latest" reads it: never later than its
/// change (`space::dated_i64`).
fn at_of(doc: &Automerge, entry: &automerge::ObjId) -> i64 {
    crate::space::dated_i64(doc, entry, "at").unwrap_or_default()
}

/// Ids of topics and posts begin with their author's member id.
fn owned(author: &str, id: &str) -> bool {
    id.strip_prefix(author).is_some_and(|rest| rest.starts_with('-'))
}

/// A post's body is its latest edit (by time, then key), else the original.
fn latest_edit(tx: &Connection, space: &str, author: &str, post: &str, doc: &Automerge) -> Result<()> {
    let prefix = format!("e/{post}/");
    let mut latest: Option<(i64, String, String)> = None;
    for key in doc.keys(ROOT).filter(|k| k.starts_with(&prefix)) {
        let Some(e) = map_at(doc, &ROOT, &key) else { continue };
        let at = at_of(doc, &e);
        let body = get_str(doc, &e, "body").unwrap_or_default();
        if latest.as_ref().is_none_or(|(a, k, _)| (at, &key) > (*a, k)) {
            latest = Some((at, key, body));
        }
    }
    if let Some((at, _, body)) = latest {
        tx.prepare_cached(
            "UPDATE posts SET body = ?4, edited_at = ?5 WHERE space_id = ?1 AND post_id = ?2 AND author = ?3",
        )?
        .execute(params![space, post, author, body, at])?;
    }
    Ok(())
}

/// Coordination documents (`item/<item>`), by their kind.
pub(super) fn item(tx: &Connection, space: &str, item: &str, doc: &Automerge, writes: &[Write]) -> Result<()> {
    match get_str(doc, &ROOT, "kind").as_deref() {
        Some("topic") => topic_item(tx, space, item, doc, writes),
        Some("consultation") => consultation(tx, space, item, doc, writes),
        Some("points") if item == crate::ledger::CATALOGUE => catalogue(tx, space, doc, writes),
        Some("ledger") => match item.strip_prefix("ledger-").and_then(|y| y.parse::<u16>().ok()) {
            Some(year) => ledger_item(tx, space, year, doc, writes),
            None => Ok(()),
        },
        Some("activity") => activity(tx, space, item, doc, writes),
        _ => Ok(()),
    }
}

/// The hash of the change that wrote an entry.
fn receipt_of(doc: &Automerge, e: &automerge::ObjId) -> Vec<u8> {
    doc.hash_for_opid(e).map(|h| h.0.to_vec()).unwrap_or_default()
}

/// A member's ledger document of one year (`own/<m>/pub/ledger-<year>`):
/// hours `h/`, answers to hours given to them `c/`, debits `d/`, activity
/// sign-ups `j/`, offers and requests `o/`. Hours and debits are keyed
/// `<author>-<year>-…` and count only in the document of that year, so no
/// entry can be counted twice from two documents.
fn ledger_own(tx: &Connection, space: &str, author: &str, year: u16, doc: &Automerge, writes: &[Write]) -> Result<()> {
    use crate::ledger::book::entry_of;
    for key in super::root_keys(writes) {
        let Some(e) = map_at(doc, &ROOT, &key) else { continue };
        let s = |k: &str| get_str(doc, &e, k).unwrap_or_default();
        let i = |k: &str| get_i64(doc, &e, k).unwrap_or_default();
        if let Some(id) = key.strip_prefix("h/") {
            if entry_of(id).is_some_and(|(a, y)| a == author && y == year) {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO ledger_hours (space_id, hours_id, volunteer, recipient, activity_id, category_id,
                        minutes, on_ms, note, at, receipt, entered_by) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                )?
                .execute(params![
                    space,
                    id,
                    // Hours a coordinator logged for a volunteer name them.
                    Some(s("for")).filter(|f| !f.is_empty()).unwrap_or_else(|| author.to_string()),
                    s("to"),
                    s("activity"),
                    s("category"),
                    i("minutes"),
                    i("on"),
                    s("note"),
                    at_of(doc, &e),
                    receipt_of(doc, &e),
                    if s("for").is_empty() { "" } else { author }
                ])?;
            }
        } else if let Some(id) = key.strip_prefix("c/") {
            if entry_of(id).is_some_and(|(_, y)| y == year) {
                answer(tx, space, id, author, author, &s("answer"), &s("reason"), at_of(doc, &e), receipt_of(doc, &e))?;
            }
        } else if let Some(id) = key.strip_prefix("d/") {
            if entry_of(id).is_some_and(|(a, y)| a == author && y == year) {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO ledger_debits (space_id, debit_id, payer, payee, points, kind, reward_id, note, at, receipt)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )?
                .execute(params![
                    space,
                    id,
                    author,
                    s("to"),
                    i("points"),
                    s("kind"),
                    s("reward"),
                    s("note"),
                    at_of(doc, &e),
                    receipt_of(doc, &e)
                ])?;
            }
        } else if let Some((activity, _stamp)) = key.strip_prefix("j/").and_then(|k| k.split_once('/')) {
            // Sign-ups are append-only entries: the latest counts (a
            // withdrawal on a tie), whatever order they arrive in.
            tx.prepare_cached(
                "INSERT INTO activity_signups (space_id, activity_id, member, withdrawn, at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (space_id, activity_id, member) DO UPDATE SET withdrawn = excluded.withdrawn, at = excluded.at
                 WHERE (excluded.at, excluded.withdrawn) > (activity_signups.at, activity_signups.withdrawn)",
            )?
            .execute(params![space, activity, author, get_bool(doc, &e, "withdrawn").unwrap_or(false), at_of(doc, &e)])?;
        } else if let Some(id) = key.strip_prefix("o/")
            && entry_of(id).is_some_and(|(a, y)| a == author && y == year)
        {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO offers (space_id, offer_id, author, kind, category_id, title, description,
                        availability, status, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?
            .execute(params![
                space,
                id,
                author,
                s("kind"),
                s("category"),
                s("title"),
                s("description"),
                s("availability"),
                s("status"),
                at_of(doc, &e)
            ])?;
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn answer(
    tx: &Connection,
    space: &str,
    hours: &str,
    source: &str,
    by: &str,
    answer: &str,
    reason: &str,
    at: i64,
    receipt: Vec<u8>,
) -> Result<()> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO ledger_answers (space_id, hours_id, source, by_member, answer, reason, at, receipt)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![space, hours, source, by, answer, reason, at, receipt])?;
    Ok(())
}

/// The points catalogue (`item/points`): categories and their rates,
/// rewards and their prices, participation rules, members' limits.
fn catalogue(tx: &Connection, space: &str, doc: &Automerge, writes: &[Write]) -> Result<()> {
    for key in super::root_keys(writes) {
        let Some(e) = map_at(doc, &ROOT, &key) else { continue };
        let s = |k: &str| get_str(doc, &e, k).unwrap_or_default();
        let i = |k: &str| get_i64(doc, &e, k).unwrap_or_default();
        let Some((kind, rest)) = key.split_once('/') else { continue };
        match kind {
            "cat" => {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO ledger_categories (space_id, category_id, name, active) VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![space, rest, s("name"), get_bool(doc, &e, "active").unwrap_or(true)])?;
            }
            "rate" | "price" => {
                let Some((id, from)) = rest.split_once('/') else { continue };
                let Ok(from) = from.parse::<i64>() else { continue };
                let sql = if kind == "rate" {
                    "INSERT OR REPLACE INTO ledger_rates (space_id, category_id, from_ms, rate) VALUES (?1, ?2, ?3, ?4)"
                } else {
                    "INSERT OR REPLACE INTO ledger_prices (space_id, reward_id, from_ms, price) VALUES (?1, ?2, ?3, ?4)"
                };
                tx.prepare_cached(sql)?.execute(params![space, id, from, i(kind)])?;
            }
            "reward" => {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO ledger_rewards (space_id, reward_id, name, description, provider, stock, active)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?
                .execute(params![
                    space,
                    rest,
                    s("name"),
                    s("description"),
                    s("provider"),
                    get_i64(doc, &e, "stock").filter(|n| *n >= 0),
                    get_bool(doc, &e, "active").unwrap_or(true)
                ])?;
            }
            "rule" => {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO ledger_rules (space_id, rule_id, on_kind, item_id, points, from_ms, until_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?
                .execute(params![
                    space,
                    rest,
                    s("on"),
                    s("item"),
                    i("points"),
                    i("from"),
                    get_i64(doc, &e, "until").filter(|u| *u > 0)
                ])?;
            }
            "limit" => {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO ledger_limits (space_id, member, min_balance) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![space, rest, i("min")])?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Coordinators' ledger document of a year (`item/ledger-<year>`): their
/// decisions on hours `c/<hours>`, resolutions of flags `r/<movement>` and
/// participation awards `a/<kind>/<item>/<member>`.
fn ledger_item(tx: &Connection, space: &str, year: u16, doc: &Automerge, writes: &[Write]) -> Result<()> {
    use crate::ledger::book::{COORDINATORS, entry_of};
    for key in super::root_keys(writes) {
        let Some(e) = map_at(doc, &ROOT, &key) else { continue };
        let s = |k: &str| get_str(doc, &e, k).unwrap_or_default();
        let at = at_of(doc, &e);
        if let Some(id) = key.strip_prefix("c/") {
            if entry_of(id).is_some_and(|(_, y)| y == year) {
                answer(tx, space, id, COORDINATORS, &s("by"), &s("answer"), &s("reason"), at, receipt_of(doc, &e))?;
            }
        } else if let Some(rest) = key.strip_prefix("a/") {
            // A participation award `a/<kind>/<item>/<member>`: once per
            // member per item, whichever coordinator (or year's document)
            // wrote it; of two, the earliest stands, whatever the order.
            let mut parts = rest.splitn(3, '/');
            let attested = crate::space::attested_i64(doc, &e, "at");
            if let (Some(kind), Some(item), Some(member), Some(at)) =
                (parts.next(), parts.next(), parts.next(), attested)
            {
                tx.prepare_cached(
                    "INSERT INTO ledger_awards (space_id, kind, item_id, member, at, by_member)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (space_id, kind, item_id, member) DO UPDATE SET at = excluded.at,
                        by_member = excluded.by_member
                     WHERE (excluded.at, excluded.by_member) < (ledger_awards.at, ledger_awards.by_member)",
                )?
                .execute(params![space, kind, item, member, at, s("by")])?;
            }
        } else if let Some((movement, _stamp)) = key.strip_prefix("r/").and_then(|k| k.rsplit_once('/')) {
            // Resolutions are append-only entries (`r/<movement>/<stamp>`),
            // possibly in several years' documents: the latest stands,
            // whatever order they arrive in. One dated after the change that
            // carries it (to stand as the latest for ever) moves nothing.
            let Some(at) = crate::space::attested_i64(doc, &e, "at") else { continue };
            tx.prepare_cached(
                "INSERT INTO ledger_resolutions (space_id, movement_id, resolution, reason, by_member, at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (space_id, movement_id) DO UPDATE SET resolution = excluded.resolution,
                    reason = excluded.reason, by_member = excluded.by_member, at = excluded.at
                 WHERE (excluded.at, excluded.by_member, excluded.resolution)
                    > (ledger_resolutions.at, ledger_resolutions.by_member, ledger_resolutions.resolution)",
            )?
            .execute(params![space, movement, s("resolution"), s("reason"), s("by"), at])?;
        }
    }
    Ok(())
}

/// A volunteer activity (`item/<activity>`): its details and check-ins
/// `i/<member> {minutes, by, at}`, each one a credit.
fn activity(tx: &Connection, space: &str, item: &str, doc: &Automerge, writes: &[Write]) -> Result<()> {
    let keys = super::root_keys(writes);
    if keys.iter().any(|k| !k.contains('/')) {
        tx.prepare_cached(
            "INSERT OR REPLACE INTO activities (space_id, activity_id, title, category_id, starts_at, place, slots)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            space,
            item,
            get_str(doc, &ROOT, "title").unwrap_or_default(),
            get_str(doc, &ROOT, "category").unwrap_or_default(),
            get_i64(doc, &ROOT, "starts_at").unwrap_or_default(),
            get_str(doc, &ROOT, "place").unwrap_or_default(),
            get_i64(doc, &ROOT, "slots").filter(|n| *n > 0)
        ])?;
    }
    for key in keys {
        let Some(member) = key.strip_prefix("i/") else { continue };
        let Some(e) = map_at(doc, &ROOT, &key) else { continue };
        tx.prepare_cached(
            "INSERT OR REPLACE INTO activity_checkins (space_id, activity_id, member, minutes, by_member, at, receipt)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            space,
            item,
            member,
            get_i64(doc, &e, "minutes").unwrap_or_default(),
            get_str(doc, &e, "by").unwrap_or_default(),
            at_of(doc, &e),
            receipt_of(doc, &e)
        ])?;
    }
    Ok(())
}

/// A consultation's attendance `a/<member> {present, by, at}`: participation
/// rules may reward it.
fn consultation(tx: &Connection, space: &str, item: &str, doc: &Automerge, writes: &[Write]) -> Result<()> {
    for key in super::root_keys(writes) {
        let Some(member) = key.strip_prefix("a/") else { continue };
        let Some(e) = map_at(doc, &ROOT, &key) else { continue };
        tx.prepare_cached(
            "INSERT OR REPLACE INTO attendance (space_id, consultation_id, member, present, at) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![
            space,
            item,
            member,
            get_bool(doc, &e, "present").unwrap_or(false),
            at_of(doc, &e)
        ])?;
    }
    Ok(())
}

/// A topic's coordination document: its status and the hidden posts.
fn topic_item(tx: &Connection, space: &str, topic: &str, doc: &Automerge, writes: &[Write]) -> Result<()> {
    for key in super::root_keys(writes) {
        if key == "status" {
            let Some(st) = map_at(doc, &ROOT, "status") else { continue };
            tx.prepare_cached(
                "INSERT OR REPLACE INTO topic_status (space_id, topic_id, status, reason, merged_into, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                space,
                topic,
                get_str(doc, &st, "status").unwrap_or_default(),
                get_str(doc, &st, "reason").unwrap_or_default(),
                get_str(doc, &st, "merged_into"),
                get_i64(doc, &st, "at").unwrap_or_default()
            ])?;
        } else if let Some(post) = key.strip_prefix("h/") {
            let Some(h) = map_at(doc, &ROOT, &key) else { continue };
            tx.prepare_cached(
                "INSERT OR REPLACE INTO hides (space_id, post_id, topic_id, reason, by_member, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                space,
                post,
                topic,
                get_str(doc, &h, "reason").unwrap_or_default(),
                get_str(doc, &h, "by").unwrap_or_default(),
                get_i64(doc, &h, "at").unwrap_or_default()
            ])?;
        }
    }
    Ok(())
}

/// Forget the query rows a rebuilt document no longer holds: `gone` are the
/// root keys the rebuild removed, `receipts` the hashes of the changes it
/// dropped (rows that record the change that wrote them go by it). The
/// entries that remain are projected again afterwards as usual.
pub(super) fn forget(
    tx: &Connection,
    space: &str,
    doc_id: &DocId,
    gone: &BTreeSet<String>,
    receipts: &[Vec<u8>],
) -> Result<()> {
    for table in ["ballots", "responses", "ledger_hours", "ledger_answers", "ledger_debits", "activity_checkins"] {
        let mut stmt = tx.prepare_cached(&format!("DELETE FROM {table} WHERE space_id = ?1 AND receipt = ?2"))?;
        for r in receipts {
            stmt.execute(params![space, r])?;
        }
    }
    let exec = |sql: &str, p: &[&dyn rusqlite::ToSql]| -> Result<()> {
        tx.prepare_cached(sql)?.execute(p)?;
        Ok(())
    };
    for key in gone {
        match doc_id {
            DocId::Own { member, part, .. } => {
                let (m, p) = (member.as_str(), part.as_str());
                if key.starts_with("b/") {
                    exec(
                        "DELETE FROM ballots WHERE space_id = ?1 AND vote_id = ?2 AND author = ?3 AND entry = ?4",
                        &[&space, &p, &m, key],
                    )?;
                } else if key.starts_with("g/") {
                    exec(
                        "DELETE FROM proxy_grants WHERE space_id = ?1 AND vote_id = ?2 AND grantor = ?3 AND entry = ?4",
                        &[&space, &p, &m, key],
                    )?;
                } else if key.starts_with("a/") {
                    exec(
                        "DELETE FROM responses WHERE space_id = ?1 AND survey_id = ?2 AND author = ?3 AND entry = ?4",
                        &[&space, &p, &m, key],
                    )?;
                } else if let Some(id) = key.strip_prefix("t/") {
                    exec(
                        "DELETE FROM topics WHERE space_id = ?1 AND topic_id = ?2 AND author = ?3",
                        &[&space, &id, &m],
                    )?;
                } else if let Some(topic) = key.strip_prefix("s/") {
                    exec(
                        "DELETE FROM supports WHERE space_id = ?1 AND topic_id = ?2 AND member = ?3",
                        &[&space, &topic, &m],
                    )?;
                } else if let Some(post) = key.strip_prefix("p/") {
                    exec(
                        "DELETE FROM posts WHERE space_id = ?1 AND post_id = ?2 AND author = ?3",
                        &[&space, &post, &m],
                    )?;
                } else if let Some(post) = key.strip_prefix("r/") {
                    exec(
                        "UPDATE posts SET retracted = 0 WHERE space_id = ?1 AND post_id = ?2 AND author = ?3",
                        &[&space, &post, &m],
                    )?;
                } else if let Some((post, reaction)) = key.strip_prefix("x/").and_then(|r| r.split_once('/')) {
                    exec(
                        "DELETE FROM reactions WHERE space_id = ?1 AND post_id = ?2 AND member = ?3 AND reaction = ?4",
                        &[&space, &post, &m, &reaction],
                    )?;
                } else if let Some(id) = key.strip_prefix("h/") {
                    exec(
                        "DELETE FROM ledger_hours WHERE space_id = ?1 AND hours_id = ?2 AND (volunteer = ?3 OR entered_by = ?3)",
                        &[&space, &id, &m],
                    )?;
                } else if let Some(id) = key.strip_prefix("d/") {
                    exec(
                        "DELETE FROM ledger_debits WHERE space_id = ?1 AND debit_id = ?2 AND payer = ?3",
                        &[&space, &id, &m],
                    )?;
                } else if let Some(id) = key.strip_prefix("o/") {
                    exec(
                        "DELETE FROM offers WHERE space_id = ?1 AND offer_id = ?2 AND author = ?3",
                        &[&space, &id, &m],
                    )?;
                }
            }
            DocId::Item { item } => {
                let i = item.as_str();
                if let Some(post) = key.strip_prefix("h/") {
                    exec(
                        "DELETE FROM hides WHERE space_id = ?1 AND topic_id = ?2 AND post_id = ?3",
                        &[&space, &i, &post],
                    )?;
                } else if let Some(member) = key.strip_prefix("a/") {
                    exec(
                        "DELETE FROM attendance WHERE space_id = ?1 AND consultation_id = ?2 AND member = ?3",
                        &[&space, &i, &member],
                    )?;
                } else if let Some(member) = key.strip_prefix("i/") {
                    exec(
                        "DELETE FROM activity_checkins WHERE space_id = ?1 AND activity_id = ?2 AND member = ?3",
                        &[&space, &i, &member],
                    )?;
                }
            }
            // The index deletes the rows of absent keys itself.
            DocId::Index { .. } | DocId::Space | DocId::Results { .. } => {}
        }
    }
    Ok(())
}

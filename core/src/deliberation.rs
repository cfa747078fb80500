//! Module 4: deliberation (议事协商) — from a resident's topic to a decision,
//! its follow-up and public disclosure, on one timeline per topic.
//!
//! **Documents.**
//! * Each member's contributions are entries in their own public document
//!   `own/<member>/pub/forum-<year>`: `t/<topic>` a topic raised
//!   `{title, category, description, at}`; `s/<topic>` a support (one key per
//!   topic, so a member supports a topic once whatever their devices do);
//!   `p/<post>` a post `{topic, parent, quote, body, at}`; `e/<post>/<at>/<r>`
//!   an edit `{body, at}` (all kept: the history); `r/<post>` a retraction;
//!   `x/<post>/<reaction>` a reaction. Topic and post ids begin with the
//!   author's member id, so nobody can write under another's id.
//! * What coordinators decide about a topic is in `item/<topic>` (coordinators
//!   only): `status {status, reason, merged_into, by, at}`, hidden posts
//!   `h/<post> {reason, by, at}`, the `decision {outcome, vote, responsible,
//!   deadline, by, at}`, tasks `k/<task> {title, responsible, due, at}` and
//!   their updates `u/<task>/<at>/<r> {status, note, hours, by, at}`, where
//!   `hours` lists the volunteer hours (points ledger) spent on it.
//! * A consultation (议事会) is `item/<id>`: date, place, agenda, attendance
//!   `a/<member> {present, by, at}`, and the minutes as automerge text, which
//!   several phones edit at once and which merges.
//!
//! A hidden post is hidden because a coordinator's entry says so, in another
//! document than the post: whichever arrives first, replies included, the
//! post is shown hidden once both are there. A resident cannot hide anything:
//! their device is not a writer of `item/…` and the change is refused before
//! it is merged.

use automerge::transaction::Transactable;
use automerge::{ObjType, ROOT, ReadDoc};
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::doc::DocId;
use crate::error::{Error, Result};
use crate::space::{get_i64, get_str, map_at};
use crate::store::{Store, new_id, now_ms, year_of};

fn forum(member: &str) -> DocId {
    DocId::own_public(member, &format!("forum-{}", year_of(now_ms())))
}

fn item(id: &str) -> DocId {
    DocId::Item { item: id.to_string() }
}

fn nonempty(s: &str, what: &str) -> Result<()> {
    if s.trim().is_empty() { Err(Error::Invalid(format!("{what} is empty"))) } else { Ok(()) }
}

/// A contribution entry in this member's forum document.
fn contribute(store: &Store, space: &str, key: &str, fields: &[(&str, FieldValue<'_>)]) -> Result<()> {
    let me = store.my_member(space)?;
    store.write(space, &forum(&me), |tx| {
        let e = tx.put_object(ROOT, key, ObjType::Map)?;
        for (k, v) in fields {
            match v {
                FieldValue::Str(s) => tx.put(&e, *k, *s)?,
                FieldValue::Int(i) => tx.put(&e, *k, *i)?,
            }
        }
        Ok(())
    })?;
    Ok(())
}

enum FieldValue<'a> {
    Str(&'a str),
    Int(i64),
}
use FieldValue::{Int, Str};

fn topic_exists(store: &Store, space: &str, topic: &str) -> Result<()> {
    let n: i64 = store.query(|c| {
        Ok(c.prepare_cached("SELECT count(*) FROM topics WHERE space_id = ?1 AND topic_id = ?2")?
            .query_row(params![space, topic], |r| r.get(0))?)
    })?;
    if n == 0 { Err(Error::NotFound("topic".into())) } else { Ok(()) }
}

fn post_topic(store: &Store, space: &str, post: &str) -> Result<(String, String)> {
    store
        .query(|c| {
            Ok(c.prepare_cached("SELECT topic_id, author FROM posts WHERE space_id = ?1 AND post_id = ?2")?
                .query_row(params![space, post], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?)
        })?
        .ok_or_else(|| Error::NotFound("post".into()))
}

// ---------------------------------------------------------------------------
// Topics and threads

/// Raise a topic. Returns its id.
pub fn raise_topic(store: &Store, space: &str, title: &str, category: &str, description: &str) -> Result<String> {
    nonempty(title, "a topic's title")?;
    let me = store.my_member(space)?;
    let id = format!("{me}-{}", new_id()?);
    contribute(
        store,
        space,
        &format!("t/{id}"),
        &[("title", Str(title)), ("category", Str(category)), ("description", Str(description)), ("at", Int(now_ms()))],
    )?;
    Ok(id)
}

/// Support a topic (once per member, however often it is pressed).
pub fn support(store: &Store, space: &str, topic: &str) -> Result<()> {
    topic_exists(store, space, topic)?;
    contribute(store, space, &format!("s/{topic}"), &[("at", Int(now_ms()))])
}

/// Post into a topic's thread, optionally replying to and quoting posts.
pub fn post(
    store: &Store,
    space: &str,
    topic: &str,
    body: &str,
    parent: Option<&str>,
    quote: Option<&str>,
) -> Result<String> {
    nonempty(body, "a post")?;
    topic_exists(store, space, topic)?;
    for p in parent.into_iter().chain(quote) {
        if post_topic(store, space, p)?.0 != topic {
            return Err(Error::Invalid("a reply or quote stays in its topic".into()));
        }
    }
    let me = store.my_member(space)?;
    let id = format!("{me}-{}", new_id()?);
    contribute(
        store,
        space,
        &format!("p/{id}"),
        &[
            ("topic", Str(topic)),
            ("parent", Str(parent.unwrap_or(""))),
            ("quote", Str(quote.unwrap_or(""))),
            ("body", Str(body)),
            ("at", Int(now_ms())),
        ],
    )?;
    Ok(id)
}

fn own_post(store: &Store, space: &str, post: &str) -> Result<()> {
    let me = store.my_member(space)?;
    if post_topic(store, space, post)?.1 != me {
        return Err(Error::NotAllowed("only the author changes a post".into()));
    }
    Ok(())
}

/// Edit one's own post; earlier versions stay in the history.
pub fn edit_post(store: &Store, space: &str, post: &str, body: &str) -> Result<()> {
    nonempty(body, "a post")?;
    own_post(store, space, post)?;
    let at = now_ms();
    contribute(store, space, &format!("e/{post}/{at:013}/{}", new_id()?), &[("body", Str(body)), ("at", Int(at))])
}

/// Retract one's own post.
pub fn retract_post(store: &Store, space: &str, post: &str) -> Result<()> {
    own_post(store, space, post)?;
    contribute(store, space, &format!("r/{post}"), &[("at", Int(now_ms()))])
}

/// React to a post (e.g. "👍"); once per member per reaction.
pub fn react(store: &Store, space: &str, post: &str, reaction: &str) -> Result<()> {
    if reaction.is_empty() || reaction.contains('/') || reaction.chars().count() > 8 {
        return Err(Error::Invalid("a reaction is a short symbol".into()));
    }
    post_topic(store, space, post)?;
    contribute(store, space, &format!("x/{post}/{reaction}"), &[("at", Int(now_ms()))])
}

fn coordinate(
    store: &Store,
    space: &str,
    topic: &str,
    f: impl FnOnce(&mut automerge::transaction::Transaction<'_>, &str, i64) -> Result<()>,
) -> Result<()> {
    let me = store.my_coordinator(space, "moderate and decide")?;
    topic_exists(store, space, topic)?;
    let now = now_ms();
    store.write(space, &item(topic), |tx| {
        if get_str(tx, &ROOT, "kind").is_none() {
            tx.put(ROOT, "kind", "topic")?;
        }
        f(tx, &me, now)
    })?;
    Ok(())
}

/// Write a topic's current status and append it to the status history
/// (`st/<ms>/<random>`), which the timeline reads.
fn write_status(
    tx: &mut automerge::transaction::Transaction<'_>,
    status: &str,
    reason: &str,
    merged_into: Option<&str>,
    me: &str,
    now: i64,
) -> Result<()> {
    for key in ["status".to_string(), format!("st/{now:013}/{}", new_id()?)] {
        let s = tx.put_object(ROOT, key.as_str(), ObjType::Map)?;
        tx.put(&s, "status", status)?;
        tx.put(&s, "reason", reason)?;
        if let Some(m) = merged_into {
            tx.put(&s, "merged_into", m)?;
        }
        tx.put(&s, "by", me)?;
        tx.put(&s, "at", now)?;
    }
    Ok(())
}

fn set_status(
    store: &Store,
    space: &str,
    topic: &str,
    status: &str,
    reason: &str,
    merged_into: Option<&str>,
) -> Result<()> {
    coordinate(store, space, topic, |tx, me, now| write_status(tx, status, reason, merged_into, me, now))
}

/// Put a topic on the agenda although it has not reached the threshold.
pub fn accept_topic(store: &Store, space: &str, topic: &str) -> Result<()> {
    set_status(store, space, topic, "agenda", "", None)
}

/// Decline a topic, with the reason residents will read.
pub fn decline_topic(store: &Store, space: &str, topic: &str, reason: &str) -> Result<()> {
    nonempty(reason, "a reason")?;
    set_status(store, space, topic, "declined", reason, None)
}

/// Merge a duplicate into another topic.
pub fn merge_topic(store: &Store, space: &str, topic: &str, into: &str) -> Result<()> {
    topic_exists(store, space, into)?;
    if topic == into {
        return Err(Error::Invalid("a topic cannot merge into itself".into()));
    }
    set_status(store, space, topic, "merged", "duplicate", Some(into))
}

/// Hide a post, with a reason shown in the moderation log.
pub fn hide_post(store: &Store, space: &str, post: &str, reason: &str) -> Result<()> {
    store.my_coordinator(space, "moderate and decide")?;
    nonempty(reason, "a reason")?;
    let (topic, _) = post_topic(store, space, post)?;
    coordinate(store, space, &topic, |tx, me, now| {
        let h = tx.put_object(ROOT, format!("h/{post}"), ObjType::Map)?;
        tx.put(&h, "reason", reason)?;
        tx.put(&h, "by", me)?;
        tx.put(&h, "at", now)?;
        Ok(())
    })
}

/// What a coordinator records when a topic ends in a decision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecisionInput {
    pub outcome: String,
    /// The vote held on it, if one was.
    pub vote: Option<String>,
    /// The consultation (议事会) that reached it, if one did.
    pub consultation: Option<String>,
    pub responsible: Vec<String>,
    pub deadline: String,
}

/// Record the decision a topic ended in.
pub fn decide(store: &Store, space: &str, topic: &str, input: &DecisionInput) -> Result<()> {
    nonempty(&input.outcome, "an outcome")?;
    if let Some(v) = &input.vote {
        crate::poll::vote(store, space, v)?;
    }
    if let Some(c) = &input.consultation {
        let kind = store.read(space, &item(c), |d| get_str(d, &ROOT, "kind"))?;
        if kind.as_deref() != Some("consultation") {
            return Err(Error::NotFound("consultation".into()));
        }
    }
    let responsible = serde_json::to_string(&input.responsible)?;
    coordinate(store, space, topic, |tx, me, now| {
        let d = tx.put_object(ROOT, "decision", ObjType::Map)?;
        tx.put(&d, "outcome", input.outcome.as_str())?;
        tx.put(&d, "vote", input.vote.as_deref().unwrap_or(""))?;
        tx.put(&d, "consultation", input.consultation.as_deref().unwrap_or(""))?;
        tx.put(&d, "responsible", responsible.as_str())?;
        tx.put(&d, "deadline", input.deadline.as_str())?;
        tx.put(&d, "by", me)?;
        tx.put(&d, "at", now)?;
        write_status(tx, "decided", "", None, me, now)
    })
}

/// Close the loop: link the satisfaction vote held on how the decision was
/// carried out; its published result joins the disclosure.
pub fn close_loop(store: &Store, space: &str, topic: &str, satisfaction_vote: &str) -> Result<()> {
    let v = crate::poll::vote(store, space, satisfaction_vote)?;
    if v.spec.kind != crate::poll::VoteKind::Satisfaction {
        return Err(Error::Invalid("the loop is closed by a satisfaction vote".into()));
    }
    coordinate(store, space, topic, |tx, _, now| {
        tx.put(ROOT, "followup_vote", satisfaction_vote)?;
        tx.put(ROOT, "followup_at", now)?;
        Ok(())
    })
}

/// Add a follow-up task (跟踪落实) under a topic's decision. Returns its id.
pub fn add_task(store: &Store, space: &str, topic: &str, title: &str, responsible: &str, due: &str) -> Result<String> {
    nonempty(title, "a task")?;
    let id = new_id()?;
    coordinate(store, space, topic, |tx, _, now| {
        let k = tx.put_object(ROOT, format!("k/{id}"), ObjType::Map)?;
        tx.put(&k, "title", title)?;
        tx.put(&k, "responsible", responsible)?;
        tx.put(&k, "due", due)?;
        tx.put(&k, "at", now)?;
        Ok(())
    })?;
    Ok(id)
}

/// A status update on a task, with an evidence note ("repaired on 3 May")
/// and the volunteer hours spent on it (ids of hours in the points ledger),
/// whose minutes the timeline and the disclosure show.
pub fn update_task(
    store: &Store,
    space: &str,
    topic: &str,
    task: &str,
    status: &str,
    note: &str,
    hours: &[String],
) -> Result<()> {
    for h in hours {
        if !crate::ledger::hours_exist(store, space, h)? {
            return Err(Error::NotFound("hours".into()));
        }
    }
    let hours = serde_json::to_string(hours)?;
    if !["todo", "doing", "done"].contains(&status) {
        return Err(Error::Invalid("a task is todo, doing or done".into()));
    }
    let exists = store.read(space, &item(topic), |d| map_at(d, &ROOT, &format!("k/{task}")).is_some())?;
    if !exists {
        return Err(Error::NotFound("task".into()));
    }
    coordinate(store, space, topic, |tx, me, now| {
        let u = tx.put_object(ROOT, format!("u/{task}/{now:013}/{}", new_id()?), ObjType::Map)?;
        tx.put(&u, "status", status)?;
        tx.put(&u, "note", note)?;
        tx.put(&u, "hours", hours.as_str())?;
        tx.put(&u, "by", me)?;
        tx.put(&u, "at", now)?;
        Ok(())
    })
}

// ---------------------------------------------------------------------------
// Reading

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicRow {
    pub topic: String,
    pub author: String,
    pub title: String,
    pub category: String,
    pub at: i64,
    pub supports: i64,
    pub posts: i64,
    /// `open`, `agenda` (by support or a coordinator), `declined`, `merged`, `decided`.
    pub status: String,
}

/// The space's support threshold, from its query row (no document is loaded).
fn threshold(store: &Store, space: &str) -> Result<i64> {
    store.query(|c| {
        Ok(c.prepare_cached("SELECT support_threshold FROM spaces WHERE space_id = ?1")?
            .query_row([space], |r| r.get::<_, i64>(0))
            .optional()?
            .unwrap_or(crate::space::DEFAULT_SUPPORT_THRESHOLD))
    })
}

fn status_of(explicit: Option<String>, supports: i64, threshold: i64) -> String {
    match explicit {
        Some(s) => s,
        None if supports >= threshold => "agenda".into(),
        None => "open".into(),
    }
}

/// The topic list, newest first, with support and post counts, read from the
/// query tables (no document is loaded).
pub fn topics(store: &Store, space: &str, offset: u32, limit: u32) -> Result<Vec<TopicRow>> {
    let threshold = threshold(store, space)?;
    store.query(|c| {
        let mut stmt = c.prepare_cached(
            // The page first, then the counts for its rows only.
            "SELECT t.topic_id, t.author, t.title, t.category, t.at,
                    (SELECT count(*) FROM supports s WHERE s.space_id = t.space_id AND s.topic_id = t.topic_id),
                    (SELECT count(*) FROM posts p WHERE p.space_id = t.space_id AND p.topic_id = t.topic_id AND p.retracted = 0),
                    (SELECT status FROM topic_status x WHERE x.space_id = t.space_id AND x.topic_id = t.topic_id)
             FROM (SELECT * FROM topics WHERE space_id = ?1 ORDER BY at DESC, topic_id DESC LIMIT ?2 OFFSET ?3) t
             ORDER BY t.at DESC, t.topic_id DESC",
        )?;
        let rows = stmt.query_map(params![space, limit, offset], |r| {
            let supports: i64 = r.get(5)?;
            Ok(TopicRow {
                topic: r.get(0)?,
                author: r.get(1)?,
                title: r.get(2)?,
                category: r.get(3)?,
                at: r.get(4)?,
                supports,
                posts: r.get(6)?,
                status: status_of(r.get(7)?, supports, threshold),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Post {
    pub post: String,
    pub author: String,
    pub parent: Option<String>,
    pub quote: Option<String>,
    /// The latest version; empty when hidden or retracted.
    pub body: String,
    pub at: i64,
    pub edited_at: Option<i64>,
    pub retracted: bool,
    /// The moderation reason, when a coordinator hid it.
    pub hidden: Option<String>,
    pub reactions: Vec<(String, i64)>,
}

/// A topic's thread in posting order (replies name their parent).
pub fn thread(store: &Store, space: &str, topic: &str) -> Result<Vec<Post>> {
    store.query(|c| {
        let mut stmt = c.prepare_cached(
            "SELECT p.post_id, p.author, p.parent, p.quote, p.body, p.at, p.edited_at, p.retracted, h.reason
             FROM posts p LEFT JOIN hides h ON h.space_id = p.space_id AND h.post_id = p.post_id
             WHERE p.space_id = ?1 AND p.topic_id = ?2 ORDER BY p.at, p.post_id",
        )?;
        let mut posts: Vec<Post> = stmt
            .query_map(params![space, topic], |r| {
                let retracted: i64 = r.get(7)?;
                let hidden: Option<String> = r.get(8)?;
                let body: String = r.get(4)?;
                Ok(Post {
                    post: r.get(0)?,
                    author: r.get(1)?,
                    parent: r.get(2)?,
                    quote: r.get(3)?,
                    body: if retracted != 0 || hidden.is_some() { String::new() } else { body },
                    at: r.get(5)?,
                    edited_at: r.get(6)?,
                    retracted: retracted != 0,
                    hidden,
                    reactions: Vec::new(),
                })
            })?
            .collect::<Result<_, _>>()?;
        let mut stmt = c.prepare_cached(
            "SELECT r.post_id, r.reaction, count(*) FROM reactions r JOIN posts p ON p.space_id = r.space_id AND p.post_id = r.post_id
             WHERE r.space_id = ?1 AND p.topic_id = ?2 GROUP BY r.post_id, r.reaction ORDER BY r.reaction",
        )?;
        let rows = stmt.query_map(params![space, topic], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?)))?;
        for row in rows {
            let (post, reaction, n) = row?;
            if let Some(p) = posts.iter_mut().find(|p| p.post == post) {
                p.reactions.push((reaction, n));
            }
        }
        Ok(posts)
    })
}

/// Every version of a post, oldest first (the original, then each edit).
pub fn post_history(store: &Store, space: &str, post: &str) -> Result<Vec<String>> {
    let (_, author) = post_topic(store, space, post)?;
    let mut versions = Vec::new();
    for doc in store
        .doc_ids(space)?
        .into_iter()
        .filter(|d| matches!(d, DocId::Own { member, part, .. } if *member == author && part.starts_with("forum-")))
    {
        store.read(space, &doc, |d| {
            if let Some(p) = map_at(d, &ROOT, &format!("p/{post}")) {
                versions.push((
                    crate::space::dated_i64(d, &p, "at").unwrap_or_default(),
                    String::new(),
                    get_str(d, &p, "body").unwrap_or_default(),
                ));
            }
            let prefix = format!("e/{post}/");
            for key in d.keys(ROOT).filter(|k| k.starts_with(&prefix)) {
                if let Some(e) = map_at(d, &ROOT, &key) {
                    versions.push((
                        crate::space::dated_i64(d, &e, "at").unwrap_or_default(),
                        key.clone(),
                        get_str(d, &e, "body").unwrap_or_default(),
                    ));
                }
            }
        })?;
    }
    versions.sort();
    Ok(versions.into_iter().map(|(_, _, b)| b).collect())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Moderation {
    pub post: String,
    pub topic: String,
    pub reason: String,
    pub by: String,
    pub at: i64,
}

/// The moderation log every member can read.
pub fn moderation_log(store: &Store, space: &str) -> Result<Vec<Moderation>> {
    store.query(|c| {
        let mut stmt = c.prepare_cached(
            "SELECT post_id, topic_id, reason, by_member, at FROM hides WHERE space_id = ?1 ORDER BY at, post_id",
        )?;
        let rows = stmt.query_map([space], |r| {
            Ok(Moderation { post: r.get(0)?, topic: r.get(1)?, reason: r.get(2)?, by: r.get(3)?, at: r.get(4)? })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    })
}

// ---------------------------------------------------------------------------
// Consultations

/// Create a consultation (议事会) with its agenda. Returns its id.
pub fn create_consultation(
    store: &Store,
    space: &str,
    title: &str,
    date: &str,
    place: &str,
    agenda: &[String],
) -> Result<String> {
    nonempty(title, "a consultation's title")?;
    store.my_coordinator(space, "moderate and decide")?;
    for t in agenda {
        topic_exists(store, space, t)?;
    }
    let id = new_id()?;
    let agenda = serde_json::to_string(agenda)?;
    store.write_item(space, &id, "consultation", title, |tx| {
        tx.put(ROOT, "kind", "consultation")?;
        tx.put(ROOT, "title", title)?;
        tx.put(ROOT, "date", date)?;
        tx.put(ROOT, "place", place)?;
        tx.put(ROOT, "agenda", agenda.as_str())?;
        tx.put_object(ROOT, "minutes", ObjType::Text)?;
        Ok(())
    })?;
    Ok(id)
}

/// Take attendance on the coordinator's phone (also for people without one).
pub fn mark_attendance(store: &Store, space: &str, consultation: &str, member: &str, present: bool) -> Result<()> {
    let me = store.my_coordinator(space, "moderate and decide")?;
    if !store.with_view(space, |v| v.members.contains_key(member))? {
        return Err(Error::NotFound("member".into()));
    }
    store.write(space, &item(consultation), |tx| {
        let a = tx.put_object(ROOT, format!("a/{member}"), ObjType::Map)?;
        tx.put(&a, "present", present)?;
        tx.put(&a, "by", me.as_str())?;
        tx.put(&a, "at", now_ms())?;
        Ok(())
    })?;
    Ok(())
}

/// The members marked present.
pub fn attendance(store: &Store, space: &str, consultation: &str) -> Result<Vec<String>> {
    store.read(space, &item(consultation), |d| {
        d.keys(ROOT)
            .filter_map(|k| k.strip_prefix("a/").map(str::to_string))
            .filter(|m| {
                map_at(d, &ROOT, &format!("a/{m}"))
                    .and_then(|a| crate::space::get_bool(d, &a, "present"))
                    .unwrap_or(false)
            })
            .collect()
    })
}

/// Edit the minutes: delete `delete` characters at `at` and insert `text`.
/// Several phones may edit at once; the edits merge.
pub fn edit_minutes(
    store: &Store,
    space: &str,
    consultation: &str,
    at: usize,
    delete: usize,
    text: &str,
) -> Result<()> {
    store.my_coordinator(space, "moderate and decide")?;
    store.write(space, &item(consultation), |tx| {
        let minutes = match tx.get(ROOT, "minutes")? {
            Some((automerge::Value::Object(ObjType::Text), id)) => id,
            _ => return Err(Error::NotFound("minutes".into())),
        };
        let len = tx.length(&minutes);
        if at > len || at + delete > len {
            return Err(Error::Invalid("an edit beyond the end of the minutes".into()));
        }
        tx.splice_text(&minutes, at, delete as isize, text)?;
        Ok(())
    })?;
    Ok(())
}

pub fn minutes(store: &Store, space: &str, consultation: &str) -> Result<String> {
    store.read(space, &item(consultation), |d| match d.get(ROOT, "minutes") {
        Ok(Some((automerge::Value::Object(ObjType::Text), id))) => d.text(&id).map_err(Error::from),
        _ => Err(Error::NotFound("minutes".into())),
    })?
}

// ---------------------------------------------------------------------------
// Decision, follow-up, timeline, disclosure

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub outcome: String,
    pub vote: Option<String>,
    pub consultation: Option<String>,
    pub responsible: Vec<String>,
    pub deadline: String,
    pub by: String,
    pub at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskUpdate {
    pub status: String,
    pub note: String,
    /// Volunteer hours spent on it (ids in the points ledger).
    pub hours: Vec<String>,
    /// Their minutes, as logged.
    pub minutes: i64,
    pub by: String,
    pub at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    pub task: String,
    pub title: String,
    pub responsible: String,
    pub due: String,
    pub status: String,
    pub updates: Vec<TaskUpdate>,
}

struct Coordination {
    followup_vote: Option<String>,
    /// Every status change: (status, reason, by, at).
    history: Vec<(String, String, String, i64)>,
    decision: Option<Decision>,
    tasks: Vec<Task>,
}

fn coordination(store: &Store, space: &str, topic: &str) -> Result<Coordination> {
    store
        .read(space, &item(topic), |d| {
            let history = d
                .keys(ROOT)
                .filter(|k| k.starts_with("st/"))
                .filter_map(|k| map_at(d, &ROOT, &k))
                .map(|s| {
                    (
                        get_str(d, &s, "status").unwrap_or_default(),
                        get_str(d, &s, "reason").unwrap_or_default(),
                        get_str(d, &s, "by").unwrap_or_default(),
                        crate::space::dated_i64(d, &s, "at").unwrap_or_default(),
                    )
                })
                .collect();
            let decision = map_at(d, &ROOT, "decision").map(|x| Decision {
                outcome: get_str(d, &x, "outcome").unwrap_or_default(),
                vote: get_str(d, &x, "vote").filter(|v| !v.is_empty()),
                consultation: get_str(d, &x, "consultation").filter(|v| !v.is_empty()),
                responsible: get_str(d, &x, "responsible")
                    .and_then(|r| serde_json::from_str(&r).ok())
                    .unwrap_or_default(),
                deadline: get_str(d, &x, "deadline").unwrap_or_default(),
                by: get_str(d, &x, "by").unwrap_or_default(),
                at: crate::space::dated_i64(d, &x, "at").unwrap_or_default(),
            });
            let mut tasks: Vec<Task> = d
                .keys(ROOT)
                .filter_map(|k| k.strip_prefix("k/").map(str::to_string))
                .filter_map(|id| {
                    let k = map_at(d, &ROOT, &format!("k/{id}"))?;
                    Some(Task {
                        task: id,
                        title: get_str(d, &k, "title").unwrap_or_default(),
                        responsible: get_str(d, &k, "responsible").unwrap_or_default(),
                        due: get_str(d, &k, "due").unwrap_or_default(),
                        status: "todo".into(),
                        updates: Vec::new(),
                    })
                })
                .collect();
            for key in d.keys(ROOT).filter(|k| k.starts_with("u/")) {
                let (Some(u), Some(task)) = (map_at(d, &ROOT, &key), key.split('/').nth(1)) else { continue };
                if let Some(t) = tasks.iter_mut().find(|t| t.task == task) {
                    t.updates.push(TaskUpdate {
                        status: get_str(d, &u, "status").unwrap_or_default(),
                        note: get_str(d, &u, "note").unwrap_or_default(),
                        hours: get_str(d, &u, "hours").and_then(|h| serde_json::from_str(&h).ok()).unwrap_or_default(),
                        minutes: 0,
                        by: get_str(d, &u, "by").unwrap_or_default(),
                        at: crate::space::dated_i64(d, &u, "at").unwrap_or_default(),
                    });
                }
            }
            for t in &mut tasks {
                t.updates.sort_by(|a, b| (a.at, &a.status, &a.note).cmp(&(b.at, &b.status, &b.note)));
                if let Some(last) = t.updates.last() {
                    t.status = last.status.clone();
                }
            }
            Coordination { followup_vote: get_str(d, &ROOT, "followup_vote"), history, decision, tasks }
        })
        .and_then(|mut c| {
            for u in c.tasks.iter_mut().flat_map(|t| t.updates.iter_mut()) {
                u.minutes = crate::ledger::minutes_of(store, space, &u.hours)?;
            }
            Ok(c)
        })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub at: i64,
    pub who: String,
    /// `raised`, `supported`, `posted`, `hidden`, `status`, `decided`, `task`, `task_update`.
    pub what: String,
    pub detail: String,
}

/// Everything that happened to a topic, in order, with its author.
pub fn timeline(store: &Store, space: &str, topic: &str) -> Result<Vec<Event>> {
    let mut events: Vec<Event> = store.query(|c| {
        let mut out = Vec::new();
        let mut stmt =
            c.prepare_cached("SELECT at, author, title FROM topics WHERE space_id = ?1 AND topic_id = ?2")?;
        for r in stmt.query_map(params![space, topic], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
        })? {
            let (at, who, title) = r?;
            out.push(Event { at, who, what: "raised".into(), detail: title });
        }
        let mut stmt = c.prepare_cached("SELECT at, member FROM supports WHERE space_id = ?1 AND topic_id = ?2")?;
        for r in stmt.query_map(params![space, topic], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))? {
            let (at, who) = r?;
            out.push(Event { at, who, what: "supported".into(), detail: String::new() });
        }
        let mut stmt =
            c.prepare_cached("SELECT at, author, post_id FROM posts WHERE space_id = ?1 AND topic_id = ?2")?;
        for r in stmt.query_map(params![space, topic], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
        })? {
            let (at, who, post) = r?;
            out.push(Event { at, who, what: "posted".into(), detail: post });
        }
        let mut stmt =
            c.prepare_cached("SELECT at, by_member, reason FROM hides WHERE space_id = ?1 AND topic_id = ?2")?;
        for r in stmt.query_map(params![space, topic], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
        })? {
            let (at, who, reason) = r?;
            out.push(Event { at, who, what: "hidden".into(), detail: reason });
        }
        Ok(out)
    })?;
    let c = coordination(store, space, topic)?;
    // "decided" is told by the decision itself.
    for (status, reason, by, at) in c.history.into_iter().filter(|s| s.0 != "decided") {
        events.push(Event {
            at,
            who: by,
            what: "status".into(),
            detail: format!("{status} {reason}").trim().to_string(),
        });
    }
    if let Some(d) = &c.decision {
        events.push(Event { at: d.at, who: d.by.clone(), what: "decided".into(), detail: d.outcome.clone() });
    }
    for t in &c.tasks {
        for u in &t.updates {
            events.push(Event {
                at: u.at,
                who: u.by.clone(),
                what: "task_update".into(),
                detail: match u.minutes {
                    0 => format!("{}: {} {}", t.title, u.status, u.note).trim().to_string(),
                    m => format!("{}: {} {} ({m} min volunteer hours)", t.title, u.status, u.note),
                },
            });
        }
    }
    if let Some((vote, at)) =
        store.read(space, &item(topic), |d| get_str(d, &ROOT, "followup_vote").zip(get_i64(d, &ROOT, "followup_at")))?
    {
        let by = c.decision.as_ref().map(|d| d.by.clone()).unwrap_or_default();
        events.push(Event { at, who: by, what: "loop_closed".into(), detail: vote });
    }
    // Within one millisecond, things happen in the order they must.
    let rank = |what: &str| {
        ["raised", "supported", "posted", "hidden", "status", "decided", "task_update", "loop_closed"]
            .iter()
            .position(|w| *w == what)
            .unwrap_or(99)
    };
    events.sort_by(|a, b| (a.at, rank(&a.what), &a.who, &a.detail).cmp(&(b.at, rank(&b.what), &b.who, &b.detail)));
    Ok(events)
}

/// What is published of a topic (居务公开).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Disclosure {
    pub topic: String,
    pub title: String,
    pub category: String,
    pub description: String,
    pub raised_at: i64,
    pub supports: i64,
    pub status: String,
    pub posts: i64,
    pub participants: i64,
    pub hidden_posts: i64,
    pub decision: Option<Decision>,
    pub vote: Option<crate::poll::Tally>,
    pub tasks: Vec<Task>,
    /// The published satisfaction vote that closed the loop, if one did.
    pub satisfaction: Option<crate::poll::Tally>,
}

/// The published summary of a topic.
pub fn disclosure(store: &Store, space: &str, topic: &str) -> Result<Disclosure> {
    let row = topics(store, space, 0, u32::MAX)?
        .into_iter()
        .find(|t| t.topic == topic)
        .ok_or_else(|| Error::NotFound("topic".into()))?;
    let posts = thread(store, space, topic)?;
    let description: String = store.query(|c| {
        Ok(c.prepare_cached("SELECT description FROM topics WHERE space_id = ?1 AND topic_id = ?2")?
            .query_row(params![space, topic], |r| r.get(0))?)
    })?;
    let c = coordination(store, space, topic)?;
    let vote = match c.decision.as_ref().and_then(|d| d.vote.clone()) {
        Some(v) => crate::poll::published(store, space, &v)?,
        None => None,
    };
    let satisfaction = match &c.followup_vote {
        Some(v) => crate::poll::published(store, space, v)?,
        None => None,
    };
    let mut participants: Vec<&str> = posts.iter().filter(|p| !p.retracted).map(|p| p.author.as_str()).collect();
    participants.sort();
    participants.dedup();
    Ok(Disclosure {
        topic: topic.to_string(),
        title: row.title,
        category: row.category,
        description,
        raised_at: row.at,
        supports: row.supports,
        status: row.status,
        posts: posts.iter().filter(|p| !p.retracted).count() as i64,
        participants: participants.len() as i64,
        hidden_posts: posts.iter().filter(|p| p.hidden.is_some()).count() as i64,
        decision: c.decision,
        vote,
        tasks: c.tasks,
        satisfaction,
    })
}

impl Disclosure {
    /// A readable document for the notice board or a web page.
    pub fn to_markdown(&self) -> String {
        let mut md = format!("# {}\n\n", self.title);
        md.push_str(&format!("- 类别 Category: {}\n- 状态 Status: {}\n- 支持 Supports: {}\n- 讨论 Discussion: {} posts by {} residents ({} hidden by moderation)\n\n", self.category, self.status, self.supports, self.posts, self.participants, self.hidden_posts));
        md.push_str(&format!("## 议题 Question\n\n{}\n\n", self.description));
        if let Some(d) = &self.decision {
            md.push_str(&format!(
                "## 决定 Decision\n\n{}\n\n- 责任人 Responsible: {}\n- 期限 Deadline: {}\n\n",
                d.outcome,
                d.responsible.join(", "),
                d.deadline
            ));
        }
        if let Some(v) = &self.vote {
            md.push_str(&format!("## 表决 Vote: {}\n\n", v.title));
            for o in &v.options {
                md.push_str(&format!("- {}: {}\n", o.label, o.count.heads));
            }
            md.push_str(&format!("\nCounted {} of {} eligible.\n\n", v.counted, v.eligible.heads));
        }
        if let Some(rate) = self.satisfaction.as_ref().and_then(|t| t.satisfaction.as_ref()) {
            md.push_str(&format!(
                "## 满意度 Satisfaction\n\n{}.{:02}% satisfied ({} of {})\n\n",
                rate.basis_points / 100,
                rate.basis_points % 100,
                rate.satisfied,
                rate.valid
            ));
        }
        if !self.tasks.is_empty() {
            md.push_str("## 跟踪落实 Follow-up\n\n");
            for t in &self.tasks {
                md.push_str(&format!(
                    "- [{}] {} ({}, due {})\n",
                    if t.status == "done" { "x" } else { " " },
                    t.title,
                    t.responsible,
                    t.due
                ));
                for u in &t.updates {
                    md.push_str(&format!("  - {}: {}", u.status, u.note));
                    if u.minutes > 0 {
                        md.push_str(&format!(" (志愿服务 {} 分钟 volunteer minutes)", u.minutes));
                    }
                    md.push('\n');
                }
            }
        }
        md
    }
}

//! Module 1: needs surveys (需求调查).
//!
//! **Documents.** A survey is an item. Its document `item/<survey>` is
//! written by coordinators:
//!
//! ```text
//! kind: "survey", created_at
//! draft: <SurveyDef as JSON>                 -- until it is published
//! v/<ms>/<random>: { def, at, by,            -- one entry per published version
//!                    audience: <Vec<Respondent> as JSON>,
//!                    members: { <member>: <respondent key> } }
//! closed: { at, by }                         -- written once
//! results_at                                 -- results published (before they were one write)
//! ```
//!
//! Publishing writes the first version; editing a published survey writes
//! another. Versions are numbered in (time, key) order, so two coordinators
//! editing at once make two versions, not a conflict. Each version freezes
//! its audience from the register: who the survey is for, the household that
//! answers for them, their grid and building.
//!
//! A response is an entry `a/<ms>/<random>: { item, version, answers, at, for? }` in the
//! member's private document `own/<member>/priv/<survey>`, which only the
//! member's devices write and only the member, coordinators and the server
//! read. `answers` is a JSON object keyed by question id (docs/surveys.md).
//! Editing a response writes a new entry; the history stays. The receipt of a
//! response is the hash of the change that wrote it.
//!
//! **What counts** is decided by [`results::decide`], a pure function of
//! the survey document and the response entries.
//!
//! **Anonymous surveys.** Results and exports of an anonymous survey carry
//! no member, name, household, receipt or time, rows are ordered by an
//! unrelated hash, and results filtered to a grid or building are not shown
//! under [`results::ANONYMITY_FLOOR`] responses. Who can still link an answer
//! to a person: the response lives in the member's own document, signed by
//! their device, so the member, the coordinators' devices and the server,
//! which hold those documents to count them, can read who wrote it by
//! looking at the raw documents (the app does not show it). Free-text
//! answers may identify a person by what they say.

pub mod expr;
pub mod form;
pub mod results;

use automerge::transaction::Transactable;
use automerge::{ObjType, ROOT, ReadDoc};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use serde_json::{Map, Value as Json};

use crate::doc::DocId;
use crate::error::{Error, Result};
use crate::space::{MemberStatus, SpaceView, get_i64, get_str, map_at};
use crate::store::{Store, iso_utc, new_id, now_ms};
use form::{Form, Kind, OTHER, Per, Problems, SurveyDef, Target};
use results::{ANONYMITY_FLOOR, Counted, Filter, Respondent, Response, Results, Version};

/// Where a survey is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Draft,
    /// Published, waiting for `opens_at`.
    Scheduled,
    Open,
    Closed,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Draft => "draft",
            Stage::Scheduled => "scheduled",
            Stage::Open => "open",
            Stage::Closed => "closed",
        }
    }
}

/// A survey as its document says, with its current definition.
#[derive(Debug, Clone)]
pub struct Survey {
    pub id: String,
    /// The latest version's definition (the draft's before publication).
    pub def: SurveyDef,
    pub stage: Stage,
    /// Every published version's entry key, oldest first: a version's
    /// number is its position here plus one.
    pub keys: Vec<String>,
    /// Published versions, oldest first, compiled: all of them from
    /// [`survey`]; only the latest from the calls that need no more.
    pub versions: Vec<Version>,
    pub opens_at: i64,
    /// The effective close: the earlier of `closes_at` and a close.
    pub closes_at: Option<i64>,
    pub results_published: bool,
}

impl Survey {
    pub fn latest(&self) -> Option<&Version> {
        self.versions.last()
    }
}

fn item(survey: &str) -> DocId {
    DocId::Item { item: survey.to_string() }
}

fn response_doc(member: &str, survey: &str) -> DocId {
    DocId::own_private(member, survey)
}

// ---------------------------------------------------------------------------
// The audience

/// Who a definition is for, from the register as it is now: active members
/// linked to a unit in the target (every active member for the whole
/// space), each with the household that answers for them.
pub fn audience(view: &SpaceView, def: &SurveyDef) -> Vec<Respondent> {
    let mut out = Vec::new();
    for (id, m) in &view.members {
        if m.status != MemberStatus::Active {
            continue;
        }
        // The member's units, in id order; the first that fits the target
        // gives their grid and building.
        let mut units: Vec<(&String, &crate::space::Unit)> = view
            .links
            .values()
            .filter(|l| l.member == *id)
            .filter_map(|l| view.units.get(&l.unit).map(|u| (&l.unit, u)))
            .collect();
        units.sort_by(|a, b| a.0.cmp(b.0));
        let fits = |u: &crate::space::Unit| match &def.target {
            Target::Space => true,
            Target::Grids { ids } => u.grid.as_ref().is_some_and(|g| ids.contains(g)),
            Target::Buildings { names } => names.contains(&u.building),
        };
        let unit = units.iter().find(|(_, u)| fits(u)).map(|(_, u)| *u);
        if unit.is_none() && def.target != Target::Space {
            continue;
        }
        let key = match def.per {
            Per::Member => id.clone(),
            Per::Household => m
                .household
                .clone()
                .or_else(|| unit.and_then(|u| u.household.clone()))
                .map(|h| format!("household:{h}"))
                .unwrap_or_else(|| format!("member:{id}")),
        };
        out.push(Respondent {
            member: id.clone(),
            key,
            grid: unit.and_then(|u| u.grid.clone()),
            building: unit.map(|u| u.building.clone()),
        });
    }
    out
}

// ---------------------------------------------------------------------------
// Reading

/// The survey as its item document says.
pub fn survey(store: &Store, space: &str, survey_id: &str) -> Result<Survey> {
    load(store, space, survey_id, true)
}

/// The survey with only its latest version and no audience: what a list,
/// a header or a form needs, without parsing every version.
pub fn header(store: &Store, space: &str, survey_id: &str) -> Result<Survey> {
    load(store, space, survey_id, false)
}

/// `full`: every version with its audience (for counting); else only the
/// latest version, without its audience (for answering and lifecycle).
fn load(store: &Store, space: &str, survey_id: &str, full: bool) -> Result<Survey> {
    let now = now_ms();
    let parsed = store.read(space, &item(survey_id), |d| -> Result<Option<Survey>> {
        if get_str(d, &ROOT, "kind").as_deref() != Some("survey") {
            return Ok(None);
        }
        let mut entries: Vec<(i64, String)> = d
            .keys(ROOT)
            .filter(|k| k.starts_with("v/"))
            .filter_map(|k| {
                let e = map_at(d, &ROOT, &k)?;
                Some((get_i64(d, &e, "at").unwrap_or_default(), k))
            })
            .collect();
        entries.sort();
        let mut versions = Vec::new();
        // Newest first, so a light load stops at the latest that compiles.
        for (n, (at, key)) in entries.iter().enumerate().rev() {
            let Some(e) = map_at(d, &ROOT, key) else { continue };
            // A version whose definition does not compile is skipped (a
            // coordinator's app could only write it by going around the core).
            let Some(def) = get_str(d, &e, "def").and_then(|j| serde_json::from_str::<SurveyDef>(&j).ok()) else {
                continue;
            };
            let Ok(form) = Form::compile(&def) else { continue };
            let audience = match get_str(d, &e, "audience") {
                Some(a) if full => serde_json::from_str(&a).unwrap_or_default(),
                _ => Vec::new(),
            };
            versions.push(Version { key: key.clone(), number: n as i64 + 1, at: *at, form, audience });
            if !full {
                break;
            }
        }
        versions.reverse();
        let keys = entries.into_iter().map(|(_, k)| k).collect();
        let def = match versions.last() {
            Some(v) => v.form.def.clone(),
            None => match get_str(d, &ROOT, "draft") {
                Some(j) => serde_json::from_str(&j)?,
                None => return Ok(None),
            },
        };
        let closed_at = map_at(d, &ROOT, "closed").and_then(|c| get_i64(d, &c, "at"));
        let closes_at = match (def.closes_at, closed_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let opens_at = def.opens_at.unwrap_or(i64::MIN);
        let stage = if versions.is_empty() {
            Stage::Draft
        } else if closes_at.is_some_and(|c| now >= c) {
            Stage::Closed
        } else if now < opens_at {
            Stage::Scheduled
        } else {
            Stage::Open
        };
        let results_published = get_i64(d, &ROOT, "results_at").is_some();
        Ok(Some(Survey {
            id: survey_id.to_string(),
            def,
            stage,
            keys,
            versions,
            opens_at,
            closes_at,
            results_published,
        }))
    })??;
    let mut s = parsed.ok_or_else(|| Error::NotFound("survey".into()))?;
    // Publishing results is one write, to the results document (atomic).
    s.results_published |= store
        .read(space, &DocId::Results { item: survey_id.to_string() }, |d| get_str(d, &ROOT, "results").is_some())?;
    Ok(s)
}

/// The definition as a file (docs/surveys.md), to keep or to import elsewhere.
pub fn export_definition(store: &Store, space: &str, survey_id: &str) -> Result<String> {
    Ok(form::export(&load(store, space, survey_id, false)?.def))
}

// ---------------------------------------------------------------------------
// Coordinators: create, edit, publish, close

/// Create a survey in draft from a definition file. Returns its id.
pub fn create(store: &Store, space: &str, definition: &str) -> Result<String> {
    let (def, _) = form::import(definition).map_err(Error::Definition)?;
    store.my_coordinator(space, "run surveys")?;
    let id = new_id()?;
    let json = serde_json::to_string(&def)?;
    store.write_item(space, &id, "survey", &def.title, |tx| {
        tx.put(ROOT, "kind", "survey")?;
        tx.put(ROOT, "draft", json.as_str())?;
        tx.put(ROOT, "created_at", now_ms())?;
        Ok(())
    })?;
    Ok(id)
}

/// Change a survey. A draft is replaced; a published survey gets a new
/// version (its audience refreshed from the register), and responses keep
/// the version they answered. Whether it is anonymous, and whether it counts
/// members or households, cannot change once published.
pub fn edit(store: &Store, space: &str, survey_id: &str, definition: &str) -> Result<()> {
    let (def, _) = form::import(definition).map_err(Error::Definition)?;
    let me = store.my_coordinator(space, "run surveys")?;
    let s = load(store, space, survey_id, false)?;
    match s.stage {
        Stage::Draft => {
            let json = serde_json::to_string(&def)?;
            store.write(space, &item(survey_id), |tx| {
                tx.put(ROOT, "draft", json.as_str())?;
                Ok(())
            })?;
            Ok(())
        }
        Stage::Closed => Err(Error::Invalid("a closed survey cannot change".into())),
        Stage::Open | Stage::Scheduled => {
            if def.anonymous != s.def.anonymous || def.per != s.def.per {
                return Err(Error::Invalid(
                    "whether a survey is anonymous, and per member or household, is fixed once published".into(),
                ));
            }
            write_version(store, space, survey_id, &me, &def).map(|_| ())
        }
    }
}

fn write_version(store: &Store, space: &str, survey_id: &str, me: &str, def: &SurveyDef) -> Result<usize> {
    let audience = store.with_view(space, |v| audience(v, def))?;
    let json = serde_json::to_string(def)?;
    let audience_json = serde_json::to_string(&audience)?;
    // Dated after every version this device holds, so a new version always
    // numbers after the one it replaces, even within one millisecond.
    let latest = store.read(space, &item(survey_id), |d| {
        d.keys(ROOT)
            .filter(|k| k.starts_with("v/"))
            .filter_map(|k| map_at(d, &ROOT, &k).and_then(|e| get_i64(d, &e, "at")))
            .max()
            .unwrap_or(0)
    })?;
    let at = now_ms().max(latest + 1);
    let key = format!("v/{at:013}/{}", new_id()?);
    store.write(space, &item(survey_id), |tx| {
        let v = tx.put_object(ROOT, key.as_str(), ObjType::Map)?;
        tx.put(&v, "def", json.as_str())?;
        tx.put(&v, "at", at)?;
        tx.put(&v, "by", me)?;
        tx.put(&v, "audience", audience_json.as_str())?;
        // Who may answer, for a cheap check when a response is submitted.
        let members = tx.put_object(&v, "members", ObjType::Map)?;
        for r in &audience {
            tx.put(&members, r.member.as_str(), r.key.as_str())?;
        }
        Ok(())
    })?;
    Ok(audience.len())
}

/// Publish a draft: its first version, with the audience frozen now.
/// Returns how many members it is for.
pub fn publish(store: &Store, space: &str, survey_id: &str) -> Result<usize> {
    let me = store.my_coordinator(space, "run surveys")?;
    let s = load(store, space, survey_id, false)?;
    if s.stage != Stage::Draft {
        return Err(Error::Invalid("the survey is already published".into()));
    }
    if s.def.closes_at.is_some_and(|c| c <= now_ms()) {
        return Err(Error::Invalid("the survey would close before it opens".into()));
    }
    write_version(store, space, survey_id, &me, &s.def)
}

/// Close the survey now. Responses dated from now on are set aside.
pub fn close(store: &Store, space: &str, survey_id: &str) -> Result<()> {
    let me = store.my_coordinator(space, "run surveys")?;
    let s = load(store, space, survey_id, false)?;
    if !matches!(s.stage, Stage::Open | Stage::Scheduled) {
        return Err(Error::Invalid("only a published, open survey can be closed".into()));
    }
    let latest: i64 = store.query(|c| {
        Ok(c.prepare_cached("SELECT coalesce(max(at), 0) FROM responses WHERE space_id = ?1 AND survey_id = ?2")?
            .query_row(params![space, survey_id], |r| r.get(0))?)
    })?;
    store.close_item(space, survey_id, &me, latest)
}

// ---------------------------------------------------------------------------
// Residents: drafts, checks, submissions

fn parse_answers(answers: &str) -> Result<Map<String, Json>> {
    match serde_json::from_str::<Json>(answers) {
        Ok(Json::Object(m)) => Ok(m),
        Ok(_) => Err(Error::Invalid("answers are a JSON object keyed by question id".into())),
        Err(e) => Err(Error::Invalid(format!("answers are not valid JSON (line {})", e.line()))),
    }
}

fn current_form(s: &Survey) -> Result<Form> {
    match s.latest() {
        Some(v) => Ok(v.form.clone()),
        None => Form::compile(&s.def).map_err(Error::Definition),
    }
}

/// Keep a draft of this member's answers on this device (never synced).
pub fn save_draft(store: &Store, space: &str, survey_id: &str, answers: &str) -> Result<()> {
    parse_answers(answers)?;
    load(store, space, survey_id, false)?;
    store.local_write(|c| {
        c.prepare_cached(
            "INSERT OR REPLACE INTO survey_drafts (space_id, survey_id, answers, saved_at) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![space, survey_id, answers, now_ms()])?;
        Ok(())
    })
}

/// The draft kept on this device, if any.
pub fn draft(store: &Store, space: &str, survey_id: &str) -> Result<Option<String>> {
    store.query(|c| {
        Ok(c.prepare_cached("SELECT answers FROM survey_drafts WHERE space_id = ?1 AND survey_id = ?2")?
            .query_row(params![space, survey_id], |r| r.get(0))
            .optional()?)
    })
}

pub fn discard_draft(store: &Store, space: &str, survey_id: &str) -> Result<()> {
    store.local_write(|c| {
        c.prepare_cached("DELETE FROM survey_drafts WHERE space_id = ?1 AND survey_id = ?2")?
            .execute(params![space, survey_id])?;
        Ok(())
    })
}

/// The items (groups and questions) these answers show, in order: skip
/// logic, for the screen.
pub fn visible(store: &Store, space: &str, survey_id: &str, answers: &str) -> Result<Vec<String>> {
    let s = load(store, space, survey_id, false)?;
    Ok(current_form(&s)?.visible(&parse_answers(answers)?))
}

/// The problems these answers have, one per question (empty: ready to submit).
pub fn check(store: &Store, space: &str, survey_id: &str, answers: &str) -> Result<Vec<form::Problem>> {
    let s = load(store, space, survey_id, false)?;
    Ok(current_form(&s)?.check(&parse_answers(answers)?).1)
}

/// Submit (or resubmit) this member's answers to the current version.
/// Returns the receipt. Answers to hidden questions are not stored.
pub fn submit(store: &Store, space: &str, survey_id: &str, answers: &str) -> Result<String> {
    let me = store.my_member(space)?;
    write_response(store, space, survey_id, &me, &me, answers)
}

/// An interviewer (a coordinator) enters the answers of `member`, taken at
/// their door (入户调查): they count as that member's response, the audit of
/// a named survey shows who entered them, and a later response by the member
/// (or another interview) replaces them as usual. Returns the receipt.
pub fn submit_for(store: &Store, space: &str, survey_id: &str, member: &str, answers: &str) -> Result<String> {
    let me = store.my_coordinator(space, "enter answers for a member")?;
    write_response(store, space, survey_id, &me, member, answers)
}

fn write_response(
    store: &Store,
    space: &str,
    survey_id: &str,
    me: &str,
    member: &str,
    answers: &str,
) -> Result<String> {
    let s = load(store, space, survey_id, false)?;
    match s.stage {
        Stage::Open => {}
        Stage::Draft => return Err(Error::Invalid("the survey is not published".into())),
        Stage::Scheduled => return Err(Error::Invalid("the survey is not open yet".into())),
        Stage::Closed => return Err(Error::Invalid("the survey is closed".into())),
    }
    let latest = s.latest().ok_or_else(|| Error::Internal("an open survey without a version".into()))?;
    let key = latest.key.clone();
    let listed = store.read(space, &item(survey_id), |d| {
        map_at(d, &ROOT, &key).and_then(|v| map_at(d, &v, "members")).is_some_and(|m| get_str(d, &m, member).is_some())
    })?;
    if !listed {
        return Err(Error::NotAllowed("this survey is not for this member".into()));
    }
    let (kept, problems) = latest.form.check(&parse_answers(answers)?);
    if !problems.is_empty() {
        return Err(Error::Answers(Problems(problems)));
    }
    // A member's later response is always dated later, even within one ms.
    let last: i64 = store.query(|c| {
        Ok(c.prepare_cached(
            "SELECT coalesce(max(at), 0) FROM responses
             WHERE space_id = ?1 AND survey_id = ?2 AND (author = ?3 OR respondent = ?4)",
        )?
        .query_row(params![space, survey_id, me, member], |r| r.get(0))?)
    })?;
    let at = now_ms().max(last + 1);
    let entry = format!("a/{at:013}/{}", new_id()?);
    let json = serde_json::to_string(&kept)?;
    let hash = store.write(space, &response_doc(me, survey_id), |tx| {
        let a = tx.put_object(ROOT, entry.as_str(), ObjType::Map)?;
        tx.put(&a, "item", survey_id)?;
        tx.put(&a, "version", key.as_str())?;
        tx.put(&a, "answers", json.as_str())?;
        tx.put(&a, "at", at)?;
        if member != me {
            tx.put(&a, "for", member)?;
        }
        Ok(())
    })?;
    if member == me {
        discard_draft(store, space, survey_id)?;
    }
    hash.map(|h| hex::encode(h.0)).ok_or_else(|| Error::Internal("the response wrote nothing".into()))
}

/// One of this member's submissions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Submission {
    pub version: i64,
    pub answers: String,
    pub at: i64,
    pub receipt: String,
}

/// This member's submissions to the survey, latest first (the first is the
/// one that counts while the survey is open).
pub fn my_submissions(store: &Store, space: &str, survey_id: &str) -> Result<Vec<Submission>> {
    let me = store.my_member(space)?;
    let s = load(store, space, survey_id, false)?;
    let mut out: Vec<Submission> = rows(store, space, survey_id, Some(&me))?
        .into_iter()
        .map(|r| Submission {
            version: s.keys.iter().position(|k| *k == r.version).map(|p| p as i64 + 1).unwrap_or(0),
            answers: r.answers,
            at: r.at,
            receipt: hex::encode(r.receipt),
        })
        .collect();
    out.sort_by(|a, b| (b.at, &b.receipt).cmp(&(a.at, &a.receipt)));
    Ok(out)
}

fn rows(store: &Store, space: &str, survey_id: &str, author: Option<&str>) -> Result<Vec<Response>> {
    store.query(|c| {
        let mut stmt = c.prepare_cached(
            "SELECT author, entry, version, answers, at, receipt, respondent FROM responses
             WHERE space_id = ?1 AND survey_id = ?2 AND (?3 IS NULL OR author = ?3)",
        )?;
        let rows = stmt.query_map(params![space, survey_id, author], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get::<_, Vec<u8>>(5)?, r.get(6)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (author, entry, version, answers, at, receipt, respondent) = row?;
            let Ok(receipt) = <[u8; 32]>::try_from(receipt.as_slice()) else { continue };
            out.push(Response { author, respondent, entry, version, answers, at, receipt });
        }
        Ok(out)
    })
}

// ---------------------------------------------------------------------------
// Results and exports

/// Who may enter answers for another member: coordinators and admins.
fn interviewers(store: &Store, space: &str) -> Result<std::collections::BTreeSet<String>> {
    store.with_view(space, |v| v.members.iter().filter(|(_, m)| m.is_privileged()).map(|(id, _)| id.clone()).collect())
}

fn floor_check(s: &Survey, filter: &Filter, counted: i64) -> Result<()> {
    if s.def.anonymous && !filter.is_empty() && counted < ANONYMITY_FLOOR {
        return Err(Error::NotAllowed(format!(
            "an anonymous survey's results are not shown for a grid or building with fewer than {ANONYMITY_FLOOR} responses"
        )));
    }
    Ok(())
}

/// The results from the responses this device holds. Coordinators' devices
/// and the server hold every member's responses; a resident's device holds
/// only the resident's own, so apps show residents [`published_results`].
pub fn results(store: &Store, space: &str, survey_id: &str, filter: &Filter) -> Result<Results> {
    let s = survey(store, space, survey_id)?;
    let responses = rows(store, space, survey_id, None)?;
    let r = results::count(
        survey_id,
        &s.versions,
        s.opens_at,
        s.closes_at,
        &responses,
        &interviewers(store, space)?,
        filter,
    );
    floor_check(&s, filter, r.responses)?;
    Ok(r)
}

/// Who took part in a survey, as its results count it: the member whose
/// response counts for each respondent (a member, or a household), with the
/// time of that response. From the responses this device holds: a
/// coordinator's device holds them all.
pub fn took_part(store: &Store, space: &str, survey_id: &str) -> Result<Vec<(String, i64)>> {
    let s = survey(store, space, survey_id)?;
    let responses = rows(store, space, survey_id, None)?;
    let (counted, _) = results::decide(&s.versions, s.opens_at, s.closes_at, &responses, &interviewers(store, space)?);
    Ok(counted.iter().map(|c| (c.response.respondent.clone(), c.response.at)).collect())
}

/// Publish the results as this coordinator counts them into
/// `results/<survey>`, which every member reads: one write, so atomic.
pub fn publish_results(store: &Store, space: &str, survey_id: &str) -> Result<Results> {
    store.my_coordinator(space, "run surveys")?;
    let r = results(store, space, survey_id, &Filter::default())?;
    let json = serde_json::to_string(&r)?;
    let now = now_ms();
    store.write(space, &DocId::Results { item: survey_id.to_string() }, |tx| {
        tx.put(ROOT, "results", json.as_str())?;
        tx.put(ROOT, "published_at", now)?;
        Ok(())
    })?;
    // Who took part earns by the participation rules (see `ledger::award_participation`).
    crate::ledger::award_participation(store, space, survey_id)?;
    Ok(r)
}

/// The published results, if there are any.
pub fn published_results(store: &Store, space: &str, survey_id: &str) -> Result<Option<Results>> {
    let json = store.read(space, &DocId::Results { item: survey_id.to_string() }, |d| get_str(d, &ROOT, "results"))?;
    let Some(json) = json else { return Ok(None) };
    let r: Results = serde_json::from_str(&json)?;
    // Results name their survey: another survey's shown here count nowhere.
    Ok((r.survey == survey_id).then_some(r))
}

/// The counted responses in a filter, in export order: by time for a named
/// survey, by an unrelated hash for an anonymous one.
fn counted_rows<'a>(
    s: &'a Survey,
    responses: &'a [Response],
    interviewers: &std::collections::BTreeSet<String>,
    filter: &Filter,
) -> Result<Vec<Counted<'a>>> {
    let (mut counted, _) = results::decide(&s.versions, s.opens_at, s.closes_at, responses, interviewers);
    counted.retain(|c| filter.admits(c.respondent));
    floor_check(s, filter, counted.len() as i64)?;
    if s.def.anonymous {
        counted.sort_by_key(|c| unlinked_order(&c.response.receipt));
    } else {
        counted.sort_by(|a, b| (a.response.at, &a.response.receipt).cmp(&(b.response.at, &b.response.receipt)));
    }
    Ok(counted)
}

/// An order that says nothing about time or person: the receipt re-hashed.
fn unlinked_order(receipt: &[u8; 32]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(receipt).into()
}

/// Export the counted responses as CSV for Excel and WPS: UTF-8 with a BOM,
/// CRLF line ends, one row per response, one column per question (per
/// option for multiple choice and ranking). Coordinators only.
pub fn export_csv(store: &Store, space: &str, survey_id: &str, filter: &Filter) -> Result<String> {
    use crate::store::csv_cell as cell;
    store.my_coordinator(space, "run surveys")?;
    let s = survey(store, space, survey_id)?;
    let responses = rows(store, space, survey_id, None)?;
    let counted = counted_rows(&s, &responses, &interviewers(store, space)?, filter)?;
    let view = store.view(space)?;
    let questions = export_questions(&s);
    let mut header: Vec<String> = Vec::new();
    if !s.def.anonymous {
        header.extend(["member", "name", "household"].map(String::from));
    }
    header.extend(["grid", "building", "version"].map(String::from));
    if !s.def.anonymous {
        header.extend(["submitted_at", "receipt"].map(String::from));
    }
    for q in &questions {
        match q.kind {
            Kind::Multiple | Kind::Ranking => {
                for o in &q.options {
                    header.push(format!("{} [{}.{}]: {}", q.label, q.id, o.value, o.label));
                }
            }
            _ => header.push(format!("{} [{}]", q.label, q.id)),
        }
        if q.other {
            header.push(format!("{} [{}:other]", q.label, q.id));
        }
    }
    let mut out = String::from("\u{feff}");
    out.push_str(&header.iter().map(|h| cell(h, true)).collect::<Vec<_>>().join(","));
    out.push_str("\r\n");
    for c in &counted {
        let mut row: Vec<String> = Vec::new();
        let r = c.respondent;
        if !s.def.anonymous {
            let name = view.members.get(&r.member).map(|m| m.name.clone()).unwrap_or_default();
            let household = r.key.strip_prefix("household:").unwrap_or("");
            row.extend([cell(&r.member, true), cell(&name, true), cell(household, true)]);
        }
        row.push(cell(r.grid.as_deref().unwrap_or(""), true));
        row.push(cell(r.building.as_deref().unwrap_or(""), true));
        row.push(c.version.number.to_string());
        if !s.def.anonymous {
            row.push(iso_utc(c.response.at));
            row.push(hex::encode(c.response.receipt));
        }
        for q in &questions {
            let a = c.answers.get(&q.id);
            match q.kind {
                Kind::Multiple => {
                    let picked: Vec<&str> =
                        a.and_then(Json::as_array).into_iter().flatten().filter_map(Json::as_str).collect();
                    for o in &q.options {
                        row.push(if a.is_none() {
                            String::new()
                        } else {
                            u8::from(picked.contains(&o.value.as_str())).to_string()
                        });
                    }
                }
                Kind::Ranking => {
                    let ranked: Vec<&str> =
                        a.and_then(Json::as_array).into_iter().flatten().filter_map(Json::as_str).collect();
                    for o in &q.options {
                        row.push(
                            ranked.iter().position(|v| *v == o.value).map(|p| (p + 1).to_string()).unwrap_or_default(),
                        );
                    }
                }
                Kind::Single => {
                    let v = a.and_then(Json::as_str).unwrap_or("");
                    let label = q.options.iter().find(|o| o.value == v).map(|o| o.label.as_str());
                    row.push(cell(label.unwrap_or(if v == OTHER { "其他" } else { v }), true));
                }
                Kind::Number | Kind::Rating => row.push(a.map(|n| n.to_string()).unwrap_or_default()),
                _ => row.push(cell(a.and_then(Json::as_str).unwrap_or(""), true)),
            }
            if q.other {
                let t = c.answers.get(&format!("{}:other", q.id)).and_then(Json::as_str).unwrap_or("");
                row.push(cell(t, true));
            }
        }
        out.push_str(&row.join(","));
        out.push_str("\r\n");
    }
    Ok(out)
}

/// Questions of every version, latest version's order first, for exports.
fn export_questions(s: &Survey) -> Vec<form::Question> {
    let mut out: Vec<form::Question> = Vec::new();
    for v in s.versions.iter().rev() {
        for c in v.form.answerable() {
            if !out.iter().any(|q| q.id == c.q.id) {
                out.push(c.q.clone());
            }
        }
    }
    out
}

/// Export the counted responses as JSON. Coordinators only.
pub fn export_json(store: &Store, space: &str, survey_id: &str, filter: &Filter) -> Result<String> {
    store.my_coordinator(space, "run surveys")?;
    let s = survey(store, space, survey_id)?;
    let responses = rows(store, space, survey_id, None)?;
    let counted = counted_rows(&s, &responses, &interviewers(store, space)?, filter)?;
    let view = store.view(space)?;
    let rows: Vec<Json> = counted
        .iter()
        .map(|c| {
            let r = c.respondent;
            let mut o = Map::new();
            if !s.def.anonymous {
                o.insert("member".into(), r.member.clone().into());
                o.insert("name".into(), view.members.get(&r.member).map(|m| m.name.clone()).unwrap_or_default().into());
                o.insert("household".into(), r.key.strip_prefix("household:").map(Json::from).unwrap_or(Json::Null));
                o.insert("submitted_at".into(), iso_utc(c.response.at).into());
                o.insert("receipt".into(), hex::encode(c.response.receipt).into());
            }
            o.insert("grid".into(), r.grid.clone().map(Json::from).unwrap_or(Json::Null));
            o.insert("building".into(), r.building.clone().map(Json::from).unwrap_or(Json::Null));
            o.insert("version".into(), c.version.number.into());
            o.insert("answers".into(), Json::Object(c.answers.clone()));
            Json::Object(o)
        })
        .collect();
    let doc = serde_json::json!({
        "survey": survey_id,
        "title": s.def.title,
        "anonymous": s.def.anonymous,
        "per": s.def.per,
        "filter": filter,
        "questions": export_questions(&s),
        "responses": rows,
    });
    Ok(serde_json::to_string_pretty(&doc)?)
}

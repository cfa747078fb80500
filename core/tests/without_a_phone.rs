//! Residents without phones take part in everything: a coordinator registers
//! them, enters their paper ballot, an interviewer enters their survey
//! answers at their door, a coordinator logs the hours they gave and checks
//! them in; each action records who entered it and counts as theirs, and a
//! phone linked to them later keeps all of it.
//!
//! Replicas are given what the real sync gives them: every document the
//! phone's member may read, nothing more.

mod common;

use common::{copy_doc, join, phone, sync_readable};
use linli_core::Error;
use linli_core::doc::DocId;
use linli_core::ledger::{self, ActivityInput, HoursInput};
use linli_core::poll::{self, BallotVisibility, Eligibility, VoteKind, VoteSpec};
use linli_core::space::{MemberStatus, SpaceEdit};
use linli_core::store::{Store, now_ms};
use linli_core::survey;

fn all_members_vote() -> VoteSpec {
    VoteSpec {
        title: "楼道加装扶手".into(),
        kind: VoteKind::YesNoAbstain,
        eligibility: Eligibility::AllMembers,
        visibility: BallotVisibility::CoordinatorsOnly,
        hide_results: false,
        proxy_limit: 1,
    }
}

#[test]
fn a_member_without_a_phone_votes_on_paper_and_keeps_it_when_a_phone_joins() {
    let coord = phone();
    let space = coord.create_space("幸福里", "王主任").expect("space");
    let granny = coord.add_member(&space, "张奶奶", &[]).expect("add");
    let view = coord.view(&space).expect("view");
    assert_eq!(view.members[&granny].status, MemberStatus::Active, "active at once, with no device");
    assert!(view.members[&granny].devices.is_empty());
    let row = coord.members(&space, 0, 10).expect("members").into_iter().find(|m| m.member_id == granny);
    assert_eq!(row.map(|m| m.phones), Some(0), "the list shows she has no phone");

    let vote = poll::create(&coord, &space, &all_members_vote()).expect("create");
    assert_eq!(poll::open(&coord, &space, &vote).expect("open"), 2, "she is in the electorate");
    let paper = poll::enter_paper_ballot(&coord, &space, &vote, &granny, &[0]).expect("paper ballot");

    // Her grandson sets up a phone for her: an invite naming her.
    let inv = coord.invite_member(&space, &granny, None).expect("invite for her");
    assert_eq!(inv.member_id, granny);
    let p = phone();
    let (_, joined) =
        p.join(&inv.code, "奶奶", common::all_changes(&coord, &space, &DocId::Space)).expect("her phone joins");
    assert_eq!(joined, granny, "the phone joins the member, not a new one");
    copy_doc(&p, &coord, &space, &DocId::Space);
    let view = coord.view(&space).expect("view");
    assert_eq!(view.members[&granny].name, "张奶奶", "the register keeps her name");
    assert_eq!(view.members[&granny].devices.len(), 1);
    // A second invite for her is refused now that she has a phone.
    assert!(matches!(coord.invite_member(&space, &granny, None), Err(Error::Invalid(_))));

    let t = poll::results(&coord, &space, &vote).expect("results").expect("visible");
    assert!(t.counts(&paper), "what was entered for her stays hers");
    // Her own ballot from her phone replaces the paper one.
    sync_readable(&coord, &p, &space);
    let own = poll::cast(&p, &space, &vote, &[1]).expect("her own ballot");
    sync_readable(&p, &coord, &space);
    let t = poll::results(&coord, &space, &vote).expect("results").expect("visible");
    assert!(t.counts(&own) && !t.counts(&paper));
    let audit = t.audit.iter().find(|a| a.receipt == paper).expect("paper in the audit");
    assert_eq!((audit.mode, audit.author.as_str()), (poll::Mode::Paper, coord.my_member(&space).expect("me").as_str()));
}

#[test]
fn invites_are_revoked_and_never_name_a_coordinator_or_a_member_with_a_phone() {
    let coord = phone();
    let space = coord.create_space("s", "主任").expect("space");
    let me = coord.my_member(&space).expect("me");
    let (_r, resident) = join(&coord, &space, "居民");
    assert!(coord.invite_member(&space, &resident, None).is_err(), "she has a phone");
    assert!(coord.invite_member(&space, &me, None).is_err(), "a coordinator");
    let member = coord.add_member(&space, "李爷爷", &[]).expect("add");
    let inv = coord.invite_member(&space, &member, None).expect("invite");
    let invite = coord
        .view(&space)
        .expect("view")
        .invites
        .iter()
        .find(|(_, i)| i.member == member)
        .map(|(id, _)| id.clone())
        .expect("invite entry");
    coord.edit_space(&space, &[SpaceEdit::RevokeInvite { invite, by: me.clone() }]).expect("revoke");
    let p = phone();
    let err = p.join(&inv.code, "李爷爷", common::all_changes(&coord, &space, &DocId::Space));
    assert!(
        matches!(err, Err(Error::Refused { reason: linli_core::error::Refusal::BadInvite, .. })),
        "a revoked invite admits no phone: {err:?}"
    );
    assert!(coord.view(&space).expect("view").members[&member].devices.is_empty());
}

#[test]
fn an_interviewer_enters_answers_at_the_door_and_the_audit_says_so() {
    let coord = phone();
    let space = coord.create_space("s", "主任").expect("space");
    let me = coord.my_member(&space).expect("me");
    let (r, resident) = join(&coord, &space, "居民");
    let granny = coord.add_member(&space, "张奶奶", &[]).expect("add");
    let def = serde_json::json!({
        "format": "linli-survey/1",
        "title": "入户需求调查",
        "items": [{"type": "number", "id": "n", "label": "家庭人数", "required": true, "min": 1, "max": 9}]
    })
    .to_string();
    let s = survey::create(&coord, &space, &def).expect("survey");
    survey::publish(&coord, &space, &s).expect("publish");
    let receipt = survey::submit_for(&coord, &space, &s, &granny, r#"{"n": 2}"#).expect("interview");
    // Bad input changes nothing: a broken answer, a member the survey is not for.
    assert!(matches!(survey::submit_for(&coord, &space, &s, &granny, r#"{"n": 0}"#), Err(Error::Answers(_))));
    assert!(matches!(survey::submit_for(&coord, &space, &s, "nobody", r#"{"n": 2}"#), Err(Error::NotAllowed(_))));
    // A resident is not an interviewer.
    sync_readable(&coord, &r, &space);
    assert!(matches!(survey::submit_for(&r, &space, &s, &granny, r#"{"n": 2}"#), Err(Error::NotAllowed(_))));
    // Written anyway, in the resident's own document: it counts nowhere.
    let key = format!("a/{:013}/x", now_ms());
    r.write(&space, &DocId::own_private(&resident, &s), |tx| {
        use automerge::transaction::Transactable;
        let version = coord_version(&coord, &space, &s);
        let a = tx.put_object(automerge::ROOT, key.as_str(), automerge::ObjType::Map)?;
        tx.put(&a, "version", version.as_str())?;
        tx.put(&a, "answers", r#"{"n": 9}"#)?;
        tx.put(&a, "at", now_ms())?;
        tx.put(&a, "for", granny.as_str())?;
        Ok(())
    })
    .expect("a resident's entry for someone else");
    sync_readable(&r, &coord, &space);

    let res = survey::results(&coord, &space, &s, &Default::default()).expect("results");
    assert_eq!(res.responses, 1, "the interview is her response; the resident's entry for her is not");
    let row = res.audit.iter().find(|a| a.receipt == receipt).expect("in the audit");
    assert_eq!((row.status.as_str(), row.entered_by.as_deref()), ("counted", Some(me.as_str())));
    assert_eq!(res.set_aside.get("not_authorised"), Some(&1));
}

fn coord_version(coord: &Store, space: &str, s: &str) -> String {
    survey::survey(coord, space, s).expect("survey").latest().expect("version").key.clone()
}

#[test]
fn hours_a_volunteer_without_a_phone_gave_are_logged_for_them_and_credited_alike_everywhere() {
    let coord = phone();
    let space = coord.create_space("s", "主任").expect("space");
    let (r, resident) = join(&coord, &space, "陈阿姨");
    let (n, _neighbour) = join(&coord, &space, "邻居");
    let grandpa = coord.add_member(&space, "李爷爷", &[]).expect("add");
    ledger::set_category(&coord, &space, Some("repair"), "维修", 10, true).expect("category");
    let hours = HoursInput {
        to: Some(resident.clone()),
        activity: None,
        category: "repair".into(),
        minutes: 120,
        on: now_ms() - 3_600_000,
        note: "修水管".into(),
    };
    let h = ledger::log_hours_for(&coord, &space, &grandpa, &hours).expect("logged for him");
    assert!(matches!(ledger::log_hours_for(&r, &space, &grandpa, &hours), Err(Error::NotAllowed(_))));
    assert!(
        ledger::decide_hours(&coord, &space, &h, true, "").is_err(),
        "whoever logged hours for a volunteer cannot confirm them"
    );
    sync_readable(&coord, &r, &space);
    let listed = ledger::hours(&r, &space, &grandpa).expect("hours");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].entered_by.as_deref(), Some(coord.my_member(&space).expect("me").as_str()));
    ledger::confirm_hours(&r, &space, &h).expect("the recipient confirms");
    sync_readable(&r, &coord, &space);
    // He is also checked in at an activity.
    let a = ledger::create_activity(
        &coord,
        &space,
        &ActivityInput {
            title: "楼道清扫".into(),
            category: "repair".into(),
            starts_at: now_ms(),
            place: "3栋".into(),
            slots: None,
        },
    )
    .expect("activity");
    ledger::check_in(&coord, &space, &a, &[(grandpa.clone(), 60)]).expect("check in");
    for p in [&r, &n] {
        sync_readable(&coord, p, &space);
    }
    // Every phone that reads the ledger computes the same balance for him.
    for s in [&coord.store, &r.store, &n.store] {
        assert_eq!(
            ledger::balance(s, &space, &grandpa).expect("balance").points,
            30,
            "20 for the repair, 10 checked in"
        );
    }
}

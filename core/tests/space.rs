//! The register of a space, through real stores on disk.

mod common;

use automerge::transaction::Transactable;
use automerge::{ROOT, ReadDoc};
use common::{all_changes, copy_doc, join, phone};
use linli_core::doc::DocId;
use linli_core::space::{MemberStatus, Relation, Role, SpaceEdit};
use linli_core::store::Store;
use linli_core::{Error, Refusal};

fn unit(id: &str, area_centi: i64) -> SpaceEdit {
    SpaceEdit::AddUnit {
        unit: id.into(),
        building: "3栋".into(),
        entrance: "1单元".into(),
        room: id.to_uppercase(),
        area_centi,
        grid: None,
        household: None,
    }
}

#[test]
fn creator_is_admin_and_the_register_survives_reopening() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("linli.db");
    let (space, me, device) = {
        let s = Store::open(&path).expect("open");
        let space = s.create_space("幸福里社区", "王老师").expect("create");
        s.edit_space(&space, &[SpaceEdit::AddGrid { grid: "g1".into(), name: "第一网格".into() }]).expect("grid");
        s.edit_space(&space, &[unit("u1", 8_975)]).expect("unit");
        let me = s.my_member(&space).expect("me");
        (space, me, s.device_id())
    };
    let s = Store::open(&path).expect("reopen");
    assert_eq!(s.device_id(), device, "the device key is kept in the store");
    let v = s.view(&space).expect("view");
    assert_eq!(v.name, "幸福里社区");
    assert!(v.members[&me].has(Role::Admin));
    assert_eq!(v.units["u1"].area_centi, 8_975);
    assert_eq!(v.grids["g1"], "第一网格");
    let members = s.members(&space, 0, 10).expect("members");
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].name, "王老师");
    assert!(members[0].roles.contains(&Role::Admin));
    assert_eq!(s.spaces().expect("spaces")[0].member_id.as_deref(), Some(me.as_str()));
}

#[test]
fn invite_redeemed_once_adds_the_device_to_the_member() {
    let coord = phone();
    let space = coord.create_space("s", "coordinator").expect("create");
    let (resident, member) = join(&coord, &space, "李阿姨");
    let v = coord.view(&space).expect("view");
    let m = &v.members[&member];
    assert_eq!(m.status, MemberStatus::Active);
    assert!(m.devices.contains_key(&resident.device_id()));
    assert!(m.has(Role::Resident) && !m.has(Role::Coordinator));
    assert_eq!(resident.my_member(&space).expect("me"), member);

    // The same code a second time is refused and changes nothing.
    let code = {
        // Recreate the code: make another invite, redeem it, then try it again.
        let inv = coord.create_invite(&space, "张伯", &[Role::Resident], None).expect("invite");
        let p = phone();
        p.join(&inv.code, "张伯", all_changes(&coord, &space, &DocId::Space)).expect("first redemption");
        copy_doc(&p, &coord, &space, &DocId::Space);
        inv.code
    };
    let thief = phone();
    let before = coord.view(&space).expect("view");
    let err = thief.join(&code, "someone", all_changes(&coord, &space, &DocId::Space)).expect_err("second redemption");
    assert!(matches!(err, Error::Refused { reason: Refusal::BadInvite, .. }), "{err:?}");
    assert_eq!(coord.view(&space).expect("view"), before);
}

#[test]
fn expired_invite_is_refused() {
    let coord = phone();
    let space = coord.create_space("s", "c").expect("create");
    let inv = coord.create_invite(&space, "late", &[Role::Resident], Some(-1)).expect("invite");
    let p = phone();
    let err = p.join(&inv.code, "late", all_changes(&coord, &space, &DocId::Space)).expect_err("expired");
    assert!(matches!(err, Error::Refused { reason: Refusal::BadInvite, .. }), "{err:?}");
    assert!(p.join("NOT-A-CODE", "x", vec![]).is_err());
}

#[test]
fn owner_link_verified_by_coordinator_and_area_kept_exactly() {
    let admin = phone();
    let space = admin.create_space("s", "admin").expect("create");
    let (_r, member) = join(&admin, &space, "业主");
    admin.edit_space(&space, &[unit("u7", 12_001)]).expect("unit");
    admin
        .edit_space(&space, &[SpaceEdit::Link { member: member.clone(), unit: "u7".into(), relation: Relation::Owner }])
        .expect("link");
    let me = admin.my_member(&space).expect("me");
    admin
        .edit_space(&space, &[SpaceEdit::VerifyOwner { member: member.clone(), unit: "u7".into(), by: me }])
        .expect("verify");
    let v = admin.view(&space).expect("view");
    let owners: Vec<_> = v.verified_owners().collect();
    assert_eq!(owners.len(), 1);
    assert_eq!(owners[0].member, member);
    assert_eq!(v.units["u7"].area_centi, 12_001);
    // Bad references are refused with a clear error and write nothing.
    let heads = admin.heads(&space, &DocId::Space).expect("heads");
    assert!(matches!(
        admin.edit_space(
            &space,
            &[SpaceEdit::Link { member: "nobody".into(), unit: "u7".into(), relation: Relation::Tenant }]
        ),
        Err(Error::Invalid(_))
    ));
    assert!(matches!(admin.edit_space(&space, &[unit("u8", 0)]), Err(Error::Invalid(_))));
    assert_eq!(admin.heads(&space, &DocId::Space).expect("heads"), heads);
}

#[test]
fn concurrent_grant_and_revoke_resolve_to_revoke_on_every_replica() {
    let a = phone();
    let space = a.create_space("s", "admin a").expect("create");
    let (b, b_member) = join(&a, &space, "admin b");
    let (_c, c_member) = join(&a, &space, "volunteer c");
    a.edit_space(&space, &[SpaceEdit::SetRole { member: b_member.clone(), role: Role::Admin, granted: true }])
        .expect("grant");
    copy_doc(&a, &b, &space, &DocId::Space);
    // Offline: a grants volunteer to c, b revokes it (never granted, but concurrent values conflict).
    a.edit_space(&space, &[SpaceEdit::SetRole { member: c_member.clone(), role: Role::Volunteer, granted: true }])
        .expect("grant");
    b.edit_space(&space, &[SpaceEdit::SetRole { member: c_member.clone(), role: Role::Volunteer, granted: false }])
        .expect("revoke");
    copy_doc(&a, &b, &space, &DocId::Space);
    copy_doc(&b, &a, &space, &DocId::Space);
    for s in [&a, &b] {
        let v = s.view(&space).expect("view");
        assert!(!v.members[&c_member].has(Role::Volunteer), "revoke wins");
    }
    assert_eq!(a.view(&space).expect("a"), b.view(&space).expect("b"));
    // A later grant, made after seeing both, holds.
    a.edit_space(&space, &[SpaceEdit::SetRole { member: c_member.clone(), role: Role::Volunteer, granted: true }])
        .expect("regrant");
    assert!(a.view(&space).expect("view").members[&c_member].has(Role::Volunteer));
    // The query table agrees with the register.
    let rows = a.members(&space, 0, 100).expect("rows");
    let c_row = rows.iter().find(|r| r.member_id == c_member).expect("c row");
    assert!(c_row.roles.contains(&Role::Volunteer));
}

#[test]
fn own_documents_and_item_index() {
    let coord = phone();
    let space = coord.create_space("s", "c").expect("create");
    let (res, member) = join(&coord, &space, "居民");
    // The resident learns the register that includes them, then writes their own document.
    let doc = DocId::own_public(&member, "2026");
    res.write(&space, &doc, |tx| {
        tx.put(ROOT, "note", "楼道灯坏了")?;
        Ok(())
    })
    .expect("own write");
    copy_doc(&res, &coord, &space, &doc);
    let note =
        coord.read(&space, &doc, |d| d.get(ROOT, "note").ok().flatten().map(|(v, _)| v.to_string())).expect("read");
    assert_eq!(note.as_deref(), Some("\"楼道灯坏了\""));
    // A resident may not write the item index; a coordinator may.
    let err = res.index_item(&space, "vote1", "vote", "加装电梯").expect_err("resident index");
    assert!(matches!(err, Error::NotAllowed(_)), "{err:?}");
    coord.index_item(&space, "vote1", "vote", "加装电梯").expect("coordinator index");
    let items = coord.items(&space, 0, 10).expect("items");
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].title, "加装电梯");
    // Events are sent after writes.
    let rx = coord.subscribe();
    coord.index_item(&space, "survey1", "survey", "需求调查").expect("index");
    let ev = rx.try_recv().expect("event");
    assert_eq!(ev.space, space);
    assert!(matches!(ev.doc, DocId::Index { .. }));
}

#[test]
fn compaction_keeps_every_change_and_loads_the_same_document() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("linli.db");
    let (space, doc, heads) = {
        let s = Store::open(&path).expect("open");
        let space = s.create_space("s", "c").expect("create");
        let me = s.my_member(&space).expect("me");
        let doc = DocId::own_private(&me, "2026");
        for i in 0..150 {
            s.write(&space, &doc, |tx| {
                tx.put(ROOT, format!("k{i}"), i as i64)?;
                Ok(())
            })
            .expect("write");
        }
        let heads = s.heads(&space, &doc).expect("heads");
        (space, doc, heads)
    };
    let conn = rusqlite::Connection::open(&path).expect("raw");
    let chunks: i64 = conn
        .query_row("SELECT count(*) FROM chunks WHERE doc_id = ?1", [doc.to_string()], |r| r.get(0))
        .expect("count");
    assert!(chunks < linli_core::store::COMPACT_AFTER, "chunks were folded into a snapshot ({chunks})");
    let s = Store::open(&path).expect("reopen");
    assert_eq!(s.heads(&space, &doc).expect("heads"), heads);
    let n = s.read(&space, &doc, |d| d.length(ROOT)).expect("read");
    assert_eq!(n, 150);
    assert_eq!(s.changes_since(&space, &doc, &[]).expect("changes").len(), 150, "every signature kept");
}

#[test]
fn households_link_members_and_units() {
    let s = phone();
    let space = s.create_space("s", "c").expect("create");
    let me = s.my_member(&space).expect("me");
    s.edit_space(&space, &[SpaceEdit::AddHousehold { household: "h1".into(), label: "3栋502户".into() }])
        .expect("household");
    s.edit_space(
        &space,
        &[
            SpaceEdit::AddUnit {
                unit: "u1".into(),
                building: "3".into(),
                entrance: "1".into(),
                room: "502".into(),
                area_centi: 9_000,
                grid: None,
                household: Some("h1".into()),
            },
            SpaceEdit::SetHousehold { member: me.clone(), household: Some("h1".into()) },
        ],
    )
    .expect("unit and member");
    let v = s.view(&space).expect("view");
    assert_eq!(v.members[&me].household.as_deref(), Some("h1"));
    assert_eq!(v.units["u1"].household.as_deref(), Some("h1"));
    assert!(matches!(
        s.edit_space(&space, &[SpaceEdit::SetHousehold { member: me.clone(), household: Some("nope".into()) }]),
        Err(Error::Invalid(_))
    ));
    s.edit_space(&space, &[SpaceEdit::SetHousehold { member: me.clone(), household: None }]).expect("clear");
    assert_eq!(s.view(&space).expect("view").members[&me].household, None);
}

#[test]
fn the_store_is_safe_to_use_from_several_threads() {
    let s = std::sync::Arc::new(phone());
    let space = s.create_space("s", "c").expect("create");
    let me = s.my_member(&space).expect("me");
    let rx = s.subscribe();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (s, space, me) = (s.clone(), space.clone(), me.clone());
            std::thread::spawn(move || {
                for i in 0..25 {
                    if t == 0 {
                        s.edit_space(&space, &[unit(&format!("u{i}"), 1_000 + i)]).expect("unit");
                    } else {
                        s.write(&space, &DocId::own_private(&me, &format!("t{t}")), |tx| {
                            tx.put(ROOT, format!("k{i}"), i)?;
                            Ok(())
                        })
                        .expect("write");
                    }
                    let _ = s.members(&space, 0, 10).expect("read while others write");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    assert_eq!(s.units(&space, 0, 1_000).expect("units").len(), 25);
    for t in 1..4 {
        assert_eq!(s.read(&space, &DocId::own_private(&me, &format!("t{t}")), |d| d.length(ROOT)).expect("read"), 25);
    }
    assert_eq!(rx.try_iter().count(), 100, "one event per committed write");
}

#[test]
fn one_edit_adds_a_member_and_their_device() {
    let s = phone();
    let space = s.create_space("s", "c").expect("create");
    let key = linli_core::identity::DeviceKey::generate().expect("key");
    s.edit_space(
        &space,
        &[
            SpaceEdit::AddMember { member: "m1".into(), name: "新居民".into(), roles: vec![Role::Resident] },
            SpaceEdit::AddDevice { member: "m1".into(), device: key.id(), label: "phone".into() },
        ],
    )
    .expect("member and device in one change");
    let v = s.view(&space).expect("view");
    assert_eq!(v.member_of(&key.id()).map(|(m, _)| m), Some("m1"));
}

/// A member's feed reads only rows of documents it may read — and gives the
/// same changes as a walk of every row with the reader rule — then moves
/// its cursor past everything considered, so the next sync does not walk
/// the neighbours' private rows again.
#[test]
fn a_members_feed_reads_what_it_may_and_moves_past_the_rest() {
    let coord = phone();
    let space = coord.create_space("s", "主任").expect("create");
    let (a, ma) = join(&coord, &space, "甲");
    let (b, mb) = join(&coord, &space, "乙");
    for (p, m) in [(&a, &ma), (&b, &mb)] {
        copy_doc(&coord, p, &space, &DocId::Space);
        for (doc, k) in [(DocId::own_private(m, "2026"), "ballot"), (DocId::own_public(m, "2026"), "post")] {
            p.write(&space, &doc, |tx| Ok(tx.put(ROOT, k, 1)?)).expect("write");
            copy_doc(p, &coord, &space, &doc);
        }
    }
    let view = coord.view(&space).expect("view");
    let none = std::collections::HashSet::new();
    let rule = |d: &DocId| view.may_read(&ma, d);
    let walked = coord.feed(&space, 0, 1 << 20, &rule, &none, None).expect("feed");
    let read = coord.feed(&space, 0, 1 << 20, &rule, &none, Some(&ma)).expect("feed");
    let docs = |f: &linli_core::store::Feed| {
        let mut d: Vec<(String, usize)> = f.batches.iter().map(|b| (b.doc.to_string(), b.changes.len())).collect();
        d.sort();
        d
    };
    assert_eq!(docs(&read), docs(&walked));
    assert!(
        !docs(&read).iter().any(|(d, _)| *d == DocId::own_private(&mb, "2026").to_string()),
        "not a neighbour's ballot"
    );
    assert!(docs(&read).iter().any(|(d, _)| *d == DocId::own_private(&ma, "2026").to_string()), "one's own");
    let max = coord.max_arrived(&space).expect("max");
    assert_eq!((read.cursor, walked.cursor), (max, max), "past everything considered");
    // The neighbour writes again in private: nothing to read, the cursor moves on.
    b.write(&space, &DocId::own_private(&mb, "2026"), |tx| Ok(tx.put(ROOT, "again", 2)?)).expect("write");
    copy_doc(&b, &coord, &space, &DocId::own_private(&mb, "2026"));
    let next = coord.feed(&space, read.cursor, 1 << 20, &rule, &none, Some(&ma)).expect("feed");
    assert_eq!((next.changes, next.cursor), (0, coord.max_arrived(&space).expect("max")));
}

/// Every module's query tables, rebuilt from the documents alone (one batch
/// per document into a fresh store), hold exactly the rows of a store that
/// took the same changes one write and one sync at a time (#15): what a
/// table holds is a function of the documents, not of how they arrived.
#[test]
fn every_query_table_rebuilds_from_the_documents_alike() {
    use linli_core::poll::{self, BallotVisibility, Eligibility, VoteKind, VoteSpec};
    use linli_core::{deliberation as d, ledger, survey};
    let dir = tempfile::tempdir().expect("tempdir");
    let coord = Store::open(dir.path().join("coord.db")).expect("open");
    let space = coord.create_space("幸福里", "主任").expect("create");
    let (a, _) = join(&coord, &space, "甲");
    let (b, mb) = join(&coord, &space, "乙");
    // Every document, register first, each change checked.
    let give = |from: &Store, to: &Store| common::push(from, to, &space);
    coord
        .edit_space(
            &space,
            &[unit("u1", 8_000), unit("u2", 9_500), SpaceEdit::AddGrid { grid: "g1".into(), name: "一网格".into() }],
        )
        .expect("units");
    ledger::set_category(&coord, &space, Some("repair"), "维修", 10, true).expect("category");
    let vote = poll::create(
        &coord,
        &space,
        &VoteSpec {
            title: "加装电梯".into(),
            kind: VoteKind::YesNoAbstain,
            eligibility: Eligibility::AllMembers,
            visibility: BallotVisibility::CoordinatorsOnly,
            hide_results: false,
            proxy_limit: 1,
        },
    )
    .expect("vote");
    poll::open(&coord, &space, &vote).expect("open");
    let def = r#"{"format": "linli-survey/1", "title": "需求", "items": [
        {"type": "number", "id": "people", "label": "人数", "required": true, "min": 1, "max": 20}]}"#;
    let s = survey::create(&coord, &space, def).expect("survey");
    survey::publish(&coord, &space, &s).expect("publish");
    for p in [&a.store, &b.store] {
        give(&coord, p);
    }
    poll::cast(&a, &space, &vote, &[0]).expect("yes");
    poll::cast(&b, &space, &vote, &[1]).expect("no");
    survey::submit(&a, &space, &s, r#"{"people": 3}"#).expect("answer");
    let on = linli_core::store::now_ms() - 3_600_000;
    let input = ledger::HoursInput {
        to: Some(mb.clone()),
        activity: None,
        category: "repair".into(),
        minutes: 90,
        on,
        note: "修水管".into(),
    };
    let h = ledger::log_hours(&a, &space, &input).expect("hours");
    let topic = d::raise_topic(&a, &space, "楼道灯", "安全", "坏了一周").expect("topic");
    let post = d::post(&a, &space, &topic, "三楼的灯不亮", None, None).expect("post");
    d::edit_post(&a, &space, &post, "三楼和二楼的灯不亮").expect("edit");
    give(&a, &b);
    ledger::confirm_hours(&b, &space, &h).expect("confirm");
    give(&b, &a);
    ledger::transfer(&a, &space, &mb, 5, "谢谢").expect("transfer");
    d::support(&b, &space, &topic).expect("support");
    d::react(&b, &space, &post, "👍").expect("react");
    for p in [&a.store, &b.store] {
        give(p, &coord);
    }
    poll::close(&coord, &space, &vote).expect("close");
    poll::publish(&coord, &space, &vote).expect("publish");
    survey::publish_results(&coord, &space, &s).expect("results");
    let fresh = Store::open(dir.path().join("fresh.db")).expect("open");
    give(&coord, &fresh);
    drop((coord, fresh));
    let rows = |file: &str, table: &str| {
        let c = rusqlite::Connection::open(dir.path().join(file)).expect("open");
        let mut stmt = c.prepare(&format!("SELECT * FROM {table}")).expect("prepare");
        let n = stmt.column_count();
        let mut out: Vec<String> = stmt
            .query_map([], |r| {
                (0..n)
                    .map(|i| r.get::<_, rusqlite::types::Value>(i).map(|v| format!("{v:?}")))
                    .collect::<Result<Vec<_>, _>>()
            })
            .expect("query")
            .map(|r| r.expect("row").join("|"))
            .collect();
        out.sort();
        out
    };
    let tables = [
        "members",
        "devices",
        "units",
        "links",
        "grids",
        "households",
        "items",
        "ballots",
        "proxy_grants",
        "topics",
        "topic_status",
        "supports",
        "posts",
        "hides",
        "reactions",
        "responses",
        "attendance",
        "ledger_categories",
        "ledger_rates",
        "ledger_rewards",
        "ledger_prices",
        "ledger_rules",
        "ledger_limits",
        "ledger_hours",
        "ledger_answers",
        "ledger_debits",
        "ledger_resolutions",
        "activities",
        "activity_signups",
        "activity_checkins",
        "offers",
        "ledger_awards",
    ];
    let mut filled = 0;
    for t in tables {
        let (was, now) = (rows("coord.db", t), rows("fresh.db", t));
        assert_eq!(was, now, "table {t}");
        filled += usize::from(!was.is_empty());
    }
    assert!(filled >= 15, "the activity reached most tables: {filled}");
}

//! Deliberation: topics, threads, moderation, consultations, decisions.

mod common;

use common::{all_changes, join, phone};
use linli_core::deliberation as d;
use linli_core::doc::DocId;
use linli_core::poll::{self, BallotVisibility, Eligibility, VoteKind, VoteSpec};
use linli_core::space::SpaceEdit;
use linli_core::store::Store;
use linli_core::{Error, Refusal};

/// Copy every document of `space` from one store to another, register first.
fn push(from: &Store, to: &Store, space: &str) {
    let mut docs = from.doc_ids(space).expect("docs");
    docs.sort_by_key(|d| *d != DocId::Space);
    for doc in docs {
        let r = to.apply(space, &doc, all_changes(from, space, &doc)).expect("apply");
        assert!(r.refused.is_empty(), "{doc}: {:?}", r.refused);
    }
}

fn community(n: usize) -> (common::Phone, String, Vec<(common::Phone, String)>) {
    let coord = phone();
    let space = coord.create_space("s", "主任").expect("create");
    let residents = (0..n).map(|i| join(&coord, &space, &format!("居民{i}"))).collect();
    (coord, space, residents)
}

#[test]
fn a_topic_reaches_the_agenda_by_support_counted_once_per_member() {
    let (coord, space, residents) = community(3);
    coord.edit_space(&space, &[SpaceEdit::SetSupportThreshold { supports: 3 }]).expect("threshold");
    let (r0, _) = &residents[0];
    push(&coord, r0, &space);
    let topic = d::raise_topic(r0, &space, "三号楼加装电梯", "住房", "老人上下楼困难").expect("raise");
    for (p, _) in &residents {
        push(r0, p, &space);
        d::support(p, &space, &topic).expect("support");
        d::support(p, &space, &topic).expect("pressing twice is harmless");
    }
    for (p, _) in &residents {
        push(p, &coord, &space);
    }
    let row = d::topics(&coord, &space, 0, 10).expect("topics").into_iter().find(|t| t.topic == topic).expect("row");
    assert_eq!(row.supports, 3, "once per member");
    assert_eq!(row.status, "agenda");
    // Below the threshold it stays open; a coordinator can accept or decline.
    let other = d::raise_topic(r0, &space, "增设快递柜", "生活", "").expect("raise");
    push(r0, &coord, &space);
    assert_eq!(
        d::topics(&coord, &space, 0, 10).expect("topics").iter().find(|t| t.topic == other).expect("row").status,
        "open"
    );
    d::decline_topic(&coord, &space, &other, "物业已安排").expect("decline");
    assert_eq!(
        d::topics(&coord, &space, 0, 10).expect("topics").iter().find(|t| t.topic == other).expect("row").status,
        "declined"
    );
    assert!(matches!(d::support(&coord, &space, "nope-x"), Err(Error::NotFound(_))));
    assert!(matches!(d::raise_topic(r0, &space, " ", "c", ""), Err(Error::Invalid(_))));
}

#[test]
fn threads_with_replies_quotes_edits_retractions_and_reactions() {
    let (coord, space, residents) = community(2);
    let (a, _) = &residents[0];
    let (b, _) = &residents[1];
    push(&coord, a, &space);
    let topic = d::raise_topic(a, &space, "楼道灯", "安全", "坏了一周").expect("raise");
    let first = d::post(a, &space, &topic, "三楼的灯不亮", None, None).expect("post");
    push(a, b, &space);
    let reply = d::post(b, &space, &topic, "四楼也是", Some(&first), Some(&first)).expect("reply");
    d::react(b, &space, &first, "👍").expect("react");
    d::react(b, &space, &first, "👍").expect("once");
    assert!(matches!(d::edit_post(b, &space, &first, "改别人的"), Err(Error::NotAllowed(_))), "only the author edits");
    push(b, a, &space);
    d::edit_post(a, &space, &first, "三楼和二楼的灯不亮").expect("edit");
    d::react(a, &space, &first, "👍").expect("react");
    let extra = d::post(a, &space, &topic, "发错了", None, None).expect("post");
    d::retract_post(a, &space, &extra).expect("retract");
    let posts = d::thread(a, &space, &topic).expect("thread");
    assert_eq!(posts.len(), 3);
    let p0 = posts.iter().find(|p| p.post == first).expect("first");
    assert_eq!(p0.body, "三楼和二楼的灯不亮");
    assert!(p0.edited_at.is_some());
    assert_eq!(p0.reactions, vec![("👍".to_string(), 2)]);
    let p1 = posts.iter().find(|p| p.post == reply).expect("reply");
    assert_eq!((p1.parent.as_deref(), p1.quote.as_deref()), (Some(first.as_str()), Some(first.as_str())));
    let p2 = posts.iter().find(|p| p.post == extra).expect("extra");
    assert!(p2.retracted && p2.body.is_empty());
    assert_eq!(d::post_history(a, &space, &first).expect("history"), vec!["三楼的灯不亮", "三楼和二楼的灯不亮"]);
}

#[test]
fn moderation_by_coordinators_only_and_logged() {
    let (coord, space, residents) = community(2);
    let (a, a_id) = &residents[0];
    push(&coord, a, &space);
    let topic = d::raise_topic(a, &space, "t", "c", "").expect("raise");
    let bad = d::post(a, &space, &topic, "广告", None, None).expect("post");
    push(a, &coord, &space);
    assert!(matches!(d::hide_post(a, &space, &bad, "spam"), Err(Error::NotAllowed(_))), "a resident cannot hide");
    // A resident's own, correctly signed device writing a hide straight into
    // the topic's coordination document is refused before it is merged.
    let key = linli_core::identity::DeviceKey::generate().expect("key");
    coord
        .edit_space(&space, &[SpaceEdit::AddDevice { member: a_id.clone(), device: key.id(), label: "tablet".into() }])
        .expect("device");
    let doc = DocId::Item { item: topic.clone() };
    let mut forged = automerge::Automerge::new().with_actor(key.actor());
    let mut tx = forged.transaction();
    let h = automerge::transaction::Transactable::put_object(
        &mut tx,
        automerge::ROOT,
        format!("h/{bad}"),
        automerge::ObjType::Map,
    )
    .expect("put");
    automerge::transaction::Transactable::put(&mut tx, &h, "reason", "mine").expect("put");
    tx.commit();
    let c = forged.get_last_local_change().expect("change");
    let signed = linli_core::doc::SignedChange {
        bytes: c.raw_bytes().to_vec(),
        signature: key.sign_change(&space, &doc, &c.hash()).to_vec(),
    };
    let r = coord.apply(&space, &doc, vec![signed]).expect("apply");
    assert_eq!(r.refused.len(), 1, "{r:?}");
    assert_eq!(r.refused[0].1, Refusal::NotAWriter(doc.to_string()));
    assert!(d::moderation_log(&coord, &space).expect("log").is_empty(), "no effect");
    // A coordinator hides it, with a reason everyone can read.
    d::hide_post(&coord, &space, &bad, "商业广告").expect("hide");
    let log = d::moderation_log(&coord, &space).expect("log");
    assert_eq!((log.len(), log[0].reason.as_str(), log[0].post.as_str()), (1, "商业广告", bad.as_str()));
    let posts = d::thread(&coord, &space, &topic).expect("thread");
    assert_eq!(posts[0].hidden.as_deref(), Some("商业广告"));
    assert!(posts[0].body.is_empty());
    push(&coord, a, &space);
    assert_eq!(d::moderation_log(a, &space).expect("log"), log, "the log is public");
}

#[test]
fn a_hidden_post_stays_hidden_whatever_order_things_arrive_in() {
    let (coord, space, residents) = community(2);
    let (a, _) = &residents[0];
    let (b, _) = &residents[1];
    push(&coord, a, &space);
    let topic = d::raise_topic(a, &space, "t", "c", "").expect("raise");
    let bad = d::post(a, &space, &topic, "不当言论", None, None).expect("post");
    push(a, &coord, &space);
    push(a, b, &space);
    d::hide_post(&coord, &space, &bad, "人身攻击").expect("hide");
    let reply = d::post(b, &space, &topic, "回复", Some(&bad), Some(&bad)).expect("reply");
    // Replica 1 gets the hide before the replies; replica 2 the replies first.
    let (r1, r2) = (phone(), phone());
    push(&coord, &r1, &space);
    push(b, &r1, &space);
    push(b, &r2, &space);
    push(a, &r2, &space);
    push(&coord, &r2, &space);
    for r in [&r1, &r2] {
        let posts = d::thread(r, &space, &topic).expect("thread");
        let hidden = posts.iter().find(|p| p.post == bad).expect("bad");
        assert_eq!(hidden.hidden.as_deref(), Some("人身攻击"));
        assert!(hidden.body.is_empty());
        assert!(posts.iter().any(|p| p.post == reply && p.hidden.is_none()));
    }
    assert_eq!(d::thread(&r1, &space, &topic).expect("t"), d::thread(&r2, &space, &topic).expect("t"));
}

#[test]
fn minutes_written_together_converge() {
    let (coord, space, residents) = community(1);
    let (r0, r0_id) = &residents[0];
    push(&coord, r0, &space);
    let topic = d::raise_topic(r0, &space, "垃圾分类", "环境", "").expect("raise");
    push(r0, &coord, &space);
    let c =
        d::create_consultation(&coord, &space, "三月议事会", "2026-03-05", "社区活动室", std::slice::from_ref(&topic))
            .expect("consultation");
    d::mark_attendance(&coord, &space, &c, r0_id, true).expect("present");
    d::edit_minutes(&coord, &space, &c, 0, 0, "会议开始。").expect("minutes");
    // A second coordinator phone: the same member's other device.
    let second = phone();
    let me = coord.my_member(&space).expect("me");
    coord
        .edit_space(
            &space,
            &[SpaceEdit::AddDevice { member: me.clone(), device: second.device_id(), label: "tablet".into() }],
        )
        .expect("device");
    push(&coord, &second, &space);
    // The tablet writes through the store directly, as the coordinator's second device.
    second
        .write(&space, &DocId::Item { item: c.clone() }, |tx| {
            let m = match automerge::ReadDoc::get(tx, automerge::ROOT, "minutes")? {
                Some((_, id)) => id,
                None => return Err(Error::NotFound("minutes".into())),
            };
            automerge::transaction::Transactable::splice_text(tx, &m, 5, 0, "讨论垃圾分类。")?;
            Ok(())
        })
        .expect("tablet edit");
    d::edit_minutes(&coord, &space, &c, 5, 0, "到会1人。").expect("concurrent edit");
    push(&coord, &second, &space);
    push(&second, &coord, &space);
    let (m1, m2) = (d::minutes(&coord, &space, &c).expect("m"), d::minutes(&second, &space, &c).expect("m"));
    assert_eq!(m1, m2);
    assert!(m1.starts_with("会议开始。") && m1.contains("讨论垃圾分类。") && m1.contains("到会1人。"), "{m1}");
    assert_eq!(d::attendance(&coord, &space, &c).expect("attendance"), vec![r0_id.clone()]);
    assert!(matches!(d::edit_minutes(&coord, &space, &c, 1_000, 0, "x"), Err(Error::Invalid(_))));
}

#[test]
fn from_decision_to_follow_up_timeline_and_disclosure() {
    let (coord, space, residents) = community(2);
    let (r0, _) = &residents[0];
    push(&coord, r0, &space);
    let topic = d::raise_topic(r0, &space, "修缮健身器材", "设施", "器材生锈").expect("raise");
    d::post(r0, &space, &topic, "需要尽快修", None, None).expect("post");
    push(r0, &coord, &space);
    d::accept_topic(&coord, &space, &topic).expect("accept");
    let vote = poll::create(
        &coord,
        &space,
        &VoteSpec {
            title: "是否维修".into(),
            kind: VoteKind::YesNoAbstain,
            eligibility: Eligibility::AllMembers,
            visibility: BallotVisibility::AllMembers,
            hide_results: false,
            proxy_limit: 1,
        },
    )
    .expect("vote");
    poll::open(&coord, &space, &vote).expect("open");
    poll::cast(&coord, &space, &vote, &[0]).expect("cast");
    poll::close(&coord, &space, &vote).expect("close");
    poll::publish(&coord, &space, &vote).expect("publish");
    let me = coord.my_member(&space).expect("me");
    let meeting =
        d::create_consultation(&coord, &space, "四月议事会", "2026-04-02", "活动室", std::slice::from_ref(&topic))
            .expect("meeting");
    let input = d::DecisionInput {
        outcome: "维修全部器材".into(),
        vote: Some(vote.clone()),
        consultation: Some(meeting.clone()),
        responsible: vec![me.clone()],
        deadline: "2026-05-01".into(),
    };
    d::decide(&coord, &space, &topic, &input).expect("decide");
    let task = d::add_task(&coord, &space, &topic, "更换单杠", "物业", "2026-04-15").expect("task");
    d::update_task(&coord, &space, &topic, &task, "doing", "已订购", &[]).expect("update");
    // A resident volunteered two hours on the repair: the update links them.
    linli_core::ledger::set_category(&coord, &space, Some("repair"), "维修", 10, true).expect("category");
    push(&coord, &residents[0].0, &space);
    let hours = linli_core::ledger::log_hours(
        &residents[0].0,
        &space,
        &linli_core::ledger::HoursInput {
            to: Some(me.clone()),
            activity: None,
            category: "repair".into(),
            minutes: 120,
            on: linli_core::store::now_ms(),
            note: "帮忙安装单杠".into(),
        },
    )
    .expect("hours");
    push(&residents[0].0, &coord, &space);
    d::update_task(&coord, &space, &topic, &task, "done", "5月3日修好", std::slice::from_ref(&hours)).expect("update");
    assert!(matches!(d::update_task(&coord, &space, &topic, "nope", "done", "", &[]), Err(Error::NotFound(_))));
    assert!(matches!(
        d::update_task(&coord, &space, &topic, &task, "done", "", &["no-such-hours".to_string()]),
        Err(Error::NotFound(_))
    ));
    // A satisfaction vote closes the loop.
    let sat = poll::create(
        &coord,
        &space,
        &VoteSpec {
            title: "维修满意度".into(),
            kind: VoteKind::Satisfaction,
            eligibility: Eligibility::AllMembers,
            visibility: BallotVisibility::AllMembers,
            hide_results: false,
            proxy_limit: 1,
        },
    )
    .expect("vote");
    assert!(
        matches!(d::close_loop(&coord, &space, &topic, &vote), Err(Error::Invalid(_))),
        "only a satisfaction vote closes the loop"
    );
    poll::open(&coord, &space, &sat).expect("open");
    poll::cast(&coord, &space, &sat, &[1]).expect("cast");
    poll::close(&coord, &space, &sat).expect("close");
    poll::publish(&coord, &space, &sat).expect("publish");
    d::close_loop(&coord, &space, &topic, &sat).expect("close the loop");
    let events = d::timeline(&coord, &space, &topic).expect("timeline");
    let kinds: Vec<&str> = events.iter().map(|e| e.what.as_str()).collect();
    assert_eq!(
        kinds,
        vec!["raised", "posted", "status", "decided", "task_update", "task_update", "loop_closed"],
        "{events:?}"
    );
    assert!(events.windows(2).all(|w| w[0].at <= w[1].at));
    let disc = d::disclosure(&coord, &space, &topic).expect("disclosure");
    assert_eq!(disc.status, "decided");
    assert_eq!(disc.vote.as_ref().map(|v| v.counted), Some(1));
    assert_eq!(disc.tasks[0].status, "done");
    assert_eq!((disc.tasks[0].updates[1].hours.len(), disc.tasks[0].updates[1].minutes), (1, 120));
    assert!(events.iter().any(|e| e.detail.ends_with("(120 min volunteer hours)")), "{events:?}");
    assert_eq!(disc.decision.as_ref().and_then(|x| x.consultation.clone()), Some(meeting));
    assert_eq!(disc.satisfaction.as_ref().and_then(|t| t.satisfaction.as_ref()).map(|r| r.basis_points), Some(10_000));
    let json = serde_json::to_string(&disc).expect("json");
    assert!(json.contains("维修全部器材"));
    let md = disc.to_markdown();
    assert!(
        md.contains("# 修缮健身器材")
            && md.contains("- [x] 更换单杠")
            && md.contains("5月3日修好 (志愿服务 120 分钟")
            && md.contains("同意: 1"),
        "{md}"
    );
    // Residents read the same disclosure once synced.
    push(&coord, r0, &space);
    assert_eq!(d::disclosure(r0, &space, &topic).expect("disclosure"), disc);
}

/// A time is never later than the change that carries it (#13, item 5): an
/// edit its author's device dates a day ahead — written around the API, to
/// stand as the post's latest edit for ever — is taken at its change's time,
/// so the author's next honest edit is the body everyone reads.
#[test]
fn an_edit_dated_ahead_does_not_stay_the_latest() {
    use automerge::transaction::Transactable;
    let (coord, space, residents) = community(1);
    let (a, me) = &residents[0];
    push(&coord, a, &space);
    let topic = d::raise_topic(a, &space, "楼道灯", "安全", "坏了一周").expect("raise");
    let post = d::post(a, &space, &topic, "三楼的灯不亮", None, None).expect("post");
    let year = linli_core::store::year_of(linli_core::store::now_ms());
    let forum = DocId::own_public(me, &format!("forum-{year}"));
    let ahead = linli_core::store::now_ms() + 86_400_000;
    a.write(&space, &forum, |tx| {
        let e = tx.put_object(automerge::ROOT, format!("e/{post}/{ahead:013}/zz"), automerge::ObjType::Map)?;
        tx.put(&e, "body", "永远置顶")?;
        tx.put(&e, "at", ahead)?;
        Ok(())
    })
    .expect("write");
    std::thread::sleep(std::time::Duration::from_millis(5));
    d::edit_post(a, &space, &post, "三楼和二楼的灯不亮").expect("edit");
    push(a, &coord, &space);
    for s in [&a.store, &coord.store] {
        let p = d::thread(s, &space, &topic).expect("thread").into_iter().find(|p| p.post == post).expect("post");
        assert_eq!(p.body, "三楼和二楼的灯不亮", "the honest edit is the latest");
        assert!(p.edited_at.is_some_and(|t| t < ahead));
    }
}

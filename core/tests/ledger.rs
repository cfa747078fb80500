//! Points for services: the catalogue, hours and their confirmation,
//! activities, participation rewards, spending, offline double spends,
//! statements and reports, forgery and determinism, on real stores.

mod common;

use std::collections::BTreeMap;

use automerge::ROOT;
use automerge::transaction::Transactable;
use common::{Phone, craft, deliver_shuffled, every_change, join, phone, push};
use linli_core::Error;
use linli_core::doc::DocId;
use linli_core::identity::DeviceKey;
use linli_core::ledger::{
    self, ActivityInput, COMMUNITY, FlagKind, HoursInput, HoursStatus, OfferInput, OfferKind, Resolution, RewardInput,
    RuleOn,
};
use linli_core::space::SpaceEdit;
use linli_core::store::{Store, now_ms, year_of};
use proptest::prelude::*;

struct Town {
    coord: Phone,
    space: String,
    residents: Vec<(Phone, String)>,
}

impl Town {
    fn r(&self, i: usize) -> &Store {
        &self.residents[i].0
    }
    fn id(&self, i: usize) -> &str {
        &self.residents[i].1
    }
    /// Everyone ends up with everything.
    fn sync(&self) {
        for (p, _) in &self.residents {
            push(p, &self.coord, &self.space);
        }
        for (p, _) in &self.residents {
            push(&self.coord, p, &self.space);
        }
    }
}

/// A coordinator with a catalogue (repairs at 10 points an hour, a haircut
/// for 15 points, one in stock) and `n` residents who hold it.
fn town(n: usize) -> Town {
    let coord = phone();
    let space = coord.create_space("幸福里", "主任").expect("create");
    let residents: Vec<_> = (0..n).map(|i| join(&coord, &space, &format!("居民{i}"))).collect();
    ledger::set_category(&coord, &space, Some("repair"), "维修", 10, true).expect("category");
    ledger::set_reward(
        &coord,
        &space,
        &RewardInput {
            id: Some("haircut".into()),
            name: "理发".into(),
            description: "社区理发室".into(),
            price: 15,
            stock: Some(1),
            provider: None,
            active: true,
        },
    )
    .expect("reward");
    let t = Town { coord, space, residents };
    t.sync();
    t
}

fn hours_to(to: &str, minutes: i64) -> HoursInput {
    HoursInput {
        to: Some(to.into()),
        activity: None,
        category: "repair".into(),
        minutes,
        on: now_ms() - 3_600_000,
        note: "修自行车".into(),
    }
}

fn tick() {
    std::thread::sleep(std::time::Duration::from_millis(3));
}

fn balance(s: &Store, space: &str, m: &str) -> i64 {
    ledger::balance(s, space, m).expect("balance").points
}

/// The invariants every settled ledger keeps.
fn check_invariants(s: &Store, space: &str) {
    let (book, settled) = ledger::ledger(s, space).expect("ledger");
    assert_eq!(settled.balances.values().sum::<i64>(), 0, "the ledger sums to zero");
    for (account, bal) in &settled.balances {
        let sum: i64 = book
            .movements
            .iter()
            .filter(|m| settled.order.contains(&m.id))
            .map(|m| {
                if &m.to == account {
                    m.points
                } else if &m.from == account {
                    -m.points
                } else {
                    0
                }
            })
            .sum();
        assert_eq!(sum, *bal, "the balance of {account} is the sum of its entries");
        if account != COMMUNITY {
            assert_eq!(balance(s, space, account), *bal, "one account's balance agrees with the whole ledger");
        }
    }
}

#[test]
fn hours_are_confirmed_spent_and_reported() {
    let t = town(2);
    let (li, chen) = (t.id(0).to_string(), t.id(1).to_string());
    // Li offers; Chen asks.
    let offer = ledger::post_offer(
        t.r(0),
        &t.space,
        &OfferInput {
            kind: OfferKind::Offer,
            category: "repair".into(),
            title: "修自行车".into(),
            description: "周末可上门".into(),
            availability: "周六上午".into(),
        },
    )
    .expect("offer");
    t.sync();
    let open = ledger::offers(t.r(1), &t.space, Some(OfferKind::Offer), true).expect("offers");
    assert_eq!((open.len(), open[0].author.as_str()), (1, li.as_str()));
    assert!(matches!(ledger::set_offer_open(t.r(1), &t.space, &offer, false), Err(Error::NotFound(_))), "not hers");
    ledger::set_offer_open(t.r(0), &t.space, &offer, false).expect("close");
    assert!(ledger::offers(t.r(0), &t.space, None, true).expect("offers").is_empty());

    // Li logs 90 minutes for Chen: nothing moves until Chen confirms.
    let h = ledger::log_hours(t.r(0), &t.space, &hours_to(&chen, 90)).expect("log");
    assert_eq!(balance(t.r(0), &t.space, &li), 0);
    assert!(matches!(ledger::confirm_hours(t.r(0), &t.space, &h), Err(Error::NotFound(_) | Error::NotAllowed(_))));
    t.sync();
    assert_eq!(ledger::hours_to_answer(t.r(1), &t.space).expect("todo")[0].id, h);
    assert!(matches!(ledger::confirm_hours(t.r(0), &t.space, &h), Err(Error::NotAllowed(_))), "not the recipient");
    ledger::confirm_hours(t.r(1), &t.space, &h).expect("confirm");
    t.sync();
    assert_eq!(balance(t.r(0), &t.space, &li), 15, "90 minutes at 10 an hour");
    let mine = ledger::hours(t.r(0), &t.space, &li).expect("hours");
    assert_eq!((mine[0].status.clone(), mine[0].points), (HoursStatus::Confirmed, Some(15)));

    // Bad input changes nothing.
    let before = ledger::ledger(t.r(0), &t.space).expect("ledger").0.movements.len();
    for bad in [hours_to(&chen, 0), hours_to(&chen, 24 * 60 + 1), hours_to(&li, 30), hours_to("nobody", 30)] {
        assert!(ledger::log_hours(t.r(0), &t.space, &bad).is_err());
    }
    assert!(matches!(
        ledger::log_hours(t.r(0), &t.space, &HoursInput { category: "nope".into(), ..hours_to(&chen, 30) }),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(ledger::transfer(t.r(0), &t.space, &chen, 16, ""), Err(Error::Invalid(_))), "more than held");
    assert!(matches!(ledger::transfer(t.r(0), &t.space, &chen, 0, ""), Err(Error::Invalid(_))));
    assert!(matches!(ledger::set_category(t.r(0), &t.space, None, "x", 5, true), Err(Error::NotAllowed(_))));
    assert_eq!(ledger::ledger(t.r(0), &t.space).expect("ledger").0.movements.len(), before);

    // A rate change applies to services given from then on.
    ledger::set_category(&t.coord, &t.space, Some("repair"), "维修", 20, true).expect("rate");
    t.sync();
    assert_eq!(balance(t.r(0), &t.space, &li), 15, "hours already given keep their day's rate");

    // Li spends: a haircut (the only one in stock), then 5 points to Chen.
    let d = ledger::redeem(t.r(0), &t.space, "haircut").expect("redeem");
    assert_eq!(balance(t.r(0), &t.space, &li), 0);
    assert!(matches!(ledger::transfer(t.r(0), &t.space, &chen, 1, ""), Err(Error::Invalid(_))));
    t.sync();
    assert_eq!(ledger::rewards(t.r(1), &t.space).expect("rewards")[0].left, Some(0));
    assert!(matches!(ledger::redeem(t.r(1), &t.space, "haircut"), Err(Error::Invalid(_))), "out of stock");

    // Chen gives Li 30 minutes of repairs back, at the new rate; Li confirms
    // and pays Chen 3 points for a favour.
    let h2 = ledger::log_hours(t.r(1), &t.space, &HoursInput { on: now_ms(), ..hours_to(&li, 30) }).expect("log");
    t.sync();
    ledger::confirm_hours(t.r(0), &t.space, &h2).expect("confirm");
    t.sync();
    assert_eq!(balance(t.r(1), &t.space, &chen), 10);
    ledger::set_offer_open(t.r(0), &t.space, &offer, true).expect("reopen");
    ledger::transfer(t.r(1), &t.space, &li, 3, "谢谢").expect("transfer");
    t.sync();
    for s in [&t.coord as &Store, t.r(0), t.r(1)] {
        assert_eq!((balance(s, &t.space, &li), balance(s, &t.space, &chen)), (3, 7));
        assert_eq!(balance(s, &t.space, COMMUNITY), -10, "25 issued, 15 come back for the haircut");
        check_invariants(s, &t.space);
    }

    // Li's statement: earned 15, redeemed 15, received 3.
    let st = ledger::statement(t.r(0), &t.space, &li, None, None).expect("statement");
    let lines: Vec<(&str, i64, i64)> = st.lines.iter().map(|l| (l.reason.as_str(), l.points, l.balance)).collect();
    assert_eq!(lines, [("hours", 15, 15), ("redeem", -15, 0), ("transfer", 3, 3)]);
    assert_eq!(st.lines[1].movement, format!("d/{d}"));
    assert_eq!((st.opening, st.closing), (0, 3));
    // A statement from a time on opens with the balance before it.
    let later = ledger::statement(t.r(0), &t.space, &li, Some(st.lines[2].at), None).expect("statement");
    assert_eq!((later.opening, later.lines.len(), later.closing), (0, 1, 3));
    assert!(matches!(ledger::statement(t.r(1), &t.space, &li, None, None), Err(Error::NotAllowed(_))));

    // Reports.
    let totals = ledger::totals(&t.coord, &t.space, None, None).expect("totals");
    assert_eq!((totals.issued, totals.redeemed, totals.transferred, totals.in_circulation), (25, 15, 3, 10));
    assert_eq!(totals.by_category.len(), 1);
    assert_eq!((totals.by_category[0].name.as_str(), totals.by_category[0].minutes), ("维修", 120));
    assert_eq!(totals.by_month.iter().map(|m| m.issued).sum::<i64>(), 25);
    let hours = ledger::volunteer_hours(&t.coord, &t.space, None, None).expect("hours");
    assert_eq!(
        hours.iter().map(|h| (h.member.as_str(), h.minutes)).collect::<Vec<_>>(),
        [(li.as_str(), 90), (chen.as_str(), 30)]
    );
    let csv = ledger::export_csv(&t.coord, &t.space, None, None).expect("csv");
    assert!(csv.starts_with("\u{feff}movement,date,from,to,points"));
    assert_eq!(csv.matches("\r\n").count(), 1 + 4, "a header and four movements");
    assert!(csv.contains(",redeem,") && csv.contains("谢谢"));
    let json: serde_json::Value =
        serde_json::from_str(&ledger::export_json(&t.coord, &t.space, None, None).expect("json")).expect("parse");
    assert_eq!(json.as_array().map(Vec::len), Some(4));
    assert!(matches!(ledger::export_csv(t.r(0), &t.space, None, None), Err(Error::NotAllowed(_))));
}

#[test]
fn a_declined_entry_is_decided_by_a_coordinator() {
    let t = town(2);
    let (li, chen) = (t.id(0).to_string(), t.id(1).to_string());
    let h = ledger::log_hours(t.r(0), &t.space, &hours_to(&chen, 120)).expect("log");
    t.sync();
    ledger::decline_hours(t.r(1), &t.space, &h, "只修了半小时").expect("decline");
    assert!(matches!(ledger::decline_hours(t.r(1), &t.space, &h, " "), Err(Error::Invalid(_))), "a reason is needed");
    t.sync();
    assert!(
        matches!(&ledger::hours(t.r(0), &t.space, &li).expect("h")[0].status, HoursStatus::Declined { reason } if reason == "只修了半小时")
    );
    assert_eq!(balance(t.r(0), &t.space, &li), 0);
    let todo = ledger::hours_to_answer(&t.coord, &t.space).expect("todo");
    assert_eq!(todo.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(), [h.as_str()]);
    assert!(matches!(ledger::decide_hours(t.r(1), &t.space, &h, true, ""), Err(Error::NotAllowed(_))));
    ledger::decide_hours(&t.coord, &t.space, &h, true, "核实后确认").expect("decide");
    t.sync();
    assert_eq!(balance(t.r(1), &t.space, &li), 20);
    assert_eq!(ledger::hours(t.r(0), &t.space, &li).expect("h")[0].status, HoursStatus::Credited);
    // Changing the decision to reject takes the credit back on every phone.
    ledger::decide_hours(&t.coord, &t.space, &h, false, "重新核实").expect("reject");
    t.sync();
    assert_eq!(balance(t.r(0), &t.space, &li), 0);
    assert!(ledger::hours_to_answer(&t.coord, &t.space).expect("todo").is_empty());
}

#[test]
fn activities_have_a_roster_and_credit_a_group_at_once() {
    let t = town(3);
    let a = ledger::create_activity(
        &t.coord,
        &t.space,
        &ActivityInput {
            title: "周六清扫楼道".into(),
            category: "repair".into(),
            starts_at: now_ms(),
            place: "3栋".into(),
            slots: Some(2),
        },
    )
    .expect("activity");
    t.sync();
    for i in 0..3 {
        ledger::sign_up(t.r(i), &t.space, &a, true).expect("sign up");
        tick();
    }
    ledger::sign_up(t.r(2), &t.space, &a, false).expect("withdraw");
    tick();
    ledger::sign_up(t.r(2), &t.space, &a, true).expect("again");
    t.sync();
    let roster = ledger::roster(&t.coord, &t.space, &a).expect("roster");
    assert_eq!(
        roster.iter().map(|r| (r.member.as_str(), r.waitlisted)).collect::<Vec<_>>(),
        [(t.id(0), false), (t.id(1), false), (t.id(2), true)]
    );
    // The coordinator checks the first two in with their hours, one change.
    let group = [(t.id(0).to_string(), 120), (t.id(1).to_string(), 60)];
    ledger::check_in(&t.coord, &t.space, &a, &group).expect("check in");
    assert!(matches!(ledger::check_in(t.r(0), &t.space, &a, &group), Err(Error::NotAllowed(_))));
    t.sync();
    assert_eq!((balance(t.r(2), &t.space, t.id(0)), balance(t.r(2), &t.space, t.id(1))), (20, 10));
    let roster = ledger::roster(t.r(0), &t.space, &a).expect("roster");
    assert_eq!(roster[0].minutes, Some(120));
    // Volunteers may also log hours for an activity: a coordinator confirms them.
    let h =
        ledger::log_hours(t.r(2), &t.space, &HoursInput { to: None, activity: Some(a.clone()), ..hours_to("", 60) })
            .expect("log");
    t.sync();
    assert!(ledger::hours_to_answer(&t.coord, &t.space).expect("todo").iter().any(|x| x.id == h));
    ledger::decide_hours(&t.coord, &t.space, &h, true, "").expect("credit");
    t.sync();
    assert_eq!(balance(t.r(2), &t.space, t.id(2)), 10);
    check_invariants(&t.coord, &t.space);
}

fn survey_def() -> String {
    serde_json::json!({
        "format": "linli-survey/1",
        "title": "需求调查",
        "items": [{"type": "number", "id": "n", "label": "人数", "required": true, "min": 1, "max": 9}]
    })
    .to_string()
}

/// Participation rests on public facts (#15, item 2): each phone is given
/// only what the real sync gives it — a resident never receives another's
/// answers or private ballots — and every phone shows the same balances.
/// Only what the module counts earns: not an answer to a survey that does
/// not exist, not a ballot cast "for" someone else, not one after the close.
#[test]
fn participation_rests_on_public_facts_and_every_phone_agrees() {
    use linli_core::poll::{self, BallotVisibility, Eligibility, VoteKind, VoteSpec};
    let coord = phone();
    let space = coord.create_space("幸福里", "主任").expect("create");
    let (li_phone, li) = join(&coord, &space, "李阿姨");
    let (b_phone, b) = join(&coord, &space, "邻居");
    let s = linli_core::survey::create(&coord, &space, &survey_def()).expect("survey");
    linli_core::survey::publish(&coord, &space, &s).expect("publish");
    let rule = ledger::add_rule(&coord, &space, RuleOn::Survey, None, 5).expect("rule");
    ledger::add_rule(&coord, &space, RuleOn::Vote, None, 3).expect("rule");
    ledger::add_rule(&coord, &space, RuleOn::Meeting, None, 3).expect("rule");
    let spec = VoteSpec {
        title: "加装电梯".into(),
        kind: VoteKind::YesNoAbstain,
        eligibility: Eligibility::AllMembers,
        visibility: BallotVisibility::CoordinatorsOnly,
        hide_results: false,
        proxy_limit: 1,
    };
    let vote = poll::create(&coord, &space, &spec).expect("vote");
    poll::open(&coord, &space, &vote).expect("open");
    let phones: [&Store; 3] = [&coord, &li_phone, &b_phone];
    let sync = || {
        for p in &phones[1..] {
            common::sync_readable(p, &coord, &space);
        }
        for p in &phones[1..] {
            common::sync_readable(&coord, p, &space);
        }
    };
    sync();
    tick();
    // Li answers twice and votes; she writes an answer to a survey that
    // does not exist, and a ballot "for" her neighbour.
    linli_core::survey::submit(&li_phone, &space, &s, r#"{"n": 2}"#).expect("submit");
    linli_core::survey::submit(&li_phone, &space, &s, r#"{"n": 3}"#).expect("resubmit");
    poll::cast(&li_phone, &space, &vote, &[0]).expect("cast");
    li_phone
        .write(&space, &DocId::own_private(&li, "nosuchsurvey"), |tx| {
            let a = tx.put_object(ROOT, format!("a/{:013}/x", now_ms()), automerge::ObjType::Map)?;
            tx.put(&a, "version", "v/1")?;
            tx.put(&a, "answers", r#"{"n": 1}"#)?;
            tx.put(&a, "at", now_ms())?;
            Ok(())
        })
        .expect("an answer to nothing");
    li_phone
        .write(&space, &DocId::own_private(&li, &vote), |tx| {
            let e = tx.put_object(ROOT, format!("b/{:013}/x", now_ms()), automerge::ObjType::Map)?;
            tx.put(&e, "for", b.as_str())?;
            tx.put(&e, "mode", "own")?;
            tx.put(&e, "choice", "[0]")?;
            tx.put(&e, "at", now_ms())?;
            Ok(())
        })
        .expect("a ballot for someone else");
    let c = linli_core::deliberation::create_consultation(&coord, &space, "议事会", "2026-12-01", "活动室", &[])
        .expect("consultation");
    linli_core::deliberation::mark_attendance(&coord, &space, &c, &li, true).expect("present");
    linli_core::deliberation::mark_attendance(&coord, &space, &c, &li, true).expect("present again");
    sync();
    assert!(
        linli_core::survey::results(&b_phone, &space, &s, &Default::default()).expect("results").responses == 0,
        "the neighbour's phone holds none of Li's answers"
    );
    for p in phones {
        assert_eq!(balance(p, &space, &li), 3, "before any award: the meeting, on every phone");
    }
    poll::close(&coord, &space, &vote).expect("close");
    poll::publish(&coord, &space, &vote).expect("publish");
    linli_core::survey::close(&coord, &space, &s).expect("close");
    linli_core::survey::publish_results(&coord, &space, &s).expect("publish");
    assert_eq!(ledger::award_participation(&coord, &space, &vote).expect("again"), 0, "awarded once");
    sync();
    for p in phones {
        assert_eq!(balance(p, &space, &li), 11, "5 for the survey, 3 for the vote, 3 for the meeting, on every phone");
        assert_eq!(balance(p, &space, &b), 0, "a ballot cast for her by someone else earns her nothing");
        assert!(ledger::flags(p, &space).expect("flags").is_empty());
    }
    // She spends it all; no phone sees her overdrawn.
    ledger::transfer(&li_phone, &space, &b, 11, "谢谢").expect("transfer");
    sync();
    for p in phones {
        assert_eq!((balance(p, &space, &li), balance(p, &space, &b)), (0, 11));
        assert!(ledger::flags(p, &space).expect("flags").is_empty(), "the same flags (none) everywhere");
    }
    // A reward entry she writes herself moves nothing; only coordinators award.
    let doc = DocId::own_public(&li, &format!("ledger-{}", year_of(now_ms())));
    li_phone
        .write(&space, &doc, |tx| {
            let p = tx.put_object(ROOT, format!("p/{rule}/{s}/{li}"), automerge::ObjType::Map)?;
            tx.put(&p, "points", 500)?;
            Ok(())
        })
        .expect("write");
    assert!(matches!(ledger::award_participation(&li_phone, &space, &vote), Err(Error::NotAllowed(_))));
    sync();
    assert_eq!(balance(&coord, &space, &li), 0);
}

#[test]
fn an_offline_double_spend_is_flagged_alike_everywhere_and_resolved() {
    let t = town(3);
    let (li, chen, wang) = (t.id(0).to_string(), t.id(1).to_string(), t.id(2).to_string());
    let tablet = phone();
    t.coord
        .edit_space(
            &t.space,
            &[SpaceEdit::AddDevice { member: li.clone(), device: tablet.device_id(), label: "平板".into() }],
        )
        .expect("device");
    let h = ledger::log_hours(t.r(0), &t.space, &hours_to(&chen, 60)).expect("log");
    t.sync();
    ledger::confirm_hours(t.r(1), &t.space, &h).expect("confirm");
    t.sync();
    push(&t.coord, &tablet, &t.space);
    assert_eq!(balance(&tablet, &t.space, &li), 10);
    // Offline, her phone gives Chen 8 and her tablet gives Wang 8.
    ledger::transfer(t.r(0), &t.space, &chen, 8, "phone").expect("phone");
    tick();
    let later = ledger::transfer(&tablet, &t.space, &wang, 8, "tablet").expect("tablet");
    // Two replicas merge them in opposite orders.
    let (a, b) = (phone(), phone());
    push(&t.coord, &a, &t.space);
    push(&t.coord, &b, &t.space);
    push(t.r(0), &a, &t.space);
    push(&tablet, &a, &t.space);
    push(&tablet, &b, &t.space);
    push(t.r(0), &b, &t.space);
    let fa = ledger::flags(&a, &t.space).expect("flags");
    assert_eq!(fa, ledger::flags(&b, &t.space).expect("flags"));
    assert_eq!(fa.len(), 1);
    assert_eq!(
        (fa[0].movement.clone(), fa[0].kind, fa[0].balance_after),
        (format!("d/{later}"), FlagKind::Overdraft, -6)
    );
    assert_eq!(balance(&a, &t.space, &li), -6, "flagged, not dropped");
    assert_eq!(ledger::balance(&b, &t.space, &li).expect("b").flagged, 1);
    // The coordinator voids the later spend; every phone agrees.
    push(&a, &t.coord, &t.space);
    assert!(matches!(
        ledger::resolve(t.r(1), &t.space, &fa[0].movement, Resolution::Void, "x"),
        Err(Error::NotAllowed(_))
    ));
    // Two phones of the coordinator decide at once, offline: the office
    // accepts, then the coordinator's phone voids. Replicas that hear them
    // in either order keep the same, later decision.
    let office = phone();
    let me = t.coord.my_member(&t.space).expect("me");
    t.coord
        .edit_space(
            &t.space,
            &[SpaceEdit::AddDevice { member: me, device: office.device_id(), label: "办公室".into() }],
        )
        .expect("device");
    push(&t.coord, &office, &t.space);
    ledger::resolve(&office, &t.space, &fa[0].movement, Resolution::Accept, "先接受").expect("accept");
    tick();
    ledger::resolve(&t.coord, &t.space, &fa[0].movement, Resolution::Void, "重复支付").expect("void");
    let item = DocId::Item { item: format!("ledger-{}", year_of(now_ms())) };
    let (from_office, from_phone) =
        (common::all_changes(&office, &t.space, &item), common::all_changes(&t.coord, &t.space, &item));
    push(&t.coord, &a, &t.space);
    push(&t.coord, &b, &t.space);
    for (r, order) in [(&a, [&from_office, &from_phone]), (&b, [&from_phone, &from_office])] {
        for changes in order {
            r.apply(&t.space, &item, changes.clone()).expect("apply");
        }
    }
    for r in [&a, &b] {
        assert_eq!(balance(r, &t.space, &li), 2, "the void stands on both replicas");
    }
    push(&office, &t.coord, &t.space);
    t.sync();
    push(&t.coord, &tablet, &t.space);
    for s in [&t.coord as &Store, t.r(0), t.r(1), t.r(2), &tablet] {
        assert_eq!((balance(s, &t.space, &li), balance(s, &t.space, &wang)), (2, 0));
        assert!(ledger::flags(s, &t.space).expect("flags").is_empty());
        check_invariants(s, &t.space);
    }
    let st = ledger::statement(t.r(0), &t.space, &li, None, None).expect("statement");
    assert_eq!(st.lines.iter().map(|l| l.status.as_str()).collect::<Vec<_>>(), ["applied", "applied", "voided"]);
    // The office dates an "accept" a day after the change that carries it,
    // to stand as the latest decision for ever (#13, item 5): it moves nothing.
    let ahead = now_ms() + 86_400_000;
    office
        .write(&t.space, &item, |tx| {
            let r = tx.put_object(ROOT, format!("r/{}/{ahead:013}-x", fa[0].movement), automerge::ObjType::Map)?;
            tx.put(&r, "resolution", "accept")?;
            tx.put(&r, "reason", "永远最新")?;
            tx.put(&r, "by", "office")?;
            tx.put(&r, "at", ahead)?;
            Ok(())
        })
        .expect("write");
    push(&office, &t.coord, &t.space);
    assert_eq!(balance(&t.coord, &t.space, &li), 2, "the void stands");
}

#[test]
fn forged_ledger_entries_have_no_effect() {
    let t = town(3);
    let (li, chen, wang) = (t.id(0).to_string(), t.id(1).to_string(), t.id(2).to_string());
    let h = ledger::log_hours(t.r(0), &t.space, &hours_to(&chen, 60)).expect("log");
    t.sync();
    let year = year_of(now_ms());
    // Wang's device writes a confirmation into the coordinators' ledger: refused before merge.
    let wang_key = DeviceKey::generate().expect("key");
    t.coord
        .edit_space(
            &t.space,
            &[SpaceEdit::AddDevice { member: wang.clone(), device: wang_key.id(), label: "x".into() }],
        )
        .expect("device");
    let item = DocId::Item { item: format!("ledger-{year}") };
    let confirm = |tx: &mut automerge::transaction::Transaction<'_>| {
        tx.put(ROOT, "kind", "ledger").expect("kind");
        let c = tx.put_object(ROOT, format!("c/{h}"), automerge::ObjType::Map).expect("c");
        tx.put(&c, "answer", "confirm").expect("a");
        tx.put(&c, "at", now_ms()).expect("at");
    };
    let forged = craft(&t.coord, &t.space, &item, &wang_key, &wang_key, confirm);
    let rep = t.coord.apply(&t.space, &item, vec![forged]).expect("apply");
    assert!(rep.accepted.is_empty() && rep.refused.len() == 1, "{rep:?}");
    // Wang confirms in his own document: he is not the recipient, no effect.
    let wang_doc = DocId::own_public(&wang, &format!("ledger-{year}"));
    let own = craft(&t.coord, &t.space, &wang_doc, &wang_key, &wang_key, |tx| {
        let c = tx.put_object(ROOT, format!("c/{h}"), automerge::ObjType::Map).expect("c");
        tx.put(&c, "answer", "confirm").expect("a");
        tx.put(&c, "at", now_ms()).expect("at");
    });
    assert_eq!(t.coord.apply(&t.space, &wang_doc, vec![own]).expect("apply").accepted.len(), 1);
    // Li confirms her own hours in her own document: no effect either.
    let li_doc = DocId::own_public(&li, &format!("ledger-{year}"));
    t.r(0)
        .write(&t.space, &li_doc, |tx| {
            let c = tx.put_object(ROOT, format!("c/{h}"), automerge::ObjType::Map)?;
            tx.put(&c, "answer", "confirm")?;
            tx.put(&c, "at", now_ms())?;
            Ok(())
        })
        .expect("write");
    push(t.r(0), &t.coord, &t.space);
    assert_eq!(balance(&t.coord, &t.space, &li), 0);
    assert_eq!(ledger::hours(&t.coord, &t.space, &li).expect("h")[0].status, HoursStatus::Pending);
    // A debit from Chen's account, signed by Wang's device: refused.
    let chen_doc = DocId::own_public(&chen, &format!("ledger-{year}"));
    let debit = craft(&t.coord, &t.space, &chen_doc, &wang_key, &wang_key, |tx| {
        let d = tx.put_object(ROOT, format!("d/{chen}-{year}-forged"), automerge::ObjType::Map).expect("d");
        tx.put(&d, "to", wang.as_str()).expect("to");
        tx.put(&d, "points", 5).expect("p");
        tx.put(&d, "kind", "transfer").expect("k");
        tx.put(&d, "at", now_ms()).expect("at");
    });
    let rep = t.coord.apply(&t.space, &chen_doc, vec![debit]).expect("apply");
    assert!(rep.accepted.is_empty() && rep.refused.len() == 1);
    // Wang writes, in his own document, a debit keyed as Chen's: not counted.
    let as_chen = craft(&t.coord, &t.space, &wang_doc, &wang_key, &wang_key, |tx| {
        let d = tx.put_object(ROOT, format!("d/{chen}-{year}-forged"), automerge::ObjType::Map).expect("d");
        tx.put(&d, "to", wang.as_str()).expect("to");
        tx.put(&d, "points", 5).expect("p");
        tx.put(&d, "kind", "transfer").expect("k");
        tx.put(&d, "at", now_ms()).expect("at");
    });
    assert_eq!(t.coord.apply(&t.space, &wang_doc, vec![as_chen]).expect("apply").accepted.len(), 1);
    // A redemption below the reward's price, written around the core: set aside.
    let cheap = craft(&t.coord, &t.space, &wang_doc, &wang_key, &wang_key, |tx| {
        let d = tx.put_object(ROOT, format!("d/{wang}-{year}-cheap"), automerge::ObjType::Map).expect("d");
        tx.put(&d, "to", COMMUNITY).expect("to");
        tx.put(&d, "points", 1).expect("p");
        tx.put(&d, "kind", "redeem").expect("k");
        tx.put(&d, "reward", "haircut").expect("r");
        tx.put(&d, "at", now_ms()).expect("at");
    });
    assert_eq!(t.coord.apply(&t.space, &wang_doc, vec![cheap]).expect("apply").accepted.len(), 1);
    let (book, settled) = ledger::ledger(&t.coord, &t.space).expect("ledger");
    assert!(book.movements.is_empty(), "{:?}", book.movements);
    assert!(settled.balances.is_empty());
    assert_eq!(
        book.set_aside.iter().map(|s| (s.entry.as_str(), s.reason.as_str())).collect::<Vec<_>>(),
        [(format!("d/{wang}-{year}-cheap").as_str(), "not the reward's price")]
    );
}

// ---------------------------------------------------------------------------
// Determinism

#[derive(Debug, Clone)]
enum Op {
    /// Device `d` logs hours for member `to`.
    Log { d: usize, to: usize, minutes: i64 },
    /// Device `d` answers the n-th hours given to its member it knows of.
    Answer { d: usize, n: usize, confirm: bool },
    /// Device `d` gives points to member `to`.
    Give { d: usize, to: usize, points: i64 },
    /// Device `d` redeems the haircut.
    Redeem { d: usize },
    /// Devices `a` and `b` meet and sync both ways.
    Meet { a: usize, b: usize },
    /// Resident 0's phone confirms and her tablet declines, each the first
    /// hours given to her that it knows of: concurrent answers to merge.
    Torn,
    /// Coordinator device `c` (of two) resolves the first flag it knows.
    Resolve { c: usize, void: bool },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0usize..4, 0usize..3, 15i64..180).prop_map(|(d, to, minutes)| Op::Log { d, to, minutes }),
        (0usize..4, 0usize..3, prop::bool::weighted(0.8)).prop_map(|(d, n, confirm)| Op::Answer { d, n, confirm }),
        (0usize..4, 0usize..3, 1i64..20).prop_map(|(d, to, points)| Op::Give { d, to, points }),
        (0usize..4).prop_map(|d| Op::Redeem { d }),
        (0usize..6, 0usize..6).prop_map(|(a, b)| Op::Meet { a, b }),
        Just(Op::Torn),
        (4usize..6, any::<bool>()).prop_map(|(c, void)| Op::Resolve { c, void }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, .. ProptestConfig::default() })]

    /// Residents earn, answer, spend and redeem on four devices (resident
    /// 0 has two), offline and meeting at random; then every change
    /// reaches three replicas in a different order. Every replica settles
    /// identical balances, flags and set-asides, and the invariants hold.
    #[test]
    fn every_replica_settles_alike(ops in prop::collection::vec(op(), 10..30), seed in any::<u64>()) {
        settles_alike(&ops, seed)?;
    }
}

fn settles_alike(ops: &[Op], seed: u64) -> Result<(), TestCaseError> {
    let t = town(3);
    let tablet = phone();
    t.coord
        .edit_space(
            &t.space,
            &[SpaceEdit::AddDevice { member: t.id(0).into(), device: tablet.device_id(), label: "平板".into() }],
        )
        .expect("device");
    // Resident 1 has given resident 0 an hour; both of her devices know.
    ledger::log_hours(t.r(1), &t.space, &hours_to(t.id(0), 60)).expect("log");
    t.sync();
    push(&t.coord, &tablet, &t.space);
    // The coordinator's second phone.
    let office = phone();
    let me = t.coord.my_member(&t.space).expect("me");
    t.coord
        .edit_space(
            &t.space,
            &[SpaceEdit::AddDevice { member: me, device: office.device_id(), label: "办公室".into() }],
        )
        .expect("device");
    t.sync();
    push(&t.coord, &office, &t.space);
    push(&t.coord, &tablet, &t.space);
    let devices: [&Store; 6] = [t.r(0), &tablet, t.r(1), t.r(2), &t.coord, &office];
    for op in ops {
        match op {
            Op::Log { d, to, minutes } => {
                let _ = ledger::log_hours(devices[*d], &t.space, &hours_to(t.id(*to), *minutes));
            }
            Op::Answer { d, n, confirm } => {
                let todo = ledger::hours_to_answer(devices[*d], &t.space).expect("todo");
                if let Some(h) = todo.get(*n) {
                    let _ = if *confirm {
                        ledger::confirm_hours(devices[*d], &t.space, &h.id)
                    } else {
                        ledger::decline_hours(devices[*d], &t.space, &h.id, "没有")
                    };
                }
            }
            Op::Give { d, to, points } => {
                let _ = ledger::transfer(devices[*d], &t.space, t.id(*to), *points, "");
            }
            Op::Redeem { d } => {
                let _ = ledger::redeem(devices[*d], &t.space, "haircut");
            }
            Op::Meet { a, b } => {
                push(devices[*a], devices[*b], &t.space);
                push(devices[*b], devices[*a], &t.space);
            }
            Op::Resolve { c, void } => {
                if let Some(f) = ledger::flags(devices[*c], &t.space).expect("flags").first() {
                    let r = if *void { Resolution::Void } else { Resolution::Accept };
                    ledger::resolve(devices[*c], &t.space, &f.movement, r, "核实").expect("resolve");
                }
            }
            Op::Torn => {
                for (d, confirm) in [(0, true), (1, false)] {
                    if let Some(h) = ledger::hours(devices[d], &t.space, t.id(0))
                        .expect("hours")
                        .iter()
                        .find(|h| h.recipient.as_deref() == Some(t.id(0)))
                    {
                        let _ = if confirm {
                            ledger::confirm_hours(devices[d], &t.space, &h.id)
                        } else {
                            ledger::decline_hours(devices[d], &t.space, &h.id, "没有")
                        };
                    }
                }
            }
        }
        tick();
    }
    let all = every_change(&[&t.coord as &Store, t.r(0), &tablet, t.r(1), t.r(2), &office], &t.space);
    let replicas = [phone(), phone(), phone()];
    for (k, r) in replicas.iter().enumerate() {
        prop_assert!(deliver_shuffled(r, &t.space, &all, seed.wrapping_add(k as u64)));
    }
    let settled = |s: &Store| {
        let (b, settled) = ledger::ledger(s, &t.space).expect("ledger");
        (settled, b.set_aside)
    };
    let want = settled(&replicas[0]);
    for r in &replicas[1..] {
        prop_assert_eq!(&settled(r), &want);
    }
    check_invariants(&replicas[0], &t.space);
    let per_member: BTreeMap<String, i64> =
        (0..3).map(|i| (t.id(i).to_string(), balance(&replicas[1], &t.space, t.id(i)))).collect();
    for (m, b) in &per_member {
        prop_assert_eq!(want.0.balances.get(m).copied().unwrap_or(0), *b);
    }
    Ok(())
}

/// A schedule the property once shrank to, where one replica settled no
/// balances and another credited an hours entry.
#[test]
fn a_shrunk_schedule_settles_alike() {
    use Op::*;
    let ops = [
        Give { d: 0, to: 1, points: 16 },
        Log { d: 1, to: 1, minutes: 129 },
        Torn,
        Torn,
        Give { d: 0, to: 2, points: 18 },
        Answer { d: 3, n: 2, confirm: true },
        Torn,
        Answer { d: 2, n: 2, confirm: true },
        Torn,
        Redeem { d: 1 },
        Redeem { d: 1 },
        Meet { a: 0, b: 1 },
        Torn,
        Give { d: 1, to: 1, points: 5 },
        Log { d: 1, to: 2, minutes: 109 },
        Meet { a: 0, b: 1 },
        Resolve { c: 5, void: true },
        Log { d: 0, to: 0, minutes: 23 },
        Redeem { d: 1 },
        Give { d: 0, to: 2, points: 9 },
        Redeem { d: 3 },
        Redeem { d: 0 },
        Resolve { c: 5, void: false },
        Redeem { d: 3 },
        Resolve { c: 4, void: true },
        Torn,
        Resolve { c: 4, void: true },
    ];
    settles_alike(&ops, 1924039693102834842).expect("settles alike");
}

/// A replica meets a phone's change before the register admits the tablet
/// it was built on, and before the phone's own earlier change: it is kept
/// aside with the tablet's, stays aside when the tablet is admitted (its
/// other dependency is still missing), and merges when that one arrives —
/// as on a replica that met them in order.
#[test]
fn a_change_kept_aside_merges_once_all_it_waited_on_is_here() {
    let t = town(2);
    let register_before = t.coord.changes_since(&t.space, &DocId::Space, &[]).expect("register");
    let heads_before = t.coord.heads(&t.space, &DocId::Space).expect("heads");
    let tablet = phone();
    t.coord
        .edit_space(
            &t.space,
            &[SpaceEdit::AddDevice { member: t.id(0).into(), device: tablet.device_id(), label: "平板".into() }],
        )
        .expect("device");
    let added = t.coord.changes_since(&t.space, &DocId::Space, &heads_before).expect("added");
    push(&t.coord, t.r(0), &t.space);
    push(&t.coord, &tablet, &t.space);
    let doc = DocId::own_public(t.id(0), &format!("ledger-{}", year_of(now_ms())));
    ledger::log_hours(&tablet, &t.space, &hours_to(t.id(1), 30)).expect("tablet");
    let from_tablet = tablet.changes_since(&t.space, &doc, &[]).expect("t1");
    let mine_before = t.r(0).heads(&t.space, &doc).expect("heads");
    ledger::log_hours(t.r(0), &t.space, &hours_to(t.id(1), 45)).expect("phone");
    let from_phone = t.r(0).changes_since(&t.space, &doc, &mine_before).expect("p0");
    push(&tablet, t.r(0), &t.space);
    let merged = t.r(0).heads(&t.space, &doc).expect("heads");
    ledger::log_hours(t.r(0), &t.space, &hours_to(t.id(1), 60)).expect("phone");
    let on_both = t.r(0).changes_since(&t.space, &doc, &merged).expect("p2");
    assert_eq!((from_tablet.len(), from_phone.len(), on_both.len()), (1, 1, 1));

    let x = phone();
    x.apply(&t.space, &DocId::Space, register_before).expect("register");
    assert_eq!(x.apply(&t.space, &doc, from_tablet).expect("t1").held.len(), 1, "the tablet is not known yet");
    assert_eq!(x.apply(&t.space, &doc, on_both).expect("p2").held.len(), 1, "built on a change kept aside");
    let rep = x.apply(&t.space, &DocId::Space, added).expect("admitted");
    assert_eq!(rep.also_changed, std::slice::from_ref(&doc), "the tablet's change merges");
    let rep = x.apply(&t.space, &doc, from_phone).expect("p0");
    assert_eq!(rep.accepted.len(), 2, "the phone's two: {rep:?}");
    assert_eq!(x.heads(&t.space, &doc).expect("heads"), t.r(0).heads(&t.space, &doc).expect("heads"));
    assert_eq!(ledger::hours(&x, &t.space, t.id(0)).expect("hours").len(), 3);
}

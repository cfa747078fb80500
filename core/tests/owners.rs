//! Owners' decisions as the law counts them (art. 278 and the SPC
//! interpretation on 建筑物区分所有权, arts. 8–9), and residents without
//! phones taking part in them.
//!
//! Each resident's phone is given only what the real sync gives it: the
//! register and the vote's item document; its own ballots go to the
//! coordinator, whose phone counts.

mod common;

use std::collections::BTreeSet;

use common::{copy_doc, join, phone, push, shuffled};
use linli_core::Error;
use linli_core::doc::DocId;
use linli_core::poll::{
    self, BallotVisibility, Cast, Eligibility, Matter, Mode, Stage, Tally, Vote, VoteKind, VoteSpec, owners,
};
use linli_core::space::{Relation, SpaceEdit, SpaceView, Unit};
use linli_core::store::Store;
use proptest::prelude::*;

fn owners_spec(matter: Matter) -> VoteSpec {
    VoteSpec {
        title: "使用维修资金更换电梯".into(),
        kind: VoteKind::YesNoAbstain,
        eligibility: Eligibility::VerifiedOwners { matter, building: None, grid: None },
        visibility: BallotVisibility::CoordinatorsOnly,
        hide_results: false,
        proxy_limit: 1,
    }
}

fn unit(id: &str, area_centi: i64) -> SpaceEdit {
    SpaceEdit::AddUnit {
        unit: id.into(),
        building: "3栋".into(),
        entrance: "1单元".into(),
        room: id.into(),
        area_centi,
        grid: None,
        household: None,
    }
}

fn own(member: &str, unit: &str, by: &str, verified: bool) -> Vec<SpaceEdit> {
    let mut e = vec![SpaceEdit::Link { member: member.into(), unit: unit.into(), relation: Relation::Owner }];
    if verified {
        e.push(SpaceEdit::VerifyOwner { member: member.into(), unit: unit.into(), by: by.into() });
    }
    e
}

/// What the real sync gives a resident's phone of an open vote: the
/// register and the vote's item document.
fn share_vote(coord: &Store, resident: &Store, space: &str, vote: &str) {
    copy_doc(coord, resident, space, &DocId::Space);
    copy_doc(coord, resident, space, &DocId::Item { item: vote.into() });
}

/// The neighbourhood of the issue: six verified owners with phones (100 m²
/// each), one unit whose owner is not verified, one with no registered
/// owner, and one whose verified owner has no phone (80 m² each).
struct Block {
    coord: common::Phone,
    me: String,
    space: String,
    phones: Vec<(common::Phone, String)>,
    unverified: String,
    phoneless: String,
}

fn block() -> Block {
    let coord = phone();
    let space = coord.create_space("幸福里", "王主任").expect("space");
    let me = coord.my_member(&space).expect("me");
    let phones: Vec<_> = (0..6).map(|i| join(&coord, &space, &format!("业主{i}"))).collect();
    let unverified = coord.add_member(&space, "未核实业主", &[]).expect("member");
    let phoneless = coord.add_member(&space, "张奶奶", &[]).expect("member without a phone");
    let mut edits = Vec::new();
    for (i, (_, m)) in phones.iter().enumerate() {
        let u = format!("{}01", i + 1);
        edits.push(unit(&u, 10_000));
        edits.extend(own(m, &u, &me, true));
    }
    for u in ["701", "801", "901"] {
        edits.push(unit(u, 8_000));
    }
    edits.extend(own(&unverified, "701", &me, false));
    edits.extend(own(&phoneless, "901", &me, true));
    coord.edit_space(&space, &edits).expect("register");
    Block { coord, me, space, phones, unverified, phoneless }
}

fn report(t: &Tally) -> &poll::OwnersReport {
    t.owners.as_ref().expect("an owners' report")
}

#[test]
fn the_denominators_are_every_owner_and_all_the_area_in_scope() {
    let b = block();
    let vote = poll::create(&b.coord, &b.space, &owners_spec(Matter::Ordinary)).expect("create");
    assert_eq!(poll::open(&b.coord, &b.space, &vote).expect("open"), 9, "nine heads: one per unit");
    // Four owners with phones vote yes; the measured bug said "quorate, passed".
    for (p, _) in &b.phones[..4] {
        share_vote(&b.coord, p, &b.space, &vote);
        poll::cast(p, &b.space, &vote, &[0]).expect("cast");
        push(p, &b.coord, &b.space);
    }
    let t = poll::results(&b.coord, &b.space, &vote).expect("results").expect("visible");
    let o = report(&t);
    assert_eq!((o.total.heads, o.total.area_centi), (9, 84_000), "840.00 m² and 9 heads, as the law divides");
    assert_eq!((o.participation_heads.numerator, o.participation_heads.denominator), (4, 9));
    assert_eq!((o.participation_area.numerator, o.participation_area.denominator), (40_000, 84_000));
    assert!(!o.quorate && !o.passed, "4 of 9 owners is not 2/3");
    let labels = |v: &[poll::UnitLine]| v.iter().map(|u| u.unit.clone()).collect::<Vec<_>>();
    assert_eq!(labels(&o.unverified), ["701"], "the coordinator sees what verification remains");
    assert_eq!(labels(&o.no_owner), ["801"]);
    assert_eq!(labels(&o.took_part), ["101", "201", "301", "401"]);
    assert_eq!(labels(&o.absent), ["501", "601", "901"]);

    // The owner without a phone votes on paper; one more owner on the phone: 6 of 9 is 2/3.
    poll::enter_paper_ballot(&b.coord, &b.space, &vote, &b.phoneless, &[0]).expect("paper ballot");
    let (p, _) = &b.phones[4];
    share_vote(&b.coord, p, &b.space, &vote);
    poll::cast(p, &b.space, &vote, &[2]).expect("abstain");
    push(p, &b.coord, &b.space);
    // The unverified owner cannot vote, not even on paper.
    assert!(matches!(
        poll::enter_paper_ballot(&b.coord, &b.space, &vote, &b.unverified, &[0]),
        Err(Error::NotAllowed(_))
    ));
    let t = poll::results(&b.coord, &b.space, &vote).expect("results").expect("visible");
    let o = report(&t);
    assert_eq!((o.participation_heads.numerator, o.participation_area.numerator), (6, 58_000));
    assert!(o.participation_heads.met && o.participation_area.met && o.quorate, "6/9 ≥ 2/3, 580/840 ≥ 2/3");
    assert_eq!((o.abstaining.heads, o.abstaining.area_centi), (1, 10_000));
    assert_eq!((o.approving.heads, o.approving.area_centi), (5, 48_000));
    assert!(o.approval_heads.met && o.passed, "abstention takes part but does not approve: 5 of 6");
    assert_eq!(t.audit.iter().filter(|a| a.mode == Mode::Paper && a.status == poll::COUNTED).count(), 1);
}

#[test]
fn co_owners_designate_who_votes_and_a_unit_counts_once() {
    let coord = phone();
    let space = coord.create_space("s", "主任").expect("space");
    let me = coord.my_member(&space).expect("me");
    let (a, a_id) = join(&coord, &space, "甲");
    let (b, b_id) = join(&coord, &space, "乙");
    let (c, c_id) = join(&coord, &space, "丙");
    let mut edits = vec![unit("101", 9_000), unit("102", 11_000)];
    edits.extend(own(&a_id, "101", &me, true));
    edits.extend(own(&b_id, "101", &me, true));
    edits.extend(own(&c_id, "102", &me, true));
    coord.edit_space(&space, &edits).expect("register");
    // A designation names an owner of the unit, nobody else.
    assert!(matches!(
        coord.edit_space(&space, &[SpaceEdit::DesignateVoter { unit: "101".into(), member: Some(c_id.clone()) }]),
        Err(Error::Invalid(_))
    ));

    // Without a designation either co-owner may vote; the later ballot counts for the unit, once.
    let v1 = poll::create(&coord, &space, &owners_spec(Matter::Ordinary)).expect("create");
    assert_eq!(poll::open(&coord, &space, &v1).expect("open"), 2);
    for p in [&a, &b] {
        share_vote(&coord, p, &space, &v1);
    }
    let by_a = poll::cast(&a, &space, &v1, &[1]).expect("a");
    std::thread::sleep(std::time::Duration::from_millis(3));
    let by_b = poll::cast(&b, &space, &v1, &[0]).expect("b, the larger member id or not");
    for p in [&a, &b] {
        push(p, &coord, &space);
    }
    let t = poll::results(&coord, &space, &v1).expect("results").expect("visible");
    assert!(t.counts(&by_b) && !t.counts(&by_a), "the unit's last word counts");
    assert_eq!((report(&t).participation_heads.numerator, report(&t).participation_area.numerator), (1, 9_000));

    // With a designation, only the designated co-owner votes for the unit.
    coord
        .edit_space(&space, &[SpaceEdit::DesignateVoter { unit: "101".into(), member: Some(a_id.clone()) }])
        .expect("designate");
    let v2 = poll::create(&coord, &space, &owners_spec(Matter::Ordinary)).expect("create");
    poll::open(&coord, &space, &v2).expect("open");
    for p in [&a, &b, &c] {
        share_vote(&coord, p, &space, &v2);
    }
    assert!(matches!(poll::cast(&b, &space, &v2, &[0]), Err(Error::NotAllowed(_))), "not designated");
    let designated = poll::cast(&a, &space, &v2, &[0]).expect("designated");
    poll::cast(&c, &space, &v2, &[0]).expect("c");
    for p in [&a, &c] {
        push(p, &coord, &space);
    }
    let t = poll::results(&coord, &space, &v2).expect("results").expect("visible");
    assert!(t.counts(&designated));
    let o = report(&t);
    assert_eq!((o.total.heads, o.participation_heads.numerator, o.participation_area.numerator), (2, 2, 20_000));
    assert!(o.passed);
}

#[test]
fn one_buyer_of_several_units_and_the_developers_unsold_units_each_count_once() {
    let coord = phone();
    let space = coord.create_space("s", "主任").expect("space");
    let me = coord.my_member(&space).expect("me");
    let (_a, a_id) = join(&coord, &space, "甲");
    let mut edits = vec![unit("101", 9_000), unit("102", 11_000), unit("201", 7_000), unit("202", 7_000)];
    edits.extend(own(&a_id, "101", &me, true));
    edits.extend(own(&a_id, "102", &me, true));
    edits.push(SpaceEdit::SetDeveloperUnit { unit: "201".into(), developer: true });
    edits.push(SpaceEdit::SetDeveloperUnit { unit: "202".into(), developer: true });
    coord.edit_space(&space, &edits).expect("register");
    let view = coord.view(&space).expect("view");
    let heads = owners::electorate(&view, None, None);
    assert_eq!(heads.len(), 2, "甲's two units are one head; the developer's two are one more");
    let a = heads.iter().find(|h| h.members == vec![a_id.clone()]).expect("甲");
    assert_eq!(a.area_centi, 20_000, "the buyer's areas are summed");
    let dev = heads.iter().find(|h| h.id == "developer").expect("developer");
    assert_eq!((dev.area_centi, dev.members.len()), (14_000, 0));
    // Scoped to a building that has none of these units: no heads.
    assert!(owners::electorate(&view, Some("9栋"), None).is_empty());
}

#[test]
fn an_owners_decision_is_yes_no_abstain_and_its_matter_is_fixed_at_the_open() {
    let coord = phone();
    let space = coord.create_space("s", "主任").expect("space");
    let mut s = owners_spec(Matter::Special);
    s.kind = VoteKind::Single { options: vec!["A".into(), "B".into()] };
    assert!(matches!(poll::create(&coord, &space, &s), Err(Error::Invalid(_))), "not yes/no/abstain");
    let vote = poll::create(&coord, &space, &owners_spec(Matter::Special)).expect("create");
    poll::open(&coord, &space, &vote).expect("open");
    assert!(poll::edit(&coord, &space, &vote, &owners_spec(Matter::Ordinary)).is_err(), "fixed once open");
    let v = poll::vote(&coord, &space, &vote).expect("vote");
    assert_eq!(v.matter, Some(Matter::Special), "the open event records the matter");
}

#[test]
fn a_sold_unit_and_a_withdrawn_verification_change_the_next_vote_not_an_open_one() {
    let b = block();
    let open_before = poll::create(&b.coord, &b.space, &owners_spec(Matter::Ordinary)).expect("create");
    poll::open(&b.coord, &b.space, &open_before).expect("open");
    let (seller, buyer) = (b.phones[0].1.clone(), b.phones[1].1.clone());
    // 101 is sold to the owner of 201; the owner of 301's verification is withdrawn.
    let mut edits = vec![SpaceEdit::EndLink { member: seller.clone(), unit: "101".into(), by: b.me.clone() }];
    edits.extend(own(&buyer, "101", &b.me, true));
    edits.push(SpaceEdit::WithdrawVerification { member: b.phones[2].1.clone(), unit: "301".into(), by: b.me.clone() });
    b.coord.edit_space(&b.space, &edits).expect("sale");
    let view = b.coord.view(&b.space).expect("view");
    assert!(!view.links.contains_key(&format!("{seller}:101")), "an ended link is no link");
    // The open vote keeps its electorate: the seller still votes for 101.
    let (p, _) = &b.phones[0];
    share_vote(&b.coord, p, &b.space, &open_before);
    poll::cast(p, &b.space, &open_before, &[0]).expect("the electorate froze at the open");
    // The next vote: the buyer holds 101 and 201 (one head), 301 is unverified.
    let next = poll::create(&b.coord, &b.space, &owners_spec(Matter::Ordinary)).expect("create");
    assert_eq!(poll::open(&b.coord, &b.space, &next).expect("open"), 8, "nine units, one buyer of two");
    share_vote(&b.coord, p, &b.space, &next);
    assert!(matches!(poll::cast(p, &b.space, &next, &[0]), Err(Error::NotAllowed(_))), "the seller no longer votes");
    let t = poll::results(&b.coord, &b.space, &next).expect("results").expect("visible");
    let o = report(&t);
    assert_eq!(o.total.area_centi, 84_000, "the area does not change hands out of the count");
    assert!(o.unverified.iter().any(|u| u.unit == "301"));
    // Linking the seller to 101 again starts unverified.
    b.coord
        .edit_space(
            &b.space,
            &[SpaceEdit::Link { member: seller.clone(), unit: "101".into(), relation: Relation::Owner }],
        )
        .expect("link again");
    let view = b.coord.view(&b.space).expect("view");
    assert!(!view.links[&format!("{seller}:101")].verified);
}

#[test]
fn the_public_notice_states_every_figure_and_names_no_one() {
    let b = block();
    let vote = poll::create(&b.coord, &b.space, &owners_spec(Matter::Ordinary)).expect("create");
    poll::open(&b.coord, &b.space, &vote).expect("open");
    for (p, _) in &b.phones {
        share_vote(&b.coord, p, &b.space, &vote);
        poll::cast(p, &b.space, &vote, &[0]).expect("cast");
        push(p, &b.coord, &b.space);
    }
    poll::close(&b.coord, &b.space, &vote).expect("close");
    let t = poll::publish(&b.coord, &b.space, &vote).expect("publish");
    let md = owners::notice_markdown(&t).expect("markdown");
    assert!(md.contains("| 600.00 m² | 840.00 m² |"), "{md}");
    assert!(md.contains("| 6 人 | 9 人 |"), "{md}");
    assert!(md.contains("**通过**"), "6/9 heads and 600/840 area take part, all approve: {md}");
    assert!(md.contains("3栋-1单元-701"), "the unverified unit is listed");
    let html = owners::notice_html(&t).expect("html");
    assert!(html.starts_with("<!doctype html>") && html.contains("840.00 m²"));
    let csv = owners::notice_csv(&t).expect("csv");
    assert!(csv.starts_with('\u{feff}') && csv.contains("\r\n"));
    assert_eq!(csv.matches(",参与表决\r\n").count(), 6, "{csv}");
    for text in [&md, &html, &csv] {
        for name in ["业主0", "张奶奶", "未核实业主"] {
            assert!(!text.contains(name), "a notice names no one: {name}");
        }
        for (_, id) in &b.phones {
            assert!(!text.contains(id.as_str()), "nor any member id");
        }
    }
    assert!(owners::notice_markdown(&Tally { owners: None, ..t.clone() }).is_none());
}

// ---------------------------------------------------------------------------
// The rule is a pure function of the register and the ballots

/// A unit of a generated register: its area, its owners (member, verified),
/// the designated co-owner, and whether it is the developer's.
type GenUnit = (i64, Vec<(u8, bool)>, Option<u8>, bool);

fn register(units: &[GenUnit]) -> SpaceView {
    let mut view = SpaceView::default();
    for m in 0..6u8 {
        let member = linli_core::space::Member {
            name: format!("m{m}"),
            status: linli_core::space::MemberStatus::Active,
            joined_at: 0,
            household: None,
            removed_at: None,
            roles: BTreeSet::new(),
            devices: Default::default(),
        };
        view.members.insert(format!("m{m}"), member);
    }
    for (n, (area, owners, voter, developer)) in units.iter().enumerate() {
        let id = format!("u{n:02}");
        view.units.insert(
            id.clone(),
            Unit {
                building: "1".into(),
                entrance: "1".into(),
                room: id.clone(),
                area_centi: *area,
                grid: None,
                household: None,
                developer: *developer,
                voter: voter.map(|v| format!("m{v}")),
            },
        );
        for (m, verified) in owners {
            let member = format!("m{m}");
            view.links.insert(
                format!("{member}:{id}"),
                linli_core::space::Link {
                    member,
                    unit: id.clone(),
                    relation: Relation::Owner,
                    verified: *verified,
                    verified_by: None,
                },
            );
        }
    }
    view
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_replica_counts_an_owners_decision_the_same(
        units in prop::collection::vec(
            (1i64..50_000, prop::collection::vec((0u8..6, any::<bool>()), 0..3), prop::option::of(0u8..6), prop::bool::weighted(0.15)),
            1..12,
        ),
        raw in prop::collection::vec((0u8..6, 0u8..6, 0u8..3, 0u32..4, 10i64..40), 0..24),
        seed in any::<u64>(),
    ) {
        let view = register(&units);
        let electorate = owners::electorate(&view, None, None);
        // Every unit is in exactly one head; the denominators are all of them.
        let listed: Vec<&str> = electorate.iter().flat_map(|h| h.units.iter().map(|u| u.unit.as_str())).collect();
        prop_assert_eq!(listed.len(), units.len());
        prop_assert_eq!(listed.iter().collect::<BTreeSet<_>>().len(), units.len());
        let v = Vote {
            id: "v".into(),
            spec: owners_spec(Matter::Special),
            stage: Stage::Closed,
            opened_at: Some(0),
            closed_at: Some(100),
            electorate,
            hidden: false,
            matter: None,
        };
        let casts: Vec<Cast> = raw.iter().enumerate().map(|(n, (author, voter, mode, choice, at))| Cast {
            author: format!("m{author}"),
            voter: format!("m{voter}"),
            mode: [Mode::Own, Mode::Proxy, Mode::Paper][*mode as usize],
            choice: vec![*choice],
            at: *at,
            receipt: { let mut r = [n as u8; 32]; r[1] = *author; r },
        }).collect();
        let coordinators = BTreeSet::from(["m0".to_string()]);
        let want = poll::tally(&v, &casts, &[], &coordinators);
        let got = poll::tally(&v, &shuffled(&casts, seed), &[], &coordinators);
        prop_assert_eq!(&got, &want);
        let o = want.owners.as_ref().expect("report");
        let total: i64 = units.iter().map(|u| u.0).sum();
        prop_assert_eq!(o.total.area_centi, total);
        prop_assert!(o.participation_area.numerator <= total);
        prop_assert!(o.participation_heads.numerator <= o.total.heads);
        prop_assert_eq!(
            o.approving.heads + o.opposing.heads + o.abstaining.heads,
            o.participation_heads.numerator
        );
        let counted_area: i64 = o.took_part.iter().map(|u| u.area_centi).sum();
        prop_assert_eq!(counted_area, o.participation_area.numerator, "the units listed are the area counted");
    }
}

/// A designation written around the API (any device that may write the
/// register's units, naming anyone) moves nothing: only a verified owner of
/// the unit can be its designated voter.
#[test]
fn a_designation_naming_a_non_owner_is_ignored() {
    let view = register(&[(10_000, vec![(1, true), (2, true)], Some(3), false)]);
    let heads = owners::electorate(&view, None, None);
    assert_eq!(heads.len(), 1);
    assert_eq!(heads[0].members, vec!["m1".to_string(), "m2".to_string()], "either co-owner votes, m3 does not");
    let view = register(&[(10_000, vec![(1, true), (2, false)], Some(2), false)]);
    assert_eq!(owners::electorate(&view, None, None)[0].members, vec!["m1".to_string()], "nor an unverified one");
}

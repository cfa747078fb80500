//! Votes: lifecycle, rules, thresholds, meeting mode, determinism.

mod common;

use std::collections::BTreeSet;

use common::{deliver_shuffled, every_change, join, phone, push, shuffled};
use linli_core::doc::DocId;
use linli_core::poll::{
    self, BallotVisibility, Cast, Eligibility, Grant, Matter, Mode, Stage, Vote, VoteKind, VoteSpec, Voter,
};
use linli_core::space::{Relation, SpaceEdit};
use proptest::prelude::*;

fn spec(kind: VoteKind, eligibility: Eligibility) -> VoteSpec {
    VoteSpec {
        title: "加装电梯".into(),
        kind,
        eligibility,
        visibility: BallotVisibility::CoordinatorsOnly,
        hide_results: false,
        proxy_limit: 1,
    }
}

struct Meeting {
    coord: common::Phone,
    space: String,
    residents: Vec<(common::Phone, String)>,
}

fn meeting(n: usize) -> Meeting {
    let coord = phone();
    let space = coord.create_space("s", "主任").expect("create");
    let residents: Vec<_> = (0..n).map(|i| join(&coord, &space, &format!("居民{i}"))).collect();
    Meeting { coord, space, residents }
}

impl Meeting {
    fn share_vote(&self, vote: &str) {
        for (p, _) in &self.residents {
            push(&self.coord, p, &self.space);
        }
        let _ = vote;
    }
    fn gather(&self) {
        for (p, _) in &self.residents {
            push(p, &self.coord, &self.space);
        }
    }
}

#[test]
fn a_vote_from_draft_to_published_with_revotes_and_receipts() {
    let m = meeting(3);
    let vote =
        poll::create(&m.coord, &m.space, &spec(VoteKind::YesNoAbstain, Eligibility::AllMembers)).expect("create");
    assert_eq!(poll::vote(&m.coord, &m.space, &vote).expect("vote").stage, Stage::Draft);
    assert!(poll::cast(&m.coord, &m.space, &vote, &[0]).is_err(), "a draft takes no ballots");
    assert_eq!(poll::open(&m.coord, &m.space, &vote).expect("open"), 4);
    m.share_vote(&vote);
    let (a, b, c) = (&m.residents[0].0, &m.residents[1].0, &m.residents[2].0);
    let first = poll::cast(a, &m.space, &vote, &[1]).expect("no");
    let second = poll::cast(a, &m.space, &vote, &[0]).expect("changed to yes");
    let r_b = poll::cast(b, &m.space, &vote, &[0]).expect("yes");
    let r_c = poll::cast(c, &m.space, &vote, &[2]).expect("abstain");
    assert!(poll::cast(c, &m.space, &vote, &[5]).is_err(), "an option the vote does not have");
    assert!(poll::cast(c, &m.space, &vote, &[0, 1]).is_err(), "two answers to a yes/no");
    m.gather();
    poll::close(&m.coord, &m.space, &vote).expect("close");
    let t = poll::publish(&m.coord, &m.space, &vote).expect("publish");
    assert_eq!(t.options.iter().map(|o| o.count.heads).collect::<Vec<_>>(), vec![2, 0, 1]);
    assert_eq!((t.eligible.heads, t.participating.heads, t.counted), (4, 3, 3));
    assert!(t.counts(&second) && t.counts(&r_b) && t.counts(&r_c), "each voter finds their receipt counted");
    assert!(!t.counts(&first), "the earlier ballot was replaced");
    assert_eq!(t.set_aside.get("superseded"), Some(&1));
    // Every member reads the same published result.
    m.share_vote(&vote);
    assert_eq!(poll::published(a, &m.space, &vote).expect("published"), Some(t.clone()));
    assert_eq!(poll::vote(a, &m.space, &vote).expect("vote").stage, Stage::Published);
    // A ballot after the close is refused at the source, and would be set aside anyway.
    assert!(poll::cast(b, &m.space, &vote, &[1]).is_err());
}

#[test]
fn hidden_results_stay_hidden_until_the_close() {
    let m = meeting(1);
    let mut s = spec(VoteKind::Satisfaction, Eligibility::AllMembers);
    s.hide_results = true;
    let vote = poll::create(&m.coord, &m.space, &s).expect("create");
    let mut reveal = s.clone();
    reveal.hide_results = false;
    assert!(poll::edit(&m.coord, &m.space, &vote, &reveal).is_err(), "one-way");
    poll::open(&m.coord, &m.space, &vote).expect("open");
    poll::cast(&m.coord, &m.space, &vote, &[0]).expect("cast");
    assert_eq!(poll::results(&m.coord, &m.space, &vote).expect("results"), None);
    assert!(poll::edit(&m.coord, &m.space, &vote, &s).is_err(), "an open vote's definition is fixed");
    poll::close(&m.coord, &m.space, &vote).expect("close");
    assert!(poll::results(&m.coord, &m.space, &vote).expect("results").is_some());
}

#[test]
fn satisfaction_rate_is_exact() {
    let m = meeting(7);
    let vote =
        poll::create(&m.coord, &m.space, &spec(VoteKind::Satisfaction, Eligibility::AllMembers)).expect("create");
    poll::open(&m.coord, &m.space, &vote).expect("open");
    m.share_vote(&vote);
    // 很满意, 满意, 满意, 基本满意, 不满意, 很不满意, 基本满意 → 5 of 7 satisfied.
    for ((p, _), c) in m.residents.iter().zip([0, 1, 1, 2, 3, 4, 2]) {
        poll::cast(p, &m.space, &vote, &[c]).expect("cast");
    }
    m.gather();
    let t = poll::results(&m.coord, &m.space, &vote).expect("results").expect("visible");
    let r = t.satisfaction.expect("rate");
    assert_eq!((r.satisfied, r.valid, r.basis_points), (5, 7, 7_143)); // 71.428…% rounds to 71.43%
}

fn owners_vote(matter: Matter, electorate: Vec<(&str, i64)>) -> Vote {
    Vote {
        id: "v".into(),
        spec: spec(VoteKind::YesNoAbstain, Eligibility::VerifiedOwners { matter, building: None, grid: None }),
        stage: Stage::Closed,
        opened_at: Some(0),
        closed_at: Some(1_000),
        electorate: electorate
            .into_iter()
            .map(|(id, a)| Voter { id: id.into(), members: vec![id.into()], area_centi: a, units: Vec::new() })
            .collect(),
        hidden: false,
        matter: None,
    }
}

fn ballot(voter: &str, choice: u32, n: u8) -> Cast {
    Cast {
        author: voter.into(),
        voter: voter.into(),
        mode: Mode::Own,
        choice: vec![choice],
        at: 10 + i64::from(n),
        receipt: [n; 32],
    }
}

#[test]
fn article_278_thresholds_at_their_bounds() {
    let none = BTreeSet::new();
    // Six owners of 100 m² each (10_000 centi-m²).
    let six: Vec<(&str, i64)> = ["a", "b", "c", "d", "e", "f"].into_iter().map(|o| (o, 10_000)).collect();
    // Exactly 4 of 6 (2/3 of heads and area) take part: quorate.
    let v = owners_vote(Matter::Ordinary, six.clone());
    let casts = [ballot("a", 0, 1), ballot("b", 0, 2), ballot("c", 1, 3), ballot("d", 1, 4)];
    let t = poll::tally(&v, &casts, &[], &none);
    let o = t.owners.expect("report");
    assert!(o.participation_area.met && o.participation_heads.met && o.quorate);
    assert_eq!((o.participation_heads.numerator, o.participation_heads.denominator), (4, 6));
    // Exactly half approve: an ordinary matter needs more than half.
    assert!(!o.approval_heads.met && !o.passed, "過半數 is strictly more than half");
    // Three of four approve: ordinary passes; exactly 3/4 passes a special matter too.
    let casts = [ballot("a", 0, 1), ballot("b", 0, 2), ballot("c", 0, 3), ballot("d", 1, 4)];
    assert!(poll::tally(&v, &casts, &[], &none).owners.expect("report").passed);
    let special = owners_vote(Matter::Special, six.clone());
    let o = poll::tally(&special, &casts, &[], &none).owners.expect("report");
    assert!(o.approval_heads.met && o.approval_area.met && o.passed, "以上 includes the bound");
    // Two of four: the special matter fails.
    let casts = [ballot("a", 0, 1), ballot("b", 0, 2), ballot("c", 1, 3), ballot("d", 2, 4)];
    assert!(!poll::tally(&special, &casts, &[], &none).owners.expect("report").passed);
    // Three of six take part: below 2/3, not quorate whatever they vote.
    let casts = [ballot("a", 0, 1), ballot("b", 0, 2), ballot("c", 0, 3)];
    assert!(!poll::tally(&v, &casts, &[], &none).owners.expect("report").quorate);
    // Area and heads are separate tests: 4 of 6 heads but one large owner missing.
    let mut uneven = six.clone();
    uneven[5].1 = 100_000; // f owns 1,000 m²
    let casts = [ballot("a", 0, 1), ballot("b", 0, 2), ballot("c", 0, 3), ballot("d", 0, 4)];
    let o = poll::tally(&owners_vote(Matter::Ordinary, uneven), &casts, &[], &none).owners.expect("report");
    assert!(o.participation_heads.met && !o.participation_area.met && !o.quorate);
    assert_eq!((o.participation_area.numerator, o.participation_area.denominator), (40_000, 150_000));
}

#[test]
fn verified_owners_weighted_by_area_form_the_electorate() {
    let m = meeting(3);
    let me = m.coord.my_member(&m.space).expect("me");
    let unit = |id: &str, area| SpaceEdit::AddUnit {
        unit: id.into(),
        building: "1".into(),
        entrance: "1".into(),
        room: id.into(),
        area_centi: area,
        grid: None,
        household: None,
    };
    let (r0, r1, r2) = (m.residents[0].1.clone(), m.residents[1].1.clone(), m.residents[2].1.clone());
    let mut edits = vec![unit("u1", 8_950), unit("u2", 12_000), unit("u3", 6_000)];
    for (who, u) in [(&r0, "u1"), (&r0, "u2"), (&r1, "u3"), (&r2, "u3")] {
        edits.push(SpaceEdit::Link { member: who.clone(), unit: u.into(), relation: Relation::Owner });
        edits.push(SpaceEdit::VerifyOwner { member: who.clone(), unit: u.into(), by: me.clone() });
    }
    m.coord.edit_space(&m.space, &edits).expect("register");
    let voters = poll::electorate(
        &m.coord.view(&m.space).expect("view"),
        &Eligibility::VerifiedOwners { matter: Matter::Ordinary, building: None, grid: None },
    );
    assert_eq!(voters.len(), 2, "r0 owns two units (one head); u3's co-owners count once");
    assert!(voters.iter().any(|v| v.members == vec![r0.clone()] && v.area_centi == 20_950));
    let mut co = vec![r1.clone(), r2.clone()];
    co.sort();
    assert!(
        voters.iter().any(|v| v.members == co && v.area_centi == 6_000),
        "either co-owner may vote for u3; the unit counts once"
    );
}

#[test]
fn the_electorate_is_fixed_when_the_vote_opens() {
    let mut m = meeting(2);
    let vote =
        poll::create(&m.coord, &m.space, &spec(VoteKind::YesNoAbstain, Eligibility::AllMembers)).expect("create");
    poll::open(&m.coord, &m.space, &vote).expect("open");
    let late = join(&m.coord, &m.space, "后来的人");
    m.residents.push(late);
    m.share_vote(&vote);
    let (p, _) = m.residents.last().expect("late");
    assert!(poll::cast(p, &m.space, &vote, &[0]).is_err(), "not in the electorate");
    let t = poll::results(&m.coord, &m.space, &vote).expect("results").expect("visible");
    assert_eq!(t.eligible.heads, 3, "the later member does not move the thresholds");
}

#[test]
fn meeting_mode_paper_ballots_and_proxies() {
    let m = meeting(4);
    let mut s = spec(VoteKind::YesNoAbstain, Eligibility::AllMembers);
    s.proxy_limit = 1;
    let vote = poll::create(&m.coord, &m.space, &s).expect("create");
    poll::open(&m.coord, &m.space, &vote).expect("open");
    m.share_vote(&vote);
    let ids: Vec<String> = m.residents.iter().map(|(_, id)| id.clone()).collect();
    // r0 has no phone at the meeting: a paper ballot; but r0 also voted on the phone later: own wins.
    poll::enter_paper_ballot(&m.coord, &m.space, &vote, &ids[0], &[1]).expect("paper");
    let own = poll::cast(&m.residents[0].0, &m.space, &vote, &[0]).expect("own");
    // r1 and r2 both give their proxy to r3; the limit is one proxy per person.
    poll::grant_proxy(&m.residents[1].0, &m.space, &vote, &ids[3]).expect("grant");
    std::thread::sleep(std::time::Duration::from_millis(3));
    poll::grant_proxy(&m.residents[2].0, &m.space, &vote, &ids[3]).expect("grant");
    push(&m.residents[1].0, &m.residents[3].0, &m.space);
    push(&m.residents[2].0, &m.residents[3].0, &m.space);
    let by_proxy = poll::cast_as_proxy(&m.residents[3].0, &m.space, &vote, &ids[1], &[1]).expect("proxy for r1");
    let over_limit = poll::cast_as_proxy(&m.residents[3].0, &m.space, &vote, &ids[2], &[1]).expect("proxy for r2");
    assert!(poll::cast_as_proxy(&m.residents[0].0, &m.space, &vote, &ids[1], &[0]).is_err(), "r0 holds no proxy");
    // A resident may not enter paper ballots.
    assert!(matches!(
        poll::enter_paper_ballot(&m.residents[0].0, &m.space, &vote, &ids[1], &[0]),
        Err(linli_core::Error::NotAllowed(_))
    ));
    m.gather();
    poll::close(&m.coord, &m.space, &vote).expect("close");
    let t = poll::publish(&m.coord, &m.space, &vote).expect("publish");
    assert!(t.counts(&own), "the member's own ballot beats the paper one");
    assert!(t.counts(&by_proxy), "the first proxy is honoured");
    assert!(!t.counts(&over_limit), "the second exceeds the limit of one");
    assert_eq!(t.set_aside.get("not_authorised"), Some(&1));
    assert_eq!(t.set_aside.get("superseded"), Some(&1));
    let modes: BTreeSet<Mode> = t.audit.iter().map(|a| a.mode).collect();
    assert_eq!(
        modes,
        BTreeSet::from([Mode::Own, Mode::Proxy, Mode::Paper]),
        "the audit records how each ballot was cast"
    );
}

#[test]
fn ballots_for_coordinators_only_live_in_private_documents() {
    let m = meeting(1);
    let vote =
        poll::create(&m.coord, &m.space, &spec(VoteKind::YesNoAbstain, Eligibility::AllMembers)).expect("create");
    poll::open(&m.coord, &m.space, &vote).expect("open");
    m.share_vote(&vote);
    let (p, id) = &m.residents[0];
    poll::cast(p, &m.space, &vote, &[0]).expect("cast");
    assert!(!p.heads(&m.space, &DocId::own_private(id, &vote)).expect("heads").is_empty());
    assert!(p.heads(&m.space, &DocId::own_public(id, &vote)).expect("heads").is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    /// The tally is a function of the set of ballots and grants: any order
    /// gives the identical tally and threshold report.
    #[test]
    fn tally_ignores_the_order_ballots_arrive_in(
        raw in prop::collection::vec((0u8..8, 0u8..8, 0u8..3, 0u32..4, 0i64..1_200), 0..60),
        grants in prop::collection::vec((0u8..8, 0u8..9, 0i64..1_000), 0..12),
        seed in any::<u64>(),
    ) {
        let electorate: Vec<(String, i64)> = (0..6).map(|i| (format!("m{i}"), 5_000 + i64::from(i) * 1_000)).collect();
        let v = Vote {
            id: "v".into(),
            spec: VoteSpec { proxy_limit: 2, ..spec(VoteKind::YesNoAbstain, Eligibility::VerifiedOwners { matter: Matter::Special, building: None, grid: None }) },
            stage: Stage::Closed,
            opened_at: Some(100),
            closed_at: Some(1_000),
            electorate: electorate.iter().map(|(id, a)| Voter { id: id.clone(), members: vec![id.clone()], area_centi: *a, units: Vec::new() }).collect(),
            hidden: false,
            matter: None,
        };
        let casts: Vec<Cast> = raw.iter().enumerate().map(|(n, (author, voter, mode, choice, at))| Cast {
            author: format!("m{author}"),
            voter: format!("m{voter}"),
            mode: [Mode::Own, Mode::Proxy, Mode::Paper][*mode as usize],
            choice: vec![*choice],
            at: *at,
            receipt: { let mut r = [0u8; 32]; r[..8].copy_from_slice(&(n as u64).to_be_bytes()); r },
        }).collect();
        let grants: Vec<Grant> = grants.iter().enumerate().map(|(n, (g, p, at))| Grant {
            grantor: format!("m{g}"),
            proxy: if *p == 8 { String::new() } else { format!("m{p}") },
            at: *at,
            entry: format!("g/{n}"),
        }).collect();
        let coordinators = BTreeSet::from(["m7".to_string()]);
        let want = poll::tally(&v, &casts, &grants, &coordinators);
        let got = poll::tally(&v, &shuffled(&casts, seed), &shuffled(&grants, seed ^ 7), &coordinators);
        prop_assert_eq!(&got, &want);
        prop_assert_eq!(want.counted + want.set_aside.values().sum::<i64>(), casts.len() as i64);
        prop_assert!(want.counted <= 6);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, .. ProptestConfig::default() })]

    /// Real stores: residents vote and revote offline; their documents reach
    /// three replicas in different orders and batches; every replica computes
    /// the identical tally.
    #[test]
    fn every_replica_computes_the_same_tally(choices in prop::collection::vec(prop::collection::vec(0u32..5, 1..4), 4), seed in any::<u64>()) {
        let m = meeting(4);
        let vote = poll::create(&m.coord, &m.space, &spec(VoteKind::Satisfaction, Eligibility::AllMembers)).expect("create");
        poll::open(&m.coord, &m.space, &vote).expect("open");
        m.share_vote(&vote);
        for ((p, _), picks) in m.residents.iter().zip(&choices) {
            for c in picks {
                poll::cast(p, &m.space, &vote, &[*c]).expect("cast");
            }
        }
        let replicas = [phone(), phone(), phone()];
        let all = every_change(&std::iter::once(&*m.coord).chain(m.residents.iter().map(|(p, _)| &**p)).collect::<Vec<&linli_core::store::Store>>(), &m.space);
        for (k, r) in replicas.iter().enumerate() {
            prop_assert!(deliver_shuffled(r, &m.space, &all, seed.wrapping_add(k as u64)));
        }
        let want = poll::results(&replicas[0], &m.space, &vote).expect("results");
        prop_assert!(want.is_some());
        for r in &replicas[1..] {
            prop_assert_eq!(&poll::results(r, &m.space, &vote).expect("results"), &want);
        }
        prop_assert_eq!(want.expect("tally").counted, 4);
    }
}

/// An open yes/no vote whose ballots every member reads, resident 0's honest
/// "yes" in it, and a tablet of resident 0's that the test holds the key of.
fn vote_with_a_tablet() -> (Meeting, String, String, linli_core::identity::DeviceKey) {
    let m = meeting(1);
    let vote = poll::create(
        &m.coord,
        &m.space,
        &VoteSpec { visibility: BallotVisibility::AllMembers, ..spec(VoteKind::YesNoAbstain, Eligibility::AllMembers) },
    )
    .expect("create");
    poll::open(&m.coord, &m.space, &vote).expect("open");
    m.share_vote(&vote);
    let member = m.residents[0].1.clone();
    let honest = poll::cast(&m.residents[0].0, &m.space, &vote, &[0]).expect("yes");
    let tablet = linli_core::identity::DeviceKey::generate().expect("key");
    m.coord
        .edit_space(&m.space, &[SpaceEdit::AddDevice { member, device: tablet.id(), label: "平板".into() }])
        .expect("tablet");
    m.gather();
    (m, vote, honest, tablet)
}

/// An entry's time is bounded by the change that carries it (#13, item 5): a
/// ballot a resident's device dates a day after its own change — to stand as
/// that voter's latest until the close — counts nowhere, and the voter's
/// honest ballot stands; a close dated after its change closes nothing.
#[test]
fn an_entry_dated_after_its_change_moves_nothing() {
    use automerge::ROOT;
    use automerge::transaction::{CommitOptions, Transactable};
    let (m, vote, honest, tablet) = vote_with_a_tablet();
    let (p, member) = (&m.residents[0].0, m.residents[0].1.clone());
    let now = linli_core::store::now_ms();
    let doc = DocId::own_public(&member, &vote);
    let ahead = common::craft(p, &m.space, &doc, &tablet, &tablet, |tx| {
        let b = tx.put_object(ROOT, format!("b/{:013}/zz", now + 86_400_000), automerge::ObjType::Map).expect("entry");
        tx.put(&b, "for", member.as_str()).expect("for");
        tx.put(&b, "mode", "own").expect("mode");
        tx.put(&b, "choice", "[1]").expect("choice");
        tx.put(&b, "at", now + 86_400_000).expect("at");
    });
    let r = m.coord.apply(&m.space, &doc, vec![ahead]).expect("apply");
    assert_eq!(r.accepted.len(), 1, "the change itself is a member's to write: {r:?}");
    let t = poll::results(&m.coord, &m.space, &vote).expect("results").expect("a tally");
    assert!(t.counts(&honest), "the honest ballot stands: {:?}", t.audit);
    assert_eq!(t.counted, 1);
    // A close dated a day after the change that carries it.
    let item = DocId::Item { item: vote.clone() };
    let coord_key = linli_core::identity::DeviceKey::generate().expect("key");
    let me = m.coord.my_member(&m.space).expect("me");
    m.coord
        .edit_space(
            &m.space,
            &[SpaceEdit::AddDevice { member: me.clone(), device: coord_key.id(), label: "平板".into() }],
        )
        .expect("device");
    let mut d = automerge::Automerge::new();
    for c in m.coord.changes_since(&m.space, &item, &[]).expect("changes") {
        d.load_incremental(&c.bytes).expect("load");
    }
    d.set_actor(coord_key.actor());
    let mut tx = d.transaction();
    let c = tx.put_object(ROOT, "closed", automerge::ObjType::Map).expect("closed");
    tx.put(&c, "at", now + 86_400_000).expect("at");
    tx.put(&c, "by", me.as_str()).expect("by");
    tx.commit_with(CommitOptions::default().with_time(now));
    let change = d.get_last_local_change().expect("change");
    let signed = linli_core::doc::SignedChange {
        bytes: change.raw_bytes().to_vec(),
        signature: coord_key.sign_change(&m.space, &item, &change.hash()).to_vec(),
    };
    assert_eq!(m.coord.apply(&m.space, &item, vec![signed]).expect("apply").accepted.len(), 1);
    assert_eq!(poll::vote(&m.coord, &m.space, &vote).expect("vote").stage, Stage::Open, "the close moved nothing");
}

/// Entries name their item (#13, item 3): a ballot a member's own device
/// writes into their document for vote 2 but names vote 1 counts in neither
/// vote, and vote 1's published result written under vote 2 shows nowhere.
#[test]
fn an_entry_naming_another_item_counts_nowhere() {
    use automerge::ROOT;
    use automerge::transaction::Transactable;
    let m = meeting(1);
    let open = |title: &str| {
        let s = VoteSpec { title: title.into(), ..spec(VoteKind::YesNoAbstain, Eligibility::AllMembers) };
        let v = poll::create(&m.coord, &m.space, &s).expect("create");
        poll::open(&m.coord, &m.space, &v).expect("open");
        v
    };
    let (v1, v2) = (open("第一次"), open("第二次"));
    m.share_vote(&v1);
    let (p, member) = (&m.residents[0].0, m.residents[0].1.clone());
    let real = poll::cast(p, &m.space, &v1, &[0]).expect("vote 1");
    let key = format!("b/{:013}/zz", linli_core::store::now_ms());
    p.write(&m.space, &DocId::own_private(&member, &v2), |tx| {
        let b = tx.put_object(ROOT, key.as_str(), automerge::ObjType::Map)?;
        tx.put(&b, "item", v1.as_str())?;
        tx.put(&b, "for", member.as_str())?;
        tx.put(&b, "mode", "own")?;
        tx.put(&b, "choice", "[1]")?;
        tx.put(&b, "at", linli_core::store::now_ms())?;
        Ok(())
    })
    .expect("a member's own document");
    m.gather();
    let t2 = poll::results(&m.coord, &m.space, &v2).expect("results").expect("visible");
    assert!(t2.audit.is_empty(), "the entry names vote 1: it counts nowhere in vote 2: {:?}", t2.audit);
    let t1 = poll::results(&m.coord, &m.space, &v1).expect("results").expect("visible");
    assert_eq!(t1.counted_receipts(), vec![real], "nor in vote 1, whose document does not hold it");
    // A coordinator replays vote 1's published result under vote 2.
    poll::close(&m.coord, &m.space, &v1).expect("close");
    let published = poll::publish(&m.coord, &m.space, &v1).expect("publish");
    let json = serde_json::to_string(&published).expect("json");
    m.coord
        .write(&m.space, &DocId::Results { item: v2.clone() }, |tx| {
            tx.put(ROOT, "tally", json.as_str())?;
            Ok(())
        })
        .expect("write");
    assert_eq!(poll::published(&m.coord, &m.space, &v2).expect("read"), None, "it names vote 1");
    assert_eq!(poll::published(&m.coord, &m.space, &v1).expect("read"), Some(published));
}

/// Results stay right after publication (#15, item 3): a ballot cast before
/// the close that arrives after the result was published reaches the
/// official result by publishing again, the earlier publication stays,
/// dated, and the result every member reads names no voter of a vote whose
/// ballots only coordinators may read.
#[test]
fn a_ballot_that_arrives_after_publication_reaches_the_official_result() {
    let m = meeting(2);
    let vote =
        poll::create(&m.coord, &m.space, &spec(VoteKind::YesNoAbstain, Eligibility::AllMembers)).expect("create");
    poll::open(&m.coord, &m.space, &vote).expect("open");
    m.share_vote(&vote);
    let on_time = poll::cast(&m.residents[0].0, &m.space, &vote, &[0]).expect("cast");
    let offline = poll::cast(&m.residents[1].0, &m.space, &vote, &[1]).expect("cast offline");
    push(&m.residents[0].0, &m.coord, &m.space);
    poll::close(&m.coord, &m.space, &vote).expect("close");
    let first = poll::publish(&m.coord, &m.space, &vote).expect("publish");
    assert!(first.counts(&on_time) && !first.counts(&offline));
    assert!(poll::publish(&m.coord, &m.space, &vote).is_err(), "nothing new to publish");
    // The offline phone syncs after the publication: its ballot was cast before the close.
    push(&m.residents[1].0, &m.coord, &m.space);
    assert!(poll::results(&m.coord, &m.space, &vote).expect("results").expect("tally").counts(&offline));
    let second = poll::publish(&m.coord, &m.space, &vote).expect("publish again");
    assert!(second.counts(&offline) && second.counts(&on_time), "every voter finds their receipt");
    let all = poll::publications(&m.coord, &m.space, &vote).expect("publications");
    assert_eq!(all.len(), 2, "the earlier publication is kept");
    assert!(all[0].at <= all[1].at && all[0].tally == first && all[1].tally == second);
    assert_eq!(poll::published(&m.coord, &m.space, &vote).expect("read"), Some(second.clone()));
    // What a resident's phone reads names no voter: receipts, modes and the turnout only.
    let results = DocId::Results { item: vote.clone() };
    common::copy_doc(&m.coord, &m.residents[0].0, &m.space, &results);
    let read = poll::published(&m.residents[0].0, &m.space, &vote).expect("read").expect("published");
    assert_eq!(read.counted, 2);
    let members: Vec<&String> = m.residents.iter().map(|(_, id)| id).collect();
    let json = serde_json::to_string(&read).expect("json");
    for id in members {
        assert!(!json.contains(id.as_str()), "the published result names no voter");
    }
}

/// A change dated further ahead of the receiver's clock than
/// `MAX_AHEAD_MS` (#13, item 5) is not merged: a ballot a device dates
/// ahead, with its change, to stand as its voter's latest for ever waits,
/// with every change built on it, and the honest ballot stands. Nothing is
/// lost: once the clock comes within the bound, the next merge takes both.
#[test]
fn a_change_dated_ahead_of_the_receivers_clock_waits_for_its_time() {
    use automerge::ROOT;
    use automerge::transaction::{CommitOptions, Transactable};
    use linli_core::store::{MAX_AHEAD_MS, now_ms};
    let (m, vote, honest, tablet) = vote_with_a_tablet();
    let member = m.residents[0].1.clone();
    let doc = DocId::own_public(&member, &vote);
    let ahead = now_ms() + MAX_AHEAD_MS + 1_500;
    let mut d = automerge::Automerge::new();
    for c in m.coord.changes_since(&m.space, &doc, &[]).expect("changes") {
        d.load_incremental(&c.bytes).expect("load");
    }
    d.set_actor(tablet.actor());
    let sign = |d: &automerge::Automerge| {
        let c = d.get_last_local_change().expect("change");
        linli_core::doc::SignedChange {
            bytes: c.raw_bytes().to_vec(),
            signature: tablet.sign_change(&m.space, &doc, &c.hash()).to_vec(),
        }
    };
    let mut tx = d.transaction();
    let b = tx.put_object(ROOT, format!("b/{ahead:013}/zz"), automerge::ObjType::Map).expect("entry");
    tx.put(&b, "item", vote.as_str()).expect("item");
    tx.put(&b, "for", member.as_str()).expect("for");
    tx.put(&b, "mode", "own").expect("mode");
    tx.put(&b, "choice", "[1]").expect("choice");
    tx.put(&b, "at", ahead).expect("at");
    tx.commit_with(CommitOptions::default().with_time(ahead));
    let early = sign(&d);
    let mut tx = d.transaction();
    tx.put(ROOT, "note", "on top").expect("note");
    tx.commit_with(CommitOptions::default().with_time(now_ms()));
    let on_top = sign(&d);
    let heads = m.coord.heads(&m.space, &doc).expect("heads");
    let r = m.coord.apply(&m.space, &doc, vec![early.clone()]).expect("apply");
    assert!(r.accepted.is_empty() && r.refused.is_empty() && r.held.len() == 1, "it waits: {r:?}");
    let r = m.coord.apply(&m.space, &doc, vec![on_top, early]).expect("apply");
    assert!(r.accepted.is_empty() && r.held.len() == 1 && r.duplicates == 1, "so does one built on it: {r:?}");
    assert_eq!(m.coord.heads(&m.space, &doc).expect("heads"), heads, "nothing merged");
    let t = poll::results(&m.coord, &m.space, &vote).expect("results").expect("a tally");
    assert!(t.counts(&honest), "the honest ballot stands: {:?}", t.audit);
    // Its time comes: the next merge (of anything) takes both.
    while now_ms() + MAX_AHEAD_MS < ahead {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    m.coord.apply(&m.space, &doc, Vec::new()).expect("apply");
    assert_eq!(m.coord.heads(&m.space, &doc).expect("heads").len(), 1);
    assert_ne!(m.coord.heads(&m.space, &doc).expect("heads"), heads, "both merged");
    let t = poll::results(&m.coord, &m.space, &vote).expect("results").expect("a tally");
    assert!(!t.counts(&honest) && t.counted == 1, "now the later ballot is the voter's latest: {:?}", t.audit);
}

//! Revocation nobody can dodge: a stolen phone that never syncs its
//! revocation keeps no power, in the register or anywhere else, whatever
//! deps or clock its changes claim — and replicas that learn of the
//! revocation before or after its changes end identical.

mod common;

use common::{all_changes, join, phone, push};
use linli_core::doc::DocId;
use linli_core::identity::DeviceKey;
use linli_core::poll::{self, BallotVisibility, Eligibility, VoteKind, VoteSpec};
use linli_core::space::{Role, SpaceEdit};
use linli_core::store::Store;
use linli_core::{Error, Refusal};

/// Deliver each store's changes of every document to `to`, register first,
/// in the order given, as several syncs would.
fn deliver(to: &Store, space: &str, from: &[&Store]) {
    for f in from {
        let mut docs = f.doc_ids(space).expect("docs");
        docs.sort_by_key(|d| *d != DocId::Space);
        for d in docs {
            to.apply(space, &d, all_changes(f, space, &d)).expect("apply");
        }
    }
}

/// Everything a replica shows of a space: the register and each document's heads.
fn state(s: &Store, space: &str) -> (linli_core::space::SpaceView, Vec<(DocId, Vec<automerge::ChangeHash>)>) {
    let mut heads: Vec<_> =
        s.doc_ids(space).expect("docs").into_iter().map(|d| (d.clone(), s.heads(space, &d).expect("heads"))).collect();
    heads.retain(|(_, h)| !h.is_empty());
    (s.view(space).expect("view"), heads)
}

#[test]
fn a_stolen_revoked_admin_phone_keeps_no_admin_power() {
    let admin = phone();
    let space = admin.create_space("s", "admin").expect("create");
    let me = admin.my_member(&space).expect("me");
    let (_resident_phone, resident) = join(&admin, &space, "resident");
    // The admin's second phone, later stolen.
    let stolen = phone();
    admin
        .edit_space(
            &space,
            &[SpaceEdit::AddDevice { member: me.clone(), device: stolen.device_id(), label: "2".into() }],
        )
        .expect("add");
    push(&admin, &stolen, &space);
    // Theft: the admin revokes it from the first phone; the thief never syncs.
    admin
        .edit_space(&space, &[SpaceEdit::RevokeDevice { member: me.clone(), device: stolen.device_id() }])
        .expect("revoke");
    // The stolen phone acts as the admin it was: a device of its own, admin
    // rights for an accomplice, an invite.
    let intruder = DeviceKey::generate().expect("key");
    stolen
        .edit_space(&space, &[SpaceEdit::AddDevice { member: me.clone(), device: intruder.id(), label: "x".into() }])
        .expect("the thief's own phone takes it");
    stolen
        .edit_space(&space, &[SpaceEdit::SetRole { member: resident.clone(), role: Role::Admin, granted: true }])
        .expect("grant");
    stolen.create_invite(&space, "accomplice", &[Role::Resident], None).expect("invite");

    // One replica learns of the revocation first; the other merges the
    // thief's edits first and the revocation after.
    let first = phone();
    deliver(&first, &space, &[&admin, &stolen]);
    let second = phone();
    deliver(&second, &space, &[&stolen]);
    assert!(second.view(&space).expect("view").members[&resident].has(Role::Admin), "before: the edits landed");
    deliver(&second, &space, &[&admin]);
    for r in [&first, &second, &admin.store] {
        let v = r.view(&space).expect("view");
        assert!(v.member_of(&intruder.id()).is_none(), "the thief's device is no device");
        assert!(!v.members[&resident].has(Role::Admin), "no admin by a revoked phone");
        assert!(
            v.invites.values().all(|i| i.created_by != me || i.member.is_empty() || v.members.contains_key(&i.member))
        );
        assert!(v.members.values().all(|m| m.name != "accomplice"), "no invite by a revoked phone");
    }
    assert_eq!(state(&first, &space), state(&second, &space), "identical whatever the order");
    // Sending the edits again changes nothing.
    deliver(&second, &space, &[&stolen]);
    assert_eq!(state(&first, &space), state(&second, &space));
    let audit = second.refusals(&space).expect("audit");
    assert!(audit.iter().any(|r| r.reason == Refusal::RevokedDevice.to_string()), "{audit:?}");
}

#[test]
fn honest_changes_the_revoker_had_seen_keep_counting() {
    let admin = phone();
    let space = admin.create_space("s", "admin").expect("create");
    let (resident_phone, resident) = join(&admin, &space, "resident");
    let doc = DocId::own_public(&resident, "2026");
    resident_phone
        .write(&space, &doc, |tx| Ok(automerge::transaction::Transactable::put(tx, automerge::ROOT, "a", 1)?))
        .expect("w");
    push(&resident_phone, &admin, &space);
    // Written after the admin last synced: the revocation cuts it off.
    resident_phone
        .write(&space, &doc, |tx| Ok(automerge::transaction::Transactable::put(tx, automerge::ROOT, "b", 2)?))
        .expect("w");
    admin
        .edit_space(&space, &[SpaceEdit::RevokeDevice { member: resident.clone(), device: resident_phone.device_id() }])
        .expect("revoke");
    let cut = admin.view(&space).expect("view").members[&resident].devices[&resident_phone.device_id()].cut.clone();
    assert_eq!(cut.expect("a cut").docs.get(&doc.to_string()), Some(&1), "the revoker had seen one change");
    let late = phone();
    deliver(&late, &space, &[&resident_phone, &admin]);
    let early = phone();
    deliver(&early, &space, &[&admin, &resident_phone]);
    for r in [&late, &early, &admin.store] {
        assert_eq!(r.heads(&space, &doc).expect("heads").len(), 1);
        let keys =
            r.read(&space, &doc, |d| automerge::ReadDoc::keys(d, automerge::ROOT).collect::<Vec<_>>()).expect("read");
        assert_eq!(keys, ["a"], "the change the revoker had seen stays; the later one does not");
    }
    assert_eq!(state(&late, &space), state(&early, &space));
}

/// A ballot for `resident` in `vote` by `device`, choosing option 1, dated a
/// minute from now (so it would be the one that counts), built on what
/// `base` holds of the ballot document.
fn forged_ballot(
    base: &Store,
    space: &str,
    resident: &str,
    vote: &str,
    device: &DeviceKey,
) -> linli_core::doc::SignedChange {
    let ballot_doc = DocId::own_private(resident, vote);
    let at = linli_core::store::now_ms() + 60_000;
    let made = common::craft(base, space, &ballot_doc, device, device, |tx| {
        use automerge::transaction::Transactable;
        let b =
            tx.put_object(automerge::ROOT, format!("b/{at:013}/ffffffffffffffff"), automerge::ObjType::Map).expect("b");
        tx.put(&b, "for", resident).expect("for");
        tx.put(&b, "mode", "own").expect("mode");
        tx.put(&b, "choice", "[1]").expect("choice");
        tx.put(&b, "at", at).expect("at");
    });
    // Its change dated as late as the ballot, so the ballot's time stands.
    common::forge(&made, space, &ballot_doc, device, |e| e.time = at)
}

fn vote_spec() -> VoteSpec {
    VoteSpec {
        title: "加装电梯".into(),
        kind: VoteKind::YesNoAbstain,
        eligibility: Eligibility::AllMembers,
        visibility: BallotVisibility::CoordinatorsOnly,
        hide_results: false,
        proxy_limit: 1,
    }
}

/// A coordinator, a resident with a phone and a tablet (whose key the test
/// holds), and an open vote.
struct TabletVote {
    coord: common::Phone,
    space: String,
    resident_phone: common::Phone,
    resident: String,
    tablet: DeviceKey,
    vote: String,
}

fn tablet_vote() -> TabletVote {
    let coord = phone();
    let space = coord.create_space("s", "coord").expect("create");
    let (resident_phone, resident) = join(&coord, &space, "resident");
    let tablet = DeviceKey::generate().expect("key");
    coord
        .edit_space(
            &space,
            &[SpaceEdit::AddDevice { member: resident.clone(), device: tablet.id(), label: "t".into() }],
        )
        .expect("tablet");
    let vote = poll::create(&coord, &space, &vote_spec()).expect("vote");
    poll::open(&coord, &space, &vote).expect("open");
    TabletVote { coord, space, resident_phone, resident, tablet, vote }
}

#[test]
fn a_revoked_tablet_cannot_vote_for_its_member() {
    let TabletVote { coord, space, resident_phone, resident, tablet, vote } = tablet_vote();
    push(&coord, &resident_phone, &space);
    // The tablet is lost and revoked before it ever voted.
    coord
        .edit_space(&space, &[SpaceEdit::RevokeDevice { member: resident.clone(), device: tablet.id() }])
        .expect("revoke");
    // Whoever holds it votes "no" for the resident, dated later than any
    // ballot (so it would be the one that counts), in a change whose clock
    // says it was made long before the revocation.
    let ballot_doc = DocId::own_private(&resident, &vote);
    let forged = forged_ballot(&coord, &space, &resident, &vote, &tablet);
    let backdated = common::forge(&forged, &space, &ballot_doc, &tablet, |e| e.time = 1_000);
    poll::cast(&resident_phone, &space, &vote, &[0]).expect("cast");
    // A neighbour relays the tablet's ballot; replicas hear of things in either order.
    let relay = |to: &Store| to.apply(&space, &ballot_doc, vec![backdated.clone()]).expect("apply");
    let a = phone();
    deliver(&a, &space, &[&coord]);
    relay(&a);
    deliver(&a, &space, &[&resident_phone]);
    let r = relay(&coord);
    assert!(r.accepted.is_empty(), "the coordinator refuses it: {r:?}");
    deliver(&coord, &space, &[&resident_phone]);
    for r in [&a, &coord.store] {
        let t = poll::results(r, &space, &vote).expect("results").expect("tally");
        assert_eq!(t.options[0].count.heads, 1, "the resident's own ballot counts");
        assert_eq!(t.options[1].count.heads, 0, "the revoked tablet's does not: {:?}", t.audit);
    }
    assert_eq!(state(&a, &space), state(&coord, &space));
}

#[test]
fn a_ballot_merged_before_its_devices_revocation_arrives_is_removed() {
    let TabletVote { coord, space, resident_phone, resident, tablet, vote } = tablet_vote();
    // The server holds everything so far; the tablet is then revoked on the
    // coordinator's phone, which has not yet synced.
    let server = phone();
    push(&coord, &server, &space);
    coord
        .edit_space(&space, &[SpaceEdit::RevokeDevice { member: resident.clone(), device: tablet.id() }])
        .expect("revoke");
    let ballot_doc = DocId::own_private(&resident, &vote);
    let forged = forged_ballot(&server, &space, &resident, &vote, &tablet);
    // The server merges the tablet's ballot: it knows of no revocation yet.
    assert_eq!(server.apply(&space, &ballot_doc, vec![forged]).expect("apply").accepted.len(), 1);
    let t = poll::results(&server, &space, &vote).expect("results").expect("tally");
    assert_eq!(t.options[1].count.heads, 1, "before the revocation arrives, it counts");
    // The revocation arrives: the ballot's effects are removed.
    deliver(&server, &space, &[&coord]);
    let t = poll::results(&server, &space, &vote).expect("results").expect("tally");
    assert_eq!((t.options[1].count.heads, t.counted), (0, 0), "{:?}", t.audit);
    assert!(server.heads(&space, &ballot_doc).expect("heads").is_empty());
    assert_eq!(state(&server, &space), state(&coord, &space), "the same as a replica that never merged it");
    drop(resident_phone);
}

#[test]
fn a_demoted_coordinators_phone_cannot_mint_invites() {
    let admin = phone();
    let space = admin.create_space("s", "admin").expect("create");
    let (coord_phone, coord) = join(&admin, &space, "coordinator");
    admin
        .edit_space(&space, &[SpaceEdit::SetRole { member: coord.clone(), role: Role::Coordinator, granted: true }])
        .expect("grant");
    push(&admin, &coord_phone, &space);
    admin
        .edit_space(&space, &[SpaceEdit::SetRole { member: coord.clone(), role: Role::Coordinator, granted: false }])
        .expect("demote");
    coord_phone.create_invite(&space, "friend", &[Role::Resident], None).expect("still thinks it may");
    let r = admin.apply(&space, &DocId::Space, all_changes(&coord_phone, &space, &DocId::Space)).expect("apply");
    assert!(r.accepted.is_empty(), "{r:?}");
    assert!(matches!(r.refused.as_slice(), [(_, Refusal::NotAWriter(_) | Refusal::Forbidden(_))]), "{r:?}");
    // Once it syncs the demotion, its own store refuses to try.
    push(&admin, &coord_phone, &space);
    let e = coord_phone.create_invite(&space, "friend", &[Role::Resident], None).expect_err("not a coordinator now");
    assert!(matches!(e, Error::Refused { .. } | Error::NotAllowed(_)), "{e:?}");
}

/// A cut names the change it stops at, not only its number (#13): a tablet
/// signs two changes with one sequence number, the revoker merges one and
/// a neighbour's phone the other. Once the revocation is known, only the
/// half the revoker had seen counts, on both, whichever comes first in the
/// canonical order (the test picks the other half to come first).
#[test]
fn the_other_half_of_a_pair_at_the_cut_counts_nowhere() {
    let admin = phone();
    let space = admin.create_space("s", "admin").expect("create");
    let (resident_phone, resident) = join(&admin, &space, "resident");
    let tablet = DeviceKey::generate().expect("key");
    admin
        .edit_space(
            &space,
            &[SpaceEdit::AddDevice { member: resident.clone(), device: tablet.id(), label: "平板".into() }],
        )
        .expect("tablet");
    push(&admin, &resident_phone, &space);
    let doc = DocId::own_public(&resident, "2026");
    let one = common::craft(&resident_phone, &space, &doc, &tablet, &tablet, |tx| {
        automerge::transaction::Transactable::put(tx, automerge::ROOT, "a", 1).expect("put");
    });
    let hash = |c: &linli_core::doc::SignedChange| automerge::Change::try_from(c.bytes.as_slice()).expect("c").hash();
    let two = (1..)
        .map(|k| common::forge(&one, &space, &doc, &tablet, |e| e.time += k))
        .find(|t| hash(t) < hash(&one))
        .expect("a half that sorts first");
    assert_eq!(admin.apply(&space, &doc, vec![one.clone()]).expect("apply").accepted.len(), 1);
    assert_eq!(resident_phone.apply(&space, &doc, vec![two.clone()]).expect("apply").accepted.len(), 1);
    admin
        .edit_space(&space, &[SpaceEdit::RevokeDevice { member: resident.clone(), device: tablet.id() }])
        .expect("revoke");
    let cut = admin.view(&space).expect("view").members[&resident].devices[&tablet.id()].cut.clone().expect("cut");
    assert_eq!(cut.names(&doc.to_string()), Some((1, hash(&one))), "the cut names the change");
    push(&admin, &resident_phone, &space);
    push(&resident_phone, &admin, &space);
    for r in [&admin.store, &resident_phone.store] {
        assert_eq!(r.heads(&space, &doc).expect("heads"), [hash(&one)], "the half the revoker saw stands");
    }
    assert_eq!(state(&admin, &space), state(&resident_phone, &space));
}

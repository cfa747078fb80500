//! Invites admit exactly one phone, to a member still waiting for one: not a
//! way up for a coordinator, not a key that signs twice, and one invite
//! redeemed on two phones through two peers ends the same everywhere.

mod common;

use automerge::transaction::Transactable;
use automerge::{ObjType, ROOT, ReadDoc};
use common::{all_changes, craft, join, phone, push};
use linli_core::Refusal;
use linli_core::doc::DocId;
use linli_core::identity::DeviceKey;
use linli_core::space::{Role, SpaceEdit};
use linli_core::store::Store;

fn map(store: &Store, space: &str, path: &[&str]) -> automerge::ObjId {
    store
        .read(space, &DocId::Space, |d| {
            let mut obj = ROOT;
            for p in path {
                obj = match d.get(&obj, *p) {
                    Ok(Some((_, id))) => id,
                    _ => panic!("no {p}"),
                };
            }
            obj
        })
        .expect("read")
}

#[test]
fn an_invite_a_coordinator_writes_for_an_admin_admits_nobody() {
    let admin = phone();
    let space = admin.create_space("s", "admin").expect("create");
    let admin_member = admin.my_member(&space).expect("me");
    let (_c, coord) = join(&admin, &space, "coordinator");
    admin
        .edit_space(&space, &[SpaceEdit::SetRole { member: coord.clone(), role: Role::Coordinator, granted: true }])
        .expect("grant");
    let ckey = DeviceKey::generate().expect("key");
    admin
        .edit_space(&space, &[SpaceEdit::AddDevice { member: coord.clone(), device: ckey.id(), label: "c".into() }])
        .expect("device");
    // The coordinator writes an invite naming the admin, with a key it holds.
    let bearer = DeviceKey::generate().expect("key");
    let invites = map(&admin, &space, &["invites"]);
    let (bearer_hex, a) = (bearer.id().to_hex(), admin_member.clone());
    let invite = craft(&admin, &space, &DocId::Space, &ckey, &ckey, |tx| {
        let i = tx.put_object(&invites, "evil", ObjType::Map).expect("invite");
        tx.put(&i, "key", bearer_hex.as_str()).expect("key");
        tx.put(&i, "member", a.as_str()).expect("member");
        tx.put(&i, "created_by", "x").expect("by");
        tx.put(&i, "created_at", 1).expect("at");
        tx.put(&i, "expires_at", i64::MAX).expect("exp");
    });
    let r = admin.apply(&space, &DocId::Space, vec![invite]).expect("apply");
    assert_eq!(r.accepted.len(), 1, "writing the entry is a coordinator's right: {r:?}");
    // As its bearer: a phone of its own on the admin, or the admin removed,
    // each a redemption with the invite key's proof.
    let admin_obj = map(&admin, &space, &["members", &admin_member]);
    let devices = map(&admin, &space, &["members", &admin_member, "devices"]);
    let phone_key = DeviceKey::generate().expect("key");
    let mine = phone_key.id().to_hex();
    let proof = bearer.sign_tagged(
        linli_core::space::REDEEM_TAG,
        &linli_core::space::redemption_message(&space, "evil", &phone_key.id()),
    );
    let claim = format!("{}{mine}", linli_core::space::CLAIM);
    let redeem = |f: &dyn Fn(&mut automerge::transaction::Transaction<'_>)| {
        craft(&admin, &space, &DocId::Space, &phone_key, &phone_key, |tx| {
            let i = match tx.get(&invites, "evil") {
                Ok(Some((_, id))) => id,
                _ => panic!("invite"),
            };
            tx.put(&i, claim.as_str(), hex::encode(proof)).expect("claim");
            tx.put(&i, "redeemed_by", mine.as_str()).expect("redeemed");
            f(tx);
        })
    };
    let add = redeem(&|tx| {
        let d = tx.put_object(&devices, mine.as_str(), ObjType::Map).expect("device");
        tx.put(&d, "label", "phone").expect("label");
    });
    let r = admin.apply(&space, &DocId::Space, vec![add]).expect("apply");
    assert!(matches!(r.refused.as_slice(), [(_, Refusal::BadInvite)]), "{r:?}");
    let remove = redeem(&|tx| {
        tx.put(&admin_obj, "status", "removed").expect("status");
    });
    let r = admin.apply(&space, &DocId::Space, vec![remove]).expect("apply");
    assert!(matches!(r.refused.as_slice(), [(_, Refusal::BadInvite)]), "{r:?}");
    // Nor as the invite key itself, which writes nothing.
    let direct = craft(&admin, &space, &DocId::Space, &bearer, &bearer, |tx| {
        tx.put(&admin_obj, "status", "removed").expect("status");
    });
    let r = admin.apply(&space, &DocId::Space, vec![direct]).expect("apply");
    assert!(matches!(r.refused.as_slice(), [(_, Refusal::UnknownDevice)]), "{r:?}");
    let v = admin.view(&space).expect("view");
    assert_eq!(v.members[&admin_member].devices.len(), 1, "the admin's devices are the admin's");
    assert!(v.members[&admin_member].has(Role::Admin));
}

#[test]
fn an_invite_key_writes_nothing_itself() {
    let admin = phone();
    let space = admin.create_space("s", "admin").expect("create");
    let inv = admin.create_invite(&space, "resident", &[Role::Resident], None).expect("invite");
    let p = phone();
    p.join(&inv.code, "resident", all_changes(&admin, &space, &DocId::Space)).expect("join");
    push(&p, &admin, &space);
    // The same key, a second change: another device on the same member.
    let (_, key) = linli_core::store::parse_invite(&inv.code).expect("code");
    let devices = map(&admin, &space, &["members", &inv.member_id, "devices"]);
    let other = DeviceKey::generate().expect("key").id().to_hex();
    let again = craft(&admin, &space, &DocId::Space, &key, &key, |tx| {
        tx.put_object(&devices, other.as_str(), ObjType::Map).expect("device");
    });
    let r = admin.apply(&space, &DocId::Space, vec![again]).expect("apply");
    assert!(!r.refused.is_empty() && r.accepted.is_empty(), "{r:?}");
    assert_eq!(admin.view(&space).expect("view").members[&inv.member_id].devices.len(), 1);
}

#[test]
fn one_invite_redeemed_on_two_phones_through_two_peers_ends_the_same_everywhere() {
    let coord = phone();
    let space = coord.create_space("s", "coord").expect("create");
    let inv = coord.create_invite(&space, "new resident", &[Role::Resident], None).expect("invite");
    // The server and the coordinator's hub both hold the register.
    let (server, hub) = (phone(), phone());
    push(&coord, &server, &space);
    push(&coord, &hub, &space);
    // One phone redeems through the server, the other through the hub.
    let (p1, p2) = (phone(), phone());
    p1.join(&inv.code, "p1", all_changes(&server, &space, &DocId::Space)).expect("join 1");
    p2.join(&inv.code, "p2", all_changes(&hub, &space, &DocId::Space)).expect("join 2");
    push(&p1, &server, &space);
    push(&p2, &hub, &space);
    // The coordinator goes on editing at the hub.
    push(&hub, &coord, &space);
    coord.edit_space(&space, &[SpaceEdit::AddGrid { grid: "g1".into(), name: "东".into() }]).expect("grid");
    push(&coord, &hub, &space);
    // The hub and the server meet, in both directions.
    for (a, b) in [(&hub, &server), (&server, &hub)] {
        a.apply(&space, &DocId::Space, all_changes(b, &space, &DocId::Space)).expect("apply");
    }
    let (sv, hv) = (server.view(&space).expect("view"), hub.view(&space).expect("view"));
    assert_eq!(sv, hv, "one redemption wins, the same on both");
    assert_eq!(server.heads(&space, &DocId::Space).expect("h"), hub.heads(&space, &DocId::Space).expect("h"));
    let member = &sv.members[&inv.member_id];
    let phones = [p1.device_id(), p2.device_id()];
    assert_eq!(phones.iter().filter(|d| member.devices.contains_key(d)).count(), 1, "exactly one phone is admitted");
    // The coordinator's later edit was built on the hub's redemption: it
    // stands whichever redemption won (each is its own phone's change, and
    // the register decides between them at read time).
    assert!(sv.grids.contains_key("g1") && hv.grids.contains_key("g1"), "no other change is lost");
    // The other phone can be invited again.
    let loser = if member.devices.contains_key(&p1.device_id()) { &p2 } else { &p1 };
    coord.apply(&space, &DocId::Space, all_changes(&server, &space, &DocId::Space)).expect("apply");
    let again = coord.create_invite(&space, "second try", &[Role::Resident], None).expect("invite again");
    let fresh = phone();
    fresh.join(&again.code, "second try", all_changes(&coord, &space, &DocId::Space)).expect("join");
    push(&fresh, &coord, &space);
    assert!(coord.view(&space).expect("view").member_of(&fresh.device_id()).is_some());
    assert!(coord.view(&space).expect("view").member_of(&loser.device_id()).is_none(), "the other phone is not let in");
}

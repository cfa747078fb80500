//! Forged and unauthorised changes are refused before they are merged,
//! recorded for audit, and change nothing.

mod common;

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{Automerge, ROOT, ReadDoc};
use common::{all_changes, copy_doc, craft, join, phone};
use linli_core::doc::{DocId, SignedChange};
use linli_core::identity::DeviceKey;
use linli_core::space::{Role, SpaceEdit};
use linli_core::store::{Store, now_ms};
use linli_core::{Error, Refusal};

fn members_obj(store: &Store, space: &str) -> automerge::ObjId {
    store
        .read(space, &DocId::Space, |d| match d.get(ROOT, "members") {
            Ok(Some((_, id))) => id,
            _ => panic!("no members map"),
        })
        .expect("read")
}

struct World {
    admin: common::Phone,
    space: String,
    resident: String,
    resident_key: DeviceKey,
    other: String,
}

/// An admin, a resident whose device key the test holds, and another resident.
fn world() -> World {
    let admin = phone();
    let space = admin.create_space("s", "admin").expect("create");
    let (_p, resident) = join(&admin, &space, "resident");
    let (_q, other) = join(&admin, &space, "other");
    let resident_key = DeviceKey::generate().expect("key");
    admin
        .edit_space(
            &space,
            &[SpaceEdit::AddDevice { member: resident.clone(), device: resident_key.id(), label: "tablet".into() }],
        )
        .expect("add device");
    World { admin, space, resident, resident_key, other }
}

fn assert_refused(store: &Store, space: &str, doc: &DocId, change: SignedChange, want: Refusal) {
    let heads = store.heads(space, doc).expect("heads");
    let view = store.view(space).expect("view");
    let audit = store.refusals(space).expect("audit").len();
    let report = store.apply(space, doc, vec![change]).expect("apply");
    assert!(report.accepted.is_empty(), "nothing accepted");
    assert_eq!(report.refused.len(), 1, "{report:?}");
    assert_eq!(report.refused[0].1, want);
    assert_eq!(store.heads(space, doc).expect("heads"), heads, "document unchanged");
    assert_eq!(store.view(space).expect("view"), view, "register unchanged");
    assert_eq!(store.refusals(space).expect("audit").len(), audit + 1, "refusal recorded");
}

#[test]
fn a_change_signed_by_one_device_under_another_devices_actor() {
    let w = world();
    let mallory = DeviceKey::generate().expect("key");
    let doc = DocId::own_public(&w.resident, "2026");
    let forged = craft(&w.admin, &w.space, &doc, &w.resident_key, &mallory, |tx| {
        tx.put(ROOT, "post", "forged").expect("put");
    });
    assert_refused(&w.admin, &w.space, &doc, forged, Refusal::BadSignature);
}

#[test]
fn a_write_into_another_members_document() {
    let w = world();
    let doc = DocId::own_private(&w.other, "2026");
    let c = craft(&w.admin, &w.space, &doc, &w.resident_key, &w.resident_key, |tx| {
        tx.put(ROOT, "ballot", "yes").expect("put");
    });
    assert_refused(&w.admin, &w.space, &doc, c, Refusal::NotAWriter(doc.to_string()));
    // The same change into the resident's own document is fine.
    let own = DocId::own_private(&w.resident, "2026");
    let c = craft(&w.admin, &w.space, &own, &w.resident_key, &w.resident_key, |tx| {
        tx.put(ROOT, "ballot", "yes").expect("put");
    });
    let r = w.admin.apply(&w.space, &own, vec![c]).expect("apply");
    assert_eq!(r.accepted.len(), 1, "{r:?}");
}

#[test]
fn a_role_grant_by_a_non_admin() {
    let w = world();
    // A resident may not write the register at all.
    let members = members_obj(&w.admin, &w.space);
    let resident = w.resident.clone();
    let c = craft(&w.admin, &w.space, &DocId::Space, &w.resident_key, &w.resident_key, |tx| {
        let m = match tx.get(&members, resident.as_str()) {
            Ok(Some((_, id))) => id,
            _ => panic!("member"),
        };
        let roles = match tx.get(&m, "roles") {
            Ok(Some((_, id))) => id,
            _ => panic!("roles"),
        };
        tx.put(&roles, "admin", true).expect("put");
    });
    assert_refused(&w.admin, &w.space, &DocId::Space, c, Refusal::NotAWriter("space".into()));

    // A coordinator may grant volunteer, but not admin or coordinator.
    w.admin
        .edit_space(
            &w.space,
            &[SpaceEdit::SetRole { member: w.resident.clone(), role: Role::Coordinator, granted: true }],
        )
        .expect("make coordinator");
    let coordinator = phone();
    // Give the coordinator a phone of their own: a device of the same member.
    w.admin
        .edit_space(
            &w.space,
            &[SpaceEdit::AddDevice {
                member: w.resident.clone(),
                device: coordinator.device_id(),
                label: "phone 2".into(),
            }],
        )
        .expect("device");
    let c = craft(&w.admin, &w.space, &DocId::Space, &w.resident_key, &w.resident_key, |tx| {
        let m = match tx.get(&members, w.other.as_str()) {
            Ok(Some((_, id))) => id,
            _ => panic!("member"),
        };
        let roles = match tx.get(&m, "roles") {
            Ok(Some((_, id))) => id,
            _ => panic!("roles"),
        };
        tx.put(&roles, "admin", true).expect("put");
    });
    assert_refused(
        &w.admin,
        &w.space,
        &DocId::Space,
        c,
        Refusal::Forbidden(format!("members/{}/roles/admin", w.other)),
    );
    let c = craft(&w.admin, &w.space, &DocId::Space, &w.resident_key, &w.resident_key, |tx| {
        let m = match tx.get(&members, w.other.as_str()) {
            Ok(Some((_, id))) => id,
            _ => panic!("member"),
        };
        let roles = match tx.get(&m, "roles") {
            Ok(Some((_, id))) => id,
            _ => panic!("roles"),
        };
        tx.put(&roles, "volunteer", true).expect("put");
    });
    let r = w.admin.apply(&w.space, &DocId::Space, vec![c]).expect("apply");
    assert_eq!(r.accepted.len(), 1, "{r:?}");
    assert!(w.admin.view(&w.space).expect("view").members[&w.other].has(Role::Volunteer));

    // A coordinator may not add a device to the admin (that would be the admin's key).
    let admin_member = w.admin.my_member(&w.space).expect("me");
    let sneaky = DeviceKey::generate().expect("key");
    let c = craft(&w.admin, &w.space, &DocId::Space, &w.resident_key, &w.resident_key, |tx| {
        let m = match tx.get(&members, admin_member.as_str()) {
            Ok(Some((_, id))) => id,
            _ => panic!("member"),
        };
        let devices = match tx.get(&m, "devices") {
            Ok(Some((_, id))) => id,
            _ => panic!("devices"),
        };
        tx.put_object(&devices, sneaky.id().to_hex(), automerge::ObjType::Map).expect("put");
    });
    let r = w.admin.apply(&w.space, &DocId::Space, vec![c]).expect("apply");
    assert!(matches!(r.refused.as_slice(), [(_, Refusal::Forbidden(_))]), "{r:?}");

    drop(coordinator);
    // Through the store's own API the same grant is refused before anything is written.
    let (cphone, cmember) = join(&w.admin, &w.space, "coordinator 2");
    w.admin
        .edit_space(&w.space, &[SpaceEdit::SetRole { member: cmember, role: Role::Coordinator, granted: true }])
        .expect("grant");
    copy_doc(&w.admin, &cphone, &w.space, &DocId::Space);
    let heads = cphone.heads(&w.space, &DocId::Space).expect("heads");
    let err = cphone
        .edit_space(&w.space, &[SpaceEdit::SetRole { member: w.other.clone(), role: Role::Admin, granted: true }])
        .expect_err("a coordinator cannot grant admin");
    assert!(matches!(err, Error::Refused { reason: Refusal::Forbidden(_), .. }), "{err:?}");
    assert_eq!(cphone.heads(&w.space, &DocId::Space).expect("heads"), heads);
    // …but may add a unit.
    cphone
        .edit_space(
            &w.space,
            &[SpaceEdit::AddUnit {
                unit: "u9".into(),
                building: "1".into(),
                entrance: "1".into(),
                room: "101".into(),
                area_centi: 5_000,
                grid: None,
                household: None,
            }],
        )
        .expect("coordinator adds a unit");
}

#[test]
fn an_unknown_device() {
    let w = world();
    let stranger = DeviceKey::generate().expect("key");
    // In the register, an unknown device is refused outright.
    let c = craft(&w.admin, &w.space, &DocId::Space, &stranger, &stranger, |tx| {
        tx.put(ROOT, "x", 1).expect("put");
    });
    assert_refused(&w.admin, &w.space, &DocId::Space, c, Refusal::UnknownDevice);
    // Elsewhere it is held, unmerged: the register may simply not have arrived yet.
    let doc = DocId::own_public(&w.resident, "2026");
    let c = craft(&w.admin, &w.space, &doc, &stranger, &stranger, |tx| {
        tx.put(ROOT, "post", "hello").expect("put");
    });
    let r = w.admin.apply(&w.space, &doc, vec![c]).expect("apply");
    assert!(r.accepted.is_empty() && r.refused.is_empty());
    assert_eq!(r.held.len(), 1);
    assert!(w.admin.heads(&w.space, &doc).expect("heads").is_empty(), "nothing merged");
    // A stranger's device never becomes the resident's: it stays held; once an
    // admin adds it to the resident, the held change is merged.
    w.admin
        .edit_space(
            &w.space,
            &[SpaceEdit::AddDevice { member: w.resident.clone(), device: stranger.id(), label: "new".into() }],
        )
        .expect("add");
    assert!(
        !w.admin.heads(&w.space, &doc).expect("heads").is_empty(),
        "the held change got in when its device was admitted"
    );
    // A device admitted to another member cannot use held changes to write here.
    let other_key = DeviceKey::generate().expect("key");
    let c = craft(&w.admin, &w.space, &DocId::own_public(&w.resident, "x"), &other_key, &other_key, |tx| {
        tx.put(ROOT, "post", "sneaky").expect("put");
    });
    w.admin.apply(&w.space, &DocId::own_public(&w.resident, "x"), vec![c]).expect("apply");
    w.admin
        .edit_space(
            &w.space,
            &[SpaceEdit::AddDevice { member: w.other.clone(), device: other_key.id(), label: "x".into() }],
        )
        .expect("add");
    assert!(
        w.admin.heads(&w.space, &DocId::own_public(&w.resident, "x")).expect("heads").is_empty(),
        "refused once judged"
    );
    assert!(w.admin.refusals(&w.space).expect("audit").iter().any(|r| r.reason.contains("not a writer")));
}

#[test]
fn a_revoked_device() {
    let w = world();
    w.admin
        .edit_space(&w.space, &[SpaceEdit::RevokeDevice { member: w.resident.clone(), device: w.resident_key.id() }])
        .expect("revoke");
    std::thread::sleep(std::time::Duration::from_millis(2));
    let doc = DocId::own_private(&w.resident, "2026");
    let c = craft(&w.admin, &w.space, &doc, &w.resident_key, &w.resident_key, |tx| {
        tx.put(ROOT, "ballot", "late").expect("put");
    });
    assert_refused(&w.admin, &w.space, &doc, c, Refusal::RevokedDevice);
}

#[test]
fn an_equivocating_actor_is_flagged_and_the_pair_decided_the_same_everywhere() {
    let w = world();
    let doc = DocId::own_private(&w.resident, "2026");
    let first = craft(&w.admin, &w.space, &doc, &w.resident_key, &w.resident_key, |tx| {
        tx.put(ROOT, "ballot", "yes").expect("put");
    });
    // Same actor, same sequence number (1), different content: built on an empty document.
    let mut d = Automerge::new().with_actor(w.resident_key.actor());
    let mut tx = d.transaction();
    tx.put(ROOT, "ballot", "no").expect("put");
    tx.commit_with(CommitOptions::default().with_time(now_ms()));
    let change = d.get_last_local_change().expect("change");
    assert_eq!(change.seq(), 1);
    let second = SignedChange {
        bytes: change.raw_bytes().to_vec(),
        signature: w.resident_key.sign_change(&w.space, &doc, &change.hash()).to_vec(),
    };
    // Two replicas receive the pair in opposite orders.
    let other = phone();
    common::push(&w.admin, &other, &w.space);
    let r = w.admin.apply(&w.space, &doc, vec![first.clone()]).expect("apply");
    assert_eq!(r.accepted.len(), 1);
    let r = w.admin.apply(&w.space, &doc, vec![second.clone()]).expect("apply");
    assert!(matches!(r.refused.as_slice(), [(_, Refusal::Equivocation(1))]), "{r:?}");
    other.apply(&w.space, &doc, vec![second.clone()]).expect("apply");
    other.apply(&w.space, &doc, vec![first.clone()]).expect("apply");
    for s in [&w.admin.store, &other.store] {
        assert_eq!(s.flagged_devices(&w.space).expect("flags"), vec![w.resident_key.id()]);
        assert_eq!(s.heads(&w.space, &doc).expect("heads").len(), 1, "one of the pair stands");
    }
    let ballot = |s: &Store| {
        s.read(&w.space, &doc, |d| d.get(ROOT, "ballot").ok().flatten().map(|(v, _)| v.to_string())).expect("read")
    };
    assert_eq!(ballot(&w.admin), ballot(&other), "the same one, whichever arrived first");
    assert_eq!(w.admin.heads(&w.space, &doc).expect("h"), other.heads(&w.space, &doc).expect("h"));
    // Offering either again changes nothing, and sync with the doc keeps working.
    let heads = w.admin.heads(&w.space, &doc).expect("heads");
    w.admin.apply(&w.space, &doc, vec![first, second]).expect("apply again");
    assert_eq!(w.admin.heads(&w.space, &doc).expect("heads"), heads);
}

#[test]
fn garbage_bytes_are_refused_as_malformed() {
    let w = world();
    let doc = DocId::own_public(&w.resident, "2026");
    let r = w
        .admin
        .apply(
            &w.space,
            &doc,
            vec![SignedChange { bytes: b"not an automerge change".to_vec(), signature: vec![0; 64] }],
        )
        .expect("apply");
    assert!(matches!(r.refused.as_slice(), [(None, Refusal::Malformed(_))]), "{r:?}");
    assert!(w.admin.heads(&w.space, &doc).expect("heads").is_empty());
}

#[test]
fn a_forged_genesis_for_someone_elses_space() {
    let w = world();
    let fake = phone();
    let fake_space = fake.create_space("fake", "mallory").expect("create");
    // Offer the fake space's genesis as the genesis of the real space.
    let genesis = all_changes(&fake, &fake_space, &DocId::Space);
    let target = phone();
    let r = target.apply(&w.space, &DocId::Space, genesis).expect("apply");
    // Its signature names the other space, so it fails there already.
    assert!(matches!(r.refused.as_slice(), [(_, Refusal::BadSignature | Refusal::WrongGenesis)]), "{r:?}");
    assert!(target.heads(&w.space, &DocId::Space).expect("heads").is_empty());
}

/// A device's history as a batch in which only the latest change carries a
/// signature: the one signature vouches for all (one verification, not 50).
/// If that signature is wrong, nothing unsigned gets in.
#[test]
fn one_signature_vouches_for_an_actors_earlier_changes_and_only_then() {
    let w = world();
    let doc = DocId::own_private(&w.resident, "2026");
    let mut d = Automerge::new().with_actor(w.resident_key.actor());
    let mut batch = Vec::new();
    for i in 0..50 {
        let mut tx = d.transaction();
        tx.put(ROOT, format!("k{i}"), i as i64).expect("put");
        tx.commit_with(CommitOptions::default().with_time(now_ms()));
        let c = d.get_last_local_change().expect("change");
        batch.push((c.raw_bytes().to_vec(), w.resident_key.sign_change(&w.space, &doc, &c.hash()).to_vec()));
    }
    let unsigned = |last_sig: Vec<u8>| -> Vec<SignedChange> {
        let n = batch.len();
        batch
            .iter()
            .enumerate()
            .map(|(i, (bytes, _))| SignedChange {
                bytes: bytes.clone(),
                signature: if i + 1 == n { last_sig.clone() } else { Vec::new() },
            })
            .collect()
    };
    let wrong =
        DeviceKey::generate().expect("key").sign_change(&w.space, &doc, &automerge::ChangeHash([1; 32])).to_vec();
    let r = w.admin.apply(&w.space, &doc, unsigned(wrong)).expect("apply");
    assert!(r.accepted.is_empty(), "a bad head signature vouches for nothing");
    assert_eq!(r.refused.len(), 50);
    let good = batch.last().expect("last").1.clone();
    let r = w.admin.apply(&w.space, &doc, unsigned(good)).expect("apply");
    assert_eq!(r.accepted.len(), 50, "{:?}", r.refused.first());
    // A changed byte in an early change breaks the chain: its hash is no
    // longer one the signed head depends on, so it needs its own signature.
    let w2 = world();
    let mut tampered = unsigned(batch.last().expect("last").1.clone());
    let mut d2 = Automerge::new().with_actor(w2.resident_key.actor());
    let mut tx = d2.transaction();
    tx.put(ROOT, "k0", 999).expect("put");
    tx.commit_with(CommitOptions::default().with_time(now_ms()));
    tampered[0].bytes = d2.get_last_local_change().expect("change").raw_bytes().to_vec();
    let r = w.admin.apply(&w.space, &DocId::own_private(&w.resident, "other"), tampered).expect("apply");
    assert!(r.refused.iter().any(|(_, reason)| *reason == Refusal::BadSignature), "{r:?}");
}

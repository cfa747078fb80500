//! Several phones and a hosting store (the role the server and a meeting hub
//! play: it holds a space without being a member of it). Everything passes
//! through the hub with the same checks as on a phone, and a phone that was
//! never online before ends identical to the others.

use automerge::ReadDoc;
use automerge::transaction::Transactable;
use linli_core::doc::DocId;
use linli_core::space::{Relation, Role, SpaceEdit};
use linli_core::store::Store;

struct Device {
    store: Store,
    _dir: tempfile::TempDir,
}

fn device() -> Device {
    let dir = tempfile::tempdir().expect("tempdir");
    Device { store: Store::open(dir.path().join("linli.db")).expect("open"), _dir: dir }
}

/// Push every document `from` holds of `space` into `to`, as a sync would.
fn push(from: &Store, to: &Store, space: &str) {
    // The register first: other documents are judged against it.
    let mut docs = from.doc_ids(space).expect("docs");
    docs.sort_by_key(|d| *d != DocId::Space);
    for doc in docs {
        let have = to.heads(space, &doc).expect("heads");
        let report = to.apply(space, &doc, from.changes_since(space, &doc, &have).expect("changes")).expect("apply");
        assert!(report.refused.is_empty(), "{doc}: {:?}", report.refused);
        assert!(report.missing_deps.is_empty(), "{doc}: {:?}", report.missing_deps);
    }
}

#[test]
fn phones_meet_through_a_hub_and_end_identical() {
    let hub = device();
    let coordinator = device();
    let space = coordinator.store.create_space("海岛村", "村委会").expect("create");
    coordinator
        .store
        .edit_space(&space, &[SpaceEdit::AddGrid { grid: "g1".into(), name: "东村".into() }])
        .expect("grid");
    coordinator
        .store
        .edit_space(
            &space,
            &[SpaceEdit::AddUnit {
                unit: "u1".into(),
                building: "1".into(),
                entrance: "1".into(),
                room: "101".into(),
                area_centi: 9_050,
                grid: Some("g1".into()),
                household: None,
            }],
        )
        .expect("unit");
    push(&coordinator.store, &hub.store, &space);
    assert!(hub.store.my_member(&space).is_err(), "the hub is not a member");

    // Two residents join from the hub's copy of the register, offline from each other.
    let mut residents = Vec::new();
    for name in ["陈大爷", "林阿姨"] {
        let inv = coordinator.store.create_invite(&space, name, &[Role::Resident], None).expect("invite");
        push(&coordinator.store, &hub.store, &space);
        let phone = device();
        let all = hub.store.changes_since(&space, &DocId::Space, &[]).expect("space");
        let (_, member) = phone.store.join(&inv.code, name, all).expect("join");
        push(&phone.store, &hub.store, &space);
        residents.push((phone, member));
    }
    // Each writes into their own document; the coordinator links an owner and verifies them.
    for (phone, member) in &residents {
        push(&hub.store, &phone.store, &space);
        phone
            .store
            .write(&space, &DocId::own_public(member, "2026"), |tx| {
                tx.put(automerge::ROOT, "hello", "大家好")?;
                Ok(())
            })
            .expect("own write");
        push(&phone.store, &hub.store, &space);
    }
    push(&hub.store, &coordinator.store, &space);
    let owner = residents[0].1.clone();
    let me = coordinator.store.my_member(&space).expect("me");
    // Link and verify in one change: each edit sees the ones before it.
    coordinator
        .store
        .edit_space(
            &space,
            &[
                SpaceEdit::Link { member: owner.clone(), unit: "u1".into(), relation: Relation::Owner },
                SpaceEdit::VerifyOwner { member: owner.clone(), unit: "u1".into(), by: me },
            ],
        )
        .expect("link and verify");
    push(&coordinator.store, &hub.store, &space);

    // A phone that was never online takes everything from the hub.
    let newcomer = device();
    push(&hub.store, &newcomer.store, &space);
    for (phone, _) in &residents {
        push(&hub.store, &phone.store, &space);
    }
    let want = hub.store.view(&space).expect("view");
    assert_eq!(want.members.len(), 3);
    assert_eq!(want.verified_owners().count(), 1);
    for s in [&coordinator.store, &newcomer.store, &residents[0].0.store, &residents[1].0.store] {
        assert_eq!(s.view(&space).expect("view"), want);
        assert_eq!(s.members(&space, 0, 100).expect("rows"), hub.store.members(&space, 0, 100).expect("rows"));
        for (_, member) in &residents {
            let doc = DocId::own_public(member, "2026");
            assert_eq!(s.heads(&space, &doc).expect("heads"), hub.store.heads(&space, &doc).expect("heads"));
            let hello = s
                .read(&space, &doc, |d| d.get(automerge::ROOT, "hello").ok().flatten().map(|(v, _)| v.to_string()))
                .expect("read");
            assert_eq!(hello.as_deref(), Some("\"大家好\""));
        }
    }
}

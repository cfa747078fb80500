#![allow(dead_code)]
//! Helpers shared by the integration tests: real stores in temporary files.

use automerge::Automerge;
use automerge::transaction::CommitOptions;
use linli_core::doc::{DocId, SignedChange};
use linli_core::identity::DeviceKey;
use linli_core::store::{Store, now_ms};

pub struct Phone {
    pub store: Store,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for Phone {
    type Target = Store;
    fn deref(&self) -> &Store {
        &self.store
    }
}

pub fn phone() -> Phone {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path().join("linli.db")).expect("open store");
    Phone { store, _dir: dir }
}

/// Every change of a document that `from` holds.
pub fn all_changes(from: &Store, space: &str, doc: &DocId) -> Vec<SignedChange> {
    from.changes_since(space, doc, &[]).expect("changes")
}

/// Copy a whole document from one store to another, checking it was all accepted.
pub fn copy_doc(from: &Store, to: &Store, space: &str, doc: &DocId) {
    let report = to.apply(space, doc, all_changes(from, space, doc)).expect("apply");
    assert!(report.refused.is_empty(), "refused: {:?}", report.refused);
    assert!(report.missing_deps.is_empty(), "missing deps: {:?}", report.missing_deps);
}

/// A resident joins `space` through an invite made by `coordinator`.
pub fn join(coordinator: &Store, space: &str, name: &str) -> (Phone, String) {
    let inv = coordinator.create_invite(space, name, &[linli_core::space::Role::Resident], None).expect("invite");
    let p = phone();
    let (s, member) = p.join(&inv.code, name, all_changes(coordinator, space, &DocId::Space)).expect("join");
    assert_eq!(s, space);
    assert_eq!(member, inv.member_id);
    // The coordinator learns of the redemption.
    copy_doc(&p, coordinator, space, &DocId::Space);
    (p, member)
}

/// Build a change on top of what `base` holds of `doc`, with `actor_key` as
/// its actor, signed by `signer`.
pub fn craft(
    base: &Store,
    space: &str,
    doc: &DocId,
    actor_key: &DeviceKey,
    signer: &DeviceKey,
    f: impl FnOnce(&mut automerge::transaction::Transaction<'_>),
) -> SignedChange {
    let mut d = Automerge::new();
    for c in all_changes(base, space, doc) {
        d.load_incremental(&c.bytes).expect("load");
    }
    d.set_actor(actor_key.actor());
    let mut tx = d.transaction();
    f(&mut tx);
    tx.commit_with(CommitOptions::default().with_time(now_ms()));
    let change = d.get_last_local_change().expect("change");
    SignedChange {
        bytes: change.raw_bytes().to_vec(),
        signature: signer.sign_change(space, doc, &change.hash()).to_vec(),
    }
}

/// Give `to` every document of `from` that `to`'s member may read (what a
/// sync would give it), register first.
pub fn sync_readable(from: &Store, to: &Store, space: &str) {
    copy_doc(from, to, space, &DocId::Space);
    let me = to.my_member(space).expect("member");
    let view = from.view(space).expect("view");
    for d in from.doc_ids(space).expect("docs") {
        if d != DocId::Space && view.may_read(&me, &d) {
            copy_doc(from, to, space, &d);
        }
    }
}

/// Copy every document of `space` from one store to another, register first.
pub fn push(from: &Store, to: &Store, space: &str) {
    let mut docs = from.doc_ids(space).expect("docs");
    docs.sort_by_key(|d| *d != DocId::Space);
    for d in docs {
        copy_doc(from, to, space, &d);
    }
}

/// A deterministic shuffle (xorshift) for delivery-order tests.
pub fn shuffled<T: Clone>(v: &[T], seed: u64) -> Vec<T> {
    let mut out = v.to_vec();
    let mut s = seed | 1;
    for i in (1..out.len()).rev() {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        out.swap(i, (s % (i as u64 + 1)) as usize);
    }
    out
}

/// Every change of every document of `space` that these stores hold.
pub fn every_change(stores: &[&Store], space: &str) -> Vec<(DocId, SignedChange)> {
    let mut all = Vec::new();
    for p in stores {
        for d in p.doc_ids(space).expect("docs") {
            for c in p.changes_since(space, &d, &[]).expect("changes") {
                all.push((d.clone(), c));
            }
        }
    }
    all
}

/// Deliver `changes` to `to` one at a time in a shuffled order (the register
/// first, as sync sends it), holding back those whose dependencies have not
/// arrived yet. True when every change was merged.
pub fn deliver_shuffled(to: &Store, space: &str, changes: &[(DocId, SignedChange)], seed: u64) -> bool {
    let mut pending = shuffled(changes, seed);
    pending.sort_by_key(|(d, _)| *d != DocId::Space);
    for _ in 0..10 {
        let mut next = Vec::new();
        for (d, c) in pending {
            let rep = to.apply(space, &d, vec![c.clone()]).expect("apply");
            if !rep.missing_deps.is_empty() {
                next.push((d, c));
            }
        }
        pending = next;
    }
    pending.is_empty()
}

// ---------------------------------------------------------------------------
// The adversary: a device that crafts any change it likes.

/// Re-encode `change` after `f` rewrote any of its fields (sequence number,
/// deps, start op, time, operations), signed by `signer` — a change no honest
/// automerge would make, but one a hostile device can send.
pub fn forge(
    change: &SignedChange,
    space: &str,
    doc: &DocId,
    signer: &DeviceKey,
    f: impl FnOnce(&mut automerge::ExpandedChange),
) -> SignedChange {
    let c = automerge::Change::try_from(change.bytes.as_slice()).expect("a change");
    let mut e = c.decode();
    e.hash = None;
    f(&mut e);
    let forged = automerge::Change::from(e);
    SignedChange {
        bytes: forged.raw_bytes().to_vec(),
        signature: signer.sign_change(space, doc, &forged.hash()).to_vec(),
    }
}

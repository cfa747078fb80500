//! A member's device that sends well-formed but inconsistent changes — the
//! kind automerge itself would panic on — gets a clear refusal, and the store
//! keeps serving everyone else with nothing lost.

mod common;

use automerge::transaction::Transactable;
use automerge::{ROOT, ReadDoc};
use common::{all_changes, craft, forge, join, phone};
use linli_core::Refusal;
use linli_core::doc::{DocId, SignedChange};
use linli_core::identity::DeviceKey;
use linli_core::space::SpaceEdit;
use linli_core::store::Store;

struct World {
    admin: common::Phone,
    space: String,
    resident: String,
    key: DeviceKey,
}

/// An admin, and a resident whose device key the test holds (the adversary).
fn world() -> World {
    let admin = phone();
    let space = admin.create_space("s", "admin").expect("create");
    let (_p, resident) = join(&admin, &space, "resident");
    let key = DeviceKey::generate().expect("key");
    admin
        .edit_space(&space, &[SpaceEdit::AddDevice { member: resident.clone(), device: key.id(), label: "t".into() }])
        .expect("add device");
    World { admin, space, resident, key }
}

/// The store still works: it reads, writes the register and accepts an
/// honest change of the adversary's member.
fn still_serving(w: &World, doc: &DocId) {
    assert_eq!(w.admin.integrity_check().expect("integrity"), "ok");
    w.admin
        .edit_space(&w.space, &[SpaceEdit::AddGrid { grid: format!("g{}", rand_tag()), name: "n".into() }])
        .expect("the register still takes edits");
    let honest = craft(&w.admin, &w.space, doc, &w.key, &w.key, |tx| {
        tx.put(ROOT, format!("honest-{}", rand_tag()), 1).expect("put");
    });
    let r = w.admin.apply(&w.space, doc, vec![honest]).expect("apply");
    assert_eq!(r.accepted.len(), 1, "an honest change still merges: {r:?}");
}

/// `n` successive changes of `key`'s actor in a fresh document (each puts one
/// key), signed for `doc`, newest first: a dependency chain in reverse.
fn reversed_chain(w: &World, doc: &DocId, n: usize) -> Vec<SignedChange> {
    let mut d = automerge::Automerge::new();
    d.set_actor(w.key.actor());
    let mut chain = Vec::with_capacity(n);
    for i in 0..n {
        let mut tx = d.transaction();
        tx.put(ROOT, format!("k{i}"), i as i64).expect("put");
        tx.commit();
        let c = d.get_last_local_change().expect("change");
        chain.push(SignedChange {
            bytes: c.raw_bytes().to_vec(),
            signature: w.key.sign_change(&w.space, doc, &c.hash()).to_vec(),
        });
    }
    chain.reverse();
    chain
}

fn rand_tag() -> String {
    hex::encode(DeviceKey::generate().expect("key").id().0)[..8].to_string()
}

fn assert_malformed(store: &Store, space: &str, doc: &DocId, changes: Vec<SignedChange>) {
    let heads = store.heads(space, doc).expect("heads");
    let r = store.apply(space, doc, changes).expect("a refusal, not an error or a panic");
    assert!(r.accepted.is_empty(), "{r:?}");
    assert!(matches!(r.refused.as_slice(), [(_, Refusal::Malformed(_)), ..]), "{r:?}");
    assert_eq!(store.heads(space, doc).expect("heads"), heads, "document unchanged");
}

#[test]
fn a_first_change_with_sequence_two() {
    let w = world();
    let doc = DocId::own_public(&w.resident, "2026");
    let honest = craft(&w.admin, &w.space, &doc, &w.key, &w.key, |tx| tx.put(ROOT, "a", 1).map(|_| ()).expect("put"));
    let forged = forge(&honest, &w.space, &doc, &w.key, |e| e.seq = 2);
    assert_malformed(&w.admin, &w.space, &doc, vec![forged]);
    still_serving(&w, &doc);
}

#[test]
fn a_gap_in_an_actors_sequence_numbers() {
    let w = world();
    let doc = DocId::own_public(&w.resident, "2026");
    let first = craft(&w.admin, &w.space, &doc, &w.key, &w.key, |tx| tx.put(ROOT, "a", 1).expect("put"));
    assert_eq!(w.admin.apply(&w.space, &doc, vec![first]).expect("apply").accepted.len(), 1);
    let second = craft(&w.admin, &w.space, &doc, &w.key, &w.key, |tx| tx.put(ROOT, "b", 2).expect("put"));
    let forged = forge(&second, &w.space, &doc, &w.key, |e| e.seq = 5);
    assert_malformed(&w.admin, &w.space, &doc, vec![forged]);
    still_serving(&w, &doc);
}

#[test]
fn operation_counters_that_overlap_the_actors_earlier_ones() {
    let w = world();
    let doc = DocId::own_public(&w.resident, "2026");
    let first = craft(&w.admin, &w.space, &doc, &w.key, &w.key, |tx| {
        tx.put(ROOT, "a", 1).expect("put");
        tx.put(ROOT, "b", 1).expect("put");
    });
    assert_eq!(w.admin.apply(&w.space, &doc, vec![first]).expect("apply").accepted.len(), 1);
    let second = craft(&w.admin, &w.space, &doc, &w.key, &w.key, |tx| tx.put(ROOT, "c", 2).expect("put"));
    let forged = forge(&second, &w.space, &doc, &w.key, |e| e.start_op = std::num::NonZeroU64::MIN);
    assert_malformed(&w.admin, &w.space, &doc, vec![forged]);
    still_serving(&w, &doc);
}

#[test]
fn an_operation_on_an_object_that_does_not_exist() {
    let w = world();
    let doc = DocId::own_public(&w.resident, "2026");
    // A map made in another document: its id means nothing here.
    let elsewhere = DocId::own_public(&w.resident, "2025");
    let mut obj = None;
    let maker = craft(&w.admin, &w.space, &elsewhere, &w.key, &w.key, |tx| {
        obj = Some(tx.put_object(ROOT, "m", automerge::ObjType::Map).expect("map"));
    });
    let _ = maker;
    let obj = obj.expect("object id");
    let honest = craft(&w.admin, &w.space, &doc, &w.key, &w.key, |tx| tx.put(ROOT, "a", 1).expect("put"));
    let forged = forge(&honest, &w.space, &doc, &w.key, |e| {
        let automerge::ObjId::Id(counter, actor, _) = obj else { panic!("an op id") };
        e.operations[0].obj = automerge::legacy::ObjectId::Id(automerge::legacy::OpId::new(counter, &actor));
    });
    let heads = w.admin.heads(&w.space, &doc).expect("heads");
    let r = w.admin.apply(&w.space, &doc, vec![forged]).expect("a refusal, not an error or a panic");
    assert!(r.accepted.is_empty(), "{r:?}");
    assert_eq!(w.admin.heads(&w.space, &doc).expect("heads"), heads);
    still_serving(&w, &doc);
}

#[test]
fn a_compressed_change_is_refused_before_it_is_inflated() {
    let w = world();
    let doc = DocId::own_public(&w.resident, "2026");
    let big = "a".repeat(4 << 20);
    let honest = craft(&w.admin, &w.space, &doc, &w.key, &w.key, |tx| tx.put(ROOT, "a", big.as_str()).expect("put"));
    let mut c = automerge::Change::try_from(honest.bytes.as_slice()).expect("change");
    let compressed = c.bytes().to_vec();
    assert!(compressed.len() < 64 << 10, "deflate shrinks it: {} bytes", compressed.len());
    let bomb = SignedChange { bytes: compressed, signature: honest.signature.clone() };
    assert_malformed(&w.admin, &w.space, &doc, vec![bomb]);
    still_serving(&w, &doc);
}

#[test]
fn a_planted_held_change_does_not_break_an_admins_edit_nor_lose_other_held_changes() {
    let admin = phone();
    let space = admin.create_space("s", "admin").expect("create");
    let (_p, resident) = join(&admin, &space, "resident");
    // A tablet the register does not know yet: its changes are held.
    let tablet = DeviceKey::generate().expect("key");
    let doc = DocId::own_public(&resident, "2026");
    let honest = craft(&admin, &space, &doc, &tablet, &tablet, |tx| tx.put(ROOT, "post", "hello").expect("put"));
    let bad = forge(&honest, &space, &doc, &tablet, |e| e.seq = 2);
    let other_doc = DocId::own_public(&resident, "2027");
    let good = craft(&admin, &space, &other_doc, &tablet, &tablet, |tx| tx.put(ROOT, "post", "kept").expect("put"));
    let r = admin.apply(&space, &doc, vec![bad]).expect("held");
    assert!(r.accepted.is_empty());
    let r = admin.apply(&space, &other_doc, vec![good]).expect("held");
    assert_eq!(r.held.len(), 1, "{r:?}");
    // The admin registers the tablet: the held changes are judged now.
    admin
        .edit_space(
            &space,
            &[SpaceEdit::AddDevice { member: resident.clone(), device: tablet.id(), label: "t".into() }],
        )
        .expect("the admin's edit succeeds");
    let kept = admin.read(&space, &other_doc, |d| d.get(ROOT, "post").ok().flatten().is_some()).expect("read");
    assert!(kept, "the honest held change was merged");
    assert!(admin.heads(&space, &doc).expect("heads").is_empty(), "the bad one was not");
    assert_eq!(admin.integrity_check().expect("integrity"), "ok");
    admin.edit_space(&space, &[SpaceEdit::AddGrid { grid: "g1".into(), name: "n".into() }]).expect("still serving");
}

#[test]
fn a_dependency_chain_sent_in_reverse_merges_whole() {
    let w = world();
    let doc = DocId::own_public(&w.resident, "2026");
    let author = phone();
    common::push(&w.admin, &author, &w.space);
    // A chain of 3,000 changes by the adversary's key, newest first.
    let chain = reversed_chain(&w, &doc, 3_000);
    let r = w.admin.apply(&w.space, &doc, chain).expect("apply");
    assert_eq!(r.accepted.len(), 3_000, "refused: {:?}", r.refused.first());
    assert_eq!(all_changes(&w.admin, &w.space, &doc).len(), 3_000);
}

#[test]
fn two_transfers_of_i64_max_points_are_set_aside_not_summed() {
    let w = world();
    let (neighbour_phone, neighbour) = join(&w.admin, &w.space, "neighbour");
    let year = linli_core::store::year_of(linli_core::store::now_ms());
    let doc = DocId::own_public(&w.resident, &format!("ledger-{year}"));
    for n in 0..2 {
        let entry = format!("d/{}-{year}-{n:016x}", w.resident);
        let to = neighbour.clone();
        let c = craft(&w.admin, &w.space, &doc, &w.key, &w.key, |tx| {
            let d = tx.put_object(ROOT, entry.as_str(), automerge::ObjType::Map).expect("debit");
            tx.put(&d, "to", to.as_str()).expect("put");
            tx.put(&d, "points", i64::MAX).expect("put");
            tx.put(&d, "kind", "transfer").expect("put");
            tx.put(&d, "reward", "").expect("put");
            tx.put(&d, "note", "").expect("put");
            tx.put(&d, "at", linli_core::store::now_ms()).expect("put");
        });
        let r = w.admin.apply(&w.space, &doc, vec![c]).expect("apply");
        assert_eq!(r.accepted.len(), 1, "the entry itself is well-formed: {r:?}");
    }
    let b = linli_core::ledger::balance(&w.admin, &w.space, &neighbour).expect("a balance, not a panic");
    assert_eq!(b.points, 0, "nothing was minted");
    let b = linli_core::ledger::balance(&w.admin, &w.space, &w.resident).expect("a balance, not a panic");
    assert_eq!(b.points, 0);
    let aside = linli_core::ledger::set_aside(&w.admin, &w.space).expect("set aside");
    assert_eq!(aside.iter().filter(|a| a.reason == "points out of range").count(), 2, "{aside:?}");
    drop(neighbour_phone);
}

#[test]
fn a_ballot_or_result_copied_into_another_items_document_is_refused() {
    let w = world();
    // The resident's first ballot in vote 1, replayed by a neighbour into the
    // resident's document for vote 2, where it would count as their ballot.
    let vote1 = DocId::own_private(&w.resident, "vote-1");
    let vote2 = DocId::own_private(&w.resident, "vote-2");
    let ballot = craft(&w.admin, &w.space, &vote1, &w.key, &w.key, |tx| tx.put(ROOT, "ballot", "yes").expect("put"));
    assert_eq!(w.admin.apply(&w.space, &vote1, vec![ballot.clone()]).expect("apply").accepted.len(), 1);
    let r = w.admin.apply(&w.space, &vote2, vec![ballot.clone()]).expect("apply");
    assert!(matches!(r.refused.as_slice(), [(_, Refusal::BadSignature)]), "{r:?}");
    assert!(w.admin.heads(&w.space, &vote2).expect("heads").is_empty());
    // …so the resident's real vote-2 ballot is theirs, not an equivocation.
    let real = craft(&w.admin, &w.space, &vote2, &w.key, &w.key, |tx| tx.put(ROOT, "ballot", "no").expect("put"));
    assert_eq!(w.admin.apply(&w.space, &vote2, vec![real]).expect("apply").accepted.len(), 1);
    assert!(w.admin.flagged_devices(&w.space).expect("flags").is_empty(), "nobody is flagged");
    // The same for a coordinator's published result, and for another space.
    let results1 = DocId::Results { item: "vote-1".into() };
    let results2 = DocId::Results { item: "vote-2".into() };
    let published = w.admin.write(&w.space, &results1, |tx| Ok(tx.put(ROOT, "yes", 3)?)).expect("write").expect("hash");
    let signed = w
        .admin
        .changes_since(&w.space, &results1, &[])
        .expect("changes")
        .into_iter()
        .find(|c| automerge::Change::try_from(c.bytes.as_slice()).expect("change").hash() == published)
        .expect("the result's change");
    let r = w.admin.apply(&w.space, &results2, vec![signed.clone()]).expect("apply");
    assert!(matches!(r.refused.as_slice(), [(_, Refusal::BadSignature)]), "{r:?}");
    let elsewhere = phone();
    let other_space = elsewhere.create_space("other", "x").expect("space");
    let r = elsewhere.apply(&other_space, &vote1, vec![ballot]).expect("apply");
    assert!(!r.refused.is_empty() || !r.held.is_empty(), "{r:?}");
    assert!(r.accepted.is_empty());
}

#[test]
fn list_views_read_while_a_long_merge_holds_the_store() {
    let w = std::sync::Arc::new(world());
    let doc = DocId::own_public(&w.resident, "2026");
    let chain = reversed_chain(&w, &doc, 8_000);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let started = std::sync::Arc::new(std::sync::Barrier::new(2));
    let merging = {
        let (w, done, started, doc) = (w.clone(), done.clone(), started.clone(), doc.clone());
        std::thread::spawn(move || {
            started.wait();
            let r = w.admin.apply(&w.space, &doc, chain).expect("apply");
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            r.accepted.len()
        })
    };
    started.wait();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let mut read_during = 0;
    while !done.load(std::sync::atomic::Ordering::SeqCst) {
        assert!(!w.admin.members(&w.space, 0, 50).expect("members").is_empty());
        if !done.load(std::sync::atomic::Ordering::SeqCst) {
            read_during += 1;
        }
    }
    assert_eq!(merging.join().expect("merge"), 8_000);
    assert!(read_during > 0, "the member list was read while the merge ran");
}

#[test]
fn a_flood_of_bad_changes_leaves_a_bounded_audit_trail() {
    let w = world();
    let doc = DocId::own_public(&w.resident, "2026");
    let before = w.admin.refusals(&w.space).expect("audit").len();
    let flooder = linli_core::identity::DeviceKey::generate().expect("key").id();
    let junk = |n: u8| -> Vec<SignedChange> {
        (0..n).map(|i| SignedChange { bytes: vec![i; 40], signature: vec![0; 64] }).collect()
    };
    for _ in 0..40 {
        let r = w.admin.apply_from(&w.space, &doc, junk(100), &flooder).expect("apply");
        assert_eq!(r.refused.len(), 100, "every change is refused and reported");
    }
    let rows = w.admin.refusals(&w.space).expect("audit").len() - before;
    // Without the bounds: 4,000 rows. With them: 64 and a count per batch
    // until the sender's 200 of the minute, then nothing.
    assert!(rows <= (linli_core::store::REFUSALS_PER_DEVICE_MINUTE as usize) + 65, "{rows} rows for 4,000 refusals");
    assert!(rows >= 65, "the first batches are on record: {rows}");
    // Another sender's refusals are still recorded, one by one.
    let other = linli_core::identity::DeviceKey::generate().expect("key").id();
    let r = w.admin.apply_from(&w.space, &doc, junk(3), &other).expect("apply");
    assert_eq!(r.refused.len(), 3);
    let after = w.admin.refusals(&w.space).expect("audit").len() - before;
    assert_eq!(after, rows + 3, "the flood did not crowd out another device's refusals");
}

/// A change that makes an object under a sequence key of a map (an insert
/// into a map) and writes into it: automerge merges it, and walking the
/// object's path then panics inside automerge. In a batch merged in one call
/// that walk ran outside containment and the panic escaped the store (found
/// by the `change_mutate` fuzzer); now the batch is merged again one change
/// at a time and the change refused.
#[test]
fn an_object_under_a_sequence_key_of_a_map_is_refused_without_a_panic() {
    let w = world();
    let doc = DocId::own_public(&w.resident, "2026");
    let honest = craft(&w.admin, &w.space, &doc, &w.key, &w.key, |tx| {
        let m = tx.put_object(ROOT, "m", automerge::ObjType::Map).expect("m");
        let x = tx.put_object(&m, "x", automerge::ObjType::Map).expect("x");
        tx.put(&x, "k", 1).expect("k");
    });
    let hostile = forge(&honest, &w.space, &doc, &w.key, |e| {
        e.operations[1].key = automerge::legacy::Key::Seq(automerge::legacy::ElementId::Head);
        e.operations[1].insert = true;
    });
    let r = w.admin.apply(&w.space, &doc, vec![hostile]).expect("a report, not a panic");
    assert!(r.accepted.is_empty() && r.refused.len() == 1, "{r:?}");
    still_serving(&w, &doc);
}

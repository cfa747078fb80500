//! Make the fuzzers' world and their seed corpus:
//! `cargo run --example gen_corpus` (in `fuzz/`).
//!
//! Writes `core/tests/fixtures/fuzz-world.bin` (a space, its register, a
//! member's documents; an admin's device has the key [`linli_fuzz::KEY_SEED`])
//! and `corpus/<target>/seed-*`: real requests, responses and changes made
//! against that world. Running it again makes a new world (new ids): the
//! seeds are remade with it, and the regression inputs of the change path
//! (`core/tests/regressions/changes/`) may then no longer reach as deep.

use std::path::{Path, PathBuf};

use automerge::transaction::Transactable;
use automerge::{ObjType, ROOT, ScalarValue};
use linli_core::doc::{DocId, SignedChange};
use linli_core::space::SpaceEdit;
use linli_core::store::{Store, now_ms};
use linli_core::sync::wire::{DocBatch, Request, Response, SignedHash};
use linli_core::sync::{Creators, SYNC_PATH, auth, serve_sync};
use linli_fuzz::{EPOCH, FIXTURE, Fixture, World, key};

fn out(target: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target);
    std::fs::create_dir_all(&dir).expect("corpus dir");
    for e in std::fs::read_dir(&dir).expect("read dir") {
        let p = e.expect("entry").path();
        if p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("seed-")) {
            std::fs::remove_file(p).expect("remove old seed");
        }
    }
    dir
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(format!("seed-{name}")), bytes).expect("write seed");
}

/// The world: a space made by a store, an admin's device with the fuzzer's
/// key, a private document with maps, a list, text and a counter.
fn make_fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = Store::open(dir.path().join("a.db")).expect("open");
    let space = a.create_space("fuzz", "admin").expect("create");
    let me = a.my_member(&space).expect("me");
    a.edit_space(&space, &[SpaceEdit::AddDevice { member: me.clone(), device: key().id(), label: "fuzzer".into() }])
        .expect("device");
    a.edit_space(&space, &[SpaceEdit::AddGrid { grid: "g1".into(), name: "grid".into() }]).expect("grid");
    let private = DocId::own_private(&me, "2026");
    let public = DocId::own_public(&me, "2026");
    a.write(&space, &private, |tx| {
        tx.put(ROOT, "a", 1)?;
        let l = tx.put_object(ROOT, "list", ObjType::List)?;
        tx.insert(&l, 0, "x")?;
        tx.insert(&l, 1, 2)?;
        let t = tx.put_object(ROOT, "text", ObjType::Text)?;
        tx.splice_text(&t, 0, 0, "hello")?;
        tx.put(ROOT, "n", ScalarValue::counter(1))?;
        Ok(())
    })
    .expect("write");
    a.write(&space, &private, |tx| {
        tx.delete(ROOT, "a")?;
        let m = tx.put_object(ROOT, "map", ObjType::Map)?;
        tx.put(&m, "k", "v")?;
        Ok(())
    })
    .expect("write");
    let space_bytes = <[u8; 16]>::try_from(hex::decode(&space).expect("hex").as_slice()).expect("16 bytes");
    let changes = |d: &DocId| a.changes_since(&space, d, &[]).expect("changes");
    let mut f = Fixture {
        space: space.clone(),
        space_bytes,
        now: now_ms(),
        docs: vec![(DocId::Space, changes(&DocId::Space)), (private.clone(), changes(&private)), (public, vec![])],
    };
    // The fuzzer's device writes too.
    let by_key = f.next_change(1, |tx| {
        tx.increment(ROOT, "n", 2).expect("increment");
        tx.put(ROOT, "b", "by the fuzzer's device").expect("put");
    });
    assert_eq!(a.apply(&space, &private, vec![by_key]).expect("apply").accepted.len(), 1);
    f.docs[1].1 = changes(&private);
    f
}

fn main() {
    let fixture = make_fixture();
    std::fs::create_dir_all(Path::new(FIXTURE).parent().expect("dir")).expect("fixtures dir");
    std::fs::write(FIXTURE, fixture.encode()).expect("write fixture");
    let w = World::new();
    let f = &w.fixture;

    // Honest next changes of each document, and forgeries of them.
    let next: Vec<SignedChange> = (0..f.docs.len())
        .map(|i| {
            f.next_change(i, |tx| {
                tx.put(ROOT, "seed", i as i64).expect("put");
            })
        })
        .collect();
    let forged = vec![
        ("seq-gap", 1, f.forge(1, &next[1], |e| e.seq += 3)),
        ("start-op-early", 1, f.forge(1, &next[1], |e| e.start_op = std::num::NonZeroU64::MIN)),
        ("no-deps", 1, f.forge(1, &next[1], |e| e.deps.clear())),
        ("space-no-deps", 0, f.forge(0, &next[0], |e| e.deps.clear())),
        ("public-seq-2", 2, f.forge(2, &next[2], |e| e.seq = 2)),
        ("no-ops", 1, f.forge(1, &next[1], |e| e.operations.clear())),
    ];

    // change_validation: a document byte, then a change.
    let dir = out("change_validation");
    for (i, (_, changes)) in f.docs.iter().enumerate() {
        for (n, c) in changes.iter().enumerate() {
            write(&dir, &format!("doc{i}-change{n}"), &[&[i as u8][..], &c.bytes].concat());
        }
    }
    for (i, c) in next.iter().enumerate() {
        write(&dir, &format!("doc{i}-next"), &[&[i as u8][..], &c.bytes].concat());
        write(&dir, &format!("doc{i}-next-as-snapshot"), &[&[0x80 | i as u8][..], &c.bytes].concat());
    }
    for (name, i, c) in &forged {
        write(&dir, name, &[&[*i as u8][..], &c.bytes].concat());
    }

    // change_mutate: arbitrary bytes (deterministic noise), read by `arbitrary`.
    let dir = out("change_mutate");
    let mut s: u64 = 0x9e37_79b9_7f4a_7c15;
    for n in 0..8 {
        let len = 16 << (n % 4);
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 24) as u8
            })
            .collect();
        write(&dir, &format!("noise{n}"), &bytes);
    }
    write(&dir, "zeros", &[0; 64]);

    // serve_request: bodies of real requests.
    let dir = out("serve_request");
    let req = |epoch: [u8; 16], cursor: u64, batches: Vec<DocBatch>| {
        Request { space: f.space_bytes, epoch, cursor, batches }.encode()
    };
    let mut bodies = vec![
        ("first-sync", req([0; 16], 0, vec![])),
        ("caught-up", req(EPOCH, 1, vec![])),
        ("everything-again", f.encode()),
        (
            "unknown-space",
            Request {
                space: [0xab; 16],
                epoch: [0; 16],
                cursor: 0,
                batches: vec![DocBatch::changes(DocId::Space, vec![])],
            }
            .encode(),
        ),
    ];
    for (i, c) in next.iter().enumerate() {
        bodies.push((
            ["next-space", "next-private", "next-public"][i],
            req(EPOCH, 1, vec![DocBatch::changes(f.docs[i].0.clone(), vec![c.clone()])]),
        ));
    }
    let all_next =
        next.iter().enumerate().map(|(i, c)| DocBatch::changes(f.docs[i].0.clone(), vec![c.clone()])).collect();
    bodies.push(("next-all", req([0; 16], 0, all_next)));
    for (name, i, c) in &forged {
        bodies.push((*name, req(EPOCH, 1, vec![DocBatch::changes(f.docs[*i].0.clone(), vec![c.clone()])])));
    }
    let snapshot = w.store.snapshot_batch(&f.space, &f.docs[1].0).expect("snapshot");
    bodies.push(("with-snapshot", req(EPOCH, 1, vec![snapshot])));
    let mut responses = Vec::new();
    for (name, body) in &bodies {
        write(&dir, name, body);
        let header = auth::header_with_key(key(), &w.store.device_id(), SYNC_PATH, f.now, body).expect("header");
        if let Ok(s) = serve_sync(&w.store, &Creators::Nobody, Some(&header), body, f.now) {
            responses.push((format!("response-{name}"), s.body));
        }
    }

    // wire_decode: the requests and the answers a store gave them, and a few small ones.
    let dir = out("wire_decode");
    for (name, body) in bodies.iter().take(6) {
        write(&dir, &format!("request-{name}"), body);
    }
    for (name, body) in responses.iter().take(8) {
        write(&dir, name, body);
    }
    let small = Response {
        epoch: EPOCH,
        cursor: 300,
        more: true,
        batches: vec![DocBatch {
            doc: f.docs[2].0.clone(),
            changes: vec![],
            snapshot: vec![1, 2, 3],
            signed: vec![SignedHash { hash: [7; 32], signature: vec![9; 64] }],
        }],
        results: vec![],
    };
    write(&dir, "response-small", &small.encode());
    write(&dir, "request-empty", &req([0; 16], 0, vec![]));
}

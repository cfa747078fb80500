//! Every decoder of outside input, fed garbage (proptest as a fuzzer) and the
//! inputs in `tests/regressions/` that once broke something: each answers
//! with an error or a refusal, never a panic, and changes nothing. The
//! changes in `tests/regressions/changes/` (found by the fuzz targets of
//! `fuzz/`) are replayed against the fuzzers' world, signed correctly.

mod common;

use automerge::Automerge;
use common::phone;
use linli_core::doc::{DocId, SignedChange};
use linli_core::identity::DeviceKey;
use linli_core::store::parse_invite;
use linli_core::sync::auth;
use linli_core::sync::wire::{Request, Response, SignedHash};
use linli_core::trust::parse_change;
use proptest::prelude::*;

fn files_in(folder: &str) -> Vec<(String, Vec<u8>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(folder);
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .expect("regressions folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_file())
        .map(|p| (p.display().to_string(), std::fs::read(&p).expect("read")))
        .collect();
    out.sort();
    out
}

fn regressions() -> Vec<(String, Vec<u8>)> {
    files_in("tests/regressions")
}

/// The key of the fuzzers' device, an admin's (`fuzz/src/lib.rs`, `KEY_SEED`).
const FUZZ_KEY_SEED: [u8; 32] = *b"linli fuzz device key, not real!";

/// A store holding the fuzzers' world (`tests/fixtures/fuzz-world.bin`, a
/// wire request), its space and its documents.
fn fuzz_world() -> (common::Phone, String, Vec<DocId>) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzz-world.bin");
    let req = Request::decode(&std::fs::read(path).expect("fixture")).expect("the fixture decodes");
    let p = phone();
    let space = hex::encode(req.space);
    let mut docs = Vec::new();
    for b in req.batches {
        if !b.changes.is_empty() {
            let n = b.changes.len();
            assert_eq!(p.apply(&space, &b.doc, b.changes).expect("apply").accepted.len(), n, "the world merges");
        }
        docs.push(b.doc);
    }
    (p, space, docs)
}

/// Replay each change of `regressions/changes/` (a document byte, then the
/// change, as the `change_validation` target reads them) on a fresh world,
/// signed by the fuzzers' device; `check` sees the store, space and document.
fn replay_changes(check: impl Fn(&str, &common::Phone, &str, &DocId)) {
    let inputs = files_in("tests/regressions/changes");
    assert!(!inputs.is_empty(), "the change regression inputs are there");
    let key = DeviceKey::from_seed(FUZZ_KEY_SEED);
    for (name, bytes) in inputs {
        let (p, space, docs) = fuzz_world();
        let Some((&sel, change)) = bytes.split_first() else { continue };
        let doc = &docs[usize::from(sel & 0x7f) % docs.len()];
        let signature =
            parse_change(change).map(|c| key.sign_change(&space, doc, &c.hash()).to_vec()).unwrap_or_default();
        p.apply(&space, doc, vec![SignedChange { bytes: change.to_vec(), signature }]).expect(&name);
        check(&name, &p, &space, doc);
    }
}

#[test]
fn change_regressions_never_panic_the_store() {
    replay_changes(|name, p, space, _| {
        assert_eq!(p.integrity_check().expect("integrity"), "ok", "{name}");
        for d in p.doc_ids(space).expect("docs") {
            p.heads(space, &d).expect(name);
        }
    });
}

#[test]
fn change_regressions_leave_documents_that_reload() {
    replay_changes(|name, p, space, doc| {
        let reloads = p
            .read(space, doc, |d| Automerge::load(&d.save()).map(|l| l.get_heads()).ok() == Some(d.get_heads()))
            .expect("read");
        assert!(reloads, "{name}: the document reloads from its own save");
    });
}

#[test]
fn every_regression_input_is_refused_cleanly() {
    let inputs = regressions();
    assert!(inputs.len() >= 4, "the regression inputs are there");
    let s = phone();
    let space = s.create_space("s", "c").expect("create");
    let me = s.my_member(&space).expect("me");
    let doc = DocId::own_private(&me, "2026");
    for (name, bytes) in inputs {
        assert!(Request::decode(&bytes).is_err(), "{name}");
        assert!(Response::decode(&bytes).is_err(), "{name}");
        let r =
            s.apply(&space, &doc, vec![SignedChange { bytes: bytes.clone(), signature: vec![0; 64] }]).expect("apply");
        assert!(r.accepted.is_empty(), "{name}");
        let r = s.apply_snapshot(&space, &doc, &bytes, &[]).expect("snapshot");
        assert!(r.accepted.is_empty(), "{name}");
        let text = String::from_utf8_lossy(&bytes);
        assert!(parse_invite(&text).is_err(), "{name}");
        assert!(auth::verify(&text, "/v1/sync", &bytes, 0, &s.device_id()).is_err(), "{name}");
    }
    assert!(s.heads(&space, &doc).expect("heads").is_empty(), "nothing got in");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, .. ProptestConfig::default() })]

    #[test]
    fn text_decoders_never_panic(text in ".{0,120}", body in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = text.parse::<DocId>();
        let _ = parse_invite(&text);
        let me = linli_core::identity::DeviceKey::from_seed([3; 32]).id();
        prop_assert!(auth::verify(&text, "/v1/sync", &body, 0, &me).is_err() || text.starts_with("v2 "));
        let header = format!("v2 {text}");
        let _ = auth::verify(&header, "/v1/sync", &body, 0, &me);
    }

    #[test]
    fn valid_doc_ids_round_trip(member in "[a-z0-9_-]{1,20}", part in "[a-z0-9_-]{1,20}", private in any::<bool>()) {
        let id = if private { DocId::own_private(&member, &part) } else { DocId::own_public(&member, &part) };
        prop_assert_eq!(id.to_string().parse::<DocId>().ok(), Some(id));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn change_and_snapshot_bytes_never_panic_the_store(bytes in prop::collection::vec(any::<u8>(), 0..400), sig in prop::collection::vec(any::<u8>(), 0..80)) {
        let s = phone();
        let space = s.create_space("s", "c").expect("create");
        let me = s.my_member(&space).expect("me");
        let doc = DocId::own_private(&me, "2026");
        // Garbage behind automerge's magic bytes reaches deeper into its decoder.
        let mut magic = vec![0x85, 0x6f, 0x4a, 0x83];
        magic.extend_from_slice(&bytes);
        for b in [bytes.clone(), magic] {
            let r = s.apply(&space, &doc, vec![SignedChange { bytes: b.clone(), signature: sig.clone() }]).expect("apply");
            prop_assert!(r.accepted.is_empty());
            let signed = [SignedHash { hash: [0; 32], signature: sig.clone() }];
            let r = s.apply_snapshot(&space, &doc, &b, &signed).expect("snapshot");
            prop_assert!(r.accepted.is_empty());
        }
        prop_assert!(s.heads(&space, &doc).expect("heads").is_empty());
    }
}

//! Every decoder of outside input, fed garbage (proptest as a fuzzer) and the
//! inputs in `tests/regressions/` that once broke something: each answers
//! with an error or a refusal, never a panic, and changes nothing.

mod common;

use common::phone;
use linli_core::doc::{DocId, SignedChange};
use linli_core::store::parse_invite;
use linli_core::sync::auth;
use linli_core::sync::wire::{Request, Response, SignedHash};
use proptest::prelude::*;

fn regressions() -> Vec<(String, Vec<u8>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/regressions");
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .expect("regressions folder")
        .map(|e| {
            let p = e.expect("entry").path();
            (p.display().to_string(), std::fs::read(&p).expect("read"))
        })
        .collect();
    out.sort();
    out
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
        assert!(auth::verify(&text, "/v1/sync", &bytes, 0).is_err(), "{name}");
    }
    assert!(s.heads(&space, &doc).expect("heads").is_empty(), "nothing got in");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, .. ProptestConfig::default() })]

    #[test]
    fn text_decoders_never_panic(text in ".{0,120}", body in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = text.parse::<DocId>();
        let _ = parse_invite(&text);
        prop_assert!(auth::verify(&text, "/v1/sync", &body, 0).is_err() || text.starts_with("v1 "));
        let header = format!("v1 {text}");
        let _ = auth::verify(&header, "/v1/sync", &body, 0);
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

//! A change as it arrives: one byte choosing a document of the world (its
//! top bit: send the bytes as a whole-document snapshot instead), then the
//! change's bytes. What `parse_change` accepts is signed by the fuzzer's
//! device, an admin's, and merged through a real store: any panic that
//! escapes `Store::apply` is a crash, and a refused change leaves the
//! document as it was.
#![no_main]

use libfuzzer_sys::fuzz_target;
use linli_core::doc::SignedChange;
use linli_core::sync::wire::SignedHash;
use linli_core::trust::parse_change;
use linli_fuzz::{sign, with_world};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, bytes)) = data.split_first() else { return };
    // The chunk's checksum is its hash's first four bytes: set it, so that
    // mutations explore what is inside a change (a wrong checksum is refused
    // outright; `regressions/changes/accepted-then-unloadable.bin` keeps it).
    let mut bytes = bytes.to_vec();
    let hash = std::panic::catch_unwind(|| automerge::Change::try_from(bytes.as_slice()).map(|c| c.hash()));
    if let Ok(Ok(hash)) = hash
        && let Some(sum) = bytes.get_mut(4..8)
    {
        sum.copy_from_slice(&hash.0[..4]);
    }
    let bytes = bytes.as_slice();
    let Ok(change) = parse_change(bytes) else { return };
    with_world(|w| {
        let doc = w.doc(sel & 0x7f).clone();
        let signature = sign(&w.fixture.space, &doc, &change.hash());
        if sel & 0x80 == 0 {
            w.apply(&doc, vec![SignedChange { bytes: bytes.to_vec(), signature }]);
        } else {
            w.apply_snapshot(&doc, bytes, &[SignedHash { hash: change.hash().0, signature }]);
        }
    });
});

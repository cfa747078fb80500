//! Test vectors for the trust rules (`tests/vectors/*.json`), so that a
//! second implementation can check itself against this one.
//!
//! Each vector is a register (the space document's signed changes, every one
//! accepted), optionally some earlier changes of a document, and one change
//! offered for that document, with the verdict a replica must reach:
//! `accepted`, `refused` with its reason, or `held` (kept aside, not
//! counted, with the reason reported to the sender). Signed changes are
//! `{"bytes": hex, "signature": hex}`; the signature is ed25519 over
//! `"linli/change/v2\0" ‖ space ‖ "\n" ‖ document ‖ "\n" ‖ hash`.
//!
//! `every_vector_gets_its_verdict` replays them on a fresh store. The vectors
//! were written by `write_the_vectors` (`LINLI_WRITE_VECTORS=1 cargo test
//! -p linli-core --test vectors -- --ignored`), which asserts each intended
//! verdict as it writes it.

mod common;

use std::path::PathBuf;

use automerge::transaction::Transactable;
use automerge::{ROOT, ReadDoc};
use common::{all_changes, craft, forge, join, phone};
use linli_core::doc::{DocId, SignedChange};
use linli_core::identity::DeviceKey;
use linli_core::space::{Role, SpaceEdit};
use linli_core::store::Store;
use serde_json::{Value, json};

fn folder() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

fn signed_json(c: &SignedChange) -> Value {
    json!({ "bytes": hex::encode(&c.bytes), "signature": hex::encode(&c.signature) })
}

fn signed_of(v: &Value) -> SignedChange {
    let field = |k: &str| hex::decode(v[k].as_str().expect("a hex field")).expect("hex");
    SignedChange { bytes: field("bytes"), signature: field("signature") }
}

/// The verdict a store reaches on `change`, offered for `doc` after the
/// register and `history`: ("accepted" | "refused" | "held", reason).
fn verdict(
    space: &str,
    register: &[SignedChange],
    doc: &DocId,
    history: &[SignedChange],
    change: &SignedChange,
) -> (String, String) {
    let s = phone();
    let r = s.apply(space, &DocId::Space, register.to_vec()).expect("apply the register");
    assert!(r.refused.is_empty() && r.missing_deps.is_empty(), "the register is accepted whole: {r:?}");
    if !history.is_empty() {
        let r = s.apply(space, doc, history.to_vec()).expect("apply the history");
        assert!(r.refused.is_empty() && r.held.is_empty(), "the history is accepted whole: {r:?}");
    }
    let r = s.apply(space, doc, vec![change.clone()]).expect("apply");
    let reason = r.refused.first().map(|(_, why)| why.to_string()).unwrap_or_default();
    let what = if !r.accepted.is_empty() {
        "accepted"
    } else if !r.held.is_empty() {
        "held"
    } else {
        "refused"
    };
    (what.to_string(), reason)
}

#[test]
fn every_vector_gets_its_verdict() {
    let mut n = 0;
    let mut files: Vec<_> =
        std::fs::read_dir(folder()).expect("tests/vectors").map(|e| e.expect("entry").path()).collect();
    files.sort();
    for path in files.iter().filter(|p| p.extension().is_some_and(|e| e == "json")) {
        let v: Value = serde_json::from_slice(&std::fs::read(path).expect("read")).expect("json");
        let name = v["name"].as_str().expect("name");
        let space = v["space"].as_str().expect("space");
        let list = |k: &str| v[k].as_array().map(|a| a.iter().map(signed_of).collect::<Vec<_>>()).unwrap_or_default();
        let doc: DocId = v["doc"].as_str().expect("doc").parse().expect("a document id");
        let (what, reason) = verdict(space, &list("register"), &doc, &list("history"), &signed_of(&v["change"]));
        assert_eq!(what, v["expect"]["verdict"].as_str().expect("verdict"), "{name}");
        assert_eq!(reason, v["expect"]["reason"].as_str().unwrap_or_default(), "{name}");
        n += 1;
    }
    assert!(n >= 12, "the vectors are there: {n}");
}

struct Writer {
    space: String,
    written: usize,
}

impl Writer {
    /// Check the intended verdict, then write the vector.
    #[allow(clippy::too_many_arguments)]
    fn vector(
        &mut self,
        name: &str,
        about: &str,
        register: &[SignedChange],
        doc: &DocId,
        history: &[SignedChange],
        change: &SignedChange,
        want: (&str, &str),
    ) {
        let (what, reason) = verdict(&self.space, register, doc, history, change);
        assert_eq!((what.as_str(), reason.as_str()), want, "{name}");
        let v = json!({
            "name": name,
            "about": about,
            "space": self.space,
            "register": register.iter().map(signed_json).collect::<Vec<_>>(),
            "doc": doc.to_string(),
            "history": history.iter().map(signed_json).collect::<Vec<_>>(),
            "change": signed_json(change),
            "expect": { "verdict": what, "reason": reason },
        });
        let text = serde_json::to_string_pretty(&v).expect("json");
        std::fs::write(folder().join(format!("{name}.json")), text + "\n").expect("write");
        self.written += 1;
    }
}

fn change_of(store: &Store, space: &str, doc: &DocId, key: &DeviceKey, signer: &DeviceKey, k: &str) -> SignedChange {
    craft(store, space, doc, key, signer, |tx| {
        tx.put(ROOT, k, "yes").expect("put");
    })
}

#[test]
#[ignore = "writes tests/vectors: LINLI_WRITE_VECTORS=1"]
fn write_the_vectors() {
    if std::env::var_os("LINLI_WRITE_VECTORS").is_none() {
        return;
    }
    std::fs::create_dir_all(folder()).expect("folder");
    let admin = phone();
    let space = admin.create_space("幸福里", "管理员").expect("create");
    let (_r, r) = join(&admin, &space, "居民甲");
    let (_s, s) = join(&admin, &space, "居民乙");
    let (_c, c) = join(&admin, &space, "网格员");
    let (rk, sk, ck, tablet) = (
        DeviceKey::generate().expect("key"),
        DeviceKey::generate().expect("key"),
        DeviceKey::generate().expect("key"),
        DeviceKey::generate().expect("key"),
    );
    admin
        .edit_space(
            &space,
            &[
                SpaceEdit::SetRole { member: c.clone(), role: Role::Coordinator, granted: true },
                SpaceEdit::AddDevice { member: r.clone(), device: rk.id(), label: "手机".into() },
                SpaceEdit::AddDevice { member: s.clone(), device: sk.id(), label: "手机".into() },
                SpaceEdit::AddDevice { member: c.clone(), device: ck.id(), label: "手机".into() },
                SpaceEdit::AddDevice { member: r.clone(), device: tablet.id(), label: "平板".into() },
            ],
        )
        .expect("devices");
    let register = all_changes(&admin, &space, &DocId::Space);
    let mut w = Writer { space: space.clone(), written: 0 };
    let ballot = DocId::own_private(&r, "2026");
    let empty = phone();
    let honest = change_of(&empty, &space, &ballot, &rk, &rk, "ballot");

    w.vector(
        "accepted-an-honest-ballot",
        "A resident's device writes its member's private document.",
        &register,
        &ballot,
        &[],
        &honest,
        ("accepted", ""),
    );
    let not_a_writer = format!("the actor is not a writer of document {ballot}");
    w.vector(
        "refused-a-neighbours-ballot",
        "Another member's device, correctly signed, writes into the resident's private document.",
        &register,
        &ballot,
        &[],
        &change_of(&empty, &space, &ballot, &sk, &sk, "ballot"),
        ("refused", &not_a_writer),
    );
    w.vector(
        "refused-signed-by-another-key",
        "The resident's change, signed by a neighbour's key.",
        &register,
        &ballot,
        &[],
        &change_of(&empty, &space, &ballot, &rk, &sk, "ballot"),
        ("refused", "the signature does not verify against the change's actor"),
    );
    let next_year = DocId::own_private(&r, "2027");
    w.vector(
        "refused-replayed-into-another-document",
        "The honest ballot, offered for another document of the same member with its own signature: signatures bind the document.",
        &register,
        &next_year,
        &[],
        &honest,
        ("refused", "the signature does not verify against the change's actor"),
    );
    w.vector(
        "held-an-equivocating-half",
        "A second, different change with the same sequence number as one already merged: kept aside as evidence, the device flagged.",
        &register,
        &ballot,
        std::slice::from_ref(&honest),
        &forge(&honest, &space, &ballot, &rk, |e| e.time += 1),
        ("held", "the actor already signed a different change with sequence number 1"),
    );
    w.vector(
        "held-dated-far-ahead",
        "The honest ballot's change dated in the year 2200, more than an hour (MAX_AHEAD_MS) ahead of any receiver's clock: it waits, unmerged, until the clock comes within the hour.",
        &register,
        &ballot,
        &[],
        &forge(&honest, &space, &ballot, &rk, |e| e.time = 7_258_118_400_000),
        ("held", ""),
    );
    w.vector(
        "refused-sequence-2-first",
        "An actor's first change in a document claims sequence number 2.",
        &register,
        &ballot,
        &[],
        &forge(&honest, &space, &ballot, &rk, |e| e.seq = 2),
        ("refused", "the change is malformed: sequence number 2 does not follow the actor's last one (0)"),
    );
    w.vector(
        "refused-counters-that-skip",
        "A first change whose operation counters do not start at 1.",
        &register,
        &ballot,
        &[],
        &forge(&honest, &space, &ballot, &rk, |e| e.start_op = std::num::NonZeroU64::new(5).expect("5")),
        ("refused", "the change is malformed: operation counters do not follow the change's deps"),
    );
    let mut wrong_sum = honest.clone();
    wrong_sum.bytes[4] ^= 1;
    w.vector(
        "refused-a-wrong-checksum",
        "The honest ballot with one bit of its chunk checksum flipped.",
        &register,
        &ballot,
        &[],
        &wrong_sum,
        ("refused", "the change is malformed: the change is not in its canonical encoding"),
    );
    let mut compressed = honest.clone();
    compressed.bytes[8] = 2;
    w.vector(
        "refused-a-compressed-chunk",
        "A compressed change chunk, refused before it is inflated.",
        &register,
        &ballot,
        &[],
        &compressed,
        ("refused", "the change is malformed: compressed changes are not accepted"),
    );
    w.vector(
        "refused-a-resident-writes-the-register",
        "A resident's device edits the space document.",
        &register,
        &DocId::Space,
        &[],
        &change_of(&admin, &space, &DocId::Space, &rk, &rk, "x"),
        ("refused", "the actor is not a writer of document space"),
    );
    let grant = craft(&admin, &space, &DocId::Space, &ck, &ck, |tx| {
        let members = tx.get(ROOT, "members").expect("get").expect("members").1;
        let me = tx.get(&members, c.as_str()).expect("get").expect("member").1;
        let roles = tx.get(&me, "roles").expect("get").expect("roles").1;
        tx.put(&roles, "admin", true).expect("put");
    });
    w.vector(
        "held-a-coordinator-makes-itself-admin",
        "A coordinator's device grants its own member the admin role: refused, and kept aside because a \
         coordinator's standing may change when revocations are decided (it never counts by itself).",
        &register,
        &DocId::Space,
        &[],
        &grant,
        ("held", &format!("the author may not change `members/{c}/roles/admin` in the space document")),
    );
    let stranger = DeviceKey::generate().expect("key");
    w.vector(
        "held-a-stranger",
        "A device the register does not know writes a member's document: kept aside until the register admits it.",
        &register,
        &ballot,
        &[],
        &change_of(&empty, &space, &ballot, &stranger, &stranger, "ballot"),
        ("held", ""),
    );
    w.vector(
        "refused-a-stranger-writes-the-register",
        "A device the register does not know, with no invite's proof, edits the space document.",
        &register,
        &DocId::Space,
        &[],
        &change_of(&admin, &space, &DocId::Space, &stranger, &stranger, "x"),
        ("refused", "the actor is not a device of any member of the space"),
    );
    // An invite, redeemed by a new phone: its own first change, with the
    // invite key's proof.
    let inv = admin.create_invite(&space, "新住户", &[Role::Resident], None).expect("invite");
    let invited = all_changes(&admin, &space, &DocId::Space);
    let newcomer = phone();
    newcomer.join(&inv.code, "新住户", invited.clone()).expect("join");
    let redemption = all_changes(&newcomer, &space, &DocId::Space)
        .into_iter()
        .find(|c| !invited.contains(c))
        .expect("the redemption");
    w.vector(
        "accepted-a-redemption",
        "A new phone redeems an invite: a change of its own, carrying the invite key's proof (`claim:<device>`).",
        &invited,
        &DocId::Space,
        &[],
        &redemption,
        ("accepted", ""),
    );
    let (_, invite_key) = linli_core::store::parse_invite(&inv.code).expect("code");
    w.vector(
        "refused-the-invite-key-writes-the-register",
        "The invite key itself edits the space document: it signs proofs, never changes.",
        &invited,
        &DocId::Space,
        &[],
        &change_of(&admin, &space, &DocId::Space, &invite_key, &invite_key, "x"),
        ("refused", "the actor is not a device of any member of the space"),
    );
    // The tablet is revoked having written nothing: everything it writes
    // after is beyond its cut, whatever deps or time it claims.
    let tablet_doc = DocId::own_public(&r, "tablet");
    admin.edit_space(&space, &[SpaceEdit::RevokeDevice { member: r.clone(), device: tablet.id() }]).expect("revoke");
    let revoked = all_changes(&admin, &space, &DocId::Space);
    let backdated =
        forge(&change_of(&empty, &space, &tablet_doc, &tablet, &tablet, "t"), &space, &tablet_doc, &tablet, |e| {
            e.time = 0;
        });
    w.vector(
        "held-a-revoked-tablet-backdated",
        "A revoked tablet writes after its revocation, dated 1970: cut off (kept aside, in case the revocation is itself undone), never counted.",
        &revoked,
        &tablet_doc,
        &[],
        &backdated,
        ("held", "the device was revoked before this change was made"),
    );
    assert!(w.written >= 12);
    println!("wrote {} vectors into {}", w.written, folder().display());
}

//! Checking a change *before* it is merged (ARCHITECTURE.md, "Trust").
//!
//! This module is pure: it takes a document, the register and a change, and
//! says whether the change may be merged and who wrote it. The store calls it
//! for local writes and remote changes alike, so a device cannot write what
//! its peers would refuse.
//!
//! Two rules decide which register a change is judged against:
//!
//! * A change to the **space document** is judged against the register *at the
//!   change's causal past* (its deps), never against whatever the receiver
//!   happens to hold. Every replica therefore reaches the same verdict
//!   whatever order changes arrive in, and a revoked coordinator's offline
//!   edits made before they could have seen the revocation still count.
//! * A change to **any other document** has no causal link to the register, so
//!   it is judged against the receiver's current register. A revoked device
//!   (or a removed member's, or a demoted one's) counts only for the changes
//!   its revocation's cut names — those the revoker had merged — whatever
//!   clock the device claims ([`SpaceView::standing`]). A change from a
//!   device the receiver does not know yet is refused *for now* (nothing
//!   recorded against the device) and is accepted when it is offered again
//!   after the register arrives.
//! * A revocation binds register changes too: a change beyond the device's
//!   cut must pass both as judged at its causal past and as the device's
//!   standing in the receiver's register, so a stolen phone that never syncs
//!   its revocation cannot keep acting on the register it saw.

use automerge::{Automerge, Change, ChangeHash};

use crate::doc::{DocId, Writers};
use crate::error::Refusal;
use crate::identity::{DeviceId, verify_change};
use crate::space::{self, Author, SpaceView};

/// The largest change a peer accepts, in bytes.
pub const MAX_CHANGE_BYTES: usize = 1 << 20;

/// Run `f`, turning a panic into `None`. Automerge is not written for
/// hostile input; every call that feeds it bytes from a peer goes through
/// here as a last line, after the checks below.
pub(crate) fn contained<T>(f: impl FnOnce() -> T) -> Option<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).ok()
}

/// Parse a change as it arrives from a peer: a plain (uncompressed) change
/// chunk of at most [`MAX_CHANGE_BYTES`]. A compressed chunk is refused
/// before it is inflated, so a small message cannot expand into a large one.
pub fn parse_change(bytes: &[u8]) -> Result<Change, Refusal> {
    if bytes.len() > MAX_CHANGE_BYTES {
        return Err(Refusal::Malformed(format!("a change is larger than {MAX_CHANGE_BYTES} bytes")));
    }
    // A chunk starts with 4 magic bytes and a 4-byte checksum; then its type.
    match bytes.get(8) {
        Some(1) => {}
        Some(2) => return Err(Refusal::Malformed("compressed changes are not accepted".into())),
        _ => return Err(Refusal::Malformed("not a change".into())),
    }
    let change = match contained(|| Change::try_from(bytes)) {
        Some(Ok(c)) => c,
        Some(Err(e)) => return Err(Refusal::Malformed(e.to_string())),
        None => return Err(Refusal::Malformed("the change does not decode".into())),
    };
    // Only the canonical encoding: automerge's decoder accepts others (a
    // column run longer than the operations, say), hashes the bytes as sent,
    // and re-encodes canonically on `save()` — where the hash no longer
    // matches and the document can never be loaded again. Found by the
    // `change_validation` fuzzer. The bytes must be the re-encoding's
    // exactly: the hash leaves out the chunk's checksum, and automerge does
    // not check it either, yet a change whose checksum is not its hash's
    // first bytes makes a document whose save will not load (found again by
    // the same fuzzer, with signatures v2).
    let canonical = contained(|| Change::from(change.decode()).raw_bytes() == bytes);
    if canonical != Some(true) {
        return Err(Refusal::Malformed("the change is not in its canonical encoding".into()));
    }
    Ok(change)
}

/// Whether a change fits the document it is offered to, checked before
/// automerge sees it: it is its actor's next change (`last` is the actor's
/// last sequence number merged here, so sequences run 1, 2, 3… without a
/// gap), and its operation counters start right after the highest of its
/// deps, as automerge numbers them (`max_op` gives a dep's last counter;
/// every dep is known to it).
///
/// `last_max_op` is the last counter of the actor's previous change: a change
/// that does not build on it (it need not name it in its deps) must still not
/// reuse its operation ids. Found by the `change_mutate` fuzzer.
pub fn consistent(
    max_op: impl Fn(&ChangeHash) -> Option<u64>,
    change: &Change,
    last: u64,
    last_max_op: u64,
) -> Result<(), Refusal> {
    if Some(change.seq()) != last.checked_add(1) {
        return Err(Refusal::Malformed(format!(
            "sequence number {} does not follow the actor's last one ({last})",
            change.seq()
        )));
    }
    let after = change.deps().iter().filter_map(max_op).max().unwrap_or(0);
    if Some(change.start_op().get()) != after.checked_add(1) || change.start_op().get() <= last_max_op {
        return Err(Refusal::Malformed("operation counters do not follow the change's deps".into()));
    }
    Ok(())
}

/// The space id is the first 16 bytes of the genesis change's hash, so the
/// id commits to the creator and nobody can forge another genesis for it.
pub fn space_id_of(genesis: &ChangeHash) -> String {
    hex::encode(&genesis.0[..16])
}

/// The signer of a change of document `doc` in space `space`, and the
/// signature check (which binds all three).
pub fn signer(space: &str, doc: &DocId, change: &Change, signature: &[u8]) -> Result<DeviceId, Refusal> {
    let device = DeviceId::from_actor(change.actor_id())
        .ok_or_else(|| Refusal::Malformed("actor id is not a device key".into()))?;
    verify_change(&device, space, doc, &change.hash(), signature)?;
    Ok(device)
}

/// The signer, verifying the signature unless a verified later change of the
/// same actor already vouches for this one (`vouched`).
fn signer_or_vouched(
    space: &str,
    doc: &DocId,
    change: &Change,
    signature: &[u8],
    vouched: bool,
) -> Result<DeviceId, Refusal> {
    if vouched {
        DeviceId::from_actor(change.actor_id()).ok_or_else(|| Refusal::Malformed("actor id is not a device key".into()))
    } else {
        signer(space, doc, change, signature)
    }
}

fn sorted(h: &[ChangeHash]) -> Vec<ChangeHash> {
    let mut v = h.to_vec();
    v.sort();
    v
}

/// Judge a change to the space document. `doc` holds all of the change's
/// deps; `current` is the register at `doc`'s heads. Returns the author.
///
/// `revocations` is the register as the receiver knows it (normally the same
/// as `current`; while a document is rebuilt, the register that caused the
/// rebuild): a revocation known there binds the device whatever past the
/// change claims — a change beyond the device's cut must also pass as the
/// device's standing now.
pub fn check_space_change(
    space_id: &str,
    doc: &Automerge,
    current: &SpaceView,
    revocations: &SpaceView,
    change: &Change,
    signature: &[u8],
    vouched: bool,
) -> Result<Author, Refusal> {
    let device = signer_or_vouched(space_id, &DocId::Space, change, signature, vouched)?;
    let at = change.timestamp();
    let malformed = |e: crate::Error| Refusal::Malformed(e.to_string());
    if change.deps().is_empty() {
        // Genesis: the first change of the document, whose hash names the space,
        // and whose author makes itself the first admin.
        if !doc.get_heads().is_empty() || space_id_of(&change.hash()) != space_id {
            return Err(Refusal::WrongGenesis);
        }
        let mut fresh = Automerge::new();
        fresh.apply_changes([change.clone()]).map_err(|e| Refusal::Malformed(e.to_string()))?;
        return match SpaceView::read(&fresh).map_err(malformed)?.author(&device, at) {
            Ok(a @ Author::Admin(_)) => Ok(a),
            _ => Err(Refusal::WrongGenesis),
        };
    }
    // The register as the change's author saw it: the receiver's own when the
    // deps are its heads (the common case), else the document at the deps.
    let (past_doc, past_view) = if sorted(change.deps()) == sorted(&doc.get_heads()) {
        (None, None)
    } else {
        let d = doc.fork_at(change.deps()).map_err(|e| Refusal::Malformed(e.to_string()))?;
        let v = SpaceView::read(&d).map_err(malformed)?;
        (Some(d), Some(v))
    };
    let pre = past_view.as_ref().unwrap_or(current);
    // In the causal past, any revocation or removal already happened: judge as of "now".
    let author = match pre.author(&device, i64::MAX) {
        // A phone the register does not know may write one change: the
        // redemption of an invite open at its causal past, proved by the
        // invite key, adding itself and nothing else.
        Err(Refusal::UnknownDevice) => {
            let mut trial = past_doc.unwrap_or_else(|| doc.clone());
            trial.apply_changes([change.clone()]).map_err(|e| Refusal::Malformed(e.to_string()))?;
            let writes = space::change_writes(&trial, change)?;
            let Some(invite) = space::redeemed_invite(space_id, pre, &trial, &device, &writes) else {
                return Err(Refusal::UnknownDevice);
            };
            if change.seq() != 1 {
                return Err(Refusal::Forbidden("a redemption is its phone's first change".into()));
            }
            let me = device.to_hex();
            let others = writes.iter().any(
                |w| matches!(w.path.as_slice(), [m, _, d, d2, ..] if m == "members" && d == "devices" && *d2 != me),
            );
            if others {
                return Err(Refusal::Forbidden("a redemption adds its own phone only".into()));
            }
            let author = Author::InviteBearer(invite);
            space::authorize(pre, &author, &writes, at)?;
            return Ok(author);
        }
        other => other?,
    };
    // A revocation this replica knows of, beyond the device's cut.
    let now = match revocations.revocation(&device) {
        Some(_) => Some(revocations.standing(&device, &DocId::Space, change.seq(), &change.hash())?),
        None => None,
    };
    // Both are judged against the change's causal past: the revocation
    // lowers the rank the writes are allowed for, nothing else.
    let judged: Vec<(&SpaceView, &Author)> =
        std::iter::once((pre, &author)).chain(now.as_ref().map(|a| (pre, a))).collect();
    if judged.iter().any(|(_, a)| matches!(a, Author::Member(_))) {
        return Err(Refusal::NotAWriter(DocId::Space.to_string()));
    }
    if judged.iter().all(|(_, a)| matches!(a, Author::Admin(_))) {
        return Ok(author);
    }
    // A coordinator or an invite's bearer: look at exactly what the change
    // writes, applied on top of its own causal past.
    let mut trial = past_doc.unwrap_or_else(|| doc.clone());
    trial.apply_changes([change.clone()]).map_err(|e| Refusal::Malformed(e.to_string()))?;
    let writes = space::change_writes(&trial, change)?;
    for (view, a) in judged {
        space::authorize(view, a, &writes, at)?;
    }
    Ok(author)
}

/// Judge a change to any document other than the space document.
pub fn check_doc_change(
    space_id: &str,
    doc_id: &DocId,
    current: &SpaceView,
    change: &Change,
    signature: &[u8],
    vouched: bool,
) -> Result<Author, Refusal> {
    let device = signer_or_vouched(space_id, doc_id, change, signature, vouched)?;
    let author = current.standing(&device, doc_id, change.seq(), &change.hash())?;
    if may_write(doc_id, &author) { Ok(author) } else { Err(Refusal::NotAWriter(doc_id.to_string())) }
}

/// The writer rule of every document kind but the register (whose rights are
/// checked path by path): coordinators' kinds by coordinators and admins, a
/// member's own documents by that member's devices.
pub fn may_write(doc_id: &DocId, author: &Author) -> bool {
    match (doc_id.writers(), author) {
        (Writers::Coordinators, Author::Admin(_) | Author::Coordinator(_)) => true,
        (Writers::Member(m), Author::Admin(a) | Author::Coordinator(a) | Author::Member(a)) => *a == m,
        _ => false,
    }
}

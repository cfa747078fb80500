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
//!   it is judged against the receiver's current register, with device
//!   revocation dated: a device revoked at time `t` is refused for changes it
//!   dated at or after `t`. A change from a device the receiver does not know
//!   yet is refused *for now* (nothing recorded against the device) and is
//!   accepted when it is offered again after the register arrives.

use automerge::{Automerge, Change, ChangeHash};

use crate::doc::{DocId, Writers};
use crate::error::Refusal;
use crate::identity::{DeviceId, verify_change};
use crate::space::{self, Author, SpaceView};

/// The space id is the first 16 bytes of the genesis change's hash, so the
/// id commits to the creator and nobody can forge another genesis for it.
pub fn space_id_of(genesis: &ChangeHash) -> String {
    hex::encode(&genesis.0[..16])
}

/// The signer of a change and the signature check.
pub fn signer(change: &Change, signature: &[u8]) -> Result<DeviceId, Refusal> {
    let device = DeviceId::from_actor(change.actor_id())
        .ok_or_else(|| Refusal::Malformed("actor id is not a device key".into()))?;
    verify_change(&device, &change.hash(), signature)?;
    Ok(device)
}

/// The signer, verifying the signature unless a verified later change of the
/// same actor already vouches for this one (`vouched`).
fn signer_or_vouched(change: &Change, signature: &[u8], vouched: bool) -> Result<DeviceId, Refusal> {
    if vouched {
        DeviceId::from_actor(change.actor_id()).ok_or_else(|| Refusal::Malformed("actor id is not a device key".into()))
    } else {
        signer(change, signature)
    }
}

fn sorted(h: &[ChangeHash]) -> Vec<ChangeHash> {
    let mut v = h.to_vec();
    v.sort();
    v
}

/// Judge a change to the space document. `doc` holds all of the change's
/// deps; `current` is the register at `doc`'s heads. Returns the author.
pub fn check_space_change(
    space_id: &str,
    doc: &Automerge,
    current: &SpaceView,
    change: &Change,
    signature: &[u8],
    vouched: bool,
) -> Result<Author, Refusal> {
    let device = signer_or_vouched(change, signature, vouched)?;
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
    let author = pre.author(&device, i64::MAX)?;
    match author {
        Author::Admin(_) => return Ok(author),
        Author::Member(_) => return Err(Refusal::NotAWriter(DocId::Space.to_string())),
        Author::Coordinator(_) | Author::InviteBearer(_) => {}
    }
    // A coordinator or an invite's bearer: look at exactly what the change
    // writes, applied on top of its own causal past.
    let mut trial = past_doc.unwrap_or_else(|| doc.clone());
    trial.apply_changes([change.clone()]).map_err(|e| Refusal::Malformed(e.to_string()))?;
    let writes = space::change_writes(&trial, change)?;
    space::authorize(pre, &author, &writes, at)?;
    Ok(author)
}

/// Judge a change to any document other than the space document.
pub fn check_doc_change(
    doc_id: &DocId,
    current: &SpaceView,
    change: &Change,
    signature: &[u8],
    vouched: bool,
) -> Result<Author, Refusal> {
    let device = signer_or_vouched(change, signature, vouched)?;
    let author = current.author(&device, change.timestamp())?;
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

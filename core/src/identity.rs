//! Device identity: an ed25519 key pair made on the device, never exported.
//!
//! The automerge actor id of a device *is* its 32-byte public key, so every
//! change names the key that must have signed it and a verifier needs no
//! lookup table to find it. A restored backup does not carry the secret key
//! (the store never exports it), so it makes a new key and therefore a new
//! actor: an actor id is never reused.
//!
//! What is signed (signature version 2) is the space id, the document id and
//! the change hash, behind a domain tag: a signature over a change can never
//! be replayed as a signature over anything else, nor vouch for the same
//! change copied into another document or another space. (Version 1 signed
//! the hash alone; such signatures are refused.)

use automerge::{ActorId, ChangeHash};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use crate::doc::DocId;
use crate::error::{Error, Refusal, Result};

const CHANGE_TAG: &[u8] = b"linli/change/v2\0";

/// 32 random bytes from the operating system.
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|e| Error::Random(e.to_string()))?;
    Ok(buf)
}

/// The public half of a device key: the device's id and its actor id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceId(pub [u8; 32]);

impl DeviceId {
    pub fn actor(&self) -> ActorId {
        ActorId::from(self.0)
    }

    /// The device behind an actor id, if the actor id has the shape of one.
    pub fn from_actor(actor: &ActorId) -> Option<Self> {
        <[u8; 32]>::try_from(actor.to_bytes()).ok().map(DeviceId)
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(s: &str) -> Result<Self> {
        let bytes = hex::decode(s).map_err(|_| Error::Invalid("device id is not hex".into()))?;
        let arr =
            <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| Error::Invalid("device id must be 32 bytes".into()))?;
        Ok(DeviceId(arr))
    }
}

impl std::fmt::Debug for DeviceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeviceId({}…)", &self.to_hex()[..12])
    }
}

/// A signing key held by this device (or an invite key held by its bearer).
pub struct DeviceKey {
    signing: SigningKey,
}

impl std::fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        write!(f, "DeviceKey({:?})", self.id())
    }
}

impl DeviceKey {
    pub fn generate() -> Result<Self> {
        Ok(Self::from_seed(random_bytes::<32>()?))
    }

    pub fn from_seed(seed: [u8; 32]) -> Self {
        DeviceKey { signing: SigningKey::from_bytes(&seed) }
    }

    pub(crate) fn seed(&self) -> [u8; 32] {
        self.signing.to_bytes()
    }

    pub fn id(&self) -> DeviceId {
        DeviceId(self.signing.verifying_key().to_bytes())
    }

    pub fn actor(&self) -> ActorId {
        self.id().actor()
    }

    /// Sign a change of document `doc` of space `space` (the space id, 32 hex).
    pub fn sign_change(&self, space: &str, doc: &DocId, hash: &ChangeHash) -> [u8; 64] {
        self.signing.sign(&change_message(space, doc, hash)).to_bytes()
    }

    /// Sign an arbitrary message under a domain tag (used by request signing).
    pub fn sign_tagged(&self, tag: &[u8], msg: &[u8]) -> [u8; 64] {
        let mut m = Vec::with_capacity(tag.len() + msg.len());
        m.extend_from_slice(tag);
        m.extend_from_slice(msg);
        self.signing.sign(&m).to_bytes()
    }
}

/// `tag ‖ space ‖ "\n" ‖ doc ‖ "\n" ‖ hash`: neither id can hold a newline.
fn change_message(space: &str, doc: &DocId, hash: &ChangeHash) -> Vec<u8> {
    lines(CHANGE_TAG, &[space.as_bytes(), doc.to_string().as_bytes(), &hash.0])
}

/// `tag ‖ part ‖ "\n" ‖ part …`: what a device signs, its parts joined by
/// newlines (no id can hold one; the last part may be raw bytes).
pub(crate) fn lines(tag: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut m = Vec::with_capacity(tag.len() + parts.iter().map(|p| p.len() + 1).sum::<usize>());
    m.extend_from_slice(tag);
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            m.push(b'\n');
        }
        m.extend_from_slice(part);
    }
    m
}

/// Check that `signature` is `device`'s signature over the change `hash` of
/// document `doc` in space `space`.
pub fn verify_change(
    device: &DeviceId,
    space: &str,
    doc: &DocId,
    hash: &ChangeHash,
    signature: &[u8],
) -> Result<(), Refusal> {
    let key = VerifyingKey::from_bytes(&device.0).map_err(|_| Refusal::BadSignature)?;
    let sig = <[u8; 64]>::try_from(signature).map_err(|_| Refusal::BadSignature)?;
    key.verify_strict(&change_message(space, doc, hash), &Signature::from_bytes(&sig))
        .map_err(|_| Refusal::BadSignature)
}

/// Verify a tagged message signature (request signing).
pub fn verify_tagged(device: &DeviceId, tag: &[u8], msg: &[u8], signature: &[u8]) -> bool {
    let Ok(key) = VerifyingKey::from_bytes(&device.0) else {
        return false;
    };
    let Ok(sig) = <[u8; 64]>::try_from(signature) else {
        return false;
    };
    let mut m = Vec::with_capacity(tag.len() + msg.len());
    m.extend_from_slice(tag);
    m.extend_from_slice(msg);
    key.verify_strict(&m, &Signature::from_bytes(&sig)).is_ok()
}

/// Crockford base32 (no padding): short, case-insensitive, no 0/O or 1/I/L
/// confusion, and alphanumeric so a QR code can use its compact mode.
pub mod base32 {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

    pub fn encode(data: &[u8]) -> String {
        let mut out = String::with_capacity(data.len() * 8 / 5 + 1);
        let (mut buf, mut bits) = (0u32, 0u32);
        for &b in data {
            buf = (buf << 8) | u32::from(b);
            bits += 8;
            while bits >= 5 {
                bits -= 5;
                out.push(char::from(ALPHABET[((buf >> bits) & 31) as usize]));
            }
        }
        if bits > 0 {
            out.push(char::from(ALPHABET[((buf << (5 - bits)) & 31) as usize]));
        }
        out
    }

    pub fn decode(s: &str) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(s.len() * 5 / 8);
        let (mut buf, mut bits) = (0u32, 0u32);
        for c in s.chars().filter(|c| *c != '-' && !c.is_whitespace()) {
            let c = match c.to_ascii_uppercase() {
                'O' => '0',
                'I' | 'L' => '1',
                c => c,
            };
            let v = ALPHABET.iter().position(|&a| char::from(a) == c)? as u32;
            buf = (buf << 5) | v;
            bits += 5;
            if bits >= 8 {
                bits -= 8;
                out.push(((buf >> bits) & 0xff) as u8);
            }
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actor_is_public_key_and_round_trips() {
        let k = DeviceKey::from_seed([7; 32]);
        let actor = k.actor();
        assert_eq!(DeviceId::from_actor(&actor), Some(k.id()));
        assert_eq!(DeviceId::from_hex(&k.id().to_hex()).ok(), Some(k.id()));
        assert!(DeviceId::from_actor(&ActorId::from([1u8; 16])).is_none());
    }

    #[test]
    fn signature_binds_key_space_document_and_hash() {
        let k = DeviceKey::from_seed([1; 32]);
        let other = DeviceKey::from_seed([2; 32]);
        let h = ChangeHash([9; 32]);
        let (space, doc) = ("ab".repeat(16), DocId::own_private("m1", "vote-1"));
        let sig = k.sign_change(&space, &doc, &h);
        assert_eq!(verify_change(&k.id(), &space, &doc, &h, &sig), Ok(()));
        assert_eq!(verify_change(&other.id(), &space, &doc, &h, &sig), Err(Refusal::BadSignature));
        assert_eq!(verify_change(&k.id(), &space, &doc, &ChangeHash([8; 32]), &sig), Err(Refusal::BadSignature));
        assert_eq!(verify_change(&k.id(), &space, &doc, &h, &sig[..10]), Err(Refusal::BadSignature));
        // The same change in another document or another space: refused.
        let vote2 = DocId::own_private("m1", "vote-2");
        assert_eq!(verify_change(&k.id(), &space, &vote2, &h, &sig), Err(Refusal::BadSignature));
        assert_eq!(verify_change(&k.id(), &"cd".repeat(16), &doc, &h, &sig), Err(Refusal::BadSignature));
        // A version-1 signature (the hash alone) is refused.
        let mut v1 = b"linli/change/v1\0".to_vec();
        v1.extend_from_slice(&h.0);
        let old = k.sign_tagged(&[], &v1);
        assert_eq!(verify_change(&k.id(), &space, &doc, &h, &old), Err(Refusal::BadSignature));
        // A change signature is not a valid tagged-message signature.
        assert!(!verify_tagged(&k.id(), b"linli/request/v1\0", &h.0, &sig));
    }

    #[test]
    fn base32_round_trips_and_forgives_confusables() {
        for len in 0..40 {
            let data: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let enc = base32::encode(&data);
            assert_eq!(base32::decode(&enc).as_deref(), Some(data.as_slice()));
            assert_eq!(base32::decode(&enc.to_lowercase()).as_deref(), Some(data.as_slice()));
        }
        assert_eq!(base32::decode("O1"), base32::decode("01"));
        assert!(base32::decode("U!").is_none());
    }
}

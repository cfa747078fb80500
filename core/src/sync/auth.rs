//! Request authentication: each request names its device and the peer it is
//! for, and is signed by the device, with a timestamp and a nonce, so a
//! replayed request is refused — and a request made for one peer (a meeting
//! hub) cannot be replayed to another (the server).
//!
//! Header `linli-auth: v2 <device> <peer> <unix ms> <nonce> <signature>`,
//! the binary fields in unpadded base64url (RFC 4648 §5), the signature over
//! `"linli/request/v2\0" ‖ peer ‖ path ‖ "\n" ‖ ms ‖ "\n" ‖ nonce ‖ body`.
//! A peer's identity is its store's device key (`GET /v1/peer`).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

use crate::identity::{DeviceId, DeviceKey, random_bytes, verify_tagged};

pub const HEADER: &str = "linli-auth";
pub const TAG: &[u8] = b"linli/request/v2\0";
/// How far a request's clock may be from the receiver's.
pub const WINDOW_MS: i64 = 5 * 60 * 1000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authed {
    pub device: DeviceId,
    pub at: i64,
    pub nonce: [u8; 16],
}

fn message(peer: &DeviceId, path: &str, at: i64, nonce: &[u8; 16], body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(path.len() + 64 + body.len());
    m.extend_from_slice(&peer.0);
    m.extend_from_slice(path.as_bytes());
    m.push(b'\n');
    m.extend_from_slice(at.to_string().as_bytes());
    m.push(b'\n');
    m.extend_from_slice(nonce);
    m.extend_from_slice(body);
    m
}

/// The header value for a request to `peer`, signed by `sign` (a device key
/// or a store).
pub fn header(
    device: &DeviceId,
    peer: &DeviceId,
    path: &str,
    at: i64,
    body: &[u8],
    sign: impl FnOnce(&[u8]) -> crate::Result<[u8; 64]>,
) -> crate::Result<String> {
    let nonce = random_bytes::<16>()?;
    let sig = sign(&message(peer, path, at, &nonce, body))?;
    Ok(format!("v2 {} {} {} {} {}", B64.encode(device.0), B64.encode(peer.0), at, B64.encode(nonce), B64.encode(sig)))
}

/// Sign with a key held in memory (an invite key).
pub fn header_with_key(key: &DeviceKey, peer: &DeviceId, path: &str, at: i64, body: &[u8]) -> crate::Result<String> {
    header(&key.id(), peer, path, at, body, |m| Ok(key.sign_tagged(TAG, m)))
}

/// Why a request was not authenticated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing or malformed linli-auth header")]
    Malformed,
    #[error("the request signature does not verify")]
    BadSignature,
    #[error("the request's clock is outside the accepted window")]
    Stale,
    #[error("the request was made for another peer")]
    WrongPeer,
}

/// Check a header against the request it came with, received by peer `me`.
/// The nonce's freshness is the caller's to check (it needs the store).
pub fn verify(header: &str, path: &str, body: &[u8], now: i64, me: &DeviceId) -> Result<Authed, AuthError> {
    let parts: Vec<&str> = header.split_ascii_whitespace().collect();
    let ["v2", device, peer, at, nonce, sig] = parts.as_slice() else { return Err(AuthError::Malformed) };
    let bytes = |s: &str| B64.decode(s).map_err(|_| AuthError::Malformed);
    let device = DeviceId(<[u8; 32]>::try_from(bytes(device)?.as_slice()).map_err(|_| AuthError::Malformed)?);
    let peer = DeviceId(<[u8; 32]>::try_from(bytes(peer)?.as_slice()).map_err(|_| AuthError::Malformed)?);
    let at: i64 = at.parse().map_err(|_| AuthError::Malformed)?;
    let nonce = <[u8; 16]>::try_from(bytes(nonce)?.as_slice()).map_err(|_| AuthError::Malformed)?;
    let sig = bytes(sig)?;
    if !verify_tagged(&device, TAG, &message(&peer, path, at, &nonce, body), &sig) {
        return Err(AuthError::BadSignature);
    }
    if peer != *me {
        return Err(AuthError::WrongPeer);
    }
    if (now - at).abs() > WINDOW_MS {
        return Err(AuthError::Stale);
    }
    Ok(Authed { device, at, nonce })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_requests_verify_and_tampering_does_not() {
        let k = DeviceKey::from_seed([5; 32]);
        let (hub, server) = (DeviceKey::from_seed([7; 32]).id(), DeviceKey::from_seed([8; 32]).id());
        let h = header_with_key(&k, &hub, "/v1/sync", 1_000_000, b"body").expect("header");
        let a = verify(&h, "/v1/sync", b"body", 1_000_500, &hub).expect("verify");
        assert_eq!(a.device, k.id());
        assert_eq!(verify(&h, "/v1/sync", b"bodY", 1_000_000, &hub), Err(AuthError::BadSignature));
        assert_eq!(verify(&h, "/v1/join", b"body", 1_000_000, &hub), Err(AuthError::BadSignature));
        assert_eq!(verify(&h, "/v1/sync", b"body", 1_000_000 + WINDOW_MS + 1, &hub), Err(AuthError::Stale));
        assert_eq!(verify("v2 nope", "/v1/sync", b"", 0, &hub), Err(AuthError::Malformed));
        // Made for the hub, replayed to the server: refused.
        assert_eq!(verify(&h, "/v1/sync", b"body", 1_000_000, &server), Err(AuthError::WrongPeer));
        // The peer named in the header is signed: it cannot be swapped.
        let swapped = h.replace(&B64.encode(hub.0), &B64.encode(server.0));
        assert_eq!(verify(&swapped, "/v1/sync", b"body", 1_000_000, &server), Err(AuthError::BadSignature));
        let other = DeviceKey::from_seed([6; 32]);
        let forged = h.replace(&B64.encode(k.id().0), &B64.encode(other.id().0));
        assert_ne!(forged, h);
        assert_eq!(verify(&forged, "/v1/sync", b"body", 1_000_000, &hub), Err(AuthError::BadSignature));
    }
}

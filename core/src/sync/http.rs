//! The HTTP transport: reqwest (blocking) with rustls (ring provider).
//!
//! * A server URL (`https://…`, or `http://…` on a test bench) is checked
//!   against the bundled webpki roots — no platform verifier, so it needs no
//!   JNI initialisation on Android and behaves the same on every platform.
//! * A meeting hub's link (`linli-hub://host:port/#sha256=…`, see
//!   [`HubLink`]) connects to `https://host:port` over TLS 1.3 and accepts
//!   exactly the certificate whose SHA-256 is in the link, whatever name it
//!   carries; the handshake's signature is still verified with that
//!   certificate's key. Another certificate fails the handshake, before a
//!   byte of the request is sent.
//!
//! An answer larger than [`MAX_RESPONSE`] is refused while it is read.

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

use super::link::{HubLink, SCHEME};
use super::{MAX_BODY, SNAPSHOT_BUDGET, Transport, auth};
use crate::error::{Error, Result};
use crate::identity::DeviceId;

/// The largest answer read from a peer: a first sync's snapshots (at most
/// [`SNAPSHOT_BUDGET`]) or a page of changes that may end with one change as
/// large as a request ([`MAX_BODY`]), with room for the framing.
pub const MAX_RESPONSE: usize = MAX_BODY + SNAPSHOT_BUDGET;

#[derive(Debug, Clone)]
pub struct HttpTransport {
    base: String,
    client: reqwest::blocking::Client,
    hub: bool,
    /// The peer's identity, asked once.
    peer: Arc<std::sync::OnceLock<DeviceId>>,
}

impl HttpTransport {
    /// `peer` is a server's URL (`https://linli.example.org`, a trailing
    /// slash is dropped) or a meeting hub's link
    /// (`linli-hub://192.168.1.20:8788/#sha256=…`). Anything else, or a
    /// malformed link, is [`Error::Invalid`].
    pub fn new(peer: &str) -> Result<Self> {
        let builder = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60));
        let hub = peer.starts_with(SCHEME);
        let (base, builder) = if hub {
            let link: HubLink = peer.parse()?;
            (link.https_base(), builder.use_preconfigured_tls(pinned_config(link.fingerprint)?))
        } else if peer.starts_with("https://") || peer.starts_with("http://") {
            (peer.trim_end_matches('/').to_string(), builder)
        } else {
            return Err(Error::Invalid(format!("a peer is an https:// URL or a {SCHEME} link")));
        };
        let client = builder.build().map_err(|e| Error::Internal(describe(&e)))?;
        Ok(HttpTransport { base, client, hub, peer: Arc::new(std::sync::OnceLock::new()) })
    }
}

/// A TLS 1.3 client configuration that accepts only the certificate whose
/// DER has SHA-256 `fingerprint`.
pub fn pinned_config(fingerprint: [u8; 32]) -> Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(Pinned { fingerprint, provider: provider.clone() });
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| Error::Internal(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

#[derive(Debug, thiserror::Error)]
#[error("the hub's certificate does not match the fingerprint in its link")]
struct WrongCertificate;

/// Accepts one certificate, by the SHA-256 of its DER.
#[derive(Debug)]
struct Pinned {
    fingerprint: [u8; 32],
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let seen: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        if seen == self.fingerprint {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(Arc::new(
                WrongCertificate,
            )))))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// An error and its causes (reqwest's own text hides the TLS reason), without the URL.
fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let more = match tls_reason(c) {
            Some(reason) => reason,
            None => c.to_string(),
        };
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

/// The words of a refused certificate, which rustls prints as a debug dump.
fn tls_reason(mut e: &(dyn std::error::Error + 'static)) -> Option<String> {
    // rustls's error travels inside an I/O error, sometimes inside another.
    while let Some(io) = e.downcast_ref::<std::io::Error>() {
        e = io.get_ref()?;
    }
    match e.downcast_ref::<rustls::Error>()? {
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other)) => Some(other.0.to_string()),
        other => Some(other.to_string()),
    }
}

impl Transport for HttpTransport {
    fn peer(&self) -> std::result::Result<DeviceId, String> {
        if let Some(p) = self.peer.get() {
            return Ok(*p);
        }
        let resp = self
            .client
            .get(format!("{}{}", self.base, super::PEER_PATH))
            .send()
            .map_err(|e| describe(&e.without_url()))?;
        if !resp.status().is_success() {
            return Err(format!("the peer did not say who it is (status {})", resp.status().as_u16()));
        }
        let mut text = String::new();
        resp.take(256).read_to_string(&mut text).map_err(|e| format!("the peer's identity broke off: {e}"))?;
        let id = DeviceId::from_hex(text.trim()).map_err(|_| "the peer's identity is malformed".to_string())?;
        Ok(*self.peer.get_or_init(|| id))
    }

    fn is_hub(&self) -> bool {
        self.hub
    }

    fn post(&self, path: &str, auth_value: &str, body: &[u8]) -> std::result::Result<(u16, Vec<u8>), String> {
        let resp = self
            .client
            .post(format!("{}{path}", self.base))
            .header(auth::HEADER, auth_value)
            .header("content-type", "application/octet-stream")
            .body(body.to_vec())
            .send()
            .map_err(|e| describe(&e.without_url()))?;
        let status = resp.status().as_u16();
        let too_large = || format!("the peer's answer is larger than {MAX_RESPONSE} bytes");
        if resp.content_length().is_some_and(|n| n > MAX_RESPONSE as u64) {
            return Err(too_large());
        }
        let mut bytes = Vec::new();
        resp.take(MAX_RESPONSE as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("the peer's answer broke off: {e}"))?;
        if bytes.len() > MAX_RESPONSE {
            return Err(too_large());
        }
        Ok((status, bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_are_urls_or_hub_links() {
        assert!(HttpTransport::new("https://linli.example.org/").is_ok());
        assert!(HttpTransport::new(&format!("linli-hub://10.0.0.1:8788/#sha256={}", "0f".repeat(32))).is_ok());
        for bad in ["linli-hub://10.0.0.1:8788/#sha256=00", "ftp://x", "10.0.0.1:8788", ""] {
            assert!(matches!(HttpTransport::new(bad), Err(Error::Invalid(_))), "{bad}");
        }
    }
}

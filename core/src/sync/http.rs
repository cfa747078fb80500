//! The HTTP transport: reqwest (blocking) with rustls and the bundled
//! webpki roots — no platform verifier, so it needs no JNI initialisation on
//! Android and behaves the same on every platform.

use std::time::Duration;

use super::Transport;
use super::auth;
use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct HttpTransport {
    base: String,
    client: reqwest::blocking::Client,
}

impl HttpTransport {
    /// `base` is the peer's URL without a trailing slash, e.g.
    /// `https://linli.example.org` or `http://192.168.1.20:8788` for a hub.
    pub fn new(base: &str) -> Result<Self> {
        let client = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| Error::Internal(e.to_string()))?;
        Ok(HttpTransport { base: base.trim_end_matches('/').to_string(), client })
    }
}

impl Transport for HttpTransport {
    fn post(&self, path: &str, auth_value: &str, body: &[u8]) -> std::result::Result<(u16, Vec<u8>), String> {
        let resp = self
            .client
            .post(format!("{}{path}", self.base))
            .header(auth::HEADER, auth_value)
            .header("content-type", "application/octet-stream")
            .body(body.to_vec())
            .send()
            .map_err(|e| e.without_url().to_string())?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().map_err(|e| e.without_url().to_string())?;
        Ok((status, bytes.to_vec()))
    }
}

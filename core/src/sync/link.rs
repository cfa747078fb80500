//! A meeting hub's link: where the hub listens and the SHA-256 fingerprint of
//! the certificate it made at start, so a phone that scans it (a QR code on
//! the coordinator's screen) talks TLS to that hub and to no other.
//!
//! `linli-hub://<host>:<port>/#sha256=<64 hex digits>`, where `<host>` is an
//! IPv4 address, a bracketed IPv6 address or a host name, and the fingerprint
//! is the SHA-256 of the certificate's DER, in lowercase hex (uppercase is
//! accepted when reading). Sans-I/O: parsing and printing only.
//!
//! ```
//! use linli_core::sync::link::HubLink;
//! let link: HubLink = format!("linli-hub://192.168.1.20:8788/#sha256={}", "ab".repeat(32)).parse().unwrap();
//! assert_eq!(link.https_base(), "https://192.168.1.20:8788");
//! assert_eq!(link.fingerprint, [0xab; 32]);
//! ```

use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

use crate::error::Error;

pub const SCHEME: &str = "linli-hub://";
const PIN: &str = "#sha256=";
/// Longer than any link a hub prints; a longer string is refused unread.
const MAX_LEN: usize = 300;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HubLink {
    /// An IPv4 address, a host name, or an IPv6 address without brackets.
    pub host: String,
    pub port: u16,
    /// SHA-256 of the hub certificate's DER.
    pub fingerprint: [u8; 32],
}

fn invalid(why: &str) -> Error {
    Error::Invalid(format!("not a hub link ({why}); a hub link looks like {SCHEME}<host>:<port>/{PIN}<64 hex digits>"))
}

/// Whether `host` may stand in a link: an IP address or a host name.
pub fn valid_host(host: &str) -> bool {
    if host.contains(':') {
        return host.parse::<Ipv6Addr>().is_ok();
    }
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

impl HubLink {
    pub fn new(host: &str, port: u16, fingerprint: [u8; 32]) -> Result<HubLink, Error> {
        let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        if !valid_host(host) {
            return Err(Error::Invalid("a hub's host is an IP address or a host name".into()));
        }
        Ok(HubLink { host: host.to_string(), port, fingerprint })
    }

    /// The `host:port` part, IPv6 in brackets.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The URL a transport connects to.
    pub fn https_base(&self) -> String {
        format!("https://{}", self.authority())
    }
}

impl fmt::Display for HubLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{}/{PIN}{}", self.authority(), hex::encode(self.fingerprint))
    }
}

impl FromStr for HubLink {
    type Err = Error;

    fn from_str(s: &str) -> Result<HubLink, Error> {
        if s.len() > MAX_LEN {
            return Err(invalid("too long"));
        }
        let rest = s.strip_prefix(SCHEME).ok_or_else(|| invalid("it does not start with linli-hub://"))?;
        let (authority, pin) = rest.split_once('#').ok_or_else(|| invalid("no fingerprint"))?;
        let authority = authority.strip_suffix('/').unwrap_or(authority);
        let hex_pin = pin.strip_prefix(&PIN[1..]).ok_or_else(|| invalid("the fingerprint is not sha256=…"))?;
        let fingerprint = hex::decode(hex_pin)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
            .ok_or_else(|| invalid("the fingerprint is not 64 hex digits"))?;
        let (host, port) = authority.rsplit_once(':').ok_or_else(|| invalid("no port"))?;
        let port: u16 = port.parse().ok().filter(|p| *p != 0).ok_or_else(|| invalid("the port is not a number"))?;
        let host = match host.strip_prefix('[') {
            Some(h) => h.strip_suffix(']').filter(|h| h.contains(':')).ok_or_else(|| invalid("bad IPv6 address"))?,
            None if host.contains(':') => return Err(invalid("an IPv6 address goes in brackets")),
            None => host,
        };
        if !valid_host(host) {
            return Err(invalid("bad host"));
        }
        Ok(HubLink { host: host.to_string(), port, fingerprint })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_print_and_parse_back() {
        for host in ["192.168.1.20", "fe80::1", "hub.local"] {
            let link = HubLink::new(host, 8788, [7; 32]).expect("link");
            let text = link.to_string();
            assert!(text.len() < 120, "fits a QR code: {text}");
            assert_eq!(text.parse::<HubLink>().expect("parse"), link);
        }
        let v6 = HubLink::new("[fe80::1]", 1, [0; 32]).expect("bracketed");
        assert_eq!(v6.https_base(), "https://[fe80::1]:1");
        let upper = format!("linli-hub://10.0.0.1:9#sha256={}", "AB".repeat(32));
        assert_eq!(upper.parse::<HubLink>().expect("no slash, uppercase").fingerprint, [0xab; 32]);
    }

    #[test]
    fn malformed_links_are_invalid() {
        let pin = "ab".repeat(32);
        for bad in [
            String::new(),
            "http://10.0.0.1:8788".to_string(),
            format!("linli-hub://10.0.0.1/#sha256={pin}"),
            format!("linli-hub://10.0.0.1:0/#sha256={pin}"),
            format!("linli-hub://10.0.0.1:99999/#sha256={pin}"),
            format!("linli-hub://10.0.0.1:8788/#sha1={pin}"),
            format!("linli-hub://10.0.0.1:8788/#sha256={}", &pin[2..]),
            format!("linli-hub://10.0.0.1:8788/#sha256={}zz", &pin[2..]),
            format!("linli-hub://fe80::1:8788/#sha256={pin}"),
            format!("linli-hub://[10.0.0.1]:8788/#sha256={pin}"),
            format!("linli-hub://a/b:8788/#sha256={pin}"),
            format!("linli-hub://user@host:8788/#sha256={pin}"),
            format!("linli-hub://:8788/#sha256={pin}"),
            format!("linli-hub://{}:8788/#sha256={pin}", "a".repeat(400)),
        ] {
            assert!(matches!(bad.parse::<HubLink>(), Err(Error::Invalid(_))), "{bad}");
        }
        assert!(HubLink::new("bad host", 1, [0; 32]).is_err());
    }
}

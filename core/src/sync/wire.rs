//! Wire format v2 of the sync protocol (documented in `docs/sync-protocol.md`).
//!
//! A compact, length-prefixed binary format. Integers are unsigned LEB128;
//! `bytes` is a length then the bytes; `str` is `bytes` holding UTF-8. Every
//! length is checked against the input that remains *before* anything is
//! allocated, so a hostile length cannot make the decoder allocate more than
//! the message's own size. Decoding never panics (fuzzed by proptest below).

use crate::doc::{DocId, SignedChange};

/// Version 2: change signatures bind the space and the document.
pub const REQUEST_MAGIC: &[u8; 4] = b"LNQ2";
pub const RESPONSE_MAGIC: &[u8; 4] = b"LNR2";

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("not a Linli sync message of a version this peer speaks")]
    BadMagic,
    #[error("the message ends early")]
    Truncated,
    #[error("a length or count is out of range")]
    BadLength,
    #[error("a text field is not UTF-8")]
    BadText,
    #[error("a document id is malformed")]
    BadDocId,
    #[error("trailing bytes after the message")]
    Trailing,
}

/// The changes of one document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocBatch {
    pub doc: DocId,
    pub changes: Vec<SignedChange>,
    /// A whole document (automerge `save()` bytes), sent instead of its
    /// changes on a first sync; empty when the changes travel one by one.
    pub snapshot: Vec<u8>,
    /// With a snapshot: the signature of each actor's latest change in it,
    /// which vouches for all that actor's earlier changes.
    pub signed: Vec<SignedHash>,
}

impl DocBatch {
    pub fn changes(doc: DocId, changes: Vec<SignedChange>) -> Self {
        DocBatch { doc, changes, snapshot: Vec::new(), signed: Vec::new() }
    }
}

/// A change hash and its actor's signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHash {
    pub hash: [u8; 32],
    pub signature: Vec<u8>,
}

/// What the receiving peer made of one document of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocResult {
    pub doc: DocId,
    pub accepted: u64,
    /// Some changes wait for dependencies the peer lacks: send the whole document.
    pub missing: bool,
    pub refused: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The space, as 16 bytes (its id is their hex).
    pub space: [u8; 16],
    /// The peer's epoch that `cursor` belongs to (zeros when none).
    pub epoch: [u8; 16],
    /// Position in the peer's feed up to which this device has everything.
    pub cursor: u64,
    pub batches: Vec<DocBatch>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub epoch: [u8; 16],
    /// The new position in this peer's feed.
    pub cursor: u64,
    /// More of the feed is waiting: ask again.
    pub more: bool,
    pub batches: Vec<DocBatch>,
    pub results: Vec<DocResult>,
}

// ---------------------------------------------------------------------------

#[derive(Debug, Default)]
struct Writer(Vec<u8>);

impl Writer {
    fn uint(&mut self, mut v: u64) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.0.push(b);
                return;
            }
            self.0.push(b | 0x80);
        }
    }
    fn bytes(&mut self, b: &[u8]) {
        self.uint(b.len() as u64);
        self.0.extend_from_slice(b);
    }
    fn batches(&mut self, batches: &[DocBatch]) {
        self.uint(batches.len() as u64);
        for b in batches {
            self.bytes(b.doc.to_string().as_bytes());
            self.uint(b.changes.len() as u64);
            for c in &b.changes {
                self.bytes(&c.bytes);
                self.bytes(&c.signature);
            }
            self.bytes(&b.snapshot);
            self.uint(b.signed.len() as u64);
            for s in &b.signed {
                self.0.extend_from_slice(&s.hash);
                self.bytes(&s.signature);
            }
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if n > self.0.len() {
            return Err(WireError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        <[u8; N]>::try_from(self.take(N)?).map_err(|_| WireError::Truncated)
    }
    fn uint(&mut self) -> Result<u64, WireError> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = *self.take(1)?.first().ok_or(WireError::Truncated)?;
            v |= u64::from(b & 0x7f).checked_shl(shift).ok_or(WireError::BadLength)?;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(WireError::BadLength)
    }
    /// A count of items each at least `min_size` bytes long.
    fn count(&mut self, min_size: usize) -> Result<usize, WireError> {
        let n = usize::try_from(self.uint()?).map_err(|_| WireError::BadLength)?;
        if n.saturating_mul(min_size) > self.0.len() {
            return Err(WireError::BadLength);
        }
        Ok(n)
    }
    fn bytes(&mut self) -> Result<&'a [u8], WireError> {
        let n = usize::try_from(self.uint()?).map_err(|_| WireError::BadLength)?;
        self.take(n)
    }
    fn str(&mut self) -> Result<&'a str, WireError> {
        std::str::from_utf8(self.bytes()?).map_err(|_| WireError::BadText)
    }
    fn flag(&mut self) -> Result<bool, WireError> {
        match self.take(1)? {
            [0] => Ok(false),
            [1] => Ok(true),
            _ => Err(WireError::BadLength),
        }
    }
    fn batches(&mut self) -> Result<Vec<DocBatch>, WireError> {
        let n = self.count(2)?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let doc = self.str()?.parse().map_err(|_| WireError::BadDocId)?;
            let m = self.count(2)?;
            let mut changes = Vec::with_capacity(m);
            for _ in 0..m {
                let bytes = self.bytes()?.to_vec();
                let signature = self.bytes()?.to_vec();
                changes.push(SignedChange { bytes, signature });
            }
            let snapshot = self.bytes()?.to_vec();
            let k = self.count(33)?;
            let mut signed = Vec::with_capacity(k);
            for _ in 0..k {
                let hash = self.array()?;
                let signature = self.bytes()?.to_vec();
                signed.push(SignedHash { hash, signature });
            }
            out.push(DocBatch { doc, changes, snapshot, signed });
        }
        Ok(out)
    }
    fn end(&self) -> Result<(), WireError> {
        if self.0.is_empty() { Ok(()) } else { Err(WireError::Trailing) }
    }
}

impl Request {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.0.extend_from_slice(REQUEST_MAGIC);
        w.0.extend_from_slice(&self.space);
        w.0.extend_from_slice(&self.epoch);
        w.uint(self.cursor);
        w.batches(&self.batches);
        w.0
    }

    pub fn decode(bytes: &[u8]) -> Result<Request, WireError> {
        let mut r = Reader(bytes);
        if r.take(4).map_err(|_| WireError::BadMagic)? != REQUEST_MAGIC {
            return Err(WireError::BadMagic);
        }
        let req = Request { space: r.array()?, epoch: r.array()?, cursor: r.uint()?, batches: r.batches()? };
        r.end()?;
        Ok(req)
    }
}

impl Response {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.0.extend_from_slice(RESPONSE_MAGIC);
        w.0.extend_from_slice(&self.epoch);
        w.uint(self.cursor);
        w.0.push(u8::from(self.more));
        w.batches(&self.batches);
        w.uint(self.results.len() as u64);
        for res in &self.results {
            w.bytes(res.doc.to_string().as_bytes());
            w.uint(res.accepted);
            w.0.push(u8::from(res.missing));
            w.uint(res.refused.len() as u64);
            for reason in &res.refused {
                w.bytes(reason.as_bytes());
            }
        }
        w.0
    }

    pub fn decode(bytes: &[u8]) -> Result<Response, WireError> {
        let mut r = Reader(bytes);
        if r.take(4).map_err(|_| WireError::BadMagic)? != RESPONSE_MAGIC {
            return Err(WireError::BadMagic);
        }
        let epoch = r.array()?;
        let cursor = r.uint()?;
        let more = r.flag()?;
        let batches = r.batches()?;
        let n = r.count(4)?;
        let mut results = Vec::with_capacity(n);
        for _ in 0..n {
            let doc = r.str()?.parse().map_err(|_| WireError::BadDocId)?;
            let accepted = r.uint()?;
            let missing = r.flag()?;
            let m = r.count(1)?;
            let mut refused = Vec::with_capacity(m);
            for _ in 0..m {
                refused.push(r.str()?.to_string());
            }
            results.push(DocResult { doc, accepted, missing, refused });
        }
        r.end()?;
        Ok(Response { epoch, cursor, more, batches, results })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> (Request, Response) {
        let batch = DocBatch::changes(
            DocId::own_private("m1", "2026"),
            vec![
                SignedChange { bytes: vec![1, 2, 3], signature: vec![9; 64] },
                SignedChange { bytes: vec![], signature: vec![] },
            ],
        );
        let snapshot = DocBatch {
            doc: DocId::Space,
            changes: vec![],
            snapshot: vec![4; 40],
            signed: vec![SignedHash { hash: [3; 32], signature: vec![8; 64] }],
        };
        let req = Request { space: [7; 16], epoch: [0; 16], cursor: 300, batches: vec![batch.clone(), snapshot] };
        let resp = Response {
            epoch: [1; 16],
            cursor: u64::MAX,
            more: true,
            batches: vec![batch],
            results: vec![DocResult {
                doc: DocId::Space,
                accepted: 2,
                missing: true,
                refused: vec!["bad signature".into()],
            }],
        };
        (req, resp)
    }

    #[test]
    fn messages_round_trip() {
        let (req, resp) = sample();
        assert_eq!(Request::decode(&req.encode()), Ok(req));
        assert_eq!(Response::decode(&resp.encode()), Ok(resp));
    }

    #[test]
    fn every_truncation_and_the_wrong_kind_are_clear_errors() {
        let (req, resp) = sample();
        let (q, r) = (req.encode(), resp.encode());
        for n in 0..q.len() {
            assert!(Request::decode(&q[..n]).is_err(), "request cut at {n}");
        }
        for n in 0..r.len() {
            assert!(Response::decode(&r[..n]).is_err(), "response cut at {n}");
        }
        assert_eq!(Request::decode(&r), Err(WireError::BadMagic));
        let mut long = q.clone();
        long.push(0);
        assert_eq!(Request::decode(&long), Err(WireError::Trailing));
    }

    #[test]
    fn a_huge_count_does_not_allocate() {
        let mut w = Writer::default();
        w.0.extend_from_slice(REQUEST_MAGIC);
        w.0.extend_from_slice(&[0; 32]);
        w.uint(0);
        w.uint(u64::MAX / 2);
        assert_eq!(Request::decode(&w.0), Err(WireError::BadLength));
    }

    /// Inputs that once broke a decoder, kept as regression cases.
    const REGRESSIONS: &[&[u8]] = &[b"", b"LNQ1", b"LNR1\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"];

    #[test]
    fn regression_inputs_are_refused() {
        for input in REGRESSIONS {
            assert!(Request::decode(input).is_err());
            assert!(Response::decode(input).is_err());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2_000, .. ProptestConfig::default() })]

        #[test]
        fn decoders_never_panic_on_garbage(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = Request::decode(&bytes);
            let _ = Response::decode(&bytes);
        }

        #[test]
        fn decoders_never_panic_on_mutated_messages(pos in any::<prop::sample::Index>(), val in any::<u8>(), cut in any::<prop::sample::Index>()) {
            let (req, resp) = sample();
            for mut m in [req.encode(), resp.encode()] {
                let i = pos.index(m.len());
                m[i] = val;
                let n = cut.index(m.len() + 1);
                let _ = Request::decode(&m[..n]);
                let _ = Response::decode(&m[..n]);
            }
        }
    }
}

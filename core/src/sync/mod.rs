//! The sync protocol: one protocol for phone ↔ server and phone ↔ phone.
//!
//! Sans-I/O: this module builds and answers messages ([`wire`]) against a
//! [`Store`]; moving bytes is a [`Transport`]'s job (HTTP with reqwest in
//! [`http`], the server's axum routes, a phone's [`hub`], or a test harness
//! that drops and mangles messages).
//!
//! **Two feeds.** Every change merged into a store gets a per-space arrival
//! number. A device remembers, per peer and space, how far into the peer's
//! feed it has read (`recv_cursor`, tagged with the peer's `epoch`) and up to
//! which of its own arrival numbers the peer has everything (`sent_cursor`).
//! One round: the device sends its changes after `sent_cursor` (every
//! document, signed) and its `recv_cursor`; the peer merges them, checked,
//! and answers with the changes of its feed after that cursor which the
//! device may read. When both sides are current that is **one round trip**.
//! Cursors only move after a response has been merged, and merging is
//! idempotent, so an interrupted sync resumes without loss or duplication.
//!
//! **Falling back.** A cursor the peer does not recognise (another epoch, or
//! past the end of its feed: a new or restored peer) makes the peer answer
//! from the start of its feed, and makes the device resend everything. A
//! document the peer could not merge for lack of history is sent whole in the
//! next round. A page that hit its byte budget says `more`, and the device
//! asks again.

pub mod auth;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "hub")]
pub mod hub;
pub mod link;
pub mod wire;

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use automerge::ChangeHash;

use crate::doc::DocId;
use crate::error::Error;
use crate::identity::DeviceId;
use crate::store::{PeerState, Store, now_ms};
use wire::{DocBatch, DocResult, Request, Response};

pub const SYNC_PATH: &str = "/v1/sync";
pub const JOIN_PATH: &str = "/v1/join";
/// `GET`: the serving peer's identity (its store's device id, 64 hex), which
/// requests name and sign.
pub const PEER_PATH: &str = "/v1/peer";
/// The largest request body a peer accepts.
pub const MAX_BODY: usize = 32 << 20;
/// About how many bytes of changes go into one message; more waits for the next round.
pub const PAGE_BUDGET: usize = 4 << 20;
/// A first sync sends whole documents while they fit in this many bytes.
pub const SNAPSHOT_BUDGET: usize = 64 << 20;

// ---------------------------------------------------------------------------
// Serving

/// Why a serving peer refused a request. Each maps to an HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("malformed request: {0}")]
    BadRequest(String),
    #[error("not authenticated: {0}")]
    Unauthorized(String),
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("this request was already received")]
    Replay,
    #[error("the request is larger than {MAX_BODY} bytes")]
    TooLarge,
    /// The request ran past its time limit; nothing was written. Try again
    /// later, or with fewer changes.
    #[error("the request took too long; nothing was written")]
    Overdue,
    #[error("internal error")]
    Internal(String),
}

impl ServeError {
    pub fn status(&self) -> u16 {
        match self {
            ServeError::BadRequest(_) => 400,
            ServeError::Unauthorized(_) => 401,
            ServeError::Forbidden(_) => 403,
            ServeError::NotFound(_) => 404,
            ServeError::Replay => 409,
            ServeError::TooLarge => 413,
            ServeError::Overdue => 503,
            ServeError::Internal(_) => 500,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            ServeError::BadRequest(_) => "bad_request",
            ServeError::Unauthorized(_) => "unauthorized",
            ServeError::Forbidden(_) => "forbidden",
            ServeError::NotFound(_) => "not_found",
            ServeError::Replay => "replay",
            ServeError::TooLarge => "too_large",
            ServeError::Overdue => "overdue",
            ServeError::Internal(_) => "internal",
        }
    }

    /// The JSON error body: `{"error": kind, "message": text}`.
    pub fn json(&self) -> String {
        let message = match self {
            ServeError::Internal(_) => "internal error".to_string(),
            other => other.to_string(),
        };
        serde_json::json!({ "error": self.kind(), "message": message }).to_string()
    }
}

impl From<Error> for ServeError {
    fn from(e: Error) -> Self {
        match e {
            Error::Overdue => ServeError::Overdue,
            e => ServeError::Internal(e.to_string()),
        }
    }
}

/// A served request: the response body and what happened, for metrics.
#[derive(Debug, Clone, Default)]
pub struct Served {
    pub body: Vec<u8>,
    pub accepted: u64,
    pub refused: u64,
    pub sent: usize,
}

/// Who may create a space on a serving peer: the operator's decision. A
/// meeting hub creates none; a server admits the keys its operator lists
/// (or, when the operator says so, anyone).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Creators {
    #[default]
    Nobody,
    Anyone,
    Devices(BTreeSet<DeviceId>),
}

impl Creators {
    pub fn admits(&self, device: &DeviceId) -> bool {
        match self {
            Creators::Nobody => false,
            Creators::Anyone => true,
            Creators::Devices(d) => d.contains(device),
        }
    }
}

/// Check a request's signature and clock. Writes nothing: a request refused
/// before its device is known to the space leaves no trace in the store.
fn verify_request(
    store: &Store,
    header: Option<&str>,
    path: &str,
    body: &[u8],
    now: i64,
) -> Result<auth::Authed, ServeError> {
    authenticate(&store.device_id(), header, path, body, now)
}

/// Check a request's signature, clock and addressee (`me`) without a store:
/// a server that keeps each space in a file of its own asks this before it
/// makes a file for a space it does not hold.
pub fn authenticate(
    me: &DeviceId,
    header: Option<&str>,
    path: &str,
    body: &[u8],
    now: i64,
) -> Result<auth::Authed, ServeError> {
    if body.len() > MAX_BODY {
        return Err(ServeError::TooLarge);
    }
    let header = header.ok_or_else(|| ServeError::Unauthorized(auth::AuthError::Malformed.to_string()))?;
    auth::verify(header, path, body, now, me).map_err(|e| ServeError::Unauthorized(e.to_string()))
}

/// The space a body of `POST /v1/sync` or `/v1/join` is for, read from its
/// framing alone (nothing of its batches is decoded), as lowercase hex.
pub fn space_of(body: &[u8]) -> Option<String> {
    if let Ok(space) = <[u8; 16]>::try_from(body) {
        return Some(hex::encode(space));
    }
    match body.get(..4) {
        Some(magic) if magic == wire::REQUEST_MAGIC => body.get(4..20).map(hex::encode),
        _ => None,
    }
}

/// Refuse a replayed request (its nonce was seen). Called once the device is
/// known to be entitled to the request, so strangers cannot fill the table.
fn fresh(store: &Store, authed: &auth::Authed, now: i64) -> Result<(), ServeError> {
    if store.record_nonce(&authed.device, &authed.nonce, now, 2 * auth::WINDOW_MS)? {
        Ok(())
    } else {
        Err(ServeError::Replay)
    }
}

/// Refuse a batch for a document the sender may not read, without looking at
/// the document: each change gets the same reason whatever the document
/// holds, and the refusals go on record under the sender.
fn refuse_unread(store: &Store, space: &str, batch: DocBatch, sender: &DeviceId) -> Result<DocResult, ServeError> {
    let reason = crate::Refusal::NotAWriter(batch.doc.to_string());
    let hashes: Vec<Option<ChangeHash>> =
        batch.changes.iter().map(|c| crate::trust::parse_change(&c.bytes).ok().map(|c| c.hash())).collect();
    store.record_refused(space, &batch.doc, &hashes, &reason, sender)?;
    Ok(DocResult { doc: batch.doc, accepted: 0, missing: false, refused: vec![reason.to_string(); hashes.len()] })
}

fn apply_batch(
    store: &Store,
    space: &str,
    batch: DocBatch,
    sender: &DeviceId,
    skip: &mut HashSet<ChangeHash>,
) -> Result<DocResult, ServeError> {
    let r = store.apply_from(space, &batch.doc, batch.changes, sender)?;
    skip.extend(r.offered.iter().copied());
    Ok(DocResult {
        doc: batch.doc,
        accepted: r.accepted.len() as u64,
        missing: !r.missing_deps.is_empty(),
        refused: r.refused.iter().map(|(_, reason)| reason.to_string()).collect(),
    })
}

/// Answer `POST /v1/sync`: authenticate, merge the device's changes (each
/// checked before it is merged), and return the feed the device may read.
///
/// Bounded work before trust: the signature and clock are checked, the
/// message is split into its batches (no change is parsed), and the device
/// must be a current device of a member of the space — or, for a space this
/// peer does not hold, a creator `creators` admits — before any change is
/// parsed or anything is written.
pub fn serve_sync(
    store: &Store,
    creators: &Creators,
    header: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<Served, ServeError> {
    let authed = verify_request(store, header, SYNC_PATH, body, now)?;
    let req = Request::decode(body).map_err(|e| ServeError::BadRequest(e.to_string()))?;
    let offered: usize = req.batches.iter().map(|b| b.changes.len()).sum();
    if offered > crate::store::MAX_CHANGES {
        return Err(ServeError::BadRequest(format!("more than {} changes in one request", crate::store::MAX_CHANGES)));
    }
    let space = hex::encode(req.space);
    let held = store.holds_space(&space)?;
    if held {
        standing(store, &space, &authed.device, now)?;
    } else if !creators.admits(&authed.device) || !req.batches.iter().any(|b| b.doc == DocId::Space) {
        return Err(ServeError::NotFound("space".into()));
    }
    fresh(store, &authed, now)?;
    let mut skip: HashSet<ChangeHash> = HashSet::new();
    // The register first: the rest is judged against it.
    let (space_batches, others): (Vec<DocBatch>, Vec<DocBatch>) =
        req.batches.into_iter().partition(|b| b.doc == DocId::Space);
    let mut results = Vec::new();
    for b in space_batches {
        results.push(apply_batch(store, &space, b, &authed.device, &mut skip)?);
    }
    // A new space: the creator's genesis must have made it a member.
    let member = standing(store, &space, &authed.device, now)?;
    // What the member may read (the register's reader rule, without holding
    // the register while the feed is read).
    let privileged =
        store.with_view(&space, |v| v.members.get(&member).is_some_and(crate::space::Member::is_privileged))?;
    let readable = |d: &DocId| d.readers().admit(&member, privileged);
    for b in others {
        // Whoever may write a document may read it. Changes into one the
        // member may not read are refused unseen, so the answer says nothing
        // of what that document holds (not even whether their deps are there).
        if readable(&b.doc) {
            results.push(apply_batch(store, &space, b, &authed.device, &mut skip)?);
        } else {
            results.push(refuse_unread(store, &space, b, &authed.device)?);
        }
    }
    let max = store.max_arrived(&space)?;
    let start = if req.epoch == store.epoch() && req.cursor <= max { req.cursor } else { 0 };
    let accepted = results.iter().map(|r| r.accepted).sum();
    let refused = results.iter().map(|r| r.refused.len() as u64).sum();
    // A first sync gets whole documents (far smaller than their changes one
    // by one); everything up to `max` is in them.
    if start == 0
        && let Some((batches, sent)) = snapshots(store, &space, &readable)?
    {
        let resp = Response { epoch: store.epoch(), cursor: max, more: false, batches, results };
        return Ok(Served { body: resp.encode(), accepted, refused, sent });
    }
    let feed = store.feed(&space, start, PAGE_BUDGET, &readable, &skip, (!privileged).then_some(member.as_str()))?;
    let resp = Response { epoch: store.epoch(), cursor: feed.cursor, more: feed.more, batches: feed.batches, results };
    Ok(Served { body: resp.encode(), accepted, refused, sent: feed.changes })
}

/// The member behind a request's device, if it is a current device of a
/// member of the space; else `Forbidden`.
fn standing(store: &Store, space: &str, device: &DeviceId, now: i64) -> Result<String, ServeError> {
    store.with_view(space, |v| match v.member_of(device) {
        // A phone that redeemed an invite another phone redeemed first.
        None if v.invites.values().any(|i| i.claims.contains(device)) => {
            Err(ServeError::Forbidden("this invite was already used".into()))
        }
        None => Err(ServeError::Forbidden("not a device of a member of this space".into())),
        Some((id, _)) => {
            v.author(device, now).map(|_| id.to_string()).map_err(|e| ServeError::Forbidden(e.to_string()))
        }
    })?
}

/// Every readable document as a snapshot, or `None` when they would not fit
/// in [`SNAPSHOT_BUDGET`] (the feed then pages through the changes instead).
fn snapshots(
    store: &Store,
    space: &str,
    readable: &dyn Fn(&DocId) -> bool,
) -> Result<Option<(Vec<DocBatch>, usize)>, ServeError> {
    let mut batches = Vec::new();
    let mut bytes = 0;
    for doc in store.doc_ids(space)? {
        if !readable(&doc) {
            continue;
        }
        let b = store.snapshot_batch(space, &doc)?;
        bytes += b.snapshot.len();
        if bytes > SNAPSHOT_BUDGET {
            return Ok(None);
        }
        batches.push(b);
    }
    // The register first, so the receiver judges the rest against it.
    batches.sort_by_key(|b| b.doc != DocId::Space);
    let n = batches.len();
    Ok(Some((batches, n)))
}

/// Answer `POST /v1/join`, signed by an open invite's key. With a body of
/// the space's 16 bytes, the bearer receives the register, so it can sign its
/// redemption; with a request (wire format) holding that one redemption, the
/// peer merges it — checked like any change — and the phone then syncs as a
/// member. Nothing is read or written for a key that is not an open invite.
pub fn serve_join(store: &Store, header: Option<&str>, body: &[u8], now: i64) -> Result<Served, ServeError> {
    let authed = verify_request(store, header, JOIN_PATH, body, now)?;
    let (space_bytes, redemption) = match <[u8; 16]>::try_from(body) {
        Ok(s) => (s, None),
        Err(_) => {
            let req = Request::decode(body).map_err(|e| ServeError::BadRequest(e.to_string()))?;
            match req.batches.as_slice() {
                [b] if b.doc == DocId::Space && b.changes.len() == 1 && b.snapshot.is_empty() => {}
                _ => return Err(ServeError::BadRequest("a redemption is one change to the register".into())),
            }
            (req.space, req.batches.into_iter().next())
        }
    };
    let space = hex::encode(space_bytes);
    if !store.holds_space(&space)? {
        return Err(ServeError::Forbidden("unknown, used or expired invite".into()));
    }
    let (open, used) = store.with_view(&space, |v| {
        let mine = || v.invites.values().filter(|i| i.key == authed.device);
        (mine().any(|i| i.redeemed_by.is_none() && now <= i.expires_at), mine().any(|i| i.redeemed_by.is_some()))
    })?;
    if !open {
        let why = if used { "this invite was already used" } else { "unknown, used or expired invite" };
        return Err(ServeError::Forbidden(why.into()));
    }
    fresh(store, &authed, now)?;
    let Some(batch) = redemption else {
        let changes = store.changes_since(&space, &DocId::Space, &[])?;
        let sent = changes.len();
        let resp = Response {
            epoch: [0; 16],
            cursor: 0,
            more: false,
            batches: vec![DocBatch::changes(DocId::Space, changes)],
            results: vec![],
        };
        return Ok(Served { body: resp.encode(), accepted: 0, refused: 0, sent });
    };
    // The request is signed by the invite key; the change is the new
    // phone's own, judged by the register's rule for redemptions.
    let r = store.apply_from(&space, &DocId::Space, batch.changes, &authed.device)?;
    if let Some((_, reason)) = r.refused.first() {
        return Err(ServeError::Forbidden(reason.to_string()));
    }
    let result = DocResult { doc: DocId::Space, accepted: r.accepted.len() as u64, missing: false, refused: vec![] };
    let resp = Response { epoch: [0; 16], cursor: 0, more: false, batches: vec![], results: vec![result] };
    Ok(Served { body: resp.encode(), accepted: r.accepted.len() as u64, refused: 0, sent: 0 })
}

// ---------------------------------------------------------------------------
// Syncing

/// Moves one request to a peer and brings back its status and body.
pub trait Transport {
    fn post(&self, path: &str, auth: &str, body: &[u8]) -> Result<(u16, Vec<u8>), String>;
    /// The peer's identity (its store's device id), which requests are signed
    /// for; a transport asks the peer once (`GET /v1/peer`).
    fn peer(&self) -> Result<DeviceId, String>;
    /// Whether the peer is a meeting hub (a coordinator's phone) rather than
    /// the server: a phone then checks the hub is a coordinator's device.
    fn is_hub(&self) -> bool {
        false
    }
}

#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Rounds before giving up (paging and fall-backs take extra rounds).
    pub max_rounds: u32,
    /// Retries of one round after a transport failure or a garbled answer.
    pub retries: u32,
    /// The first retry's delay; it doubles each time, up to 5 s.
    pub backoff: Duration,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions { max_rounds: 64, retries: 5, backoff: Duration::from_millis(200) }
    }
}

/// How a sync is going, reported after each round.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    pub round: u32,
    /// Changes sent and received so far.
    pub sent: usize,
    pub received: usize,
    pub done: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub rounds: u32,
    /// Transport attempts, retries included.
    pub attempts: u32,
    pub sent: usize,
    pub received: usize,
    pub bytes_up: usize,
    pub bytes_down: usize,
    /// Changes this device refused from the peer, and the peer from this device.
    pub refused_here: Vec<String>,
    pub refused_there: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("the peer could not be reached: {0}")]
    Unreachable(String),
    #[error("the peer refused the request ({status}): {message}")]
    Rejected { status: u16, message: String },
    #[error("the peer's answer was malformed")]
    BadResponse,
    #[error("sync did not settle in {0} rounds")]
    TooManyRounds(u32),
    #[error("the meeting hub is not a coordinator's phone in this space")]
    NotACoordinator,
    #[error(transparent)]
    Core(#[from] Error),
}

fn space_bytes(space: &str) -> Result<[u8; 16], SyncError> {
    hex::decode(space)
        .ok()
        .and_then(|b| <[u8; 16]>::try_from(b.as_slice()).ok())
        .ok_or_else(|| SyncError::Core(Error::UnknownSpace(space.into())))
}

/// One signed exchange, retried with backoff on transport failures, 5xx and
/// garbled answers; a 4xx is final.
fn exchange(
    sign: &dyn Fn(&str, &[u8]) -> crate::Result<String>,
    transport: &dyn Transport,
    path: &str,
    body: &[u8],
    opts: &SyncOptions,
    report: &mut SyncReport,
) -> Result<Response, SyncError> {
    let mut delay = opts.backoff;
    let mut last = SyncError::Unreachable("no attempt".into());
    for attempt in 0..=opts.retries {
        if attempt > 0 {
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_secs(5));
        }
        report.attempts += 1;
        let header = sign(path, body)?;
        match transport.post(path, &header, body) {
            Ok((200, bytes)) => match Response::decode(&bytes) {
                Ok(r) => {
                    report.bytes_up += body.len() + header.len();
                    report.bytes_down += bytes.len();
                    return Ok(r);
                }
                Err(_) => last = SyncError::BadResponse,
            },
            Ok((status, bytes)) if (400..500).contains(&status) && status != 408 && status != 429 => {
                let message = serde_json::from_slice::<serde_json::Value>(&bytes)
                    .ok()
                    .and_then(|v| v["message"].as_str().map(str::to_string))
                    .unwrap_or_default();
                return Err(SyncError::Rejected { status, message });
            }
            Ok((status, _)) => last = SyncError::Unreachable(format!("status {status}")),
            Err(e) => last = SyncError::Unreachable(e),
        }
    }
    Err(last)
}

/// Merge a peer's batches, the register first; returns the arrival numbers
/// given here and whether some change lacked its history.
fn merge_batches(
    store: &Store,
    space: &str,
    mut batches: Vec<DocBatch>,
    report: &mut SyncReport,
) -> Result<(BTreeSet<u64>, bool), SyncError> {
    batches.sort_by_key(|b| b.doc != DocId::Space);
    let mut arrived = BTreeSet::new();
    let mut missing = false;
    for b in batches {
        let mut r = if b.snapshot.is_empty() {
            crate::store::ApplyReport::default()
        } else {
            store.apply_snapshot(space, &b.doc, &b.snapshot, &b.signed)?
        };
        if !b.changes.is_empty() {
            let more = store.apply(space, &b.doc, b.changes)?;
            r.accepted.extend(more.accepted);
            r.refused.extend(more.refused);
            r.missing_deps.extend(more.missing_deps);
            r.arrived.extend(more.arrived);
        }
        report.received += r.accepted.len();
        report.refused_here.extend(r.refused.iter().map(|(_, reason)| format!("{}: {reason}", b.doc)));
        missing |= !r.missing_deps.is_empty();
        arrived.extend(r.arrived);
    }
    Ok((arrived, missing))
}

/// Sync one space with one peer until both sides are current.
pub fn sync(
    store: &Store,
    space: &str,
    peer: &str,
    transport: &dyn Transport,
    opts: &SyncOptions,
    progress: &mut dyn FnMut(&Progress),
) -> Result<SyncReport, SyncError> {
    let space_id = space_bytes(space)?;
    let to = transport.peer().map_err(SyncError::Unreachable)?;
    if transport.is_hub() {
        // A phone hands its changes only to a coordinator's phone.
        let coordinator = store.with_view(space, |v| v.is_coordinator_device(&to))?;
        if !coordinator {
            return Err(SyncError::NotACoordinator);
        }
    }
    let sign = |path: &str, body: &[u8]| {
        auth::header(&store.device_id(), &to, path, now_ms(), body, |m| store.sign_tagged(auth::TAG, m))
    };
    let mut report = SyncReport::default();
    let mut whole: Vec<DocId> = Vec::new();
    for round in 1..=opts.max_rounds {
        let state = store.peer_state(peer, space)?;
        let mut feed = store.feed(space, state.sent_cursor, PAGE_BUDGET, &|_| true, &HashSet::new(), None)?;
        for doc in whole.drain(..) {
            let changes = store.changes_since(space, &doc, &[])?;
            feed.batches.retain(|b| b.doc != doc);
            feed.changes += changes.len();
            feed.batches.push(DocBatch::changes(doc, changes));
        }
        feed.batches.sort_by_key(|b| b.doc != DocId::Space);
        let sent_now = feed.changes;
        let req = Request { space: space_id, epoch: state.epoch, cursor: state.recv_cursor, batches: feed.batches };
        let resp = match exchange(&sign, transport, SYNC_PATH, &req.encode(), opts, &mut report) {
            Ok(r) => r,
            // The peer does not hold the space although the cursors say it
            // should (a replaced server): start over, sending everything.
            Err(SyncError::Rejected { status: 404, .. }) if state != PeerState::default() => {
                store.set_peer_state(peer, space, &PeerState::default())?;
                continue;
            }
            Err(e) => return Err(e),
        };
        report.sent += sent_now;
        let (arrived, lacking) = merge_batches(store, space, resp.batches, &mut report)?;
        for res in &resp.results {
            if res.missing {
                whole.push(res.doc.clone());
            }
            report.refused_there.extend(res.refused.iter().map(|r| format!("{}: {r}", res.doc)));
        }
        // The peer now holds everything this device sent, and what it sent back.
        let mut sent = feed.cursor;
        while arrived.contains(&(sent + 1)) {
            sent += 1;
        }
        // A new peer, or one that lost part of its feed: start over both ways.
        let peer_reset = state.epoch != [0; 16] && (resp.epoch != state.epoch || resp.cursor < state.recv_cursor);
        let next = PeerState {
            epoch: resp.epoch,
            recv_cursor: if lacking { 0 } else { resp.cursor },
            sent_cursor: if peer_reset { 0 } else { sent },
        };
        store.set_peer_state(peer, space, &next)?;
        let done = !resp.more && !feed.more && whole.is_empty() && !lacking && !peer_reset;
        progress(&Progress { round, sent: report.sent, received: report.received, done });
        if done {
            report.rounds = round;
            return Ok(report);
        }
    }
    Err(SyncError::TooManyRounds(opts.max_rounds))
}

/// Join a space through a peer with an invite code: fetch the register with
/// the invite key, sign the redemption here, and sync it back.
pub fn join(
    store: &Store,
    code: &str,
    my_name: &str,
    peer: &str,
    transport: &dyn Transport,
    opts: &SyncOptions,
) -> Result<(String, String), SyncError> {
    let (space, key) = crate::store::parse_invite(code)?;
    let body = space_bytes(&space)?.to_vec();
    let to = transport.peer().map_err(SyncError::Unreachable)?;
    let sign = |path: &str, body: &[u8]| auth::header_with_key(&key, &to, path, now_ms(), body);
    let mut report = SyncReport::default();
    let resp = exchange(&sign, transport, JOIN_PATH, &body, opts, &mut report)?;
    let changes = resp.batches.into_iter().filter(|b| b.doc == DocId::Space).flat_map(|b| b.changes).collect();
    let joined = store.join(code, my_name, changes)?;
    if transport.is_hub() && !store.with_view(&space, |v| v.is_coordinator_device(&to))? {
        return Err(SyncError::NotACoordinator);
    }
    // Hand the redemption (this phone's first change) to the peer, in a
    // request signed by the invite key; only then is it a member there.
    let me = store.device_id();
    let redemption: Vec<_> = store
        .changes_since(&space, &DocId::Space, &[])?
        .into_iter()
        .filter(|c| crate::trust::parse_change(&c.bytes).is_ok_and(|c| DeviceId::from_actor(c.actor_id()) == Some(me)))
        .collect();
    let req = Request {
        space: space_bytes(&space)?,
        epoch: [0; 16],
        cursor: 0,
        batches: vec![DocBatch::changes(DocId::Space, redemption)],
    };
    exchange(&sign, transport, JOIN_PATH, &req.encode(), opts, &mut report)?;
    sync(store, &space, peer, transport, opts, &mut |_| {})?;
    Ok(joined)
}

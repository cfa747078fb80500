//! The SQLite store: the source of truth on a device (and on the server).
//!
//! * One SQLite file in WAL mode. Each automerge document is a snapshot plus
//!   the chunks of changes appended since; every write appends one chunk and
//!   the query tables derived from it **in the same transaction**, so a crash
//!   loses nothing that was acknowledged and never leaves the two out of step.
//!   After [`COMPACT_AFTER`] chunks the document is saved whole and its chunks
//!   are dropped, again in one transaction.
//! * Every change, local or remote, goes through one path, [`Store::apply`]'s
//!   core: signature, writer and rights checks ([`crate::trust`]) and the
//!   equivocation check happen before the change is merged; a refused change
//!   is recorded in `refusals` and changes nothing else.
//! * The store is `Send + Sync`: one mutex guards the connection and the
//!   in-memory cache of loaded documents and registers; list views and
//!   modules' reads use a second, read-only connection, so they read the last
//!   committed state while a write is in progress. Calls block; apps call
//!   them off their UI thread.
//! * Listeners get an [`Event`] after each committed write.

mod project;
pub mod schema;

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use automerge::transaction::{CommitOptions, Transactable, Transaction};
use automerge::{Automerge, Change, ChangeHash, ObjType, ROOT, ReadDoc};
use rusqlite::{Connection, OptionalExtension, params};

use crate::doc::{DocId, SignedChange};
use crate::error::{Error, Refusal, Result};
use crate::identity::{DeviceId, DeviceKey, base32, random_bytes};
use crate::space::{self, Role, SpaceEdit, SpaceView, Touched, Write};
use crate::trust::{self, contained};

/// At most this many changes from one not-yet-known device are held per space.
pub const HELD_PER_DEVICE: i64 = 1_000;

/// How far ahead of this replica's clock a change may be dated and be
/// merged now. One dated later, and every change built on it, waits (in
/// `waiting`) until the clock comes within this of it: a time a device puts
/// ahead of everyone's clock moves no close, deadline or "latest wins"
/// before its time, and a phone whose clock runs fast loses nothing.
pub const MAX_AHEAD_MS: i64 = 3_600_000;

/// The most changes one batch (and one sync request) may carry.
pub const MAX_CHANGES: usize = 50_000;

/// A batch's refusals recorded one by one in the audit trail; the rest are
/// counted in one row.
pub const REFUSALS_RECORDED: usize = 64;

/// Past this many refusal rows for one sending device within a minute,
/// its refusals are only reported to it, not recorded: one member's flood
/// cannot thin out another's audit trail, and each sender leaves at most
/// this many rows (plus one batch's) a minute.
pub const REFUSALS_PER_DEVICE_MINUTE: i64 = 200;

/// Fold a document's chunks into a snapshot after this many.
pub const COMPACT_AFTER: i64 = 64;

/// How long an invite stays redeemable unless the caller says otherwise.
pub const DEFAULT_INVITE_TTL_MS: i64 = 7 * 24 * 3600 * 1000;

const INVITE_CODE_VERSION: u8 = 1;

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A fresh random id (16 hex chars), for members, units, items, invites.
pub fn new_id() -> Result<String> {
    Ok(hex::encode(random_bytes::<8>()?))
}

/// What changed, for the UI. Sent after the write is committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub space: String,
    pub doc: DocId,
    /// The item the document belongs to, when it belongs to one.
    pub item: Option<String>,
}

/// The outcome of merging a batch of changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    pub accepted: Vec<ChangeHash>,
    pub duplicates: usize,
    pub refused: Vec<(Option<ChangeHash>, Refusal)>,
    /// Changes held back because a dependency has not arrived; offer them again later.
    pub missing_deps: Vec<ChangeHash>,
    /// The arrival numbers given to the accepted changes (see [`Store::feed`]).
    pub arrived: Vec<u64>,
    /// Changes from a device the register does not know yet: kept, and merged
    /// when the register admits the device.
    pub held: Vec<ChangeHash>,
    /// Other documents that changed because held changes could now be merged.
    pub also_changed: Vec<DocId>,
    /// The hashes of every change of the batch that parsed, whatever became
    /// of it (a serving peer does not send them back).
    pub offered: Vec<ChangeHash>,
}

/// A page of a store's feed: changes in arrival order, grouped by document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Feed {
    pub batches: Vec<crate::sync::wire::DocBatch>,
    /// Everything up to this arrival number has been considered.
    pub cursor: u64,
    /// The page stopped at its byte budget; more follows `cursor`.
    pub more: bool,
    pub changes: usize,
}

/// What this store knows of a peer, per space.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerState {
    pub epoch: [u8; 16],
    pub recv_cursor: u64,
    pub sent_cursor: u64,
}

/// An invite: the code to show as a QR, and the pending member it admits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    pub code: String,
    pub invite_id: String,
    pub member_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpaceRow {
    pub space_id: String,
    pub name: String,
    pub member_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRow {
    pub member_id: String,
    pub name: String,
    pub status: String,
    pub roles: Vec<Role>,
    /// Devices not revoked (0: a member without a phone).
    pub phones: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitRow {
    pub unit_id: String,
    pub building: String,
    pub entrance: String,
    pub room: String,
    pub area_centi: i64,
    pub grid_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemRow {
    pub item_id: String,
    pub kind: String,
    pub title: String,
    pub created_by: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusalRow {
    pub doc: String,
    pub hash: Option<ChangeHash>,
    pub reason: String,
}

type DocKey = (String, String);

/// (doc id, actor, hash, signature, arrival number) of a `changes` row.
type FeedRow = (String, Vec<u8>, Vec<u8>, Vec<u8>, i64);

struct Inner {
    conn: Connection,
    key: DeviceKey,
    docs: DocCache,
    views: HashMap<String, SpaceView>,
    /// Some stored signatures are version 1 (from before the upgrade), so
    /// a duplicate offered with a version-2 signature is worth keeping.
    legacy_signatures: bool,
    /// The device whose request is being merged ([`Store::apply_from`]):
    /// refusals are recorded, and capped, under it.
    sender: Option<DeviceId>,
    /// Changes that waited for the clock are being merged: they are not
    /// skipped as waiting already.
    releasing: bool,
}

pub struct Store {
    inner: Mutex<Inner>,
    /// A second, read-only connection for query tables (list views, module
    /// reads): in WAL mode it reads the last committed state while a write —
    /// a sync's merge, say — holds `inner`, so list views never wait for it.
    reader: Mutex<Connection>,
    listeners: Mutex<Vec<Sender<Event>>>,
    device: DeviceId,
    epoch: [u8; 16],
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({:?})", self.device)
    }
}

thread_local! {
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Run `f` with a time limit on the merges it makes on this thread: a merge
/// still judging changes past `limit` stops before it writes anything and
/// fails with [`Error::Overdue`]. A serving peer gives each request one, so a
/// request that is slow to merge cannot hold a space's store for long.
pub fn within<T>(limit: Duration, f: impl FnOnce() -> T) -> T {
    struct Restore(Option<Instant>);
    impl Drop for Restore {
        fn drop(&mut self) {
            DEADLINE.with(|d| d.set(self.0));
        }
    }
    let _restore = Restore(DEADLINE.with(|d| d.replace(Instant::now().checked_add(limit))));
    f()
}

fn overdue() -> bool {
    DEADLINE.with(|d| d.get()).is_some_and(|t| Instant::now() > t)
}

/// Keep at most this many documents loaded; the least recently used goes first.
const DOC_CACHE_LIMIT: usize = 512;

/// Loaded documents, evicting the least recently used.
#[derive(Default)]
struct DocCache {
    docs: HashMap<DocKey, (Automerge, u64)>,
    tick: u64,
}

impl DocCache {
    fn get(&self, key: &DocKey) -> Option<&Automerge> {
        self.docs.get(key).map(|(d, _)| d)
    }

    fn get_mut(&mut self, key: &DocKey) -> Option<&mut Automerge> {
        self.tick += 1;
        let tick = self.tick;
        self.docs.get_mut(key).map(|(d, used)| {
            *used = tick;
            d
        })
    }

    fn insert(&mut self, key: DocKey, doc: Automerge) {
        if self.docs.len() >= DOC_CACHE_LIMIT
            && let Some(oldest) = self.docs.iter().min_by_key(|(_, (_, used))| *used).map(|(k, _)| k.clone())
        {
            self.docs.remove(&oldest);
        }
        self.tick += 1;
        self.docs.insert(key, (doc, self.tick));
    }

    fn remove(&mut self, key: &DocKey) {
        self.docs.remove(key);
    }
}

impl Store {
    /// Open (or create) a store in the SQLite file at `path`. The device key is
    /// made on first open and never leaves the file.
    pub fn open(path: impl AsRef<Path>) -> Result<Store> {
        Store::open_with(path.as_ref(), None)
    }

    /// Open (or create) another store file that speaks as this one: a
    /// server keeps each space in a file of its own, all under one identity.
    /// A file made by another device is refused.
    pub fn open_sibling(&self, path: impl AsRef<Path>) -> Result<Store> {
        let key = DeviceKey::from_seed(self.lock()?.key.seed());
        Store::open_with(path.as_ref(), Some(&key))
    }

    fn open_with(path: &Path, identity: Option<&DeviceKey>) -> Result<Store> {
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // Every module's statements stay prepared (the default keeps 16,
        // fewer than one screen of the ledger uses).
        conn.set_prepared_statement_cache_capacity(256);
        schema::migrate(&mut conn)?;
        let seed: Option<Vec<u8>> =
            conn.query_row("SELECT value FROM meta WHERE key = 'device_seed'", [], |r| r.get(0)).optional()?;
        let key = match seed {
            Some(s) => DeviceKey::from_seed(
                <[u8; 32]>::try_from(s.as_slice()).map_err(|_| Error::Internal("device key is damaged".into()))?,
            ),
            None => {
                let k = match identity {
                    Some(k) => DeviceKey::from_seed(k.seed()),
                    None => DeviceKey::generate()?,
                };
                conn.execute("INSERT INTO meta (key, value) VALUES ('device_seed', ?1)", [k.seed().to_vec()])?;
                k
            }
        };
        let epoch: Option<Vec<u8>> =
            conn.query_row("SELECT value FROM meta WHERE key = 'epoch'", [], |r| r.get(0)).optional()?;
        let epoch = match epoch.and_then(|e| <[u8; 16]>::try_from(e.as_slice()).ok()) {
            Some(e) => e,
            None => {
                let e = random_bytes::<16>()?;
                conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('epoch', ?1)", [e.to_vec()])?;
                e
            }
        };
        let device = key.id();
        if identity.is_some_and(|k| k.id() != device) {
            return Err(Error::Internal("this file belongs to another device".into()));
        }
        let legacy_signatures = resign_own(&mut conn, &key)?;
        let reader = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        reader.busy_timeout(std::time::Duration::from_secs(5))?;
        reader.set_prepared_statement_cache_capacity(256);
        Ok(Store {
            inner: Mutex::new(Inner {
                conn,
                key,
                docs: DocCache::default(),
                views: HashMap::new(),
                legacy_signatures,
                releasing: false,
                sender: None,
            }),
            reader: Mutex::new(reader),
            listeners: Mutex::new(Vec::new()),
            device,
            epoch,
        })
    }

    pub fn device_id(&self) -> DeviceId {
        self.device
    }

    /// Commit every write to the disk before returning (`synchronous=FULL`):
    /// for a peer that acknowledges other devices' changes (the server, a
    /// meeting hub), so a power loss cannot drop an acknowledged change nor
    /// make the feed reuse arrival numbers. A phone's own writes are safe
    /// against a killed app without it (WAL, `synchronous=NORMAL`).
    pub fn set_durable(&self) -> Result<()> {
        let inner = self.lock()?;
        inner.conn.pragma_update(None, "synchronous", "FULL")?;
        Ok(())
    }

    /// The store's state. A panic while it was held (a bug: inputs are
    /// checked before they reach automerge) leaves no lasting harm: the
    /// caches are dropped, documents reload from disk, where every write is a
    /// whole SQLite transaction.
    fn lock(&self) -> Result<MutexGuard<'_, Inner>> {
        match self.inner.lock() {
            Ok(g) => Ok(g),
            Err(poisoned) => {
                let mut g = poisoned.into_inner();
                g.docs = DocCache::default();
                g.views.clear();
                self.inner.clear_poison();
                Ok(g)
            }
        }
    }

    /// Receive an [`Event`] after every committed change.
    pub fn subscribe(&self) -> Receiver<Event> {
        let (tx, rx) = channel();
        if let Ok(mut l) = self.listeners.lock() {
            l.push(tx);
        }
        rx
    }

    fn notify(&self, space: &str, doc: &DocId) {
        let item = match doc {
            DocId::Item { item } | DocId::Results { item } => Some(item.clone()),
            _ => None,
        };
        let ev = Event { space: space.into(), doc: doc.clone(), item };
        if let Ok(mut l) = self.listeners.lock() {
            l.retain(|tx| tx.send(ev.clone()).is_ok());
        }
    }

    // -----------------------------------------------------------------------
    // Spaces and the register

    /// Create a space; this device's member is its first admin (and coordinator).
    pub fn create_space(&self, name: &str, my_name: &str) -> Result<String> {
        if name.trim().is_empty() {
            return Err(Error::Invalid("space name is empty".into()));
        }
        let member = new_id()?;
        let mut inner = self.lock()?;
        let now = now_ms();
        let mut doc = Automerge::new().with_actor(inner.key.actor());
        let mut tx = doc.transaction();
        space::write_genesis(&mut tx, name, &member, my_name, &self.device, now)?;
        tx.commit_with(CommitOptions::default().with_time(now_ms().max(now)));
        let change = doc.get_last_local_change().ok_or_else(|| Error::Internal("genesis produced no change".into()))?;
        let space_id = trust::space_id_of(&change.hash());
        let sig = inner.key.sign_change(&space_id, &DocId::Space, &change.hash());
        inner.conn.execute(
            "INSERT INTO spaces (space_id, name, member_id) VALUES (?1, ?2, ?3)",
            params![space_id, name, member],
        )?;
        let report =
            merge_guarded(&mut inner, &space_id, &DocId::Space, vec![(change, sig.to_vec())], Vec::new(), false)?;
        refused_as_error(&DocId::Space, &report)?;
        drop(inner);
        self.notify(&space_id, &DocId::Space);
        Ok(space_id)
    }

    /// Whether this store holds a space's register (a member's phone, a hub
    /// or the server that received it). Reads one row; loads nothing.
    pub fn holds_space(&self, space: &str) -> Result<bool> {
        let inner = self.lock()?;
        Ok(inner.conn.prepare_cached("SELECT 1 FROM spaces WHERE space_id = ?1")?.exists([space])?)
    }

    pub fn spaces(&self) -> Result<Vec<SpaceRow>> {
        let inner = self.lock()?;
        let mut stmt = inner.conn.prepare("SELECT space_id, name, member_id FROM spaces ORDER BY name")?;
        let rows =
            stmt.query_map([], |r| Ok(SpaceRow { space_id: r.get(0)?, name: r.get(1)?, member_id: r.get(2)? }))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// This device's member id in a space: the member who created or joined
    /// it here, else the member the register lists this device under (a
    /// member's second phone or tablet, added with `AddDevice`).
    pub fn my_member(&self, space: &str) -> Result<String> {
        let mut inner = self.lock()?;
        match my_member(&inner.conn, space) {
            Err(Error::UnknownSpace(_)) => {
                let v = view(&mut inner, space).map_err(|_| Error::UnknownSpace(space.into()))?;
                v.member_of(&self.device).map(|(id, _)| id.to_string()).ok_or_else(|| Error::UnknownSpace(space.into()))
            }
            other => other,
        }
    }

    /// This device's member, when they are a coordinator or an admin; else
    /// `NotAllowed` saying that only coordinators `what` ("run votes"…).
    pub fn my_coordinator(&self, space: &str, what: &str) -> Result<String> {
        let me = self.my_member(space)?;
        if self.with_view(space, |v| v.members.get(&me).is_some_and(space::Member::is_privileged))? {
            Ok(me)
        } else {
            Err(Error::NotAllowed(format!("only coordinators {what}")))
        }
    }

    /// Close an item: `closed: { at, by }` in `item/<item>`, dated after
    /// `latest` (the latest entry this device holds for the item), so an
    /// entry made or received here before the close counts, even within
    /// the same millisecond. Entries dated from then on are set aside.
    pub fn close_item(&self, space: &str, item: &str, by: &str, latest: i64) -> Result<()> {
        let at = now_ms().max(latest.saturating_add(1));
        // The change is dated no earlier than the close it carries, which
        // counts only if its change attests it (`space::attested_i64`).
        self.write_dated(space, &DocId::Item { item: item.to_string() }, at, |tx| {
            let c = tx.put_object(ROOT, "closed", ObjType::Map)?;
            tx.put(&c, "at", at)?;
            tx.put(&c, "by", by)?;
            Ok(())
        })?;
        Ok(())
    }

    /// Look at the register without copying it.
    pub fn with_view<T>(&self, space: &str, f: impl FnOnce(&SpaceView) -> T) -> Result<T> {
        let mut inner = self.lock()?;
        Ok(f(view(&mut inner, space)?))
    }

    /// The register of a space, as merged here (a copy).
    pub fn view(&self, space: &str) -> Result<SpaceView> {
        let mut inner = self.lock()?;
        Ok(view(&mut inner, space)?.clone())
    }

    /// Edit the register. All edits land in one signed change; rights are
    /// checked exactly as a peer would check them.
    ///
    /// A revocation of a device, a removal of a member or a demotion from
    /// coordinator or admin records, in the same change, what this store has
    /// merged of each device it cuts off ([`space::Cut`]): those changes
    /// keep counting everywhere; anything else the device sends, whenever it
    /// claims to have made it, does not.
    pub fn edit_space(&self, space: &str, edits: &[SpaceEdit]) -> Result<Option<ChangeHash>> {
        let cuts = self.cuts_for(space, edits)?;
        self.local_space_write(space, |tx, pre, _me, now| {
            // Each edit sees the register as the earlier edits of the batch left it.
            let mut seen = pre.clone();
            for e in edits {
                space::apply_edit(tx, &seen, e, now)?;
                seen.refresh(tx, &e.touched())?;
            }
            for (member, device, cut) in &cuts {
                space::write_cut(tx, member, device, cut)?;
            }
            Ok(())
        })
    }

    /// The cuts `edits` draw: for each device they revoke, remove or demote,
    /// the last sequence number of its changes merged here, per document,
    /// and the rank it had (kept from an earlier cut, which already bounds
    /// what counts beyond it).
    fn cuts_for(&self, space: &str, edits: &[SpaceEdit]) -> Result<Vec<(String, DeviceId, space::Cut)>> {
        let revokes = |e: &SpaceEdit| {
            matches!(
                e,
                SpaceEdit::RevokeDevice { .. }
                    | SpaceEdit::RemoveMember { .. }
                    | SpaceEdit::SetRole { role: Role::Coordinator | Role::Admin, granted: false, .. }
            )
        };
        if !edits.iter().any(revokes) {
            return Ok(Vec::new());
        }
        let pre = self.view(space)?;
        let mut targets: BTreeMap<DeviceId, String> = BTreeMap::new();
        for e in edits {
            let (member, only) = match e {
                SpaceEdit::RevokeDevice { member, device } => (member, Some(*device)),
                SpaceEdit::RemoveMember { member } => (member, None),
                SpaceEdit::SetRole { member, role: Role::Coordinator | Role::Admin, granted: false } => (member, None),
                _ => continue,
            };
            let Some(m) = pre.members.get(member) else { continue };
            for d in m.devices.keys().filter(|d| only.is_none_or(|o| o == **d)) {
                targets.insert(*d, member.clone());
            }
        }
        let inner = self.lock()?;
        let mut stmt = inner.conn.prepare_cached(
            // SQLite takes `hash` from the row holding the max.
            "SELECT doc_id, max(seq), hash FROM changes WHERE space_id = ?1 AND actor = ?2 GROUP BY doc_id",
        )?;
        let mut out = Vec::new();
        for (device, member) in targets {
            let rows = stmt.query_map(params![space, device.0.to_vec()], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, Vec<u8>>(2)?))
            })?;
            let earlier = pre.members.get(&member).and_then(|m| m.devices.get(&device)).and_then(|d| d.cut.clone());
            let rank = match &earlier {
                Some(c) => c.rank,
                None => pre.members.get(&member).map(space::Rank::of).unwrap_or_default(),
            };
            let mut cut = earlier.unwrap_or_default();
            cut.rank = rank;
            for row in rows {
                let (doc, seq, hash) = row?;
                cut.include(&doc, u64::try_from(seq).unwrap_or(0), Some(hex::encode(hash)));
            }
            out.push((member, device, cut));
        }
        Ok(out)
    }

    /// Make a one-time invite for a new member with `roles`. The returned code
    /// carries the space id and the invite's secret key; it fits in a QR code.
    pub fn create_invite(&self, space: &str, name: &str, roles: &[Role], ttl_ms: Option<i64>) -> Result<Invitation> {
        self.invite(space, None, name, roles, ttl_ms)
    }

    /// Register a member who has no phone (coordinators): active at once, so
    /// they are in every electorate and audience they belong to, and take
    /// part through what coordinators and interviewers enter for them.
    /// Returns their member id.
    pub fn add_member(&self, space: &str, name: &str, roles: &[Role]) -> Result<String> {
        let member = new_id()?;
        self.edit_space(
            space,
            &[SpaceEdit::AddMember { member: member.clone(), name: name.into(), roles: roles.to_vec() }],
        )?;
        Ok(member)
    }

    /// Make a one-time invite that gives a phone to a member registered
    /// without one. What was entered for them (paper ballots, answers taken
    /// at their door, hours) stays theirs; the register's name is kept.
    pub fn invite_member(&self, space: &str, member: &str, ttl_ms: Option<i64>) -> Result<Invitation> {
        let m = self.with_view(space, |v| v.members.get(member).cloned())?;
        let m = m.ok_or_else(|| Error::NotFound("member".into()))?;
        if !m.awaits_phone() {
            return Err(Error::Invalid(
                "an invite names a member with no phone yet, who is not a coordinator or admin".into(),
            ));
        }
        self.invite(space, Some(member), &m.name, &[], ttl_ms)
    }

    fn invite(
        &self,
        space: &str,
        existing: Option<&str>,
        name: &str,
        roles: &[Role],
        ttl_ms: Option<i64>,
    ) -> Result<Invitation> {
        let invite_key = DeviceKey::generate()?;
        let invite_id = new_id()?;
        let member_id = match existing {
            Some(m) => m.to_string(),
            None => new_id()?,
        };
        let (iid, mid, key_id) = (invite_id.clone(), member_id.clone(), invite_key.id());
        self.local_space_write(space, |tx, pre, me, now| {
            if existing.is_none() && pre.members.contains_key(&mid) {
                return Err(Error::Internal("member id collision".into()));
            }
            let inv = space::NewInvite {
                existing: existing.is_some(),
                invite: &iid,
                key: key_id,
                member: &mid,
                name,
                roles,
                created_by: me,
                expires_at: now.saturating_add(ttl_ms.unwrap_or(DEFAULT_INVITE_TTL_MS)),
            };
            space::write_invite(tx, &inv, now)
        })?;
        let space_bytes = hex::decode(space).map_err(|_| Error::UnknownSpace(space.into()))?;
        let mut payload = vec![INVITE_CODE_VERSION];
        payload.extend_from_slice(&space_bytes);
        payload.extend_from_slice(&invite_key.seed());
        Ok(Invitation { code: base32::encode(&payload), invite_id, member_id })
    }

    /// The space named by an invite code, so a device knows what to fetch
    /// before it can [`join`](Self::join).
    pub fn invite_space(code: &str) -> Result<String> {
        Ok(parse_invite(code)?.0)
    }

    /// Join a space with an invite code. `space_changes` is the space
    /// document as a peer (the server or a hub) sent it; it is checked change
    /// by change from its genesis like any remote change. The redemption is
    /// signed by the invite key and adds this device to the invited member.
    pub fn join(&self, code: &str, my_name: &str, space_changes: Vec<SignedChange>) -> Result<(String, String)> {
        let (space_id, invite_key) = parse_invite(code)?;
        self.apply(&space_id, &DocId::Space, space_changes)?;
        let mut inner = self.lock()?;
        let pre = view(&mut inner, &space_id)?.clone();
        if pre.members.is_empty() {
            return Err(Error::UnknownSpace(space_id));
        }
        let (invite_id, invite) = pre
            .invites
            .iter()
            .find(|(_, inv)| inv.key == invite_key.id())
            .map(|(id, inv)| (id.clone(), inv.clone()))
            .ok_or(Error::Refused { doc: DocId::Space, reason: Refusal::BadInvite })?;
        let now = now_ms();
        if invite.redeemed_by.is_some() || invite.revoked_at.is_some() || now > invite.expires_at {
            return Err(Error::Refused { doc: DocId::Space, reason: Refusal::BadInvite });
        }
        // A member registered without a phone keeps the name the register has.
        let my_name = match pre.members.get(&invite.member) {
            Some(m) if m.status == space::MemberStatus::Active => m.name.clone(),
            _ => my_name.to_string(),
        };
        // The redemption is this phone's own change, carrying the invite
        // key's proof that it may make it.
        let proof =
            invite_key.sign_tagged(space::REDEEM_TAG, &space::redemption_message(&space_id, &invite_id, &self.device));
        let doc = load(&mut inner, &space_id, &DocId::Space)?;
        let mut trial = doc.clone();
        trial.set_actor(self.device.actor());
        let mut tx = trial.transaction();
        space::write_redemption(&mut tx, &invite_id, &invite.member, &my_name, &self.device, &proof, now)?;
        tx.commit_with(CommitOptions::default().with_time(now_ms().max(now)));
        let change =
            trial.get_last_local_change().ok_or_else(|| Error::Internal("redemption produced no change".into()))?;
        let sig = inner.key.sign_change(&space_id, &DocId::Space, &change.hash());
        let report =
            merge_guarded(&mut inner, &space_id, &DocId::Space, vec![(change, sig.to_vec())], Vec::new(), false)?;
        refused_as_error(&DocId::Space, &report)?;
        inner.conn.execute(
            "INSERT INTO spaces (space_id, name, member_id) VALUES (?1, ?2, ?3)
             ON CONFLICT (space_id) DO UPDATE SET member_id = excluded.member_id, name = excluded.name",
            params![space_id, pre.name, invite.member],
        )?;
        drop(inner);
        self.notify(&space_id, &DocId::Space);
        Ok((space_id, invite.member))
    }

    /// Write into the space document through a closure, on a copy first, and
    /// merge the result through the same checks as a remote change.
    fn local_space_write<F>(&self, space: &str, f: F) -> Result<Option<ChangeHash>>
    where
        F: FnOnce(&mut Transaction<'_>, &SpaceView, &str, i64) -> Result<()>,
    {
        let me = self.my_member(space)?;
        let mut inner = self.lock()?;
        let pre = view(&mut inner, space)?.clone();
        let now = now_ms();
        let actor = inner.key.actor();
        let doc = load(&mut inner, space, &DocId::Space)?;
        let mut trial = doc.clone();
        trial.set_actor(actor);
        let mut tx = trial.transaction();
        if let Err(e) = f(&mut tx, &pre, &me, now) {
            tx.rollback();
            return Err(e);
        }
        let (hash, _) = tx.commit_with(CommitOptions::default().with_time(now_ms().max(now)));
        let Some(hash) = hash else { return Ok(None) };
        let change =
            trial.get_change_by_hash(&hash).ok_or_else(|| Error::Internal("committed change missing".into()))?;
        let sig = inner.key.sign_change(space, &DocId::Space, &hash);
        let report = merge_guarded(&mut inner, space, &DocId::Space, vec![(change, sig.to_vec())], Vec::new(), false)?;
        refused_as_error(&DocId::Space, &report)?;
        drop(inner);
        self.notify(space, &DocId::Space);
        Ok(Some(hash))
    }

    // -----------------------------------------------------------------------
    // Documents

    /// Write into any document other than the space document. The writer
    /// rule of the document's kind is checked before the closure runs.
    ///
    /// Documents that several devices write keep their entries at the root,
    /// under keys unique to the entry, so concurrent writers never create the
    /// same container twice.
    pub fn write<F>(&self, space: &str, doc_id: &DocId, f: F) -> Result<Option<ChangeHash>>
    where
        F: FnOnce(&mut Transaction<'_>) -> Result<()>,
    {
        self.write_dated(space, doc_id, 0, f)
    }

    /// [`Store::write`], the change dated no earlier than `at` (a time one of
    /// its entries carries, which the change must attest).
    pub(crate) fn write_dated<F>(&self, space: &str, doc_id: &DocId, at: i64, f: F) -> Result<Option<ChangeHash>>
    where
        F: FnOnce(&mut Transaction<'_>) -> Result<()>,
    {
        let mut inner = self.lock()?;
        let Some((hash, batch)) = commit_local(&mut inner, space, doc_id, at, f)? else { return Ok(None) };
        let outcome = Outcome { accepted: &batch, refused: &[], flags: &[], held: &[], held_done: &[], waiting: &[] };
        if let Err(e) = persist(&mut inner, space, doc_id, &outcome, None) {
            evict(&mut inner, space, doc_id);
            return Err(e);
        }
        drop(inner);
        self.notify(space, doc_id);
        Ok(Some(hash))
    }

    /// Create an item: write its document through `f` and its entry in the
    /// item index of the current year, both in one SQLite transaction, so a
    /// crash never leaves an item without its index entry or the reverse.
    pub fn write_item<F>(&self, space: &str, item: &str, kind: &str, title: &str, f: F) -> Result<()>
    where
        F: FnOnce(&mut Transaction<'_>) -> Result<()>,
    {
        if !crate::doc::valid_token(item) || !crate::doc::valid_token(kind) {
            return Err(Error::Invalid("item id or kind".into()));
        }
        let me = self.my_member(space)?;
        let now = now_ms();
        let item_doc = DocId::Item { item: item.to_string() };
        let index_doc = DocId::Index { year: year_of(now) };
        let mut inner = self.lock()?;
        let first = commit_local(&mut inner, space, &item_doc, 0, f)?;
        let second = match commit_local(&mut inner, space, &index_doc, 0, |tx| {
            project::write_index_entry(tx, item, kind, title, &me, now)
        }) {
            Ok(s) => s,
            Err(e) => {
                evict(&mut inner, space, &item_doc);
                return Err(e);
            }
        };
        let batches: Vec<(&DocId, Accepted)> = [(&item_doc, first), (&index_doc, second)]
            .into_iter()
            .filter_map(|(d, b)| b.map(|(_, batch)| (d, batch)))
            .collect();
        let persisted = (|| -> Result<()> {
            let Inner { conn, docs, .. } = &mut *inner;
            let tx = conn.transaction()?;
            for (doc_id, batch) in &batches {
                let doc = docs
                    .get(&(space.to_string(), doc_id.to_string()))
                    .ok_or_else(|| Error::Internal("document not loaded".into()))?;
                write_changes(&tx, space, doc_id, doc, batch, None)?;
            }
            tx.commit()?;
            Ok(())
        })();
        if let Err(e) = persisted {
            evict(&mut inner, space, &item_doc);
            evict(&mut inner, space, &index_doc);
            return Err(e);
        }
        drop(inner);
        for (doc_id, _) in &batches {
            self.notify(space, doc_id);
        }
        Ok(())
    }

    /// Read a document. The closure sees the merged automerge document.
    pub fn read<T>(&self, space: &str, doc_id: &DocId, f: impl FnOnce(&Automerge) -> T) -> Result<T> {
        let mut inner = self.lock()?;
        let doc = load(&mut inner, space, doc_id)?;
        Ok(f(doc))
    }

    /// Add an entry to the item index of the current year.
    pub fn index_item(&self, space: &str, item_id: &str, kind: &str, title: &str) -> Result<()> {
        if !crate::doc::valid_token(item_id) || !crate::doc::valid_token(kind) {
            return Err(Error::Invalid("item id or kind".into()));
        }
        let me = self.my_member(space)?;
        let now = now_ms();
        let year = year_of(now);
        self.write(space, &DocId::Index { year }, |tx| project::write_index_entry(tx, item_id, kind, title, &me, now))?;
        Ok(())
    }

    /// Merge changes from a peer. Each is checked before it is merged; the
    /// report says what was accepted, refused (and why), or held back.
    pub fn apply(&self, space: &str, doc_id: &DocId, changes: Vec<SignedChange>) -> Result<ApplyReport> {
        self.apply_sent(space, doc_id, changes, None)
    }

    /// [`Store::apply`] for changes `sender` sent in a request: what is
    /// refused is recorded under it, within its own cap
    /// ([`REFUSALS_PER_DEVICE_MINUTE`]).
    pub fn apply_from(
        &self,
        space: &str,
        doc_id: &DocId,
        changes: Vec<SignedChange>,
        sender: &DeviceId,
    ) -> Result<ApplyReport> {
        self.apply_sent(space, doc_id, changes, Some(*sender))
    }

    fn apply_sent(
        &self,
        space: &str,
        doc_id: &DocId,
        changes: Vec<SignedChange>,
        sender: Option<DeviceId>,
    ) -> Result<ApplyReport> {
        if changes.len() > MAX_CHANGES {
            return Err(Error::Invalid(format!("more than {MAX_CHANGES} changes in one batch")));
        }
        let mut parsed = Vec::with_capacity(changes.len());
        let mut malformed = Vec::new();
        for sc in changes {
            match trust::parse_change(&sc.bytes) {
                Ok(c) => parsed.push((c, sc.signature)),
                Err(reason) => malformed.push((None, reason)),
            }
        }
        let offered: Vec<ChangeHash> = parsed.iter().map(|(c, _)| c.hash()).collect();
        let mut inner = self.lock()?;
        let released = release_due(&mut inner, space)?;
        inner.sender = sender;
        let merged = merge_guarded(&mut inner, space, doc_id, parsed, malformed, false);
        inner.sender = None;
        drop(inner);
        let mut report = merged?;
        report.offered = offered;
        // Changes that waited for the clock and merged before this batch.
        for d in released {
            if d == *doc_id {
                self.notify(space, doc_id);
            } else if !report.also_changed.contains(&d) {
                report.also_changed.push(d);
            }
        }
        if !report.accepted.is_empty() {
            self.notify(space, doc_id);
        }
        for d in &report.also_changed {
            self.notify(space, d);
        }
        Ok(report)
    }

    /// Put refusals on record without merging anything: changes `sender`
    /// offered for a document it may not read, refused unseen.
    pub fn record_refused(
        &self,
        space: &str,
        doc_id: &DocId,
        hashes: &[Option<ChangeHash>],
        reason: &Refusal,
        sender: &DeviceId,
    ) -> Result<()> {
        let refused: Vec<(Option<ChangeHash>, Refusal)> = hashes.iter().map(|h| (*h, reason.clone())).collect();
        let inner = self.lock()?;
        record_refusals(&inner.conn, space, doc_id, &refused, Some(sender.0.as_slice()))
    }

    /// The changes of a document that a peer holding `have` lacks, with their
    /// signatures.
    pub fn changes_since(&self, space: &str, doc_id: &DocId, have: &[ChangeHash]) -> Result<Vec<SignedChange>> {
        let mut inner = self.lock()?;
        let changes = {
            let doc = load(&mut inner, space, doc_id)?;
            doc.get_changes(have)
        };
        let mut stmt = inner.conn.prepare_cached(
            "SELECT signature FROM changes WHERE space_id = ?1 AND doc_id = ?2 AND actor = ?3 AND seq = ?4",
        )?;
        let did = doc_id.to_string();
        changes
            .into_iter()
            .map(|c| {
                let signature: Vec<u8> =
                    stmt.query_row(params![space, did, c.actor_id().to_bytes(), seq_sql(c.seq())], |r| r.get(0))?;
                Ok(SignedChange { bytes: c.raw_bytes().to_vec(), signature })
            })
            .collect()
    }

    pub fn heads(&self, space: &str, doc_id: &DocId) -> Result<Vec<ChangeHash>> {
        let mut inner = self.lock()?;
        Ok(load(&mut inner, space, doc_id)?.get_heads())
    }

    /// The documents of a space held here.
    pub fn doc_ids(&self, space: &str) -> Result<Vec<DocId>> {
        let inner = self.lock()?;
        let mut stmt = inner.conn.prepare("SELECT doc_id FROM docs WHERE space_id = ?1 ORDER BY doc_id")?;
        let ids: Vec<String> = stmt.query_map([space], |r| r.get(0))?.collect::<Result<_, _>>()?;
        ids.iter().map(|s| s.parse()).collect()
    }

    // -----------------------------------------------------------------------
    // Sync support

    /// The name of this store's feed; it changes only with a new store file.
    pub fn epoch(&self) -> [u8; 16] {
        self.epoch
    }

    /// The highest arrival number in a space (0 when empty).
    pub fn max_arrived(&self, space: &str) -> Result<u64> {
        let inner = self.lock()?;
        max_arrived(&inner.conn, space)
    }

    /// Changes merged here after arrival number `after`, in arrival order,
    /// grouped by document, up to about `budget` bytes. Documents `readable`
    /// refuses and changes in `skip` are passed over (the cursor moves past them).
    /// With `member` (one who is no coordinator), only rows of documents
    /// every member may read or that member's own are even read: a sync's
    /// cost does not grow with the other members' private writes.
    pub fn feed(
        &self,
        space: &str,
        after: u64,
        budget: usize,
        readable: &dyn Fn(&DocId) -> bool,
        skip: &HashSet<ChangeHash>,
        member: Option<&str>,
    ) -> Result<Feed> {
        let mut inner = self.lock()?;
        let mut feed = Feed { cursor: after, ..Feed::default() };
        let mut bytes = 0usize;
        let mut index: HashMap<DocId, usize> = HashMap::new();
        // Changes stored without a signature of their own (vouched for by a
        // later change of their actor) may not end a page: the page goes on
        // until that later, signed change is in it.
        let mut unsigned: HashSet<(DocId, Vec<u8>)> = HashSet::new();
        // Documents read for this page only, so serving a large feed does not
        // fill the shared cache.
        let mut transient: HashMap<DocId, Automerge> = HashMap::new();
        const PAGE: usize = 2048;
        let max = max_arrived(&inner.conn, space)?;
        loop {
            let rows: Vec<FeedRow> = {
                let map = |r: &rusqlite::Row<'_>| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?));
                match member {
                    None => {
                        let mut stmt = inner.conn.prepare_cached(
                            "SELECT doc_id, actor, hash, signature, arrived FROM changes
                             WHERE space_id = ?1 AND arrived > ?2 AND sig_version = 2 ORDER BY arrived LIMIT 2048",
                        )?;
                        stmt.query_map(params![space, seq_sql(feed.cursor)], map)?.collect::<Result<_, _>>()?
                    }
                    Some(m) => {
                        let mut stmt = inner.conn.prepare_cached(
                            "SELECT doc_id, actor, hash, signature, arrived FROM changes INDEXED BY changes_by_reader
                             WHERE space_id = ?1 AND reader IN ('', ?3) AND arrived > ?2 AND sig_version = 2
                             ORDER BY arrived LIMIT 2048",
                        )?;
                        stmt.query_map(params![space, seq_sql(feed.cursor), m], map)?.collect::<Result<_, _>>()?
                    }
                }
            };
            let last_page = rows.len() < PAGE;
            if rows.is_empty() {
                // Everything up to `max` was considered (rows this member
                // may not read were never read).
                feed.cursor = feed.cursor.max(max);
                return Ok(feed);
            }
            for (doc_id, actor, hash, signature, arrived) in rows {
                if bytes >= budget && unsigned.is_empty() {
                    feed.more = true;
                    return Ok(feed);
                }
                let arrived = u64::try_from(arrived).unwrap_or(0);
                let (Ok(doc_id), Ok(hash)) = (doc_id.parse::<DocId>(), ChangeHash::try_from(hash.as_slice())) else {
                    feed.cursor = arrived;
                    continue;
                };
                if !readable(&doc_id) || skip.contains(&hash) {
                    feed.cursor = arrived;
                    continue;
                }
                let change = peek(&mut inner, &mut transient, space, &doc_id)?
                    .get_change_by_hash(&hash)
                    .ok_or_else(|| Error::Internal("a recorded change is missing from its document".into()))?;
                let raw = change.raw_bytes().to_vec();
                bytes += raw.len() + signature.len();
                if signature.is_empty() {
                    unsigned.insert((doc_id.clone(), actor));
                } else {
                    unsigned.remove(&(doc_id.clone(), actor));
                }
                let i = *index.entry(doc_id.clone()).or_insert_with(|| {
                    feed.batches.push(crate::sync::wire::DocBatch::changes(doc_id.clone(), Vec::new()));
                    feed.batches.len() - 1
                });
                feed.batches[i].changes.push(SignedChange { bytes: raw, signature });
                feed.changes += 1;
                feed.cursor = arrived;
            }
            if last_page && unsigned.is_empty() {
                feed.cursor = feed.cursor.max(max);
                return Ok(feed);
            }
        }
    }

    /// A whole document for a first sync: its `save()` bytes and the
    /// signature of each actor's latest change, which vouch for the rest.
    pub fn snapshot_batch(&self, space: &str, doc_id: &DocId) -> Result<crate::sync::wire::DocBatch> {
        let mut inner = self.lock()?;
        let mut transient = HashMap::new();
        let snapshot = peek(&mut inner, &mut transient, space, doc_id)?.save();
        let mut stmt = inner.conn.prepare_cached(
            "SELECT hash, signature, max(seq) FROM changes WHERE space_id = ?1 AND doc_id = ?2 AND sig_version = 2 GROUP BY actor",
        )?;
        let rows = stmt.query_map(params![space, doc_id.to_string()], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get(1)?)))?;
        let mut signed = Vec::new();
        for row in rows {
            let (hash, signature) = row?;
            let hash = <[u8; 32]>::try_from(hash.as_slice())
                .map_err(|_| Error::Internal("a stored hash is damaged".into()))?;
            signed.push(crate::sync::wire::SignedHash { hash, signature });
        }
        Ok(crate::sync::wire::DocBatch { doc: doc_id.clone(), changes: Vec::new(), snapshot, signed })
    }

    /// Merge a whole document sent as a snapshot: every change in it goes
    /// through the same checks as any other, the listed signatures vouching
    /// for their actors' earlier changes.
    pub fn apply_snapshot(
        &self,
        space: &str,
        doc_id: &DocId,
        snapshot: &[u8],
        signed: &[crate::sync::wire::SignedHash],
    ) -> Result<ApplyReport> {
        let loaded = contained(|| Automerge::load(snapshot))
            .unwrap_or_else(|| Err(automerge::AutomergeError::Fail))
            .map_err(|e| e.to_string());
        let doc = match loaded {
            Ok(d) => d,
            Err(e) => {
                let refused = vec![(None, Refusal::Malformed(e))];
                let inner = self.lock()?;
                record_refusals(&inner.conn, space, doc_id, &refused, None)?;
                return Ok(ApplyReport { refused, ..ApplyReport::default() });
            }
        };
        let sigs: HashMap<[u8; 32], &Vec<u8>> = signed.iter().map(|s| (s.hash, &s.signature)).collect();
        let changes = doc
            .get_changes(&[])
            .into_iter()
            .map(|c| {
                let sig = sigs.get(&c.hash().0).map(|s| s.to_vec()).unwrap_or_default();
                (c, sig)
            })
            .collect();
        let mut inner = self.lock()?;
        let report = merge_guarded(&mut inner, space, doc_id, changes, Vec::new(), false)?;
        drop(inner);
        if !report.accepted.is_empty() {
            self.notify(space, doc_id);
        }
        Ok(report)
    }

    pub fn peer_state(&self, peer: &str, space: &str) -> Result<PeerState> {
        let inner = self.lock()?;
        let row: Option<(Vec<u8>, i64, i64)> = inner
            .conn
            .query_row(
                "SELECT epoch, recv_cursor, sent_cursor FROM peers WHERE peer = ?1 AND space_id = ?2",
                params![peer, space],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        Ok(row
            .map(|(e, r, s)| PeerState {
                epoch: <[u8; 16]>::try_from(e.as_slice()).unwrap_or_default(),
                recv_cursor: u64::try_from(r).unwrap_or(0),
                sent_cursor: u64::try_from(s).unwrap_or(0),
            })
            .unwrap_or_default())
    }

    pub fn set_peer_state(&self, peer: &str, space: &str, state: &PeerState) -> Result<()> {
        let inner = self.lock()?;
        inner.conn.execute(
            "INSERT INTO peers (peer, space_id, epoch, recv_cursor, sent_cursor) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (peer, space_id) DO UPDATE SET epoch = excluded.epoch, recv_cursor = excluded.recv_cursor, sent_cursor = excluded.sent_cursor",
            params![peer, space, state.epoch.to_vec(), seq_sql(state.recv_cursor), seq_sql(state.sent_cursor)],
        )?;
        Ok(())
    }

    /// Record a request nonce; false if this device already used it. Nonces
    /// older than `keep_ms` are forgotten (requests that old are refused by
    /// their timestamp anyway).
    pub fn record_nonce(&self, device: &DeviceId, nonce: &[u8], now: i64, keep_ms: i64) -> Result<bool> {
        let inner = self.lock()?;
        let fresh = inner
            .conn
            .prepare_cached("INSERT OR IGNORE INTO nonces (device, nonce, at) VALUES (?1, ?2, ?3)")?
            .execute(params![device.0.to_vec(), nonce, now])?
            == 1;
        if fresh && now % 64 == 0 {
            inner.conn.execute("DELETE FROM nonces WHERE at < ?1", [now - keep_ms])?;
        }
        Ok(fresh)
    }

    /// Sign a message with this device's key under a domain tag.
    pub(crate) fn sign_tagged(&self, tag: &[u8], msg: &[u8]) -> Result<[u8; 64]> {
        let inner = self.lock()?;
        Ok(inner.key.sign_tagged(tag, msg))
    }

    // -----------------------------------------------------------------------
    // List views, read from the query tables without loading documents

    pub fn members(&self, space: &str, offset: u32, limit: u32) -> Result<Vec<MemberRow>> {
        let inner = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        let mut stmt = inner.prepare_cached(
            "SELECT m.member_id, m.name, m.status, m.roles,
                    (SELECT count(*) FROM devices d
                     WHERE d.space_id = m.space_id AND d.member_id = m.member_id AND d.revoked_at IS NULL)
             FROM members m WHERE m.space_id = ?1 ORDER BY m.name, m.member_id LIMIT ?2 OFFSET ?3",
        )?;
        let rows = stmt.query_map(params![space, limit, offset], |r| {
            let roles: String = r.get(3)?;
            Ok(MemberRow {
                member_id: r.get(0)?,
                name: r.get(1)?,
                status: r.get(2)?,
                roles: roles.split(',').filter_map(Role::parse).collect(),
                phones: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn units(&self, space: &str, offset: u32, limit: u32) -> Result<Vec<UnitRow>> {
        let inner = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        let mut stmt = inner.prepare_cached(
            "SELECT unit_id, building, entrance, room, area_centi, grid_id FROM units WHERE space_id = ?1
             ORDER BY building, entrance, room, unit_id LIMIT ?2 OFFSET ?3",
        )?;
        let rows = stmt.query_map(params![space, limit, offset], |r| {
            Ok(UnitRow {
                unit_id: r.get(0)?,
                building: r.get(1)?,
                entrance: r.get(2)?,
                room: r.get(3)?,
                area_centi: r.get(4)?,
                grid_id: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn items(&self, space: &str, offset: u32, limit: u32) -> Result<Vec<ItemRow>> {
        let inner = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        let mut stmt = inner.prepare_cached(
            "SELECT item_id, kind, title, created_by, created_at FROM items WHERE space_id = ?1
             ORDER BY created_at DESC, item_id LIMIT ?2 OFFSET ?3",
        )?;
        let rows = stmt.query_map(params![space, limit, offset], |r| {
            Ok(ItemRow {
                item_id: r.get(0)?,
                kind: r.get(1)?,
                title: r.get(2)?,
                created_by: r.get(3)?,
                created_at: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The audit trail of refused changes in a space.
    pub fn refusals(&self, space: &str) -> Result<Vec<RefusalRow>> {
        let inner = self.lock()?;
        let mut stmt =
            inner.conn.prepare("SELECT doc_id, hash, reason FROM refusals WHERE space_id = ?1 ORDER BY id")?;
        let rows = stmt.query_map([space], |r| {
            let hash: Option<Vec<u8>> = r.get(1)?;
            Ok(RefusalRow {
                doc: r.get(0)?,
                hash: hash.and_then(|h| ChangeHash::try_from(h.as_slice()).ok()),
                reason: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Devices caught signing two different changes with one sequence number.
    pub fn flagged_devices(&self, space: &str) -> Result<Vec<DeviceId>> {
        let inner = self.lock()?;
        let mut stmt = inner.conn.prepare("SELECT DISTINCT device FROM flags WHERE space_id = ?1 ORDER BY device")?;
        let rows = stmt.query_map([space], |r| r.get::<_, Vec<u8>>(0))?;
        let mut out = Vec::new();
        for d in rows {
            if let Ok(arr) = <[u8; 32]>::try_from(d?.as_slice()) {
                out.push(DeviceId(arr));
            }
        }
        Ok(out)
    }

    /// Read query tables with the store's connection (for modules' own queries).
    /// Read query tables (for modules' own queries), on the read-only
    /// connection: committed state, without waiting for a write in progress.
    pub(crate) fn query<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let reader = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        f(&reader)
    }

    /// Write a table that is this device's alone and never syncs (survey
    /// drafts), on the store's connection.
    pub(crate) fn local_write<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let inner = self.lock()?;
        f(&inner.conn)
    }

    /// Run SQLite's own consistency check.
    pub fn integrity_check(&self) -> Result<String> {
        let inner = self.lock()?;
        Ok(inner.conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?)
    }
}

/// The civil (UTC) year of a time in milliseconds, clamped to 2000–9999; it names
/// the yearly partitions of documents.
/// A CSV cell: quoted when it must be; text that a spreadsheet would run as
/// a formula is prefixed with `'`.
pub(crate) fn csv_cell(s: &str, text: bool) -> String {
    let guarded = if text && s.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{s}") } else { s.to_string() };
    if guarded.contains([',', '"', '\n', '\r']) { format!("\"{}\"", guarded.replace('"', "\"\"")) } else { guarded }
}

pub fn year_of(ms: i64) -> u16 {
    let (year, _, _) = civil(ms.div_euclid(86_400_000));
    u16::try_from(year.clamp(2000, 9999)).unwrap_or(2000)
}

/// Days since the epoch to a civil (proleptic Gregorian) year, month, day.
fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// A time in milliseconds as ISO 8601 UTC to the second (`2026-11-21T08:30:00Z`).
pub fn iso_utc(ms: i64) -> String {
    let (y, mo, d) = civil(ms.div_euclid(86_400_000));
    let s = ms.div_euclid(1000).rem_euclid(86_400);
    format!("{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}Z", s / 3600, s / 60 % 60, s % 60)
}

/// The space an invite code names and the invite's key.
pub fn parse_invite(code: &str) -> Result<(String, DeviceKey)> {
    let bad = || Error::Invalid("malformed invite code".into());
    let bytes = base32::decode(code).ok_or_else(bad)?;
    if bytes.len() != 49 || bytes[0] != INVITE_CODE_VERSION {
        return Err(bad());
    }
    let seed = <[u8; 32]>::try_from(&bytes[17..49]).map_err(|_| bad())?;
    Ok((hex::encode(&bytes[1..17]), DeviceKey::from_seed(seed)))
}

fn refused_as_error(doc: &DocId, report: &ApplyReport) -> Result<()> {
    match report.refused.first() {
        Some((_, reason)) => Err(Error::Refused { doc: doc.clone(), reason: reason.clone() }),
        None => Ok(()),
    }
}

fn my_member(conn: &Connection, space: &str) -> Result<String> {
    conn.query_row("SELECT member_id FROM spaces WHERE space_id = ?1", [space], |r| r.get::<_, Option<String>>(0))
        .optional()?
        .flatten()
        .ok_or_else(|| Error::UnknownSpace(space.into()))
}

/// The last arrival number given in a space. Never goes down: a rebuild
/// that drops the latest change and reinstates another must not give the
/// newcomer a number a peer's cursor has already passed (the feed would skip
/// it), so the highest number given is also kept (`arrivals`, migration 12).
fn max_arrived(conn: &Connection, space: &str) -> Result<u64> {
    let n: i64 = conn
        .prepare_cached(
            "SELECT max(coalesce((SELECT max(arrived) FROM changes WHERE space_id = ?1), 0),
                        coalesce((SELECT last FROM arrivals WHERE space_id = ?1), 0))",
        )?
        .query_row([space], |r| r.get(0))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

fn evict(inner: &mut Inner, space: &str, doc_id: &DocId) {
    inner.docs.remove(&(space.to_string(), doc_id.to_string()));
    inner.views.remove(space);
}

/// A document to read once: the cached one if it is loaded, else a copy
/// loaded into `transient` (not the shared cache).
fn peek<'a>(
    inner: &'a mut Inner,
    transient: &'a mut HashMap<DocId, Automerge>,
    space: &str,
    doc_id: &DocId,
) -> Result<&'a Automerge> {
    let key = (space.to_string(), doc_id.to_string());
    if let Some(d) = inner.docs.get(&key) {
        return Ok(d);
    }
    if !transient.contains_key(doc_id) {
        if transient.len() >= 64 {
            transient.clear();
        }
        transient.insert(doc_id.clone(), read_doc(&inner.conn, space, &key.1)?);
    }
    transient.get(doc_id).ok_or_else(|| Error::Internal("document cache".into()))
}

/// The loaded document, from the cache or from its snapshot and chunks.
fn load<'a>(inner: &'a mut Inner, space: &str, doc_id: &DocId) -> Result<&'a mut Automerge> {
    let key = (space.to_string(), doc_id.to_string());
    if inner.docs.get(&key).is_none() {
        let doc = read_doc(&inner.conn, space, &key.1)?;
        inner.docs.insert(key.clone(), doc);
    }
    inner.docs.get_mut(&key).ok_or_else(|| Error::Internal("document cache".into()))
}

fn read_doc(conn: &Connection, space: &str, doc_id: &str) -> Result<Automerge> {
    let snapshot: Option<Vec<u8>> = conn
        .query_row("SELECT snapshot FROM docs WHERE space_id = ?1 AND doc_id = ?2", params![space, doc_id], |r| {
            r.get(0)
        })
        .optional()?;
    let mut doc = match snapshot {
        Some(s) if !s.is_empty() => Automerge::load(&s)?,
        _ => Automerge::new(),
    };
    let mut stmt = conn.prepare_cached("SELECT bytes FROM chunks WHERE space_id = ?1 AND doc_id = ?2 ORDER BY seq")?;
    let mut rows = stmt.query(params![space, doc_id])?;
    while let Some(row) = rows.next()? {
        let bytes: Vec<u8> = row.get(0)?;
        doc.load_incremental(&bytes)?;
    }
    Ok(doc)
}

/// The register of a space, loaded once and kept current by every write.
fn view<'a>(inner: &'a mut Inner, space: &str) -> Result<&'a SpaceView> {
    if !inner.views.contains_key(space) {
        let v = SpaceView::read(load(inner, space, &DocId::Space)?)?;
        inner.views.insert(space.to_string(), v);
    }
    inner.views.get(space).ok_or_else(|| Error::Internal("register cache".into()))
}

struct Accepted {
    changes: Vec<(Change, Vec<u8>)>,
    /// What the changes wrote, for the query tables (only for projected kinds).
    writes: Vec<Write>,
}

/// Kinds whose content feeds query tables.
fn projected(doc_id: &DocId) -> bool {
    matches!(doc_id, DocId::Space | DocId::Index { .. } | DocId::Own { .. } | DocId::Item { .. })
}

/// What a merge attempt ran into: an error, or a change that made automerge
/// panic (the document in the cache is then discarded).
enum Attempt {
    Done(ApplyReport),
    Panicked(ChangeHash),
    /// Applying the checked changes at once failed: try one at a time.
    Together,
}

/// [`merge`], contained: a change that makes automerge panic is refused, the
/// document and register are reloaded from disk (nothing of the attempt was
/// written), and the rest of the batch is tried again. `refused` holds
/// refusals found before the merge (unparsable changes), recorded with it.
fn merge_guarded(
    inner: &mut Inner,
    space: &str,
    doc_id: &DocId,
    mut changes: Vec<(Change, Vec<u8>)>,
    mut refused: Vec<(Option<ChangeHash>, Refusal)>,
    from_held: bool,
) -> Result<ApplyReport> {
    let mut together = true;
    for _ in 0..5 {
        match merge(inner, space, doc_id, &changes, &refused, from_held, together)? {
            Attempt::Done(report) => return Ok(report),
            Attempt::Together => together = false,
            Attempt::Panicked(h) => {
                changes.retain(|(c, _)| c.hash() != h);
                refused.push((Some(h), Refusal::Malformed("the change is inconsistent with the document".into())));
            }
        }
    }
    // A batch that keeps failing is refused whole.
    let reason = Refusal::Malformed("the batch could not be merged".into());
    refused.extend(changes.iter().map(|(c, _)| (Some(c.hash()), reason.clone())));
    match merge(inner, space, doc_id, &[], &refused, from_held, false)? {
        Attempt::Done(report) => Ok(report),
        Attempt::Panicked(_) | Attempt::Together => Err(Error::Internal("an empty merge failed".into())),
    }
}

/// Whether automerge, asked for the changes since `before`, gives back
/// exactly `hashes`. It re-derives changes from its operations; a change it
/// merged but gives back with another hash (the `change_validation` fuzzer
/// found one that is canonical and correctly summed) leaves a document whose
/// save does not load again.
fn rederives(doc: &Automerge, before: &[ChangeHash], hashes: &[ChangeHash]) -> bool {
    let want: HashSet<&ChangeHash> = hashes.iter().collect();
    contained(|| doc.get_changes(before))
        .is_some_and(|got| got.len() == want.len() && got.iter().all(|c| want.contains(&c.hash())))
}

/// Whether a document loads again from its own save, to the same heads.
fn reloads(doc: &Automerge) -> bool {
    contained(|| Automerge::load(&doc.save()).map(|l| l.get_heads() == doc.get_heads())) == Some(Ok(true))
}

/// The changes of a batch in an order where every change comes after those
/// of its deps that are in the batch (Kahn's algorithm, O(n log n)).
fn causal_order(batch: &[(Change, Vec<u8>)]) -> Vec<usize> {
    let index: HashMap<ChangeHash, usize> = batch.iter().enumerate().map(|(i, (c, _))| (c.hash(), i)).collect();
    let mut waiting = vec![0usize; batch.len()];
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); batch.len()];
    for (i, (c, _)) in batch.iter().enumerate() {
        for d in c.deps() {
            if let Some(&j) = index.get(d) {
                waiting[i] += 1;
                children[j].push(i);
            }
        }
    }
    // Ready changes are taken smallest hash first: the order is a function
    // of the set of changes, not of the order they were listed in.
    let mut ready: BTreeSet<(ChangeHash, usize)> =
        (0..batch.len()).filter(|&i| waiting[i] == 0).map(|i| (batch[i].0.hash(), i)).collect();
    let mut order = Vec::with_capacity(batch.len());
    while let Some((_, i)) = ready.pop_first() {
        order.push(i);
        for &k in &children[i] {
            waiting[k] -= 1;
            if waiting[k] == 0 {
                ready.insert((batch[k].0.hash(), k));
            }
        }
    }
    order
}

/// A local write's change, committed to the cached document and signed, not
/// yet persisted: the writer rule of the document's kind is checked first.
/// `None` when the closure wrote nothing.
fn commit_local<F>(
    inner: &mut Inner,
    space: &str,
    doc_id: &DocId,
    at: i64,
    f: F,
) -> Result<Option<(ChangeHash, Accepted)>>
where
    F: FnOnce(&mut Transaction<'_>) -> Result<()>,
{
    if *doc_id == DocId::Space {
        return Err(Error::Invalid("edit the space document with edit_space".into()));
    }
    let now = now_ms();
    let device = inner.key.id();
    {
        let v = view(inner, space)?;
        let author = v.author(&device, now).map_err(|reason| Error::Refused { doc: doc_id.clone(), reason })?;
        if !trust::may_write(doc_id, &author) {
            return Err(Error::NotAllowed(format!("write {}", doc_id.kind())));
        }
    }
    let actor = inner.key.actor();
    let doc = load(inner, space, doc_id)?;
    if doc.get_actor() != &actor {
        doc.set_actor(actor);
    }
    let mut tx = doc.transaction();
    if let Err(e) = f(&mut tx) {
        tx.rollback();
        return Err(e);
    }
    let (hash, _) = tx.commit_with(CommitOptions::default().with_time(now_ms().max(now).max(at)));
    let Some(hash) = hash else { return Ok(None) };
    let change = doc.get_change_by_hash(&hash).ok_or_else(|| Error::Internal("committed change missing".into()))?;
    let writes = if projected(doc_id) {
        match space::change_writes(doc, &change) {
            Ok(w) => w,
            Err(reason) => {
                evict(inner, space, doc_id);
                return Err(Error::Refused { doc: doc_id.clone(), reason });
            }
        }
    } else {
        Vec::new()
    };
    let sig = inner.key.sign_change(space, doc_id, &hash);
    Ok(Some((hash, Accepted { changes: vec![(change, sig.to_vec())], writes })))
}

/// The one path by which changes enter a document: checks, merge, persist.
///
/// Changes are taken in causal order, once each. Before automerge sees a
/// change it must be the actor's next (sequence numbers contiguous from 1),
/// its operation counters must follow its deps, its deps must be here, and it
/// must pass [`trust`]. Everything the batch decides — accepted changes,
/// refusals, held changes, flags, query tables — is written in one SQLite
/// transaction.
fn merge(
    inner: &mut Inner,
    space: &str,
    doc_id: &DocId,
    changes: &[(Change, Vec<u8>)],
    refused_before: &[(Option<ChangeHash>, Refusal)],
    from_held: bool,
    together: bool,
) -> Result<Attempt> {
    let mut report = ApplyReport::default();
    let did = doc_id.to_string();
    // Load the register first (it may be this very document), and take it out
    // of the cache while the batch is judged: it goes back once persisted.
    view(inner, space)?;
    let mut current = inner.views.remove(space).unwrap_or_default();
    let revocations_before = (*doc_id == DocId::Space).then(|| current.revocations());
    let mut refused: Vec<(Option<ChangeHash>, Refusal)> = refused_before.to_vec();
    let mut flags: Vec<(Vec<u8>, ChangeHash)> = Vec::new();
    let mut equivocations: Vec<(Change, Vec<u8>)> = Vec::new();
    let mut pending: Vec<(Change, Vec<u8>)> = Vec::new();
    let inner_legacy = inner.legacy_signatures;
    // Changes of this document waiting for the clock, and until when.
    let mut waiting_until: HashMap<ChangeHash, i64> = {
        let mut stmt =
            inner.conn.prepare_cached("SELECT hash, until FROM waiting WHERE space_id = ?1 AND doc_id = ?2")?;
        let rows = stmt.query_map(params![space, did], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?)))?;
        let mut map = HashMap::new();
        for row in rows {
            let (h, until) = row?;
            if let Ok(h) = ChangeHash::try_from(h.as_slice()) {
                map.insert(h, until);
            }
        }
        map
    };
    let releasing = inner.releasing;
    let clock = now_ms();
    let mut waiting: Vec<(Change, Vec<u8>, i64)> = Vec::new();
    let kept_aside: HashSet<ChangeHash> = if from_held {
        HashSet::new()
    } else {
        let mut stmt = inner.conn.prepare_cached("SELECT hash FROM held WHERE space_id = ?1 AND doc_id = ?2")?;
        let rows = stmt.query_map(params![space, did], |r| r.get::<_, Vec<u8>>(0))?;
        let mut set = HashSet::new();
        for row in rows {
            if let Ok(h) = ChangeHash::try_from(row?.as_slice()) {
                set.insert(h);
            }
        }
        set
    };
    {
        let mut seen = HashSet::new();
        let mut upgrades = Vec::new();
        let doc = load(inner, space, doc_id)?;
        for (c, sig) in changes {
            let h = c.hash();
            // Already kept aside here: judged again only when the register
            // changes (or, waiting for the clock, when the clock reaches it).
            let aside = kept_aside.contains(&h) || (!releasing && waiting_until.contains_key(&h));
            if doc.get_change_meta_by_hash(&h).is_some() || !seen.insert(h) || aside {
                report.duplicates += 1;
                if inner_legacy && !sig.is_empty() {
                    upgrades.push((c, sig));
                }
            } else {
                pending.push((c.clone(), sig.clone()));
            }
        }
        upgrade_signatures(&inner.conn, space, doc_id, &upgrades)?;
    }
    // Equivocation: a different change already holds this (actor, seq).
    {
        let mut stmt = inner.conn.prepare_cached(
            "SELECT hash FROM changes WHERE space_id = ?1 AND doc_id = ?2 AND actor = ?3 AND seq = ?4",
        )?;
        let mut claimed: HashMap<(Vec<u8>, u64), ChangeHash> = HashMap::new();
        let mut keep = Vec::with_capacity(pending.len());
        for (c, sig) in pending {
            let actor = c.actor_id().to_bytes().to_vec();
            let seq = c.seq();
            let stored: Option<Vec<u8>> =
                stmt.query_row(params![space, did, actor, seq_sql(seq)], |r| r.get(0)).optional()?;
            let other = stored
                .and_then(|h| ChangeHash::try_from(h.as_slice()).ok())
                .or_else(|| claimed.get(&(actor.clone(), seq)).copied());
            match other {
                Some(o) if o != c.hash() => {
                    // Only a correctly signed duplicate is evidence against the
                    // device; it is kept aside, and the document rebuilt so the
                    // pair is decided the same way on every replica — once it
                    // is not dated too far ahead to be merged at all.
                    if c.timestamp() > clock.saturating_add(MAX_AHEAD_MS) {
                        let until = c.timestamp() - MAX_AHEAD_MS;
                        waiting_until.insert(c.hash(), until);
                        waiting.push((c, sig, until));
                    } else if trust::signer(space, doc_id, &c, &sig).is_ok() {
                        flags.push((actor.clone(), c.hash()));
                        equivocations.push((c, sig));
                    } else {
                        refused.push((Some(c.hash()), Refusal::BadSignature));
                    }
                }
                _ => {
                    claimed.insert((actor, seq), c.hash());
                    keep.push((c, sig));
                }
            }
        }
        pending = keep;
    }
    let vouched = vouch(space, doc_id, &pending);
    let order = causal_order(&pending);
    let mut held: Vec<(Change, Vec<u8>)> = Vec::new();
    // Changes built on one half of an equivocating pair are kept aside with it.
    let mut held_hashes: HashSet<ChangeHash> = equivocations.iter().map(|(c, _)| c.hash()).collect();
    let mut missing: HashSet<ChangeHash> = HashSet::new();
    let mut accepted = Accepted { changes: Vec::new(), writes: Vec::new() };
    let mut refused_hashes: HashSet<ChangeHash> = refused.iter().filter_map(|(h, _)| *h).collect();
    // Each actor's last sequence number in this document, as merged so far.
    let mut last_seq: HashMap<Vec<u8>, (u64, u64)> = HashMap::new();
    let mut slots: Vec<Option<(Change, Vec<u8>)>> = pending.into_iter().map(Some).collect();
    // Whether a register change of the batch is concurrent with one here and
    // either touches rights (see `unseen` below).
    let mut unsettled = false;
    let mut rights_touched = false;
    let register_was_empty = *doc_id == DocId::Space && load(inner, space, doc_id)?.get_heads().is_empty();
    let mut merged_here: HashSet<ChangeHash> = HashSet::new();
    // Outside the register, verdicts need nothing the batch writes, so the
    // checked changes are applied in one call (automerge's cost per call
    // grows with the document: one call per change made a batch quadratic).
    // `later` holds their counters meanwhile.
    let defer = together && *doc_id != DocId::Space;
    let mut later: HashMap<ChangeHash, u64> = HashMap::new();
    // Invariant: hashes cannot form a cycle, so the order holds every change;
    // any left over (never, short of a hash collision) are tried last.
    let mut placed = vec![false; slots.len()];
    order.iter().for_each(|&i| placed[i] = true);
    debug_assert!(placed.iter().all(|p| *p), "a causal order of every change");
    let leftover: Vec<usize> = (0..slots.len()).filter(|&i| !placed[i]).collect();
    for i in order.into_iter().chain(leftover) {
        if overdue() {
            // Nothing of the batch is written yet: the cached document and
            // register are dropped, and the request fails whole.
            evict(inner, space, doc_id);
            return Err(Error::Overdue);
        }
        let Some((c, sig)) = slots.get_mut(i).and_then(Option::take) else { continue };
        let h = c.hash();
        if c.deps().iter().any(|d| held_hashes.contains(d)) {
            held_hashes.insert(h);
            held.push((c, sig));
            continue;
        }
        // Built on a change waiting for the clock: it waits as long.
        let waits_on = {
            let doc = load(inner, space, doc_id)?;
            c.deps()
                .iter()
                .filter(|d| !later.contains_key(*d) && doc.get_change_meta_by_hash(d).is_none())
                .filter_map(|d| waiting_until.get(d))
                .max()
                .copied()
        };
        if let Some(until) = waits_on {
            waiting_until.insert(h, until);
            waiting.push((c, sig, until));
            continue;
        }
        if c.deps().iter().any(|d| refused_hashes.contains(d)) {
            refused_hashes.insert(h);
            refused.push((Some(h), Refusal::Malformed("depends on a refused change".into())));
            continue;
        }
        let doc = load(inner, space, doc_id)?;
        let absent: Vec<ChangeHash> = c
            .deps()
            .iter()
            .filter(|d| missing.contains(*d) || (doc.get_change_meta_by_hash(d).is_none() && !later.contains_key(*d)))
            .copied()
            .collect();
        if !absent.is_empty() {
            // Built on a change kept aside here (a device not known yet, or
            // one cut off by a revocation): kept aside with it.
            let mut stmt =
                inner.conn.prepare_cached("SELECT 1 FROM held WHERE space_id = ?1 AND doc_id = ?2 AND hash = ?3")?;
            let mut on_held = false;
            for d in &absent {
                on_held |= stmt.exists(params![space, did, d.0.to_vec()])?;
            }
            if on_held {
                held_hashes.insert(h);
                held.push((c, sig));
            } else {
                missing.insert(h);
            }
            continue;
        }
        let actor = c.actor_id().to_bytes().to_vec();
        // The actor's last sequence number here and its change's last counter.
        let (last, last_max_op) = match last_seq.get(&actor) {
            Some(s) => *s,
            None => {
                let row: Option<(i64, Vec<u8>)> = inner
                    .conn
                    .prepare_cached(
                        "SELECT seq, hash FROM changes WHERE space_id = ?1 AND doc_id = ?2 AND actor = ?3 ORDER BY seq DESC LIMIT 1",
                    )?
                    .query_row(params![space, did, actor], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?;
                match row {
                    None => (0, 0),
                    Some((seq, hash)) => {
                        let doc = load(inner, space, doc_id)?;
                        let max = ChangeHash::try_from(hash.as_slice())
                            .ok()
                            .and_then(|h| doc.get_change_meta_by_hash(&h))
                            .map(|m| m.max_op)
                            .unwrap_or(0);
                        (u64::try_from(seq).unwrap_or(0), max)
                    }
                }
            }
        };
        let doc = load(inner, space, doc_id)?;
        let max_op =
            |d: &ChangeHash| doc.get_change_meta_by_hash(d).map(|m| m.max_op).or_else(|| later.get(d).copied());
        if let Err(reason) = trust::consistent(max_op, &c, last, last_max_op) {
            refused_hashes.insert(h);
            refused.push((Some(h), reason));
            continue;
        }
        let signed = vouched.contains(&h);
        // Register changes here that this one did not see: when they or it
        // touch rights, its verdict may depend on the order the two are
        // taken in, and the register is recomputed from every change held.
        // Changes of this very batch are taken in the canonical order already
        // (a batch into an empty register, a join, needs no walk at all):
        // only those here before the batch count.
        let unseen: Vec<Change> =
            if *doc_id == DocId::Space && !register_was_empty && !same_heads(&doc.get_heads(), c.deps()) {
                let mut u = contained(|| doc.get_changes(c.deps())).unwrap_or_default();
                u.retain(|x| !merged_here.contains(&x.hash()));
                u
            } else {
                Vec::new()
            };
        if !unseen.is_empty() && !unsettled {
            unsettled = unseen
                .iter()
                .any(|u| contained(|| space::change_writes(doc, u).map(|w| touches_rights(&w))) == Some(Ok(true)));
        }
        let verdict = if *doc_id == DocId::Space {
            contained(|| trust::check_space_change(space, doc, &current, &current, &c, &sig, signed).map(|_| ()))
                .unwrap_or_else(|| Err(Refusal::Malformed("the change is inconsistent with the register".into())))
        } else {
            trust::check_doc_change(space, doc_id, &current, &c, &sig, signed).map(|_| ())
        };
        if let Err(reason) = verdict {
            // Unknown devices wait for the register; a change a revocation cuts
            // off is kept aside, in case that revocation is itself cut off.
            let cut_off = DeviceId::from_actor(c.actor_id()).is_some_and(|d| current.revocation(&d).is_some())
                && signed_ok(space, doc_id, &c, &sig, signed);
            // A register change by a known device refused for rights that a
            // change it did not see may have altered is not final either: it
            // is kept aside for the recomputation, which decides.
            // So is one by a device whose rights a change yet to arrive may
            // have altered concurrently: a coordinator's or admin's, now or
            // when it was cut off.
            let device = DeviceId::from_actor(c.actor_id());
            let ranked = device.is_some_and(|d| {
                current.member_of(&d).is_some_and(|(_, m)| m.is_privileged())
                    || current.revocation(&d).is_some_and(|cut| cut.rank > space::Rank::Member)
            });
            let unsettled_here = *doc_id == DocId::Space
                && (!unseen.is_empty() || ranked)
                && matches!(reason, Refusal::Forbidden(_) | Refusal::NotAWriter(_) | Refusal::RevokedDevice)
                && device.is_some_and(|d| current.member_of(&d).is_some())
                && signed_ok(space, doc_id, &c, &sig, signed);
            if (*doc_id != DocId::Space && reason == Refusal::UnknownDevice) || cut_off || unsettled_here {
                if (cut_off || unsettled_here) && !from_held {
                    refused.push((Some(h), reason));
                }
                held_hashes.insert(h);
                held.push((c, sig));
                continue;
            }
            refused_hashes.insert(h);
            refused.push((Some(h), reason));
            continue;
        }
        // Dated too far ahead of this replica's clock: it waits, valid, for
        // its time (the receiver's clock bounds every time a change attests).
        if c.timestamp() > clock.saturating_add(MAX_AHEAD_MS) {
            let until = c.timestamp() - MAX_AHEAD_MS;
            waiting_until.insert(h, until);
            waiting.push((c, sig, until));
            continue;
        }
        if defer {
            later.insert(h, c.max_op());
            last_seq.insert(actor, (c.seq(), c.max_op()));
            report.accepted.push(h);
            accepted.changes.push((c, sig));
            continue;
        }
        let before = doc.get_heads();
        match contained(|| doc.apply_changes([c.clone()])) {
            None => {
                // The cached document may be half-changed: drop it (and the
                // register, which may be this document) and start again.
                evict(inner, space, doc_id);
                return Ok(Attempt::Panicked(h));
            }
            // An error may leave automerge's state half-changed too: the
            // same as a panic (the change is refused, the document reloaded).
            // So does a change automerge merged but gives back otherwise.
            Some(Err(_)) => {
                evict(inner, space, doc_id);
                return Ok(Attempt::Panicked(h));
            }
            Some(Ok(())) if !rederives(doc, &before, &[h]) || (!together && !reloads(doc)) => {
                evict(inner, space, doc_id);
                return Ok(Attempt::Panicked(h));
            }
            Some(Ok(())) => {}
        }
        last_seq.insert(actor, (c.seq(), c.max_op()));
        if projected(doc_id) {
            // Walking the objects of a hostile change that automerge did
            // merge can still panic inside automerge: refuse it the same way.
            let Some(writes) = contained(|| space::change_writes(doc, &c).unwrap_or_default()) else {
                evict(inner, space, doc_id);
                return Ok(Attempt::Panicked(h));
            };
            if *doc_id == DocId::Space {
                current.refresh(doc, &Touched::from_writes(&writes))?;
                merged_here.insert(h);
                let rights = touches_rights(&writes);
                rights_touched |= rights;
                unsettled |= !unseen.is_empty() && rights;
            }
            accepted.writes.extend(writes);
        }
        report.accepted.push(h);
        accepted.changes.push((c, sig));
    }
    if defer && !accepted.changes.is_empty() {
        let doc = load(inner, space, doc_id)?;
        let all: Vec<Change> = accepted.changes.iter().map(|(c, _)| c.clone()).collect();
        let before = doc.get_heads();
        if !matches!(contained(|| doc.apply_changes(all)), Some(Ok(()))) || !rederives(doc, &before, &report.accepted) {
            evict(inner, space, doc_id);
            return Ok(Attempt::Together);
        }
        if projected(doc_id) {
            // Walking a hostile change's objects can panic inside automerge:
            // then the batch goes again one change at a time, where each
            // walk is contained and the culprit refused.
            let changes = &accepted.changes;
            let walked = contained(|| {
                changes.iter().flat_map(|(c, _)| space::change_writes(doc, c).unwrap_or_default()).collect::<Vec<_>>()
            });
            match walked {
                Some(writes) => accepted.writes.extend(writes),
                None => {
                    evict(inner, space, doc_id);
                    return Ok(Attempt::Together);
                }
            }
        }
    }
    // The document must still load from its own save: automerge merges
    // some ill-formed changes (operations on objects of the wrong kind, say)
    // that it then cannot load. Checked once per batch; when it fails, the
    // batch is merged again one change at a time, each checked, and the
    // culprit refused.
    if !report.accepted.is_empty() && together && !reloads(load(inner, space, doc_id)?) {
        evict(inner, space, doc_id);
        return Ok(Attempt::Together);
    }
    report.missing_deps = missing.into_iter().collect();
    report.missing_deps.sort();
    // Held changes are capped per device, so one device cannot crowd out another's.
    if !held.is_empty() {
        let mut stmt = inner.conn.prepare_cached("SELECT count(*) FROM held WHERE space_id = ?1 AND actor = ?2")?;
        let mut counts: HashMap<Vec<u8>, i64> = HashMap::new();
        let mut keep = Vec::with_capacity(held.len());
        for (c, sig) in held {
            let actor = c.actor_id().to_bytes().to_vec();
            let n = match counts.get(&actor) {
                Some(n) => *n,
                None => stmt.query_row(params![space, actor], |r| r.get(0))?,
            };
            if n >= HELD_PER_DEVICE && !from_held {
                refused.push((Some(c.hash()), Refusal::UnknownDevice));
            } else {
                counts.insert(actor, n + 1);
                keep.push((c, sig));
            }
        }
        held = keep;
    }
    let equivocated = !equivocations.is_empty();
    for (c, _) in &equivocations {
        refused.push((Some(c.hash()), Refusal::Equivocation(c.seq())));
    }
    held.extend(equivocations);
    report.held = held.iter().map(|(c, _)| c.hash()).collect();
    // Waiting changes are capped per device like held ones.
    if !waiting.is_empty() {
        let mut stmt = inner.conn.prepare_cached("SELECT count(*) FROM waiting WHERE space_id = ?1 AND actor = ?2")?;
        let mut counts: HashMap<Vec<u8>, i64> = HashMap::new();
        let mut keep = Vec::with_capacity(waiting.len());
        for (c, sig, until) in waiting {
            let actor = c.actor_id().to_bytes().to_vec();
            let n = match counts.get(&actor) {
                Some(n) => *n,
                None => stmt.query_row(params![space, actor], |r| r.get(0))?,
            };
            if n >= HELD_PER_DEVICE {
                let reason = "dated ahead of this replica's clock, with too many of its device's changes waiting";
                refused.push((Some(c.hash()), Refusal::Malformed(reason.into())));
            } else {
                counts.insert(actor, n + 1);
                report.held.push(c.hash());
                keep.push((c, sig, until));
            }
        }
        waiting = keep;
    }
    let done: Vec<ChangeHash> = if from_held {
        report
            .accepted
            .iter()
            .copied()
            .chain(refused.iter().filter_map(|(h, _)| *h))
            .filter(|h| !held_hashes.contains(h))
            .collect()
    } else {
        Vec::new()
    };
    let outcome = Outcome {
        accepted: &accepted,
        refused: &refused,
        flags: &flags,
        held: &held,
        held_done: &done,
        waiting: &waiting,
    };
    // The query tables are read from the merged document: a walk that
    // panics inside automerge rolls the transaction back, and the batch goes
    // again one change at a time (the last of them refused if it still does).
    match contained(|| persist(inner, space, doc_id, &outcome, Some(&current))) {
        Some(Ok(arrived)) => report.arrived = arrived,
        Some(Err(e)) => {
            evict(inner, space, doc_id);
            return Err(e);
        }
        None => {
            evict(inner, space, doc_id);
            return Ok(match report.accepted.last() {
                Some(h) if !together => Attempt::Panicked(*h),
                _ => Attempt::Together,
            });
        }
    }
    let revocations_after = revocations_before.is_some().then(|| current.revocations());
    inner.views.insert(space.to_string(), current);
    report.refused = refused;
    if equivocated && *doc_id != DocId::Space && rebuild(inner, space, doc_id)? {
        report.also_changed.push(doc_id.clone());
    }
    if *doc_id == DocId::Space && (!report.accepted.is_empty() || !report.held.is_empty()) {
        // What counts in the register is a function of the changes held —
        // merged or kept aside — not of their order: when revocations change,
        // or this batch kept register changes aside, it is recomputed.
        let kept_aside = !report.held.is_empty();
        // Register changes kept aside earlier were not seen by this batch
        // either: a change of rights may give one of them its place.
        let aside_before = rights_touched
            && inner
                .conn
                .prepare_cached("SELECT 1 FROM held WHERE space_id = ?1 AND doc_id = ?2 LIMIT 1")?
                .exists(params![space, did])?;
        if let (Some(before), Some(after)) = (revocations_before, revocations_after)
            && (before != after || kept_aside || unsettled || aside_before)
        {
            report.also_changed = rebuild_revoked(inner, space, &before)?;
        }
        report.also_changed.extend(retry_held(inner, space)?);
    } else if !from_held && !report.accepted.is_empty() {
        // A change kept aside for a dependency kept aside may also have
        // waited on one this batch brought: it goes again now, or it would
        // stay aside on this replica while one that met the changes in
        // another order merged it.
        let r = retry_waiting(inner, space, doc_id, &report.accepted)?;
        report.accepted.extend(r.accepted);
        report.arrived.extend(r.arrived);
    }
    Ok(Attempt::Done(report))
}

/// Try again the changes of `doc_id` kept aside that depend on one of
/// `accepted` (just merged): those kept aside on a change still aside stay.
fn retry_waiting(inner: &mut Inner, space: &str, doc_id: &DocId, accepted: &[ChangeHash]) -> Result<ApplyReport> {
    let did = doc_id.to_string();
    let rows: Vec<(Vec<u8>, Vec<u8>)> = {
        let mut stmt = inner
            .conn
            .prepare_cached("SELECT bytes, signature FROM held WHERE space_id = ?1 AND doc_id = ?2 ORDER BY at")?;
        let rows = stmt.query_map(params![space, did], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    let just: HashSet<&ChangeHash> = accepted.iter().collect();
    let changes: Vec<(Change, Vec<u8>)> =
        rows.into_iter().filter_map(|(bytes, sig)| trust::parse_change(&bytes).ok().map(|c| (c, sig))).collect();
    if !changes.iter().any(|(c, _)| c.deps().iter().any(|d| just.contains(d))) {
        return Ok(ApplyReport::default());
    }
    merge_guarded(inner, space, doc_id, changes, Vec::new(), true)
}

/// The register's revocations changed (a revocation, removal or demotion
/// became known here, or one was itself cut off): every document a device
/// with a changed cut has written is rebuilt, so that what counts is a
/// function of the changes held, not of the order they came in. A change
/// cut off is kept aside (in `held`), not forgotten, so that it counts
/// again should the revocation that cut it off be undone. The register is
/// rebuilt first; the rest are then judged against it.
fn rebuild_revoked(
    inner: &mut Inner,
    space: &str,
    before: &BTreeMap<DeviceId, (space::Cut, Option<space::Rank>)>,
) -> Result<Vec<DocId>> {
    let devices_before: BTreeSet<DeviceId> = view(inner, space)?.device_ids().collect();
    let mut rebuilt = Vec::new();
    if rebuild(inner, space, &DocId::Space)? {
        rebuilt.push(DocId::Space);
    }
    let v = view(inner, space)?;
    let after = v.revocations();
    let devices_after: BTreeSet<DeviceId> = v.device_ids().collect();
    let mut affected: BTreeSet<DeviceId> =
        before.keys().chain(after.keys()).filter(|d| before.get(*d) != after.get(*d)).copied().collect();
    affected.extend(devices_before.symmetric_difference(&devices_after).copied());
    let mut docs: BTreeSet<String> = BTreeSet::new();
    for sql in [
        "SELECT DISTINCT doc_id FROM changes WHERE space_id = ?1 AND actor = ?2",
        "SELECT DISTINCT doc_id FROM held WHERE space_id = ?1 AND actor = ?2",
    ] {
        let mut stmt = inner.conn.prepare_cached(sql)?;
        for d in &affected {
            let rows = stmt.query_map(params![space, d.0.to_vec()], |r| r.get::<_, String>(0))?;
            for row in rows {
                docs.insert(row?);
            }
        }
    }
    for d in docs.iter().filter_map(|d| d.parse::<DocId>().ok()).filter(|d| *d != DocId::Space) {
        if rebuild(inner, space, &d)? {
            rebuilt.push(d);
        }
    }
    Ok(rebuilt)
}

/// One replay of a document's changes, each judged again (signatures were
/// checked on arrival) against `revocations`.
struct Replay {
    doc: Automerge,
    view: SpaceView,
    kept: Vec<(Change, Vec<u8>)>,
    dropped: Vec<(Change, Vec<u8>, Refusal)>,
}

/// Replay a document from `changes` in canonical order, each judged by the
/// revocations of `judge` — or, without one, by those of the register as
/// replayed so far (the register's first pass).
fn replay(space: &str, doc_id: &DocId, changes: &[(Change, Vec<u8>)], judge: Option<&SpaceView>) -> Result<Replay> {
    // A change automerge merges but does not give back the same (see
    // `rederives`) spoils the document it went into: start again without it.
    // So does one after which the document does not load from its save:
    // checked once at the end, then change by change to find it.
    let mut spoilers: HashSet<ChangeHash> = HashSet::new();
    let mut careful = false;
    loop {
        match replay_once(space, doc_id, changes, judge, &spoilers, careful)? {
            Ok(r) if careful || reloads(&r.doc) => return Ok(r),
            Ok(_) => careful = true,
            Err(h) if spoilers.insert(h) => {}
            Err(_) => return Err(Error::Internal("a replay did not settle".into())),
        }
    }
}

/// The changes `head` depends on, directly or not, among `changes`.
fn causal_past(changes: &HashMap<ChangeHash, &Change>, head: ChangeHash) -> HashSet<ChangeHash> {
    let mut past = HashSet::new();
    let mut stack = vec![head];
    while let Some(h) = stack.pop() {
        let Some(c) = changes.get(&h) else { continue };
        for d in c.deps() {
            if past.insert(*d) {
                stack.push(*d);
            }
        }
    }
    past
}

fn replay_once(
    space: &str,
    doc_id: &DocId,
    changes: &[(Change, Vec<u8>)],
    judge: Option<&SpaceView>,
    spoilers: &HashSet<ChangeHash>,
    careful: bool,
) -> Result<std::result::Result<Replay, ChangeHash>> {
    let mut r = Replay { doc: Automerge::new(), view: SpaceView::default(), kept: Vec::new(), dropped: Vec::new() };
    let mut gone: HashSet<ChangeHash> = HashSet::new();
    let mut numbered: HashSet<(Vec<u8>, u64)> = HashSet::new();
    // Each actor's last kept sequence number and counter: a replay checks
    // what a merge checks (a change kept aside as one half of a pair was
    // never checked for it).
    let mut last_seq: HashMap<Vec<u8>, (u64, u64)> = HashMap::new();
    let did = doc_id.to_string();
    let by_hash: HashMap<ChangeHash, &Change> = changes.iter().map(|(c, _)| (c.hash(), c)).collect();
    let mut pasts: HashMap<ChangeHash, HashSet<ChangeHash>> = HashMap::new();
    for i in causal_order(changes) {
        let (c, sig) = &changes[i];
        let h = c.hash();
        // Two changes with one sequence number: the first in the canonical
        // order that can stand wins; the other and what depends on it go.
        let number = (c.actor_id().to_bytes().to_vec(), c.seq());
        if numbered.contains(&number) {
            gone.insert(h);
            r.dropped.push((c.clone(), sig.clone(), Refusal::Equivocation(c.seq())));
            continue;
        }
        if c.deps().iter().any(|d| gone.contains(d) || r.doc.get_change_meta_by_hash(d).is_none()) {
            gone.insert(h);
            r.dropped.push((
                c.clone(),
                sig.clone(),
                Refusal::Malformed("depends on a change cut off by a revocation".into()),
            ));
            continue;
        }
        let actor = c.actor_id().to_bytes().to_vec();
        let (last, last_max_op) = last_seq.get(&actor).copied().unwrap_or((0, 0));
        let max_op = |d: &ChangeHash| r.doc.get_change_meta_by_hash(d).map(|m| m.max_op);
        if let Err(reason) = trust::consistent(max_op, c, last, last_max_op) {
            gone.insert(h);
            r.dropped.push((c.clone(), sig.clone(), reason));
            continue;
        }
        let revocations = judge.unwrap_or(&r.view);
        // Below its cut's number, a revoked device's change counts only in
        // the causal past of the change the cut names, when that one is
        // here: the other half of a pair it equivocated lower down cannot
        // stand in place of the half the revoker had seen.
        let outside = DeviceId::from_actor(c.actor_id())
            .filter(|d| revocations.revoked(d))
            .and_then(|d| revocations.revocation(&d))
            .and_then(|cut| cut.names(&did))
            .is_some_and(|(seq, last)| {
                c.seq() < seq
                    && by_hash.contains_key(&last)
                    && !pasts.entry(last).or_insert_with(|| causal_past(&by_hash, last)).contains(&h)
            });
        let verdict = if outside {
            Err(Refusal::RevokedDevice)
        } else if *doc_id == DocId::Space {
            let (doc, view) = (&r.doc, &r.view);
            contained(|| trust::check_space_change(space, doc, view, revocations, c, &[], true).map(|_| ()))
                .unwrap_or_else(|| Err(Refusal::Malformed("the change is inconsistent with the register".into())))
        } else {
            trust::check_doc_change(space, doc_id, revocations, c, &[], true).map(|_| ())
        };
        let verdict = if spoilers.contains(&h) {
            Err(Refusal::Malformed("the change is inconsistent with the document".into()))
        } else {
            verdict
        };
        let doc = &mut r.doc;
        let before = doc.get_heads();
        if verdict.is_ok() {
            // A change automerge fails on may leave the document half-changed:
            // the replay starts again without it.
            let applied = matches!(contained(|| doc.apply_changes([c.clone()])), Some(Ok(())));
            if !applied || !rederives(&r.doc, &before, &[h]) || (careful && !reloads(&r.doc)) {
                return Ok(Err(h));
            }
        }
        if let Err(reason) = verdict {
            gone.insert(h);
            r.dropped.push((c.clone(), sig.clone(), reason));
            continue;
        }
        numbered.insert(number);
        last_seq.insert(actor, (c.seq(), c.max_op()));
        if *doc_id == DocId::Space {
            let writes = space::change_writes(&r.doc, c).unwrap_or_default();
            r.view.refresh(&r.doc, &Touched::from_writes(&writes))?;
        }
        r.kept.push((c.clone(), sig.clone()));
    }
    Ok(Ok(r))
}

/// Rebuild one document from every change this store holds of it — merged
/// or kept aside — judged again against the register. For the register
/// itself the revocations it is judged against are those of its own result,
/// found by iterating from the register of every change (a fixed point, in
/// a few rounds at most; bounded, and the same on every replica holding the
/// same changes). Returns whether anything changed. Writes the new snapshot,
/// the changes' rows (dropped ones kept aside in `held`, reinstated ones
/// given arrival numbers) and the query tables, in one transaction.
fn rebuild(inner: &mut Inner, space: &str, doc_id: &DocId) -> Result<bool> {
    let did = doc_id.to_string();
    let old = load(inner, space, doc_id)?.clone();
    let Some(merged) = contained(|| old.get_changes(&[])) else {
        // A document automerge cannot list: leave it as merged.
        return Ok(false);
    };
    let mut all: Vec<(Change, Vec<u8>)> = Vec::new();
    {
        let mut sig = inner.conn.prepare_cached(
            "SELECT signature FROM changes WHERE space_id = ?1 AND doc_id = ?2 AND actor = ?3 AND seq = ?4",
        )?;
        for c in merged {
            let s: Option<Vec<u8>> = sig
                .query_row(params![space, did, c.actor_id().to_bytes(), seq_sql(c.seq())], |r| r.get(0))
                .optional()?;
            all.push((c, s.unwrap_or_default()));
        }
        let mut held =
            inner.conn.prepare_cached("SELECT bytes, signature FROM held WHERE space_id = ?1 AND doc_id = ?2")?;
        let rows = held.query_map(params![space, did], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?)))?;
        for row in rows {
            let (bytes, s) = row?;
            if let Ok(c) = trust::parse_change(&bytes)
                && old.get_change_meta_by_hash(&c.hash()).is_none()
            {
                all.push((c, s));
            }
        }
    }
    // A change kept aside that is dated too far ahead is no candidate: it
    // waits for its time like any other (and is judged again then).
    let limit = now_ms().saturating_add(MAX_AHEAD_MS);
    let ahead = |c: &Change| c.timestamp() > limit && old.get_change_meta_by_hash(&c.hash()).is_none();
    if all.iter().any(|(c, _)| ahead(c)) {
        let tx = inner.conn.transaction()?;
        {
            let mut wait = tx.prepare_cached(
                "INSERT OR IGNORE INTO waiting (space_id, doc_id, hash, bytes, signature, actor, until)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            let mut unheld = tx.prepare_cached("DELETE FROM held WHERE space_id = ?1 AND doc_id = ?2 AND hash = ?3")?;
            for (c, sig) in all.iter().filter(|(c, _)| ahead(c)) {
                let h = c.hash().0.to_vec();
                let until = c.timestamp() - MAX_AHEAD_MS;
                wait.execute(params![space, did, h, c.raw_bytes(), sig, c.actor_id().to_bytes(), until])?;
                unheld.execute(params![space, did, h])?;
            }
        }
        tx.commit()?;
        all.retain(|(c, _)| !ahead(c));
    }
    let mut result = if *doc_id == DocId::Space {
        // First take the changes in canonical order, each judged by the
        // revocations taken before it: of two admins cutting each other off,
        // the first in that order stands and the other's cut is beyond it.
        // Then judge every change by the revocations that pass yields, until
        // they are those of the result: a revoked device's changes that came
        // before its revocation in that order, but beyond its cut, go.
        let mut r = replay(space, doc_id, &all, None)?;
        for _ in 0..4 {
            let revocations = SpaceView::read(&r.doc)?;
            let next = replay(space, doc_id, &all, Some(&revocations))?;
            let settled = SpaceView::read(&next.doc)?.revocations() == revocations.revocations();
            r = next;
            if settled {
                break;
            }
        }
        r
    } else {
        let revocations = view(inner, space)?.clone();
        replay(space, doc_id, &all, Some(&revocations))?
    };
    let had: HashSet<ChangeHash> = old.get_heads().into_iter().collect();
    let now: HashSet<ChangeHash> = result.doc.get_heads().into_iter().collect();
    if had == now {
        return Ok(false);
    }
    if *doc_id == DocId::Space {
        result.view = SpaceView::read(&result.doc)?;
    }
    let before_view = if *doc_id == DocId::Space { SpaceView::read(&old)? } else { SpaceView::default() };
    let keys = |d: &Automerge| d.keys(ROOT).collect::<BTreeSet<String>>();
    let (old_keys, new_keys) = (keys(&old), keys(&result.doc));
    let gone_keys: BTreeSet<String> = old_keys.difference(&new_keys).cloned().collect();
    let writes: Vec<Write> =
        old_keys.union(&new_keys).map(|k| Write { path: vec![k.clone()], delete: false }).collect();
    let merged_before = |h: &ChangeHash| old.get_change_meta_by_hash(h).is_some();
    let dropped: Vec<&(Change, Vec<u8>, Refusal)> =
        result.dropped.iter().filter(|(c, _, _)| merged_before(&c.hash())).collect();
    let reinstated: Vec<&(Change, Vec<u8>)> = result.kept.iter().filter(|(c, _)| !merged_before(&c.hash())).collect();
    let receipts: Vec<Vec<u8>> = dropped.iter().map(|(c, _, _)| c.hash().0.to_vec()).collect();
    let refused: Vec<(Option<ChangeHash>, Refusal)> =
        dropped.iter().map(|(c, _, r)| (Some(c.hash()), r.clone())).collect();
    {
        let tx = inner.conn.transaction()?;
        tx.prepare_cached("UPDATE docs SET snapshot = ?3, compacted_at = ?4 WHERE space_id = ?1 AND doc_id = ?2")?
            .execute(params![space, did, result.doc.save(), now_ms()])?;
        tx.prepare_cached("DELETE FROM chunks WHERE space_id = ?1 AND doc_id = ?2")?.execute(params![space, did])?;
        if !dropped.is_empty() {
            keep_high_water(&tx, space)?;
        }
        {
            let mut del = tx.prepare_cached(
                "DELETE FROM changes WHERE space_id = ?1 AND doc_id = ?2 AND actor = ?3 AND seq = ?4",
            )?;
            for (c, _, _) in &dropped {
                del.execute(params![space, did, c.actor_id().to_bytes(), seq_sql(c.seq())])?;
            }
        }
        hold_rows(&tx, space, &did, dropped.iter().map(|(c, sig, _)| (c, sig)))?;
        add_change_rows(&tx, space, &did, reinstated.iter().map(|(c, sig)| (c, sig)))?;
        {
            let mut unheld = tx.prepare_cached("DELETE FROM held WHERE space_id = ?1 AND doc_id = ?2 AND hash = ?3")?;
            for (c, _) in &reinstated {
                unheld.execute(params![space, did, c.hash().0.to_vec()])?;
            }
        }
        record_refusals(&tx, space, doc_id, &refused, None)?;
        project::forget(&tx, space, doc_id, &gone_keys, &receipts)?;
        match doc_id {
            DocId::Space => project::space(&tx, space, &result.view, &Touched::everything(&before_view, &result.view))?,
            DocId::Index { .. } => project::index(&tx, space, &result.doc, &writes)?,
            DocId::Own { member, part, .. } => project::own(&tx, space, member, part, &result.doc, &writes)?,
            DocId::Item { item } => project::item(&tx, space, item, &result.doc, &writes)?,
            DocId::Results { .. } => {}
        }
        tx.commit()?;
    }
    evict(inner, space, doc_id);
    inner.docs.insert((space.to_string(), did), result.doc);
    if *doc_id == DocId::Space {
        inner.views.insert(space.to_string(), result.view);
    }
    Ok(true)
}

/// Merge the changes of a space that waited for the clock and whose time
/// has come. Returns the documents that took some of them. They leave
/// `waiting` once merged (or refused): a crash in between merges them again
/// as duplicates.
fn release_due(inner: &mut Inner, space: &str) -> Result<Vec<DocId>> {
    let now = now_ms();
    // Each due document's changes; a row that no longer parses just goes.
    let mut by_doc: BTreeMap<String, Vec<(Change, Vec<u8>)>> = BTreeMap::new();
    let mut unparsable: Vec<(String, Vec<u8>)> = Vec::new();
    {
        let mut stmt = inner.conn.prepare_cached(
            "SELECT doc_id, hash, bytes, signature FROM waiting WHERE space_id = ?1 AND until <= ?2 ORDER BY until",
        )?;
        let mut rows = stmt.query(params![space, now])?;
        while let Some(r) = rows.next()? {
            let (doc, hash, bytes): (String, Vec<u8>, Vec<u8>) = (r.get(0)?, r.get(1)?, r.get(2)?);
            match trust::parse_change(&bytes) {
                Ok(c) => by_doc.entry(doc).or_default().push((c, r.get(3)?)),
                Err(_) => unparsable.push((doc, hash)),
            }
        }
    }
    if by_doc.is_empty() && unparsable.is_empty() {
        return Ok(Vec::new());
    }
    let forget = "DELETE FROM waiting WHERE space_id = ?1 AND doc_id = ?2 AND hash = ?3";
    for (doc, hash) in &unparsable {
        inner.conn.prepare_cached(forget)?.execute(params![space, doc, hash])?;
    }
    // The register first: the rest are judged against it.
    let space_doc = DocId::Space.to_string();
    let mut docs: Vec<String> = by_doc.keys().cloned().collect();
    docs.sort_by_key(|d| *d != space_doc);
    let mut changed = Vec::new();
    for doc in docs {
        let changes = by_doc.remove(&doc).unwrap_or_default();
        let Ok(doc_id) = doc.parse::<DocId>() else { continue };
        let hashes: Vec<ChangeHash> = changes.iter().map(|(c, _)| c.hash()).collect();
        inner.releasing = true;
        let r = merge_guarded(inner, space, &doc_id, changes, Vec::new(), false);
        inner.releasing = false;
        let r = r?;
        // Those still kept aside (built on a change not due yet, or a device
        // the register does not know) stay; the rest were merged or refused.
        let mut stmt = inner.conn.prepare_cached(forget)?;
        for h in hashes.iter().filter(|h| !r.held.contains(h)) {
            stmt.execute(params![space, doc, h.0.to_vec()])?;
        }
        if !r.accepted.is_empty() {
            changed.push(doc_id);
        }
        changed.extend(r.also_changed);
    }
    Ok(changed)
}

/// Try the held changes of a space again (the register just changed).
/// Returns the documents that took some of them. A held change leaves the
/// `held` table only in the transaction that merges or refuses it.
fn retry_held(inner: &mut Inner, space: &str) -> Result<Vec<DocId>> {
    let rows: Vec<(String, Vec<u8>, Vec<u8>)> = {
        let mut stmt =
            inner.conn.prepare_cached("SELECT doc_id, bytes, signature FROM held WHERE space_id = ?1 ORDER BY at")?;
        let rows = stmt.query_map([space], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let mut by_doc: BTreeMap<String, Vec<(Change, Vec<u8>)>> = BTreeMap::new();
    for (doc, bytes, sig) in rows {
        if let Ok(c) = trust::parse_change(&bytes) {
            by_doc.entry(doc).or_default().push((c, sig));
        }
    }
    let mut changed = Vec::new();
    for (doc, changes) in by_doc {
        let Ok(doc_id) = doc.parse::<DocId>() else { continue };
        if doc_id == DocId::Space {
            continue;
        }
        // Still-unknown devices stay held.
        let r = merge_guarded(inner, space, &doc_id, changes, Vec::new(), true)?;
        if !r.accepted.is_empty() {
            changed.push(doc_id);
        }
    }
    Ok(changed)
}

/// Whether two sets of heads are the same.
fn same_heads(a: &[ChangeHash], b: &[ChangeHash]) -> bool {
    a.len() == b.len() && a.iter().all(|h| b.contains(h))
}

/// Whether register writes touch what a verdict rests on: a member's roles,
/// status or devices (revocations and cuts among them).
fn touches_rights(writes: &[Write]) -> bool {
    writes.iter().any(|w| {
        let p: Vec<&str> = w.path.iter().map(String::as_str).collect();
        match p.as_slice() {
            ["members", _] => w.delete,
            ["members", _, "roles" | "status" | "removed_at", ..] => true,
            // A device added is no change of rights; its revocation or cut is.
            ["members", _, "devices", _, "revoked_at" | "cut", ..] => true,
            ["members", _, "devices", _] | ["members", _, "devices"] => w.delete,
            _ => false,
        }
    })
}

/// Whether a change carries its actor's valid signature (or is vouched for).
fn signed_ok(space: &str, doc_id: &DocId, c: &Change, sig: &[u8], vouched: bool) -> bool {
    vouched || trust::signer(space, doc_id, c, sig).is_ok()
}

/// Changes of a batch whose signature need not be checked one by one: for
/// each actor, the signature of its latest change in the batch is verified,
/// and every earlier change of that actor it reaches through its deps is
/// vouched for by that one signature (a hash commits to its whole history).
fn vouch(space: &str, doc_id: &DocId, batch: &[(Change, Vec<u8>)]) -> HashSet<ChangeHash> {
    let by_hash: HashMap<ChangeHash, &Change> = batch.iter().map(|(c, _)| (c.hash(), c)).collect();
    let mut latest: HashMap<&automerge::ActorId, (&Change, &[u8])> = HashMap::new();
    for (c, sig) in batch {
        let e = latest.entry(c.actor_id()).or_insert((c, sig));
        if c.seq() > e.0.seq() {
            *e = (c, sig);
        }
    }
    let mut vouched = HashSet::new();
    for (actor, (head, sig)) in latest {
        if trust::signer(space, doc_id, head, sig).is_err() {
            continue;
        }
        let mut stack = vec![head.hash()];
        let mut seen = HashSet::new();
        while let Some(h) = stack.pop() {
            if !seen.insert(h) {
                continue;
            }
            let Some(c) = by_hash.get(&h) else { continue };
            if c.actor_id() == actor {
                vouched.insert(h);
            }
            stack.extend(c.deps().iter().copied());
        }
    }
    vouched
}

/// Everything one merge decided, written together.
struct Outcome<'a> {
    accepted: &'a Accepted,
    refused: &'a [(Option<ChangeHash>, Refusal)],
    flags: &'a [(Vec<u8>, ChangeHash)],
    /// Changes to hold (from devices the register does not know yet).
    held: &'a [(Change, Vec<u8>)],
    /// Held changes this merge took or refused, to drop from `held`.
    held_done: &'a [ChangeHash],
    /// Changes to keep until the clock reaches them, and until when.
    waiting: &'a [(Change, Vec<u8>, i64)],
}

/// Record refusals under the device that sent them (`sender`; `None` for
/// this store's own work): the first [`REFUSALS_RECORDED`] of a batch one by
/// one, the rest as one summary row — and nothing once that sender has
/// [`REFUSALS_PER_DEVICE_MINUTE`] rows in the last minute — so a flood of
/// bad changes cannot flood the audit trail, nor crowd out another sender's.
fn record_refusals(
    conn: &Connection,
    space: &str,
    doc_id: &DocId,
    refused: &[(Option<ChangeHash>, Refusal)],
    sender: Option<&[u8]>,
) -> Result<()> {
    if refused.is_empty() {
        return Ok(());
    }
    let now = now_ms();
    let recent: i64 = conn
        .prepare_cached("SELECT count(*) FROM refusals WHERE space_id = ?1 AND actor IS ?2 AND at > ?3")?
        .query_row(params![space, sender, now - 60_000], |r| r.get(0))?;
    if recent >= REFUSALS_PER_DEVICE_MINUTE {
        return Ok(());
    }
    let mut stmt = conn.prepare_cached(
        "INSERT INTO refusals (space_id, doc_id, hash, actor, reason, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    let did = doc_id.to_string();
    for (h, r) in refused.iter().take(REFUSALS_RECORDED) {
        stmt.execute(params![space, did, h.map(|h| h.0.to_vec()), sender, r.to_string(), now])?;
    }
    if refused.len() > REFUSALS_RECORDED {
        let more = format!("{} more changes of this batch were refused", refused.len() - REFUSALS_RECORDED);
        stmt.execute(params![space, did, None::<Vec<u8>>, sender, more, now])?;
    }
    Ok(())
}

fn record_flags(conn: &Connection, space: &str, flags: &[(Vec<u8>, ChangeHash)]) -> Result<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT OR IGNORE INTO flags (space_id, device, reason, evidence, at) VALUES (?1, ?2, 'equivocation', ?3, ?4)",
    )?;
    for (device, evidence) in flags {
        stmt.execute(params![space, device, evidence.0.to_vec(), now_ms()])?;
    }
    Ok(())
}

/// Write what a merge decided in one SQLite transaction: the accepted
/// changes as one chunk with their signatures and the query-table updates,
/// the refusals, flags and held changes. Compacts when due.
fn persist(
    inner: &mut Inner,
    space: &str,
    doc_id: &DocId,
    outcome: &Outcome<'_>,
    view: Option<&SpaceView>,
) -> Result<Vec<u64>> {
    let Inner { conn, docs, sender, .. } = inner;
    let did = doc_id.to_string();
    let tx = conn.transaction()?;
    record_refusals(&tx, space, doc_id, outcome.refused, sender.as_ref().map(|d| d.0.as_slice()))?;
    record_flags(&tx, space, outcome.flags)?;
    hold_rows(&tx, space, &did, outcome.held.iter().map(|(c, sig)| (c, sig)))?;
    if !outcome.waiting.is_empty() {
        let mut stmt = tx.prepare_cached(
            "INSERT OR IGNORE INTO waiting (space_id, doc_id, hash, bytes, signature, actor, until)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for (c, sig, until) in outcome.waiting {
            stmt.execute(params![space, did, c.hash().0.to_vec(), c.raw_bytes(), sig, c.actor_id().to_bytes(), until])?;
        }
    }
    if !outcome.held_done.is_empty() {
        let mut stmt = tx.prepare_cached("DELETE FROM held WHERE space_id = ?1 AND doc_id = ?2 AND hash = ?3")?;
        for h in outcome.held_done {
            stmt.execute(params![space, did, h.0.to_vec()])?;
        }
    }
    let accepted = outcome.accepted;
    let arrived = if accepted.changes.is_empty() {
        Vec::new()
    } else {
        let doc =
            docs.get(&(space.to_string(), did.clone())).ok_or_else(|| Error::Internal("document not loaded".into()))?;
        write_changes(&tx, space, doc_id, doc, accepted, view)?
    };
    tx.commit()?;
    Ok(arrived)
}

/// Append accepted changes to a document inside `tx`: one chunk (or a new
/// snapshot when compaction is due), their signature rows with arrival
/// numbers, and the query-table updates derived from them.
fn write_changes(
    tx: &Connection,
    space: &str,
    doc_id: &DocId,
    doc: &Automerge,
    accepted: &Accepted,
    view: Option<&SpaceView>,
) -> Result<Vec<u64>> {
    let did = doc_id.to_string();
    tx.prepare_cached(
        "INSERT OR IGNORE INTO docs (space_id, doc_id, kind, snapshot, compacted_at) VALUES (?1, ?2, ?3, x'', 0)",
    )?
    .execute(params![space, did, doc_id.kind()])?;
    let next: i64 = tx
        .prepare_cached("SELECT coalesce(max(seq) + 1, 0) FROM chunks WHERE space_id = ?1 AND doc_id = ?2")?
        .query_row(params![space, did], |r| r.get(0))?;
    if next + 1 >= COMPACT_AFTER {
        // Invariant: snapshot + chunks always load to the merged document;
        // here the chunks are folded into the snapshot in the same transaction.
        tx.prepare_cached("DELETE FROM chunks WHERE space_id = ?1 AND doc_id = ?2")?.execute(params![space, did])?;
        tx.prepare_cached("UPDATE docs SET snapshot = ?3, compacted_at = ?4 WHERE space_id = ?1 AND doc_id = ?2")?
            .execute(params![space, did, doc.save(), now_ms()])?;
    } else {
        let mut bytes = Vec::new();
        for (c, _) in &accepted.changes {
            bytes.extend_from_slice(c.raw_bytes());
        }
        tx.prepare_cached("INSERT INTO chunks (space_id, doc_id, seq, bytes) VALUES (?1, ?2, ?3, ?4)")?
            .execute(params![space, did, next, bytes])?;
    }
    let arrived = add_change_rows(tx, space, &did, accepted.changes.iter().map(|(c, sig)| (c, sig)))?;
    match doc_id {
        DocId::Space => {
            let v = view.ok_or_else(|| Error::Internal("the register is needed to project the space".into()))?;
            project::space(tx, space, v, &Touched::from_writes(&accepted.writes))?;
        }
        DocId::Index { .. } => project::index(tx, space, doc, &accepted.writes)?,
        DocId::Own { member, part, .. } => project::own(tx, space, member, part, doc, &accepted.writes)?,
        DocId::Item { item } => project::item(tx, space, item, doc, &accepted.writes)?,
        _ => {}
    }
    Ok(arrived)
}

/// Re-sign this device's own version-1 signatures as version 2 (the store
/// holds its key). Returns whether version-1 signatures of other devices
/// remain, which only a peer holding their version-2 signature can replace.
fn resign_own(conn: &mut Connection, key: &DeviceKey) -> Result<bool> {
    let legacy: bool = conn.prepare("SELECT 1 FROM changes WHERE sig_version = 1")?.exists([])?;
    if !legacy {
        return Ok(false);
    }
    let rows: Vec<(String, String, Vec<u8>, i64)> = {
        let mut stmt =
            conn.prepare("SELECT space_id, doc_id, hash, seq FROM changes WHERE sig_version = 1 AND actor = ?1")?;
        let rows = stmt.query_map([key.id().0.to_vec()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    let tx = conn.transaction()?;
    {
        let mut stmt = tx.prepare(
            "UPDATE changes SET signature = ?5, sig_version = 2 WHERE space_id = ?1 AND doc_id = ?2 AND actor = ?3 AND seq = ?4",
        )?;
        for (space, doc, hash, seq) in rows {
            let (Ok(doc_id), Ok(hash)) = (doc.parse::<DocId>(), ChangeHash::try_from(hash.as_slice())) else {
                continue;
            };
            let sig = key.sign_change(&space, &doc_id, &hash);
            stmt.execute(params![space, doc, key.id().0.to_vec(), seq, sig.to_vec()])?;
        }
    }
    tx.commit()?;
    Ok(conn.prepare("SELECT 1 FROM changes WHERE sig_version = 1")?.exists([])?)
}

/// Keep a version-2 signature a peer offers for a change stored here with a
/// version-1 one.
fn upgrade_signatures(conn: &Connection, space: &str, doc_id: &DocId, offered: &[(&Change, &Vec<u8>)]) -> Result<()> {
    let mut stmt = conn.prepare_cached(
        "UPDATE changes SET signature = ?5, sig_version = 2
         WHERE space_id = ?1 AND doc_id = ?2 AND actor = ?3 AND seq = ?4 AND sig_version = 1",
    )?;
    for (c, sig) in offered {
        if trust::signer(space, doc_id, c, sig).is_ok() {
            stmt.execute(params![space, doc_id.to_string(), c.actor_id().to_bytes(), seq_sql(c.seq()), sig])?;
        }
    }
    Ok(())
}

/// Give merged changes their rows in `changes`, with the next arrival
/// numbers of the space's feed; returns those numbers.
/// Who besides coordinators may read a document's changes, as stored in
/// `changes.reader`: '' for every member.
fn reader_of(did: &str) -> String {
    match did.parse::<DocId>().map(|d| d.readers()) {
        Ok(crate::doc::Readers::MemberAndCoordinators(m)) => m,
        _ => String::new(),
    }
}

fn add_change_rows<'a>(
    tx: &Connection,
    space: &str,
    did: &str,
    changes: impl Iterator<Item = (&'a Change, &'a Vec<u8>)>,
) -> Result<Vec<u64>> {
    let mut next = max_arrived(tx, space)?;
    let reader = reader_of(did);
    let mut stmt = tx.prepare_cached(
        "INSERT INTO changes (space_id, doc_id, actor, seq, hash, signature, arrived, sig_version, reader)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 2, ?8)",
    )?;
    let mut arrived = Vec::new();
    for (c, sig) in changes {
        next += 1;
        stmt.execute(params![
            space,
            did,
            c.actor_id().to_bytes(),
            seq_sql(c.seq()),
            c.hash().0.to_vec(),
            sig,
            seq_sql(next),
            reader
        ])?;
        arrived.push(next);
    }
    Ok(arrived)
}

/// Before rows leave `changes`, keep the highest arrival number given, so
/// that none is given again (see `max_arrived`).
fn keep_high_water(tx: &Connection, space: &str) -> Result<()> {
    let last = max_arrived(tx, space)?;
    tx.prepare_cached(
        "INSERT INTO arrivals (space_id, last) VALUES (?1, ?2)
         ON CONFLICT (space_id) DO UPDATE SET last = max(last, excluded.last)",
    )?
    .execute(params![space, seq_sql(last)])?;
    Ok(())
}

/// Keep changes aside in `held` (a device not known yet, a change cut off
/// by a revocation, one half of an equivocating pair).
fn hold_rows<'a>(
    tx: &Connection,
    space: &str,
    did: &str,
    changes: impl Iterator<Item = (&'a Change, &'a Vec<u8>)>,
) -> Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT OR IGNORE INTO held (space_id, doc_id, hash, bytes, signature, at, actor) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for (c, sig) in changes {
        stmt.execute(params![space, did, c.hash().0.to_vec(), c.raw_bytes(), sig, now_ms(), c.actor_id().to_bytes()])?;
    }
    Ok(())
}

/// Sequence numbers are stored as SQLite integers.
fn seq_sql(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

/// The root keys a batch wrote.
pub(crate) fn root_keys(writes: &[Write]) -> BTreeSet<String> {
    writes.iter().filter_map(|w| w.path.first().cloned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_year_from_milliseconds() {
        assert_eq!(year_of(0), 2000); // 1970 clamps to the index's floor
        assert_eq!(year_of(1_767_225_600_000), 2026); // 2026-01-01T00:00Z
        assert_eq!(year_of(1_767_225_599_999), 2025);
        assert_eq!(year_of(1_709_164_800_000), 2024); // 2024-02-29
        assert_eq!(iso_utc(1_709_164_800_000 + 3_661_000), "2024-02-29T01:01:01Z");
        assert_eq!(iso_utc(1_767_225_599_999), "2025-12-31T23:59:59Z");
    }

    #[test]
    fn version_1_signatures_are_re_signed_when_the_store_opens_and_never_served() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("linli.db");
        let (space, member) = {
            let store = Store::open(&path).expect("open");
            let space = store.create_space("s", "a").expect("space");
            let me = store.my_member(&space).expect("me");
            store.write(&space, &DocId::own_public(&me, "2026"), |tx| Ok(tx.put(ROOT, "k", 1)?)).expect("write");
            (space, me)
        };
        // As a store made before version 2 left them, with a stranger's row too.
        {
            let conn = Connection::open(&path).expect("raw");
            conn.execute("UPDATE changes SET sig_version = 1, signature = x'00'", []).expect("downgrade");
            conn.execute(
                "INSERT INTO changes (space_id, doc_id, actor, seq, hash, signature, arrived, sig_version)
                 VALUES (?1, 'item/x', x'01', 1, x'02', x'03', 999, 1)",
                [&space],
            )
            .expect("stranger");
        }
        let store = Store::open(&path).expect("reopen");
        let mine: i64 = store
            .query(|c| Ok(c.query_row("SELECT count(*) FROM changes WHERE sig_version = 2", [], |r| r.get(0))?))
            .expect("count");
        assert_eq!(mine, 2, "the genesis and the write are re-signed");
        let feed = store.feed(&space, 0, 1 << 20, &|_| true, &HashSet::new(), None).expect("feed");
        assert_eq!(feed.changes, 2, "the version-1 row is not served");
        let other = Store::open(dir.path().join("other.db")).expect("other");
        for b in feed.batches {
            let r = other.apply(&space, &b.doc, b.changes).expect("apply");
            assert!(r.refused.is_empty(), "re-signed changes verify: {r:?}");
        }
        assert_eq!(other.heads(&space, &DocId::own_public(&member, "2026")).expect("heads").len(), 1);
    }

    #[test]
    fn invite_codes_round_trip_and_refuse_junk() {
        let key = DeviceKey::from_seed([3; 32]);
        let mut payload = vec![INVITE_CODE_VERSION];
        payload.extend_from_slice(&[0xab; 16]);
        payload.extend_from_slice(&key.seed());
        let code = base32::encode(&payload);
        assert!(code.len() <= 80, "fits comfortably in a QR code");
        let (space, k) = parse_invite(&code).expect("parse");
        assert_eq!(space, "ab".repeat(16));
        assert_eq!(k.id(), key.id());
        assert!(parse_invite("hello").is_err());
        assert!(parse_invite(&code[..code.len() - 4]).is_err());
    }
}

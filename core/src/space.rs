//! The space document: the register of one community.
//!
//! Layout inside the automerge document (all maps, keyed by id):
//!
//! ```text
//! meta      { name, created_at }
//! members   { <member>: { name, status, joined_at, household?,
//!                          roles:   { <role>: bool },
//!                          devices: { <device hex>: { label, added_at, revoked_at? } } } }
//! units     { <unit>: { building, entrance, room, area_centi, grid?, household?,
//!                        developer?,   -- unsold or undelivered, held by the developer
//!                        voter? } }    -- the co-owner designated to vote for it
//! households{ <household>: { label } }
//! links     { "<member>:<unit>": { member, unit, relation, verified, verified_by?, verified_at?,
//!                                  withdrawn_at?, withdrawn_by?,   -- verification withdrawn
//!                                  ended_at?, ended_by? } }        -- the link ended (a sale)
//! grids     { <grid>: { name } }
//! invites   { <invite>: { key, member, created_by, created_at, expires_at, redeemed_by?,
//!                         revoked_at?, revoked_by? } }
//! ```
//!
//! Every map that two replicas could create concurrently is created once, in
//! the genesis change or together with its parent, so no concurrent
//! `put_object` can hide another replica's entries.
//!
//! **Roles under concurrency.** A role is a boolean at `members/<m>/roles/<role>`.
//! A causally later write replaces an earlier one as usual. When a grant and a
//! revoke are concurrent (two offline phones), *the revoke wins*: the role is
//! held only if every concurrent value is `true`. This is a pure function of the
//! set of conflicting values, which every replica holding the same changes
//! sees identically, and it errs on the side of less authority.
//!
//! Floor area is kept exactly, in hundredths of a square metre.
//!
//! **Members without a phone.** A coordinator adds a member with no device
//! ([`SpaceEdit::AddMember`]): they are active at once, take part through
//! what coordinators and interviewers enter for them, and can be given a
//! phone later by an invite naming them (`Store::invite_member`), which keeps everything done for them. An ended link or a
//! withdrawn verification stays in the document, dated, but no longer reads
//! as a link or a verification; a vote already open keeps the electorate it
//! froze at its opening.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use automerge::legacy::{Key, ObjectId, OpType};
use automerge::transaction::Transactable;
use automerge::{Automerge, Change, ObjId, ObjType, Prop, ROOT, ReadDoc, ScalarValue, Value};

use crate::error::{Error, Refusal, Result};
use crate::identity::DeviceId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Resident,
    Volunteer,
    Coordinator,
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Resident, Role::Volunteer, Role::Coordinator, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Resident => "resident",
            Role::Volunteer => "volunteer",
            Role::Coordinator => "coordinator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Roles a coordinator may grant or revoke; the others are the admins'.
    pub fn coordinator_may_grant(self) -> bool {
        matches!(self, Role::Resident | Role::Volunteer)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Relation {
    Owner,
    Tenant,
    Family,
}

impl Relation {
    pub fn as_str(self) -> &'static str {
        match self {
            Relation::Owner => "owner",
            Relation::Tenant => "tenant",
            Relation::Family => "family",
        }
    }

    pub fn parse(s: &str) -> Option<Relation> {
        [Relation::Owner, Relation::Tenant, Relation::Family].into_iter().find(|r| r.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MemberStatus {
    /// Created by an invite that has not been redeemed yet.
    Invited,
    Active,
    Removed,
}

impl MemberStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberStatus::Invited => "invited",
            MemberStatus::Active => "active",
            MemberStatus::Removed => "removed",
        }
    }

    fn parse(s: &str) -> MemberStatus {
        match s {
            "invited" => MemberStatus::Invited,
            "removed" => MemberStatus::Removed,
            _ => MemberStatus::Active,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub label: String,
    pub added_at: i64,
    pub revoked_at: Option<i64>,
    /// Written with a revocation of the device, a removal of its member or a
    /// demotion: what the revoker had seen of the device (see [`Cut`]).
    pub cut: Option<Cut>,
}

/// The line a revocation draws under a device's work. For each document, the
/// sequence number of the device's last change the revoker had merged when
/// it revoked: those changes keep counting, with the rank the device had
/// then; any later change — whatever deps, sequence or clock it claims — is
/// judged by the device's standing now (none, once it is revoked or its
/// member removed). A device revoked with no cut recorded keeps nothing.
///
/// Kept as JSON at `members/<m>/devices/<d>/cut`. Concurrent cuts (two
/// admins revoking at once) merge: the highest sequence number per
/// document (both revokers had seen it) and the lowest rank.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Cut {
    pub rank: Rank,
    pub docs: BTreeMap<String, u64>,
    /// Per document, the hash (hex) of the change at the cut's sequence
    /// number that the revoker had merged: the other half of a pair the
    /// device equivocated there counts for nothing. (Cuts written before
    /// 2026-12 name none.)
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub last: BTreeMap<String, String>,
}

impl Cut {
    /// Take in that a revoker had merged the device's changes of `doc` up to
    /// `seq`, that last one being `last` (hex): the higher number stands; at
    /// one number, the smaller hash, so revokers who saw two halves of a pair
    /// agree on one.
    pub fn include(&mut self, doc: &str, seq: u64, last: Option<String>) {
        match self.docs.get(doc).copied() {
            Some(s) if s > seq => {}
            Some(s) if s == seq => {
                if let Some(h) = last
                    && self.last.get(doc).is_none_or(|o| h < *o)
                {
                    self.last.insert(doc.to_string(), h);
                }
            }
            _ => {
                self.docs.insert(doc.to_string(), seq);
                match last {
                    Some(h) => self.last.insert(doc.to_string(), h),
                    None => self.last.remove(doc),
                };
            }
        }
    }

    /// Whether a change of `doc` with `seq` and `hash` is within what the
    /// revoker had seen, as far as the cut alone can tell: at or below its
    /// number, and at its number the very change it names.
    pub fn covers(&self, doc: &str, seq: u64, hash: &automerge::ChangeHash) -> bool {
        match self.docs.get(doc) {
            Some(c) if seq < *c => true,
            Some(c) if seq == *c => self.last.get(doc).is_none_or(|l| *l == hex::encode(hash.0)),
            _ => false,
        }
    }

    /// The change the cut names in `doc`, with its sequence number.
    pub fn names(&self, doc: &str) -> Option<(u64, automerge::ChangeHash)> {
        let seq = *self.docs.get(doc)?;
        let bytes = hex::decode(self.last.get(doc)?).ok()?;
        Some((seq, automerge::ChangeHash::try_from(bytes.as_slice()).ok()?))
    }
}

/// How much a device could write: a member's own documents, the
/// coordinators' kinds, or everything.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rank {
    #[default]
    Member,
    Coordinator,
    Admin,
}

impl Rank {
    pub fn of(member: &Member) -> Rank {
        if member.has(Role::Admin) {
            Rank::Admin
        } else if member.has(Role::Coordinator) {
            Rank::Coordinator
        } else {
            Rank::Member
        }
    }

    fn author(self, member: &str) -> Author {
        match self {
            Rank::Admin => Author::Admin(member.into()),
            Rank::Coordinator => Author::Coordinator(member.into()),
            Rank::Member => Author::Member(member.into()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub status: MemberStatus,
    pub joined_at: i64,
    pub household: Option<String>,
    /// When a coordinator removed the member (milliseconds), if they did.
    pub removed_at: Option<i64>,
    pub roles: BTreeSet<Role>,
    pub devices: BTreeMap<DeviceId, Device>,
}

impl Member {
    pub fn has(&self, role: Role) -> bool {
        self.status != MemberStatus::Removed && self.roles.contains(&role)
    }

    /// Coordinators and admins: the members whose devices a coordinator may not touch.
    pub fn is_privileged(&self) -> bool {
        self.has(Role::Coordinator) || self.has(Role::Admin)
    }

    /// Whether an invite may name this member: invited or active, with no
    /// device yet and no coordinator or admin rights.
    pub fn awaits_phone(&self) -> bool {
        matches!(self.status, MemberStatus::Invited | MemberStatus::Active)
            && self.devices.is_empty()
            && !self.is_privileged()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    pub building: String,
    pub entrance: String,
    pub room: String,
    /// Floor area in hundredths of a square metre (exact).
    pub area_centi: i64,
    pub grid: Option<String>,
    pub household: Option<String>,
    /// Unsold or undelivered, still the developer's (counts as one head with
    /// the developer's other such units in an owners' decision).
    pub developer: bool,
    /// The co-owner designated to vote for the unit.
    pub voter: Option<String>,
}

impl Unit {
    /// How a notice names the unit: building, entrance, room.
    pub fn label(&self) -> String {
        [&self.building, &self.entrance, &self.room]
            .iter()
            .filter(|s| !s.is_empty())
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("-")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub member: String,
    pub unit: String,
    pub relation: Relation,
    pub verified: bool,
    pub verified_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invite {
    pub key: DeviceId,
    pub member: String,
    pub created_by: String,
    pub created_at: i64,
    pub expires_at: i64,
    /// The phone admitted: of concurrent redemptions, the one automerge's
    /// rule for concurrent writes keeps (the same on every replica).
    pub redeemed_by: Option<DeviceId>,
    /// Every phone that redeemed it (`claim:<device>`, the invite key's
    /// proof); all but `redeemed_by` were too late.
    pub claims: BTreeSet<DeviceId>,
    /// When a coordinator revoked it, if one did: it admits no phone after.
    pub revoked_at: Option<i64>,
}

/// The register as the merged space document says it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpaceView {
    pub name: String,
    pub created_at: i64,
    /// Supports a topic needs to reach the agenda (set by admins).
    pub support_threshold: i64,
    pub members: BTreeMap<String, Member>,
    pub units: BTreeMap<String, Unit>,
    pub households: BTreeMap<String, String>,
    pub links: BTreeMap<String, Link>,
    pub grids: BTreeMap<String, String>,
    pub invites: BTreeMap<String, Invite>,
    /// Derived: which member each device belongs to.
    devices: HashMap<DeviceId, String>,
}

/// Supports a topic needs to reach the agenda unless an admin sets otherwise.
pub const DEFAULT_SUPPORT_THRESHOLD: i64 = 5;

/// Who wrote a change, as the space register says at the change's causal past.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Author {
    Admin(String),
    Coordinator(String),
    Member(String),
    /// The bearer of an invite key, redeeming it.
    InviteBearer(String),
}

impl SpaceView {
    pub fn member_of(&self, device: &DeviceId) -> Option<(&str, &Member)> {
        let id = self.devices.get(device)?;
        self.members.get(id).map(|m| (id.as_str(), m))
    }

    /// The device's author standing if it was allowed to write at time `at`
    /// (milliseconds): a device revoked, or a member removed, at or before
    /// `at` has none. Pass `i64::MAX` to ask "is anything revoked at all".
    pub fn author(&self, device: &DeviceId, at: i64) -> Result<Author, Refusal> {
        if let Some((id, m)) = self.member_of(device) {
            let d = m.devices.get(device).ok_or(Refusal::UnknownDevice)?;
            let removed = m.status == MemberStatus::Removed && m.removed_at.is_none_or(|r| r <= at);
            if d.revoked_at.is_some_and(|r| r <= at) || removed {
                return Err(Refusal::RevokedDevice);
            }
            return Ok(if m.has(Role::Admin) {
                Author::Admin(id.into())
            } else if m.has(Role::Coordinator) {
                Author::Coordinator(id.into())
            } else {
                Author::Member(id.into())
            });
        }
        // A phone redeeming an invite is not known yet: its change proves its
        // right (`redeemed_invite`), judged by `trust::check_space_change`.
        Err(Refusal::UnknownDevice)
    }

    /// A device's standing for its change number `seq` in document `doc`:
    /// what the register says now — unless a revocation, removal or
    /// demotion cut the device off, in which case a change the revoker had
    /// seen (`seq` at or below the cut) keeps the rank the device had then.
    /// No clock and no deps enter: a stolen phone that never syncs its
    /// revocation cannot date or base its way around it.
    pub fn standing(
        &self,
        device: &DeviceId,
        doc: &crate::doc::DocId,
        seq: u64,
        hash: &automerge::ChangeHash,
    ) -> Result<Author, Refusal> {
        if let Some((id, m)) = self.member_of(device)
            && let Some(d) = m.devices.get(device)
        {
            let revoked = d.revoked_at.is_some() || m.status == MemberStatus::Removed;
            if let Some(cut) = &d.cut
                && cut.covers(&doc.to_string(), seq, hash)
            {
                return Ok(cut.rank.author(id));
            }
            if revoked {
                return Err(Refusal::RevokedDevice);
            }
        }
        self.author(device, i64::MAX)
    }

    /// Whether `device` is revoked, or its member removed.
    pub fn revoked(&self, device: &DeviceId) -> bool {
        self.member_of(device)
            .and_then(|(_, m)| {
                m.devices.get(device).map(|d| d.revoked_at.is_some() || m.status == MemberStatus::Removed)
            })
            .unwrap_or(false)
    }

    /// Whether a later change by `device` could be judged differently from
    /// what the register said before a revocation: it has a cut, or it is
    /// revoked (or its member removed) without one.
    pub fn revocation(&self, device: &DeviceId) -> Option<Cut> {
        let (_, m) = self.member_of(device)?;
        let d = m.devices.get(device)?;
        match &d.cut {
            Some(c) => Some(c.clone()),
            None if d.revoked_at.is_some() || m.status == MemberStatus::Removed => Some(Cut::default()),
            None => None,
        }
    }

    /// Every device the register lists.
    pub fn device_ids(&self) -> impl Iterator<Item = DeviceId> + '_ {
        self.devices.keys().copied()
    }

    /// Every device with a revocation: its cut, and its standing now (its
    /// rank, or none once revoked or removed) — what decides which of its
    /// changes count, so a change of either calls for a rebuild.
    pub fn revocations(&self) -> BTreeMap<DeviceId, (Cut, Option<Rank>)> {
        self.devices
            .keys()
            .filter_map(|d| {
                let cut = self.revocation(d)?;
                let now = self.member_of(d).and_then(|(_, m)| {
                    let revoked = m.status == MemberStatus::Removed
                        || m.devices.get(d).is_some_and(|dev| dev.revoked_at.is_some());
                    (!revoked).then(|| Rank::of(m))
                });
                Some((*d, (cut, now)))
            })
            .collect()
    }

    /// Read the whole register from a document.
    pub fn read(doc: &Automerge) -> Result<SpaceView> {
        let mut v = SpaceView::default();
        if let Some(meta) = map_at(doc, &ROOT, "meta") {
            v.read_meta(doc, &meta);
        }
        let mut all = Touched::default();
        for section in Section::ALL {
            if let Some(obj) = map_at(doc, &ROOT, section.key()) {
                all.insert(section, doc.keys(&obj).collect());
            }
        }
        v.refresh(doc, &all)?;
        Ok(v)
    }

    fn read_meta<R: ReadDoc>(&mut self, doc: &R, meta: &ObjId) {
        self.name = get_str(doc, meta, "name").unwrap_or_default();
        self.created_at = get_i64(doc, meta, "created_at").unwrap_or_default();
        self.support_threshold = get_i64(doc, meta, "support_threshold").unwrap_or(DEFAULT_SUPPORT_THRESHOLD);
    }

    /// Re-read only the entries a change touched.
    pub fn refresh<R: ReadDoc>(&mut self, doc: &R, touched: &Touched) -> Result<()> {
        for (section, keys) in &touched.0 {
            let Some(obj) = map_at(doc, &ROOT, section.key()) else {
                continue;
            };
            for key in keys {
                let entry = map_at(doc, &obj, key);
                match section {
                    Section::Members => {
                        if let Some(old) = self.members.remove(key) {
                            for d in old.devices.keys() {
                                self.devices.remove(d);
                            }
                        }
                        if let Some(e) = entry {
                            let m = read_member(doc, &e)?;
                            for d in m.devices.keys() {
                                self.devices.insert(*d, key.clone());
                            }
                            self.members.insert(key.clone(), m);
                        }
                    }
                    Section::Units => match entry {
                        Some(e) => {
                            self.units.insert(key.clone(), read_unit(doc, &e));
                        }
                        None => {
                            self.units.remove(key);
                        }
                    },
                    Section::Households => match entry {
                        Some(e) => {
                            self.households.insert(key.clone(), get_str(doc, &e, "label").unwrap_or_default());
                        }
                        None => {
                            self.households.remove(key);
                        }
                    },
                    Section::Grids => match entry {
                        Some(e) => {
                            self.grids.insert(key.clone(), get_str(doc, &e, "name").unwrap_or_default());
                        }
                        None => {
                            self.grids.remove(key);
                        }
                    },
                    Section::Links => match entry.and_then(|e| read_link(doc, &e)) {
                        Some(l) => {
                            self.links.insert(key.clone(), l);
                        }
                        None => {
                            self.links.remove(key);
                        }
                    },
                    Section::Invites => match entry.and_then(|e| read_invite(doc, &e)) {
                        Some(i) => {
                            self.invites.insert(key.clone(), i);
                        }
                        None => {
                            self.invites.remove(key);
                        }
                    },
                }
            }
        }
        if let Some(meta) = touched.1.then(|| map_at(doc, &ROOT, "meta")).flatten() {
            self.read_meta(doc, &meta);
        }
        Ok(())
    }

    /// Whether `member` may read `doc` (its kind's reader set).
    pub fn may_read(&self, member: &str, doc: &crate::doc::DocId) -> bool {
        self.members.get(member).is_some_and(|m| doc.readers().admit(member, m.is_privileged()))
    }

    /// Whether `device` belongs to a coordinator or an admin (a meeting hub
    /// must).
    pub fn is_coordinator_device(&self, device: &DeviceId) -> bool {
        self.member_of(device).is_some_and(|(_, m)| m.is_privileged())
    }

    /// Units whose owner link a coordinator has verified, with their owners.
    pub fn verified_owners(&self) -> impl Iterator<Item = &Link> {
        self.links.values().filter(|l| l.relation == Relation::Owner && l.verified)
    }
}

/// The top-level maps of the register.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Section {
    Members,
    Units,
    Households,
    Links,
    Grids,
    Invites,
}

impl Section {
    pub const ALL: [Section; 6] =
        [Section::Members, Section::Units, Section::Households, Section::Links, Section::Grids, Section::Invites];

    pub fn key(self) -> &'static str {
        match self {
            Section::Members => "members",
            Section::Units => "units",
            Section::Households => "households",
            Section::Links => "links",
            Section::Grids => "grids",
            Section::Invites => "invites",
        }
    }

    fn parse(s: &str) -> Option<Section> {
        Section::ALL.into_iter().find(|x| x.key() == s)
    }
}

/// Which register entries a set of patches touched.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Touched(pub BTreeMap<Section, BTreeSet<String>>, pub bool);

impl Touched {
    fn insert(&mut self, s: Section, keys: BTreeSet<String>) {
        self.0.entry(s).or_default().extend(keys);
    }

    pub fn from_writes(writes: &[Write]) -> Touched {
        let mut t = Touched::default();
        for w in writes {
            let path = &w.path;
            match path.first().map(String::as_str) {
                Some("meta") => t.1 = true,
                Some(s) => {
                    if let (Some(section), Some(key)) = (Section::parse(s), path.get(1)) {
                        t.0.entry(section).or_default().insert(key.clone());
                    }
                }
                None => {}
            }
        }
        t
    }

    /// Every entry of both registers: what a rebuilt register re-projects.
    pub fn everything(before: &SpaceView, after: &SpaceView) -> Touched {
        let mut t = Touched(BTreeMap::new(), true);
        for v in [before, after] {
            t.0.entry(Section::Members).or_default().extend(v.members.keys().cloned());
            t.0.entry(Section::Units).or_default().extend(v.units.keys().cloned());
            t.0.entry(Section::Households).or_default().extend(v.households.keys().cloned());
            t.0.entry(Section::Links).or_default().extend(v.links.keys().cloned());
            t.0.entry(Section::Grids).or_default().extend(v.grids.keys().cloned());
            t.0.entry(Section::Invites).or_default().extend(v.invites.keys().cloned());
        }
        t
    }

    pub fn is_empty(&self) -> bool {
        self.0.values().all(BTreeSet::is_empty) && !self.1
    }
}

impl Touched {
    pub fn members(&self) -> impl Iterator<Item = &String> {
        self.0.get(&Section::Members).into_iter().flatten()
    }
    pub fn units(&self) -> impl Iterator<Item = &String> {
        self.0.get(&Section::Units).into_iter().flatten()
    }
    pub fn meta_touched(&self) -> bool {
        self.1
    }
}

/// One write of a change: the path from the root to the key it puts (or to
/// the sequence it edits), and whether it deletes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub path: Vec<String>,
    pub delete: bool,
}

/// The writes of `change`, resolved against `doc`, a document that already
/// holds the change. Costs O(ops in the change), not O(document).
pub fn change_writes(doc: &Automerge, change: &Change) -> Result<Vec<Write>, Refusal> {
    let mut paths: HashMap<String, Vec<String>> = HashMap::new();
    let mut out = Vec::new();
    for op in change.decode().operations {
        let mut path = match &op.obj {
            ObjectId::Root => Vec::new(),
            ObjectId::Id(id) => {
                let key = format!("{}@{}", id.counter(), id.actor().to_hex_string());
                match paths.get(&key) {
                    Some(p) => p.clone(),
                    None => {
                        let p = object_path(doc, &key)?;
                        paths.insert(key, p.clone());
                        p
                    }
                }
            }
        };
        if let Key::Map(k) = &op.key {
            path.push(k.to_string());
        }
        out.push(Write { path, delete: matches!(op.action, OpType::Delete) });
    }
    Ok(out)
}

fn object_path(doc: &Automerge, obj: &str) -> Result<Vec<String>, Refusal> {
    let bad = || Refusal::Malformed("a change writes into an unknown object".into());
    let id = doc.import_obj(obj).map_err(|_| bad())?;
    let mut props: Vec<String> = doc
        .parents(&id)
        .map_err(|_| bad())?
        .map(|p| match p.prop {
            Prop::Map(s) => s.to_string(),
            Prop::Seq(i) => i.to_string(),
        })
        .collect();
    props.reverse();
    Ok(props)
}

/// Check that `author` may make the writes described by `patches`, judged
/// against `pre`, the register at the change's causal past. `at` is the
/// change's time.
pub fn authorize(pre: &SpaceView, author: &Author, writes: &[Write], at: i64) -> Result<(), Refusal> {
    match author {
        Author::Admin(_) => Ok(()),
        Author::Member(_) => Err(Refusal::NotAWriter("space".into())),
        Author::Coordinator(_) => {
            for w in writes {
                coordinator_may(pre, &w.path, w.delete)?;
            }
            Ok(())
        }
        Author::InviteBearer(invite_id) => {
            let inv = pre.invites.get(invite_id).ok_or(Refusal::BadInvite)?;
            if inv.redeemed_by.is_some() || inv.revoked_at.is_some() || at > inv.expires_at {
                return Err(Refusal::BadInvite);
            }
            // An invite admits one phone to a member still waiting for one
            // (invited, or registered without a phone): never to a member with
            // devices, nor to a coordinator or admin (whoever wrote the invite).
            let waiting = pre.members.get(&inv.member).is_some_and(Member::awaits_phone);
            if !waiting {
                return Err(Refusal::BadInvite);
            }
            let mut devices_added = BTreeSet::new();
            for w in writes {
                let path = &w.path;
                let segs: Vec<&str> = path.iter().map(String::as_str).collect();
                match segs.as_slice() {
                    ["members", m, "devices", d, ..] if *m == inv.member => {
                        devices_added.insert(d.to_string());
                    }
                    ["members", m, "name" | "status"] if *m == inv.member => {}
                    ["invites", i, "redeemed_by" | "redeemed_at"] if *i == invite_id => {}
                    ["invites", i, claim] if *i == invite_id && claim.starts_with(CLAIM) => {}
                    _ => return Err(Refusal::Forbidden(path.join("/"))),
                }
            }
            if devices_added.len() != 1 {
                return Err(Refusal::Forbidden("an invite adds one device".into()));
            }
            Ok(())
        }
    }
}

fn coordinator_may(pre: &SpaceView, path: &[String], delete: bool) -> Result<(), Refusal> {
    let forbid = || Err(Refusal::Forbidden(path.join("/")));
    let segs: Vec<&str> = path.iter().map(String::as_str).collect();
    match segs.as_slice() {
        ["units" | "households" | "links" | "grids" | "invites", _, ..] => Ok(()),
        ["members", m] => {
            // Creating a new member entry; never replacing or deleting one.
            if pre.members.contains_key(*m) || delete { forbid() } else { Ok(()) }
        }
        ["members", m, rest @ ..] => {
            let privileged = pre.members.get(*m).is_some_and(Member::is_privileged);
            match rest {
                ["name" | "joined_at" | "household"] => Ok(()),
                ["removed_at"] if !privileged => Ok(()),
                // Coordinators may not create, remove or re-key a privileged member.
                ["status" | "roles" | "devices"] if privileged => forbid(),
                ["status" | "roles" | "devices"] => Ok(()),
                ["roles", r] if Role::parse(r).is_some_and(Role::coordinator_may_grant) => Ok(()),
                ["devices", ..] if !privileged => Ok(()),
                _ => forbid(),
            }
        }
        _ => forbid(),
    }
}

// ---------------------------------------------------------------------------
// Edits

/// The typed edits of the register. Each is checked against the author's rights
/// by [`authorize`] after it is written, like any remote change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpaceEdit {
    AddMember {
        member: String,
        name: String,
        roles: Vec<Role>,
    },
    Rename {
        member: String,
        name: String,
    },
    SetRole {
        member: String,
        role: Role,
        granted: bool,
    },
    AddDevice {
        member: String,
        device: DeviceId,
        label: String,
    },
    RevokeDevice {
        member: String,
        device: DeviceId,
    },
    RemoveMember {
        member: String,
    },
    SetHousehold {
        member: String,
        household: Option<String>,
    },
    /// Admins only (the register's `meta`).
    SetSupportThreshold {
        supports: i64,
    },
    AddGrid {
        grid: String,
        name: String,
    },
    AddHousehold {
        household: String,
        label: String,
    },
    AddUnit {
        unit: String,
        building: String,
        entrance: String,
        room: String,
        area_centi: i64,
        grid: Option<String>,
        household: Option<String>,
    },
    Link {
        member: String,
        unit: String,
        relation: Relation,
    },
    VerifyOwner {
        member: String,
        unit: String,
        by: String,
    },
    /// A coordinator withdraws an owner's verification (dated).
    WithdrawVerification {
        member: String,
        unit: String,
        by: String,
    },
    /// The link ends (a unit sold, a tenant moved out), dated.
    EndLink {
        member: String,
        unit: String,
        by: String,
    },
    /// A unit's grid and household (None: none).
    SetUnitPlace {
        unit: String,
        grid: Option<String>,
        household: Option<String>,
    },
    /// Whether a unit is unsold or undelivered, still the developer's.
    SetDeveloperUnit {
        unit: String,
        developer: bool,
    },
    /// The co-owner who votes for a unit (None: any co-owner, by the
    /// documented rule of owners' decisions).
    DesignateVoter {
        unit: String,
        member: Option<String>,
    },
    /// An invite not yet redeemed admits no phone from now on.
    RevokeInvite {
        invite: String,
        by: String,
    },
}

impl SpaceEdit {
    /// The register entry this edit writes.
    pub fn touched(&self) -> Touched {
        let (section, key) = match self {
            SpaceEdit::AddMember { member, .. }
            | SpaceEdit::Rename { member, .. }
            | SpaceEdit::SetRole { member, .. }
            | SpaceEdit::AddDevice { member, .. }
            | SpaceEdit::RevokeDevice { member, .. }
            | SpaceEdit::RemoveMember { member }
            | SpaceEdit::SetHousehold { member, .. } => (Section::Members, member.clone()),
            SpaceEdit::AddGrid { grid, .. } => (Section::Grids, grid.clone()),
            SpaceEdit::SetSupportThreshold { .. } => return Touched(BTreeMap::new(), true),
            SpaceEdit::AddHousehold { household, .. } => (Section::Households, household.clone()),
            SpaceEdit::AddUnit { unit, .. }
            | SpaceEdit::SetUnitPlace { unit, .. }
            | SpaceEdit::SetDeveloperUnit { unit, .. }
            | SpaceEdit::DesignateVoter { unit, .. } => (Section::Units, unit.clone()),
            SpaceEdit::Link { member, unit, .. }
            | SpaceEdit::VerifyOwner { member, unit, .. }
            | SpaceEdit::WithdrawVerification { member, unit, .. }
            | SpaceEdit::EndLink { member, unit, .. } => (Section::Links, link_key(member, unit)),
            SpaceEdit::RevokeInvite { invite, .. } => (Section::Invites, invite.clone()),
        };
        let mut t = Touched::default();
        t.insert(section, BTreeSet::from([key]));
        t
    }
}

pub(crate) fn link_key(member: &str, unit: &str) -> String {
    format!("{member}:{unit}")
}

fn require(cond: bool, what: &str) -> Result<()> {
    if cond { Ok(()) } else { Err(Error::Invalid(what.into())) }
}

fn token(s: &str, what: &str) -> Result<()> {
    require(crate::doc::valid_token(s), what)
}

/// Write one edit. `pre` is the register before it, for reference checks.
pub fn apply_edit<T: Transactable>(tx: &mut T, pre: &SpaceView, edit: &SpaceEdit, now: i64) -> Result<()> {
    let section = |tx: &T, s: Section| {
        map_at(tx, &ROOT, s.key()).ok_or_else(|| Error::Internal("space document has no register".into()))
    };
    match edit {
        SpaceEdit::AddMember { member, name, roles } => {
            token(member, "member id")?;
            require(!pre.members.contains_key(member), "member already exists")?;
            let members = section(tx, Section::Members)?;
            write_member(tx, &members, member, name, MemberStatus::Active, roles, now)?;
        }
        SpaceEdit::Rename { member, name } => {
            require(pre.members.contains_key(member), "unknown member")?;
            require(!name.trim().is_empty(), "name is empty")?;
            let m = member_obj(tx, member)?;
            tx.put(&m, "name", name.as_str())?;
        }
        SpaceEdit::SetRole { member, role, granted } => {
            require(pre.members.contains_key(member), "unknown member")?;
            let m = member_obj(tx, member)?;
            let roles = map_at(tx, &m, "roles").ok_or_else(|| Error::Internal("member has no roles".into()))?;
            tx.put(&roles, role.as_str(), *granted)?;
        }
        SpaceEdit::AddDevice { member, device, label } => {
            require(pre.members.contains_key(member), "unknown member")?;
            require(pre.member_of(device).is_none(), "device already registered")?;
            let m = member_obj(tx, member)?;
            let devices = map_at(tx, &m, "devices").ok_or_else(|| Error::Internal("member has no devices".into()))?;
            write_device(tx, &devices, device, label, now)?;
        }
        SpaceEdit::RevokeDevice { member, device } => {
            require(pre.members.get(member).is_some_and(|m| m.devices.contains_key(device)), "unknown device")?;
            let m = member_obj(tx, member)?;
            let devices = map_at(tx, &m, "devices").ok_or_else(|| Error::Internal("member has no devices".into()))?;
            let d =
                map_at(tx, &devices, &device.to_hex()).ok_or_else(|| Error::Internal("device entry missing".into()))?;
            tx.put(&d, "revoked_at", now)?;
        }
        SpaceEdit::RemoveMember { member } => {
            require(pre.members.contains_key(member), "unknown member")?;
            let m = member_obj(tx, member)?;
            tx.put(&m, "status", MemberStatus::Removed.as_str())?;
            tx.put(&m, "removed_at", now)?;
        }
        SpaceEdit::SetHousehold { member, household } => {
            require(pre.members.contains_key(member), "unknown member")?;
            require(household.as_ref().is_none_or(|h| pre.households.contains_key(h)), "unknown household")?;
            let m = member_obj(tx, member)?;
            match household {
                Some(h) => tx.put(&m, "household", h.as_str())?,
                None => tx.delete(&m, "household")?,
            }
        }
        SpaceEdit::SetSupportThreshold { supports } => {
            require(*supports > 0, "a threshold is at least one support")?;
            let meta = map_at(tx, &ROOT, "meta").ok_or_else(|| Error::Internal("space document has no meta".into()))?;
            tx.put(&meta, "support_threshold", *supports)?;
        }
        SpaceEdit::AddGrid { grid, name } => {
            token(grid, "grid id")?;
            let grids = section(tx, Section::Grids)?;
            let g = tx.put_object(&grids, grid.as_str(), ObjType::Map)?;
            tx.put(&g, "name", name.as_str())?;
        }
        SpaceEdit::AddHousehold { household, label } => {
            token(household, "household id")?;
            let hs = section(tx, Section::Households)?;
            let h = tx.put_object(&hs, household.as_str(), ObjType::Map)?;
            tx.put(&h, "label", label.as_str())?;
        }
        SpaceEdit::AddUnit { unit, building, entrance, room, area_centi, grid, household } => {
            token(unit, "unit id")?;
            require(*area_centi > 0, "floor area must be positive")?;
            require(grid.as_ref().is_none_or(|g| pre.grids.contains_key(g)), "unknown grid")?;
            require(household.as_ref().is_none_or(|h| pre.households.contains_key(h)), "unknown household")?;
            let units = section(tx, Section::Units)?;
            let u = tx.put_object(&units, unit.as_str(), ObjType::Map)?;
            tx.put(&u, "building", building.as_str())?;
            tx.put(&u, "entrance", entrance.as_str())?;
            tx.put(&u, "room", room.as_str())?;
            tx.put(&u, "area_centi", *area_centi)?;
            if let Some(g) = grid {
                tx.put(&u, "grid", g.as_str())?;
            }
            if let Some(h) = household {
                tx.put(&u, "household", h.as_str())?;
            }
        }
        SpaceEdit::Link { member, unit, relation } => {
            require(pre.members.contains_key(member), "unknown member")?;
            require(pre.units.contains_key(unit), "unknown unit")?;
            let key = link_key(member, unit);
            let links = section(tx, Section::Links)?;
            // A link that ended (a sale) is made afresh: unverified, undated.
            match map_at(tx, &links, &key).filter(|_| pre.links.contains_key(&key)) {
                Some(l) => tx.put(&l, "relation", relation.as_str())?,
                None => {
                    let l = tx.put_object(&links, key.as_str(), ObjType::Map)?;
                    tx.put(&l, "member", member.as_str())?;
                    tx.put(&l, "unit", unit.as_str())?;
                    tx.put(&l, "relation", relation.as_str())?;
                    tx.put(&l, "verified", false)?;
                }
            }
        }
        SpaceEdit::VerifyOwner { member, unit, by } => {
            let key = link_key(member, unit);
            require(pre.links.get(&key).is_some_and(|l| l.relation == Relation::Owner), "no owner link to verify")?;
            let links = section(tx, Section::Links)?;
            let l = map_at(tx, &links, &key).ok_or_else(|| Error::Internal("link entry missing".into()))?;
            tx.put(&l, "verified", true)?;
            tx.put(&l, "verified_by", by.as_str())?;
            tx.put(&l, "verified_at", now)?;
        }
        SpaceEdit::WithdrawVerification { member, unit, by } => {
            let key = link_key(member, unit);
            require(pre.links.get(&key).is_some_and(|l| l.verified), "no verified owner link to withdraw")?;
            let l = link_obj(tx, &key)?;
            tx.put(&l, "verified", false)?;
            tx.put(&l, "withdrawn_by", by.as_str())?;
            tx.put(&l, "withdrawn_at", now)?;
        }
        SpaceEdit::EndLink { member, unit, by } => {
            let key = link_key(member, unit);
            require(pre.links.contains_key(&key), "no such link")?;
            let l = link_obj(tx, &key)?;
            tx.put(&l, "verified", false)?;
            tx.put(&l, "ended_by", by.as_str())?;
            tx.put(&l, "ended_at", now)?;
        }
        SpaceEdit::SetUnitPlace { unit, grid, household } => {
            require(pre.units.contains_key(unit), "unknown unit")?;
            require(grid.as_ref().is_none_or(|g| pre.grids.contains_key(g)), "unknown grid")?;
            require(household.as_ref().is_none_or(|h| pre.households.contains_key(h)), "unknown household")?;
            let u = unit_obj(tx, unit)?;
            for (key, value) in [("grid", grid), ("household", household)] {
                match value {
                    Some(v) => tx.put(&u, key, v.as_str())?,
                    None => tx.delete(&u, key)?,
                }
            }
        }
        SpaceEdit::SetDeveloperUnit { unit, developer } => {
            require(pre.units.contains_key(unit), "unknown unit")?;
            let u = unit_obj(tx, unit)?;
            tx.put(&u, "developer", *developer)?;
        }
        SpaceEdit::DesignateVoter { unit, member } => {
            require(pre.units.contains_key(unit), "unknown unit")?;
            let u = unit_obj(tx, unit)?;
            match member {
                Some(m) => {
                    let owner = pre.links.get(&link_key(m, unit)).is_some_and(|l| l.relation == Relation::Owner);
                    require(owner, "only an owner of the unit can be designated to vote for it")?;
                    tx.put(&u, "voter", m.as_str())?;
                }
                None => tx.delete(&u, "voter")?,
            }
        }
        SpaceEdit::RevokeInvite { invite, by } => {
            let inv = pre.invites.get(invite).ok_or_else(|| Error::NotFound("invite".into()))?;
            require(inv.redeemed_by.is_none(), "the invite was already used")?;
            let invites = section(tx, Section::Invites)?;
            let i = map_at(tx, &invites, invite).ok_or_else(|| Error::Internal("invite entry missing".into()))?;
            tx.put(&i, "revoked_by", by.as_str())?;
            tx.put(&i, "revoked_at", now)?;
        }
    }
    Ok(())
}

fn link_obj<R: ReadDoc>(doc: &R, key: &str) -> Result<ObjId> {
    map_at(doc, &ROOT, "links").and_then(|ls| map_at(doc, &ls, key)).ok_or_else(|| Error::NotFound("link".into()))
}

fn unit_obj<R: ReadDoc>(doc: &R, unit: &str) -> Result<ObjId> {
    map_at(doc, &ROOT, "units").and_then(|us| map_at(doc, &us, unit)).ok_or_else(|| Error::NotFound("unit".into()))
}

/// The genesis change's content: the register's maps and the creator as admin.
pub(crate) fn write_genesis<T: Transactable>(
    tx: &mut T,
    name: &str,
    member: &str,
    member_name: &str,
    device: &DeviceId,
    now: i64,
) -> Result<()> {
    let meta = tx.put_object(ROOT, "meta", ObjType::Map)?;
    tx.put(&meta, "name", name)?;
    tx.put(&meta, "created_at", now)?;
    for s in Section::ALL {
        tx.put_object(ROOT, s.key(), ObjType::Map)?;
    }
    let members = map_at(tx, &ROOT, "members").ok_or_else(|| Error::Internal("members map".into()))?;
    write_member(
        tx,
        &members,
        member,
        member_name,
        MemberStatus::Active,
        &[Role::Admin, Role::Coordinator, Role::Resident],
        now,
    )?;
    let m = member_obj(tx, member)?;
    let devices = map_at(tx, &m, "devices").ok_or_else(|| Error::Internal("devices map".into()))?;
    write_device(tx, &devices, device, "creator", now)
}

/// What a coordinator writes to invite someone.
#[derive(Debug, Clone)]
pub(crate) struct NewInvite<'a> {
    pub invite: &'a str,
    pub key: DeviceId,
    pub member: &'a str,
    pub name: &'a str,
    pub roles: &'a [Role],
    pub created_by: &'a str,
    pub expires_at: i64,
    /// The member is already registered (without a phone): the invite adds
    /// no member entry, and redeeming it keeps what was done for them.
    pub existing: bool,
}

/// An invite: a pending member and the public key the invite's bearer will sign with.
pub(crate) fn write_invite<T: Transactable>(tx: &mut T, inv: &NewInvite<'_>, now: i64) -> Result<()> {
    if !inv.existing {
        let members = map_at(tx, &ROOT, "members").ok_or_else(|| Error::Internal("members map".into()))?;
        write_member(tx, &members, inv.member, inv.name, MemberStatus::Invited, inv.roles, now)?;
    }
    let invites = map_at(tx, &ROOT, "invites").ok_or_else(|| Error::Internal("invites map".into()))?;
    let i = tx.put_object(&invites, inv.invite, ObjType::Map)?;
    tx.put(&i, "key", inv.key.to_hex())?;
    tx.put(&i, "member", inv.member)?;
    tx.put(&i, "created_by", inv.created_by)?;
    tx.put(&i, "created_at", now)?;
    tx.put(&i, "expires_at", inv.expires_at)?;
    Ok(())
}

/// The bearer's redemption: its device joins the invited member.
///
/// The change is the phone's own (its actor is the new device); `proof` is
/// the invite key's signature of [`redemption_message`]. Two phones
/// redeeming one invite write two changes that both merge: `redeemed_by`
/// keeps one of them by automerge's rule for concurrent writes, the same on
/// every replica, and the other phone's device entry (which names its
/// invite) does not count. Nothing built on either is lost.
pub(crate) fn write_redemption<T: Transactable>(
    tx: &mut T,
    invite: &str,
    member: &str,
    name: &str,
    device: &DeviceId,
    proof: &[u8; 64],
    now: i64,
) -> Result<()> {
    let m = member_obj(tx, member)?;
    tx.put(&m, "name", name)?;
    tx.put(&m, "status", MemberStatus::Active.as_str())?;
    let devices = map_at(tx, &m, "devices").ok_or_else(|| Error::Internal("devices map".into()))?;
    write_device(tx, &devices, device, "phone", now)?;
    let d = map_at(tx, &devices, &device.to_hex()).ok_or_else(|| Error::Internal("device entry".into()))?;
    tx.put(&d, "invite", invite)?;
    let invites = map_at(tx, &ROOT, "invites").ok_or_else(|| Error::Internal("invites map".into()))?;
    let i = map_at(tx, &invites, invite)
        .ok_or(Error::Refused { doc: crate::doc::DocId::Space, reason: Refusal::BadInvite })?;
    tx.put(&i, format!("{CLAIM}{}", device.to_hex()), hex::encode(proof))?;
    tx.put(&i, "redeemed_by", device.to_hex())?;
    tx.put(&i, "redeemed_at", now)?;
    Ok(())
}

fn write_member<T: Transactable>(
    tx: &mut T,
    members: &ObjId,
    member: &str,
    name: &str,
    status: MemberStatus,
    roles: &[Role],
    now: i64,
) -> Result<()> {
    require(!name.trim().is_empty(), "name is empty")?;
    let m = tx.put_object(members, member, ObjType::Map)?;
    tx.put(&m, "name", name)?;
    tx.put(&m, "status", status.as_str())?;
    tx.put(&m, "joined_at", now)?;
    let r = tx.put_object(&m, "roles", ObjType::Map)?;
    for role in roles {
        tx.put(&r, role.as_str(), true)?;
    }
    tx.put_object(&m, "devices", ObjType::Map)?;
    Ok(())
}

fn write_device<T: Transactable>(tx: &mut T, devices: &ObjId, device: &DeviceId, label: &str, now: i64) -> Result<()> {
    let d = tx.put_object(devices, device.to_hex(), ObjType::Map)?;
    tx.put(&d, "label", label)?;
    tx.put(&d, "added_at", now)?;
    Ok(())
}

fn member_obj<R: ReadDoc>(doc: &R, member: &str) -> Result<ObjId> {
    map_at(doc, &ROOT, "members")
        .and_then(|ms| map_at(doc, &ms, member))
        .ok_or_else(|| Error::NotFound("member".into()))
}

// ---------------------------------------------------------------------------
// Reading helpers

pub(crate) fn map_at<R: ReadDoc>(doc: &R, obj: &ObjId, key: &str) -> Option<ObjId> {
    match doc.get(obj, key) {
        Ok(Some((Value::Object(ObjType::Map), id))) => Some(id),
        _ => None,
    }
}

pub(crate) fn get_str<R: ReadDoc>(doc: &R, obj: &ObjId, key: &str) -> Option<String> {
    match doc.get(obj, key) {
        Ok(Some((Value::Scalar(s), _))) => match s.as_ref() {
            ScalarValue::Str(s) => Some(s.to_string()),
            _ => None,
        },
        _ => None,
    }
}

/// The time an entry claims (its `key`, milliseconds), if the change that
/// wrote the entry can attest it: no later than that change's own time. An
/// entry dated after the change that carries it moves nothing (a ballot
/// "cast" after its change, to win "latest"; a close or an opening dated
/// ahead): it reads as `None`, the same on every replica.
pub(crate) fn attested_i64(doc: &Automerge, obj: &ObjId, key: &str) -> Option<i64> {
    let at = get_i64(doc, obj, key)?;
    (at <= written_at(doc, obj, key)?).then_some(at)
}

/// A time as shown and ordered by (a post, an edit, a support, a response,
/// a grant, hours, a debit): never later than the change that wrote it, so
/// an entry dated ahead cannot stand as the latest for ever. With the
/// receiver-clock bound on changes (`store::MAX_AHEAD_MS`), no time is then
/// more than an hour ahead of the replica's clock.
pub(crate) fn dated_i64(doc: &Automerge, obj: &ObjId, key: &str) -> Option<i64> {
    let at = get_i64(doc, obj, key)?;
    Some(written_at(doc, obj, key).map_or(at, |t| at.min(t)))
}

/// The time of the change whose operation wrote `key` of `obj`.
fn written_at(doc: &Automerge, obj: &ObjId, key: &str) -> Option<i64> {
    let (_, op) = doc.get(obj, key).ok()??;
    let hash = doc.hash_for_opid(&op)?;
    doc.get_change_meta_by_hash(&hash).map(|m| m.timestamp)
}

pub(crate) fn get_i64<R: ReadDoc>(doc: &R, obj: &ObjId, key: &str) -> Option<i64> {
    match doc.get(obj, key) {
        Ok(Some((Value::Scalar(s), _))) => match s.as_ref() {
            ScalarValue::Int(i) => Some(*i),
            ScalarValue::Uint(u) => i64::try_from(*u).ok(),
            _ => None,
        },
        _ => None,
    }
}

pub(crate) fn get_bool<R: ReadDoc>(doc: &R, obj: &ObjId, key: &str) -> Option<bool> {
    match doc.get(obj, key) {
        Ok(Some((Value::Scalar(s), _))) => match s.as_ref() {
            ScalarValue::Boolean(b) => Some(*b),
            _ => None,
        },
        _ => None,
    }
}

/// Revoke wins: a role is held when every concurrent value says so.
fn role_held<R: ReadDoc>(doc: &R, roles: &ObjId, role: Role) -> Result<bool> {
    let values = doc.get_all(roles, role.as_str())?;
    Ok(!values.is_empty()
        && values
            .iter()
            .all(|(v, _)| matches!(v, Value::Scalar(s) if matches!(s.as_ref(), ScalarValue::Boolean(true)))))
}

fn read_member<R: ReadDoc>(doc: &R, obj: &ObjId) -> Result<Member> {
    let mut roles = BTreeSet::new();
    if let Some(r) = map_at(doc, obj, "roles") {
        for role in Role::ALL {
            if role_held(doc, &r, role)? {
                roles.insert(role);
            }
        }
    }
    let mut devices = BTreeMap::new();
    if let Some(ds) = map_at(doc, obj, "devices") {
        for key in doc.keys(&ds) {
            let (Ok(id), Some(d)) = (DeviceId::from_hex(&key), map_at(doc, &ds, &key)) else {
                continue;
            };
            // A phone that redeemed an invite another phone won is not a device.
            if let Some(invite) = get_str(doc, &d, "invite") {
                let kept = map_at(doc, &ROOT, "invites")
                    .and_then(|is| map_at(doc, &is, &invite))
                    .and_then(|i| get_str(doc, &i, "redeemed_by"));
                if kept.as_deref() != Some(key.as_str()) {
                    continue;
                }
            }
            devices.insert(
                id,
                Device {
                    label: get_str(doc, &d, "label").unwrap_or_default(),
                    added_at: get_i64(doc, &d, "added_at").unwrap_or_default(),
                    revoked_at: get_i64(doc, &d, "revoked_at"),
                    cut: read_cut(doc, &d),
                },
            );
        }
    }
    Ok(Member {
        name: get_str(doc, obj, "name").unwrap_or_default(),
        status: MemberStatus::parse(&get_str(doc, obj, "status").unwrap_or_default()),
        joined_at: get_i64(doc, obj, "joined_at").unwrap_or_default(),
        household: get_str(doc, obj, "household"),
        removed_at: get_i64(doc, obj, "removed_at"),
        roles,
        devices,
    })
}

/// Every concurrent value of a device's cut, merged (see [`Cut`]).
fn read_cut<R: ReadDoc>(doc: &R, device: &ObjId) -> Option<Cut> {
    let values = doc.get_all(device, "cut").ok()?;
    let mut merged: Option<Cut> = None;
    for (v, _) in values {
        let Value::Scalar(s) = v else { continue };
        let ScalarValue::Str(text) = s.as_ref() else { continue };
        let Ok(cut) = serde_json::from_str::<Cut>(text) else { continue };
        merged = Some(match merged {
            None => cut,
            Some(mut m) => {
                m.rank = m.rank.min(cut.rank);
                for (doc, seq) in &cut.docs {
                    m.include(doc, *seq, cut.last.get(doc).cloned());
                }
                m
            }
        });
    }
    merged
}

/// Record what the revoker had seen of a device, with its revocation,
/// removal or demotion (in the same change).
pub fn write_cut<T: Transactable>(tx: &mut T, member: &str, device: &DeviceId, cut: &Cut) -> Result<()> {
    let m = member_obj(tx, member)?;
    let devices = map_at(tx, &m, "devices").ok_or_else(|| Error::Internal("member has no devices".into()))?;
    let d = map_at(tx, &devices, &device.to_hex()).ok_or_else(|| Error::NotFound("device".into()))?;
    tx.put(&d, "cut", serde_json::to_string(cut)?)?;
    Ok(())
}

fn read_unit<R: ReadDoc>(doc: &R, obj: &ObjId) -> Unit {
    Unit {
        building: get_str(doc, obj, "building").unwrap_or_default(),
        entrance: get_str(doc, obj, "entrance").unwrap_or_default(),
        room: get_str(doc, obj, "room").unwrap_or_default(),
        area_centi: get_i64(doc, obj, "area_centi").unwrap_or_default(),
        grid: get_str(doc, obj, "grid"),
        household: get_str(doc, obj, "household"),
        developer: get_bool(doc, obj, "developer").unwrap_or(false),
        voter: get_str(doc, obj, "voter"),
    }
}

/// A link as the register holds it now: an ended link is no link.
fn read_link<R: ReadDoc>(doc: &R, obj: &ObjId) -> Option<Link> {
    if get_i64(doc, obj, "ended_at").is_some() {
        return None;
    }
    Some(Link {
        member: get_str(doc, obj, "member")?,
        unit: get_str(doc, obj, "unit")?,
        relation: Relation::parse(&get_str(doc, obj, "relation")?)?,
        verified: get_bool(doc, obj, "verified").unwrap_or(false),
        verified_by: get_str(doc, obj, "verified_by"),
    })
}

fn read_invite<R: ReadDoc>(doc: &R, obj: &ObjId) -> Option<Invite> {
    Some(Invite {
        key: DeviceId::from_hex(&get_str(doc, obj, "key")?).ok()?,
        member: get_str(doc, obj, "member")?,
        created_by: get_str(doc, obj, "created_by").unwrap_or_default(),
        created_at: get_i64(doc, obj, "created_at").unwrap_or_default(),
        expires_at: get_i64(doc, obj, "expires_at").unwrap_or_default(),
        redeemed_by: get_str(doc, obj, "redeemed_by").and_then(|h| DeviceId::from_hex(&h).ok()),
        claims: doc.keys(obj).filter_map(|k| k.strip_prefix(CLAIM).and_then(|d| DeviceId::from_hex(d).ok())).collect(),
        revoked_at: get_i64(doc, obj, "revoked_at"),
    })
}

/// The key prefix of a redemption's claim on its invite: `claim:<device hex>`.
pub const CLAIM: &str = "claim:";

/// The domain tag of an invite key's proof that a phone redeems it.
pub const REDEEM_TAG: &[u8] = b"linli/redeem/v1\0";

/// What an invite key signs to admit `device`: `space ‖ "\n" ‖ invite ‖ "\n" ‖ device`.
pub fn redemption_message(space: &str, invite: &str, device: &DeviceId) -> Vec<u8> {
    crate::identity::lines(b"", &[space.as_bytes(), invite.as_bytes(), &device.0])
}

/// Whether a register change by `device` is a redemption of an invite open in
/// `pre` (the register at the change's causal past), with a valid proof from
/// its key among the change's `writes` (read in `after`, the register with the
/// change applied): the invite's id if so.
pub fn redeemed_invite(
    space: &str,
    pre: &SpaceView,
    after: &Automerge,
    device: &DeviceId,
    writes: &[Write],
) -> Option<String> {
    let claim = format!("{CLAIM}{}", device.to_hex());
    let invite = writes.iter().find_map(|w| match w.path.as_slice() {
        [section, invite, key] if section == "invites" && *key == claim => Some(invite.clone()),
        _ => None,
    })?;
    let key = pre.invites.get(&invite)?.key;
    let obj = map_at(after, &map_at(after, &ROOT, "invites")?, &invite)?;
    let proof = hex::decode(get_str(after, &obj, &claim)?).ok()?;
    crate::identity::verify_tagged(&key, REDEEM_TAG, &redemption_message(space, &invite, device), &proof)
        .then_some(invite)
}

//! The bindings of `linli-core` (uniffi proc macros). This crate converts
//! types and delegates: every exported method is a call into the core and a
//! conversion of what it returns. It decides nothing. "The bridging layer is
//! not API": apps program against the generated Kotlin/Swift/Python.
//!
//! Every call blocks (SQLite, automerge); apps call it off their UI thread.

use std::sync::{Arc, Mutex};

use linli_core::deliberation;
use linli_core::poll;
use linli_core::space::{Role as CoreRole, SpaceEdit};
use linli_core::store::Store;
use linli_core::survey::{self, form::Problems, results::Filter};
use linli_core::sync::{self, SyncOptions, http::HttpTransport, hub::Hub};

uniffi::setup_scaffolding!();

mod everyone;
mod forum;
mod points;
mod register;

pub use everyone::*;
pub use forum::*;
pub use points::*;
pub use register::*;

/// The errors an app acts on. Messages carry no personal data.
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum LinliError {
    /// The input was malformed or broke a rule (an empty name, a bad code…).
    #[error("invalid input: {detail}")]
    InvalidInput { detail: String },
    /// This device's member may not do that.
    #[error("not allowed: {detail}")]
    NotAllowed { detail: String },
    /// The space, member or item is not known on this device.
    #[error("not found: {detail}")]
    NotFound { detail: String },
    /// A change was refused by the trust checks.
    #[error("refused: {detail}")]
    Refused { detail: String },
    /// The peer could not be reached or answered garbage; try again later.
    #[error("network: {detail}")]
    Network { detail: String },
    /// A survey definition file that does not import: each problem names
    /// its question and line.
    #[error("bad survey definition: {detail}")]
    BadDefinition { detail: String, problems: Vec<Problem> },
    /// Answers that break the survey's rules: one problem per question, to
    /// show beside it.
    #[error("answers need fixing: {detail}")]
    BadAnswers { detail: String, problems: Vec<Problem> },
    /// Storage or an internal fault; retrying may help, reporting it does.
    #[error("internal: {detail}")]
    Internal { detail: String },
}

/// A problem with a survey definition or an answer sheet.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Problem {
    pub question_id: Option<String>,
    /// The line of the definition file (imports only).
    pub line: Option<i64>,
    pub message: String,
}

fn problems(p: Problems) -> Vec<Problem> {
    p.0.into_iter()
        .map(|p| Problem { question_id: p.question, line: p.line.map(|l| l as i64), message: p.message })
        .collect()
}

impl From<sync::SyncError> for LinliError {
    fn from(e: sync::SyncError) -> Self {
        let detail = e.to_string();
        match e {
            sync::SyncError::Core(inner) => inner.into(),
            sync::SyncError::Rejected { status: 403, .. } => LinliError::NotAllowed { detail },
            sync::SyncError::Rejected { status: 404, .. } => LinliError::NotFound { detail },
            sync::SyncError::Rejected { .. } => LinliError::Refused { detail },
            _ => LinliError::Network { detail },
        }
    }
}

impl From<linli_core::Error> for LinliError {
    fn from(e: linli_core::Error) -> Self {
        use linli_core::Error as E;
        let detail = e.to_string();
        match e {
            E::Invalid(_) => LinliError::InvalidInput { detail },
            E::NotAllowed(_) => LinliError::NotAllowed { detail },
            E::NotFound(_) | E::UnknownSpace(_) => LinliError::NotFound { detail },
            E::Refused { .. } => LinliError::Refused { detail },
            E::Definition(p) => LinliError::BadDefinition { detail, problems: problems(p) },
            E::Answers(p) => LinliError::BadAnswers { detail, problems: problems(p) },
            _ => LinliError::Internal { detail },
        }
    }
}

type Result<T> = std::result::Result<T, LinliError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum Role {
    Resident,
    Volunteer,
    Coordinator,
    Admin,
}

impl From<Role> for CoreRole {
    fn from(r: Role) -> Self {
        match r {
            Role::Resident => CoreRole::Resident,
            Role::Volunteer => CoreRole::Volunteer,
            Role::Coordinator => CoreRole::Coordinator,
            Role::Admin => CoreRole::Admin,
        }
    }
}

impl From<CoreRole> for Role {
    fn from(r: CoreRole) -> Self {
        match r {
            CoreRole::Resident => Role::Resident,
            CoreRole::Volunteer => Role::Volunteer,
            CoreRole::Coordinator => Role::Coordinator,
            CoreRole::Admin => Role::Admin,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SpaceInfo {
    pub space_id: String,
    pub name: String,
    /// This device's member in the space (absent when only hosting it).
    pub member_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct MemberInfo {
    pub member_id: String,
    pub name: String,
    pub status: String,
    pub roles: Vec<Role>,
    /// Devices not revoked (0: a member without a phone).
    pub phones: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct UnitInfo {
    pub unit_id: String,
    pub building: String,
    pub entrance: String,
    pub room: String,
    /// Floor area in hundredths of a square metre (exact).
    pub area_centi: i64,
    pub grid_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Invitation {
    /// Show this as a QR code; it carries the invite's secret.
    pub code: String,
    pub member_id: String,
    /// For `revoke_invite`.
    pub invite_id: String,
}

/// What happened in a sync.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SyncSummary {
    pub rounds: i64,
    pub sent: i64,
    pub received: i64,
    /// Changes this device refused from the peer, and the peer from this device.
    pub refused_here: Vec<String>,
    pub refused_there: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Joined {
    pub space_id: String,
    pub member_id: String,
}

/// A running meeting hub: where it listens, and the link to show as a QR
/// code (`linli-hub://host:port/#sha256=…`) that other phones pass as `url`.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct HubInfo {
    pub address: String,
    pub link: String,
}

/// Told what changed and how a sync is going. Called from a background
/// thread: hop to the UI thread before touching views.
#[uniffi::export(with_foreign)]
pub trait LinliListener: Send + Sync {
    /// A document of `space_id` changed (`item_id` when it belongs to an item).
    fn on_change(&self, space_id: String, document: String, item_id: Option<String>);
    fn on_sync_progress(&self, space_id: String, round: i64, sent: i64, received: i64, done: bool);
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum VoteKind {
    YesNoAbstain,
    Single { options: Vec<String> },
    Multi { options: Vec<String>, min: i32, max: i32 },
    Satisfaction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum Matter {
    Special,
    Ordinary,
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum Eligibility {
    AllMembers,
    Role {
        role: Role,
    },
    Grid {
        grid_id: String,
    },
    Building {
        building: String,
    },
    Household,
    /// An owners' decision (art. 278) over the units of the whole space, or
    /// of one building and/or one grid: always a yes / no / abstain vote.
    VerifiedOwners {
        matter: Matter,
        building: Option<String>,
        grid_id: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct VoteSpec {
    pub title: String,
    pub kind: VoteKind,
    pub eligibility: Eligibility,
    /// Every member may see individual ballots (else coordinators only).
    pub ballots_public: bool,
    pub hide_results: bool,
    pub proxy_limit: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct OptionTally {
    pub label: String,
    pub heads: i64,
    pub area_centi: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ThresholdInfo {
    pub what: String,
    pub numerator: i64,
    pub denominator: i64,
    pub bound: String,
    pub met: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct OwnersDecision {
    pub thresholds: Vec<ThresholdInfo>,
    pub quorate: bool,
    pub passed: bool,
    /// Every numerator and denominator, and the units by what they were.
    pub figures: OwnersFigures,
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SetAside {
    pub reason: String,
    pub count: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct VoteResult {
    pub title: String,
    pub eligible_heads: i64,
    pub participating_heads: i64,
    pub options: Vec<OptionTally>,
    /// (很满意+满意+基本满意) / valid ballots, in basis points.
    pub satisfaction_basis_points: Option<i64>,
    pub owners: Option<OwnersDecision>,
    pub counted: i64,
    pub set_aside: Vec<SetAside>,
    /// Receipts of the ballots that counted.
    pub counted_receipts: Vec<String>,
}

/// A survey as a list or a header shows it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SurveyInfo {
    pub survey_id: String,
    pub title: String,
    /// `draft`, `scheduled`, `open` or `closed`.
    pub stage: String,
    /// Published versions (0 for a draft).
    pub versions: i64,
    pub anonymous: bool,
    /// One response per household (else per member).
    pub per_household: bool,
    pub opens_at_ms: Option<i64>,
    pub closes_at_ms: Option<i64>,
    pub results_published: bool,
}

/// One of this member's submissions.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Submission {
    pub version: i64,
    /// The stored answers (JSON; hidden questions' answers dropped).
    pub answers_json: String,
    pub at_ms: i64,
    pub receipt: String,
}

fn filter(grid_id: Option<String>, building: Option<String>) -> Filter {
    Filter { grid: grid_id, building }
}

fn json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| LinliError::Internal { detail: e.to_string() })
}

fn choices(c: Vec<i32>) -> Result<Vec<u32>> {
    c.into_iter()
        .map(|i| u32::try_from(i).map_err(|_| LinliError::InvalidInput { detail: "negative option".into() }))
        .collect()
}

fn count(n: i32, what: &str) -> Result<u32> {
    u32::try_from(n).map_err(|_| LinliError::InvalidInput { detail: format!("{what} is negative") })
}

impl TryFrom<VoteSpec> for poll::VoteSpec {
    type Error = LinliError;
    fn try_from(s: VoteSpec) -> Result<Self> {
        Ok(poll::VoteSpec {
            title: s.title,
            kind: match s.kind {
                VoteKind::YesNoAbstain => poll::VoteKind::YesNoAbstain,
                VoteKind::Single { options } => poll::VoteKind::Single { options },
                VoteKind::Multi { options, min, max } => {
                    poll::VoteKind::Multi { options, min: count(min, "min")?, max: count(max, "max")? }
                }
                VoteKind::Satisfaction => poll::VoteKind::Satisfaction,
            },
            eligibility: match s.eligibility {
                Eligibility::AllMembers => poll::Eligibility::AllMembers,
                Eligibility::Role { role } => poll::Eligibility::Role { role: CoreRole::from(role).as_str().into() },
                Eligibility::Grid { grid_id } => poll::Eligibility::Grid { grid: grid_id },
                Eligibility::Building { building } => poll::Eligibility::Building { building },
                Eligibility::Household => poll::Eligibility::Household,
                Eligibility::VerifiedOwners { matter, building, grid_id } => poll::Eligibility::VerifiedOwners {
                    matter: match matter {
                        Matter::Special => poll::Matter::Special,
                        Matter::Ordinary => poll::Matter::Ordinary,
                    },
                    building,
                    grid: grid_id,
                },
            },
            visibility: if s.ballots_public {
                poll::BallotVisibility::AllMembers
            } else {
                poll::BallotVisibility::CoordinatorsOnly
            },
            hide_results: s.hide_results,
            proxy_limit: count(s.proxy_limit, "proxy limit")?,
        })
    }
}

impl From<poll::Tally> for VoteResult {
    fn from(t: poll::Tally) -> Self {
        let counted_receipts = t.counted_receipts();
        let threshold = |t: poll::Threshold| ThresholdInfo {
            what: t.what,
            numerator: t.numerator,
            denominator: t.denominator,
            bound: t.bound,
            met: t.met,
        };
        VoteResult {
            title: t.title,
            eligible_heads: t.eligible.heads,
            participating_heads: t.participating.heads,
            options: t
                .options
                .into_iter()
                .map(|o| OptionTally { label: o.label, heads: o.count.heads, area_centi: o.count.area_centi })
                .collect(),
            satisfaction_basis_points: t.satisfaction.map(|s| s.basis_points),
            owners: t.owners.map(|o| OwnersDecision {
                figures: OwnersFigures::from(&o),
                quorate: o.quorate,
                passed: o.passed,
                thresholds: vec![
                    threshold(o.participation_area),
                    threshold(o.participation_heads),
                    threshold(o.approval_area),
                    threshold(o.approval_heads),
                ],
            }),
            counted: t.counted,
            set_aside: t.set_aside.into_iter().map(|(reason, count)| SetAside { reason, count }).collect(),
            counted_receipts,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct TopicInfo {
    pub topic_id: String,
    pub author: String,
    pub title: String,
    pub category: String,
    pub supports: i64,
    pub posts: i64,
    /// `open`, `agenda`, `declined`, `merged` or `decided`.
    pub status: String,
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PostInfo {
    pub post_id: String,
    pub author: String,
    pub parent: Option<String>,
    pub quote: Option<String>,
    /// Empty when hidden or retracted.
    pub body: String,
    pub edited: bool,
    pub retracted: bool,
    /// The moderation reason when a coordinator hid it.
    pub hidden_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct TimelineEvent {
    pub at_ms: i64,
    pub who: String,
    pub what: String,
    pub detail: String,
}

/// One device's Linli: the store in the app's data directory, with the
/// device key inside.
#[derive(uniffi::Object)]
pub struct LinliApp {
    store: Arc<Store>,
    hub: Mutex<Option<Hub>>,
    listener: Mutex<Option<Arc<dyn LinliListener>>>,
    /// Bumped to stop the thread that delivers change events.
    listener_generation: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for LinliApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LinliApp({:?})", self.store)
    }
}

fn transport(url: &str) -> Result<HttpTransport> {
    Ok(HttpTransport::new(url)?)
}

fn page(offset: i64, limit: i64) -> (u32, u32) {
    (u32::try_from(offset.max(0)).unwrap_or(u32::MAX), u32::try_from(limit.clamp(0, 10_000)).unwrap_or(10_000))
}

#[uniffi::export]
impl LinliApp {
    /// Open (or create) the store in `data_dir`.
    #[uniffi::constructor]
    pub fn open(data_dir: String) -> Result<Arc<Self>> {
        std::fs::create_dir_all(&data_dir).map_err(|e| LinliError::Internal { detail: e.kind().to_string() })?;
        let store = Arc::new(Store::open(std::path::Path::new(&data_dir).join("linli.db"))?);
        Ok(Arc::new(LinliApp {
            store,
            hub: Mutex::new(None),
            listener: Mutex::new(None),
            listener_generation: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        }))
    }

    /// Be told of changes and sync progress (replaces any earlier listener).
    pub fn set_listener(&self, listener: Arc<dyn LinliListener>) {
        use std::sync::atomic::Ordering;
        let events = self.store.subscribe();
        let l = listener.clone();
        let generation = self.listener_generation.clone();
        let mine = generation.fetch_add(1, Ordering::SeqCst) + 1;
        std::thread::spawn(move || {
            while generation.load(Ordering::SeqCst) == mine {
                match events.recv_timeout(std::time::Duration::from_millis(100)) {
                    Ok(e) => l.on_change(e.space, e.doc.to_string(), e.item),
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                }
            }
        });
        if let Ok(mut slot) = self.listener.lock() {
            *slot = Some(listener);
        }
    }

    /// Stop the hub and the listener; call before the app goes away.
    pub fn shutdown(&self) {
        self.listener_generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if let Ok(mut slot) = self.listener.lock() {
            *slot = None;
        }
        self.stop_hub();
    }

    /// Sync a space with the server (or a hub) at `url`, until both are current.
    pub fn sync_now(&self, space_id: String, url: String) -> Result<SyncSummary> {
        let listener = self.listener.lock().ok().and_then(|l| l.clone());
        let mut progress = |p: &sync::Progress| {
            if let Some(l) = &listener {
                l.on_sync_progress(space_id.clone(), i64::from(p.round), p.sent as i64, p.received as i64, p.done);
            }
        };
        let r = sync::sync(&self.store, &space_id, &url, &transport(&url)?, &SyncOptions::default(), &mut progress)?;
        Ok(SyncSummary {
            rounds: i64::from(r.rounds),
            sent: r.sent as i64,
            received: r.received as i64,
            refused_here: r.refused_here,
            refused_there: r.refused_there,
        })
    }

    /// Join a space with an invite code through the server (or hub) at `url`.
    pub fn join(&self, code: String, my_name: String, url: String) -> Result<Joined> {
        let (space_id, member_id) =
            sync::join(&self.store, &code, &my_name, &url, &transport(&url)?, &SyncOptions::default())?;
        Ok(Joined { space_id, member_id })
    }

    /// Serve this phone's spaces to others at a meeting, over TLS with a key
    /// made now. `host` is the address phones reach this one at (its Wi-Fi
    /// IP), needed in the link when `listen` is `0.0.0.0`; without it the
    /// link carries the listen address.
    pub fn start_hub(&self, listen: String, host: Option<String>) -> Result<HubInfo> {
        let hub = Hub::start(self.store.clone(), &listen)?;
        let link = match &host {
            Some(h) => hub.link_for(h)?,
            None => hub.link(),
        };
        let info = HubInfo { address: hub.addr().to_string(), link };
        if let Ok(mut slot) = self.hub.lock() {
            *slot = Some(hub);
        }
        Ok(info)
    }

    pub fn stop_hub(&self) {
        if let Ok(mut slot) = self.hub.lock()
            && let Some(hub) = slot.take()
        {
            hub.stop();
        }
    }

    pub fn my_member(&self, space_id: String) -> Result<String> {
        Ok(self.store.my_member(&space_id)?)
    }

    pub fn create_vote(&self, space_id: String, spec: VoteSpec) -> Result<String> {
        Ok(poll::create(&self.store, &space_id, &spec.try_into()?)?)
    }

    /// Open the vote; returns the size of the electorate, fixed from now on.
    pub fn open_vote(&self, space_id: String, vote_id: String) -> Result<i64> {
        Ok(poll::open(&self.store, &space_id, &vote_id)? as i64)
    }

    pub fn close_vote(&self, space_id: String, vote_id: String) -> Result<()> {
        Ok(poll::close(&self.store, &space_id, &vote_id)?)
    }

    pub fn publish_vote(&self, space_id: String, vote_id: String) -> Result<VoteResult> {
        Ok(poll::publish(&self.store, &space_id, &vote_id)?.into())
    }

    /// Cast or change this member's ballot; returns the receipt to check later.
    pub fn cast_ballot(&self, space_id: String, vote_id: String, choices_: Vec<i32>) -> Result<String> {
        Ok(poll::cast(&self.store, &space_id, &vote_id, &choices(choices_)?)?)
    }

    pub fn enter_paper_ballot(
        &self,
        space_id: String,
        vote_id: String,
        member_id: String,
        choices_: Vec<i32>,
    ) -> Result<String> {
        Ok(poll::enter_paper_ballot(&self.store, &space_id, &vote_id, &member_id, &choices(choices_)?)?)
    }

    pub fn grant_proxy(&self, space_id: String, vote_id: String, to_member: String) -> Result<()> {
        Ok(poll::grant_proxy(&self.store, &space_id, &vote_id, &to_member)?)
    }

    /// The tally from the ballots this device holds (absent while hidden).
    pub fn vote_results(&self, space_id: String, vote_id: String) -> Result<Option<VoteResult>> {
        Ok(poll::results(&self.store, &space_id, &vote_id)?.map(Into::into))
    }

    pub fn raise_topic(
        &self,
        space_id: String,
        title: String,
        category: String,
        description: String,
    ) -> Result<String> {
        Ok(deliberation::raise_topic(&self.store, &space_id, &title, &category, &description)?)
    }

    pub fn support_topic(&self, space_id: String, topic_id: String) -> Result<()> {
        Ok(deliberation::support(&self.store, &space_id, &topic_id)?)
    }

    pub fn topics(&self, space_id: String, offset: i64, limit: i64) -> Result<Vec<TopicInfo>> {
        let (o, l) = page(offset, limit);
        Ok(deliberation::topics(&self.store, &space_id, o, l)?
            .into_iter()
            .map(|t| TopicInfo {
                topic_id: t.topic,
                author: t.author,
                title: t.title,
                category: t.category,
                supports: t.supports,
                posts: t.posts,
                status: t.status,
            })
            .collect())
    }

    /// Post into a topic's thread; `parent` replies, `quote` quotes.
    pub fn post(
        &self,
        space_id: String,
        topic_id: String,
        body: String,
        parent: Option<String>,
        quote: Option<String>,
    ) -> Result<String> {
        Ok(deliberation::post(&self.store, &space_id, &topic_id, &body, parent.as_deref(), quote.as_deref())?)
    }

    pub fn edit_post(&self, space_id: String, post_id: String, body: String) -> Result<()> {
        Ok(deliberation::edit_post(&self.store, &space_id, &post_id, &body)?)
    }

    pub fn retract_post(&self, space_id: String, post_id: String) -> Result<()> {
        Ok(deliberation::retract_post(&self.store, &space_id, &post_id)?)
    }

    /// Coordinators: hide a post with a reason (shown in the moderation log).
    pub fn hide_post(&self, space_id: String, post_id: String, reason: String) -> Result<()> {
        Ok(deliberation::hide_post(&self.store, &space_id, &post_id, &reason)?)
    }

    pub fn thread(&self, space_id: String, topic_id: String) -> Result<Vec<PostInfo>> {
        Ok(deliberation::thread(&self.store, &space_id, &topic_id)?
            .into_iter()
            .map(|p| PostInfo {
                post_id: p.post,
                author: p.author,
                parent: p.parent,
                quote: p.quote,
                body: p.body,
                edited: p.edited_at.is_some(),
                retracted: p.retracted,
                hidden_reason: p.hidden,
            })
            .collect())
    }

    /// Coordinators: record the decision a topic ended in.
    pub fn decide_topic(
        &self,
        space_id: String,
        topic_id: String,
        outcome: String,
        vote_id: Option<String>,
        responsible: Vec<String>,
        deadline: String,
    ) -> Result<()> {
        let input = deliberation::DecisionInput { outcome, vote: vote_id, consultation: None, responsible, deadline };
        Ok(deliberation::decide(&self.store, &space_id, &topic_id, &input)?)
    }

    pub fn topic_timeline(&self, space_id: String, topic_id: String) -> Result<Vec<TimelineEvent>> {
        Ok(deliberation::timeline(&self.store, &space_id, &topic_id)?
            .into_iter()
            .map(|e| TimelineEvent { at_ms: e.at, who: e.who, what: e.what, detail: e.detail })
            .collect())
    }

    /// The published summary of a topic as Markdown (居务公开).
    pub fn topic_disclosure_markdown(&self, space_id: String, topic_id: String) -> Result<String> {
        Ok(deliberation::disclosure(&self.store, &space_id, &topic_id)?.to_markdown())
    }

    /// The published summary of a topic as JSON.
    pub fn topic_disclosure_json(&self, space_id: String, topic_id: String) -> Result<String> {
        let d = deliberation::disclosure(&self.store, &space_id, &topic_id)?;
        serde_json::to_string(&d).map_err(|e| LinliError::Internal { detail: e.to_string() })
    }

    // -- Surveys (definitions, answers and results travel as JSON: docs/surveys.md)

    /// Coordinators: create a survey in draft from a definition file.
    pub fn create_survey(&self, space_id: String, definition_json: String) -> Result<String> {
        Ok(survey::create(&self.store, &space_id, &definition_json)?)
    }

    /// Coordinators: replace a draft, or publish a new version of a published survey.
    pub fn edit_survey(&self, space_id: String, survey_id: String, definition_json: String) -> Result<()> {
        Ok(survey::edit(&self.store, &space_id, &survey_id, &definition_json)?)
    }

    /// Coordinators: publish; returns how many members the survey is for.
    pub fn publish_survey(&self, space_id: String, survey_id: String) -> Result<i64> {
        Ok(survey::publish(&self.store, &space_id, &survey_id)? as i64)
    }

    pub fn close_survey(&self, space_id: String, survey_id: String) -> Result<()> {
        Ok(survey::close(&self.store, &space_id, &survey_id)?)
    }

    pub fn survey(&self, space_id: String, survey_id: String) -> Result<SurveyInfo> {
        let s = survey::header(&self.store, &space_id, &survey_id)?;
        Ok(SurveyInfo {
            survey_id: s.id.clone(),
            title: s.def.title.clone(),
            stage: s.stage.as_str().into(),
            versions: s.keys.len() as i64,
            anonymous: s.def.anonymous,
            per_household: s.def.per == survey::form::Per::Household,
            opens_at_ms: s.def.opens_at,
            closes_at_ms: s.closes_at,
            results_published: s.results_published,
        })
    }

    /// The current definition as a file (to show the form, or to export).
    pub fn survey_definition(&self, space_id: String, survey_id: String) -> Result<String> {
        Ok(survey::export_definition(&self.store, &space_id, &survey_id)?)
    }

    /// Keep unfinished answers on this device.
    pub fn save_survey_draft(&self, space_id: String, survey_id: String, answers_json: String) -> Result<()> {
        Ok(survey::save_draft(&self.store, &space_id, &survey_id, &answers_json)?)
    }

    pub fn survey_draft(&self, space_id: String, survey_id: String) -> Result<Option<String>> {
        Ok(survey::draft(&self.store, &space_id, &survey_id)?)
    }

    /// The groups and questions these answers show, in order (skip logic).
    pub fn visible_questions(&self, space_id: String, survey_id: String, answers_json: String) -> Result<Vec<String>> {
        Ok(survey::visible(&self.store, &space_id, &survey_id, &answers_json)?)
    }

    /// The problems these answers have, one per question; empty when ready.
    pub fn check_answers(&self, space_id: String, survey_id: String, answers_json: String) -> Result<Vec<Problem>> {
        Ok(problems(Problems(survey::check(&self.store, &space_id, &survey_id, &answers_json)?)))
    }

    /// Submit (or resubmit until the close); returns the receipt.
    pub fn submit_response(&self, space_id: String, survey_id: String, answers_json: String) -> Result<String> {
        Ok(survey::submit(&self.store, &space_id, &survey_id, &answers_json)?)
    }

    /// This member's submissions, latest (the one that counts) first.
    pub fn my_submissions(&self, space_id: String, survey_id: String) -> Result<Vec<Submission>> {
        Ok(survey::my_submissions(&self.store, &space_id, &survey_id)?
            .into_iter()
            .map(|s| Submission { version: s.version, answers_json: s.answers, at_ms: s.at, receipt: s.receipt })
            .collect())
    }

    /// Results from the responses this device holds, as JSON (coordinators).
    pub fn survey_results_json(
        &self,
        space_id: String,
        survey_id: String,
        grid_id: Option<String>,
        building: Option<String>,
    ) -> Result<String> {
        json(&survey::results(&self.store, &space_id, &survey_id, &filter(grid_id, building))?)
    }

    /// Coordinators: publish the results for every member; returns them as JSON.
    pub fn publish_survey_results(&self, space_id: String, survey_id: String) -> Result<String> {
        json(&survey::publish_results(&self.store, &space_id, &survey_id)?)
    }

    pub fn published_survey_results_json(&self, space_id: String, survey_id: String) -> Result<Option<String>> {
        survey::published_results(&self.store, &space_id, &survey_id)?.map(|r| json(&r)).transpose()
    }

    /// Coordinators: the responses as CSV for Excel / WPS (UTF-8 with BOM).
    pub fn export_survey_csv(
        &self,
        space_id: String,
        survey_id: String,
        grid_id: Option<String>,
        building: Option<String>,
    ) -> Result<String> {
        Ok(survey::export_csv(&self.store, &space_id, &survey_id, &filter(grid_id, building))?)
    }

    pub fn export_survey_json(
        &self,
        space_id: String,
        survey_id: String,
        grid_id: Option<String>,
        building: Option<String>,
    ) -> Result<String> {
        Ok(survey::export_json(&self.store, &space_id, &survey_id, &filter(grid_id, building))?)
    }

    /// The published result, once a coordinator has published it.
    pub fn published_result(&self, space_id: String, vote_id: String) -> Result<Option<VoteResult>> {
        Ok(poll::published(&self.store, &space_id, &vote_id)?.map(Into::into))
    }

    pub fn device_id(&self) -> String {
        self.store.device_id().to_hex()
    }

    pub fn create_space(&self, name: String, my_name: String) -> Result<String> {
        Ok(self.store.create_space(&name, &my_name)?)
    }

    pub fn spaces(&self) -> Result<Vec<SpaceInfo>> {
        Ok(self
            .store
            .spaces()?
            .into_iter()
            .map(|s| SpaceInfo { space_id: s.space_id, name: s.name, member_id: s.member_id })
            .collect())
    }

    pub fn members(&self, space_id: String, offset: i64, limit: i64) -> Result<Vec<MemberInfo>> {
        let (o, l) = page(offset, limit);
        Ok(self
            .store
            .members(&space_id, o, l)?
            .into_iter()
            .map(|m| MemberInfo {
                member_id: m.member_id,
                name: m.name,
                status: m.status,
                roles: m.roles.into_iter().map(Role::from).collect(),
                phones: m.phones,
            })
            .collect())
    }

    pub fn units(&self, space_id: String, offset: i64, limit: i64) -> Result<Vec<UnitInfo>> {
        let (o, l) = page(offset, limit);
        Ok(self
            .store
            .units(&space_id, o, l)?
            .into_iter()
            .map(|u| UnitInfo {
                unit_id: u.unit_id,
                building: u.building,
                entrance: u.entrance,
                room: u.room,
                area_centi: u.area_centi,
                grid_id: u.grid_id,
            })
            .collect())
    }

    pub fn add_unit(
        &self,
        space_id: String,
        unit_id: String,
        building: String,
        entrance: String,
        room: String,
        area_centi: i64,
    ) -> Result<()> {
        self.store.edit_space(
            &space_id,
            &[SpaceEdit::AddUnit { unit: unit_id, building, entrance, room, area_centi, grid: None, household: None }],
        )?;
        Ok(())
    }

    pub fn set_role(&self, space_id: String, member_id: String, role: Role, granted: bool) -> Result<()> {
        self.store.edit_space(&space_id, &[SpaceEdit::SetRole { member: member_id, role: role.into(), granted }])?;
        Ok(())
    }

    pub fn create_invite(&self, space_id: String, name: String, roles: Vec<Role>) -> Result<Invitation> {
        let roles: Vec<CoreRole> = roles.into_iter().map(CoreRole::from).collect();
        let inv = self.store.create_invite(&space_id, &name, &roles, None)?;
        Ok(Invitation { code: inv.code, member_id: inv.member_id, invite_id: inv.invite_id })
    }
}

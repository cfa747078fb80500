//! The core's rich error type. Error text never carries names, answers or
//! ballots: only kinds, ids and counts, so it is safe to log.

use crate::doc::DocId;

/// Why a change was refused before it was merged. Each refusal is recorded in
/// the store's audit table with this reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the signature does not verify against the change's actor")]
    BadSignature,
    #[error("the actor is not a device of any member of the space")]
    UnknownDevice,
    #[error("the device was revoked before this change was made")]
    RevokedDevice,
    #[error("the actor is not a writer of document {0}")]
    NotAWriter(String),
    #[error("the author may not change `{0}` in the space document")]
    Forbidden(String),
    #[error("the actor already signed a different change with sequence number {0}")]
    Equivocation(u64),
    #[error("the change does not belong to this space (genesis mismatch)")]
    WrongGenesis,
    #[error("the invite is unknown, expired or already redeemed")]
    BadInvite,
    #[error("the change is malformed: {0}")]
    Malformed(String),
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("change refused in {doc}: {reason}")]
    Refused { doc: DocId, reason: Refusal },
    #[error("unknown space {0}")]
    UnknownSpace(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("invalid input: {0}")]
    Invalid(String),
    /// A survey definition that does not import: each problem with its
    /// question and line.
    #[error("the survey definition has problems: {0}")]
    Definition(crate::survey::form::Problems),
    /// Answers that break the survey's rules: one problem per question.
    #[error("the answers have problems: {0}")]
    Answers(crate::survey::form::Problems),
    #[error("this device has no right to do that: {0}")]
    NotAllowed(String),
    #[error("the store was written by a newer version (schema {found}, this build knows {known})")]
    SchemaTooNew { found: i64, known: i64 },
    #[error("storage: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("document: {0}")]
    Automerge(#[from] automerge::AutomergeError),
    #[error("document bytes: {0}")]
    Load(#[from] automerge::LoadChangeError),
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("random source: {0}")]
    Random(String),
    /// A merge ran past the time limit of its request ([`crate::store::within`]);
    /// nothing was written.
    #[error("the request took too long and was stopped; nothing was written")]
    Overdue,
    #[error("internal: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

//! # linli-core
//!
//! The offline-first core of Linli (邻里): a community's register and
//! activity kept as automerge documents, every change signed by the device
//! that made it and checked before it is merged, stored in SQLite.
//!
//! Layers, bottom up (see `ARCHITECTURE.md`):
//!
//! * [`identity`]: device keys; the actor id of a device is its public key.
//! * [`doc`]: document ids, kinds, and each kind's writers and readers.
//! * [`space`]: the register of a community: members, roles, devices, units,
//!   households, grids, invites; the rights of each role in it.
//! * [`trust`]: the pure check a change passes before it is merged.
//! * [`store`]: the SQLite store that holds documents, signatures, the audit
//!   trail and the query tables list views read.
//! * [`survey`], [`poll`], [`ledger`], [`deliberation`]: the modules residents use.
//! * [`sync`]: the sync protocol (sans-I/O), its HTTP transport and the
//!   phone-hosted meeting hub.
//!
//! ```
//! use linli_core::{space::{Role, SpaceEdit}, store::Store};
//! # fn main() -> linli_core::Result<()> {
//! let dir = tempfile::tempdir().map_err(|e| linli_core::Error::Internal(e.to_string()))?;
//! let store = Store::open(dir.path().join("linli.db"))?;
//! let space = store.create_space("幸福里社区", "王老师")?;
//! store.edit_space(&space, &[SpaceEdit::AddUnit {
//!     unit: "u1".into(), building: "3栋".into(), entrance: "1单元".into(), room: "502".into(),
//!     area_centi: 8_975, grid: None, household: None,
//! }])?;
//! let me = store.my_member(&space)?;
//! assert!(store.view(&space)?.members[&me].has(Role::Admin));
//! assert_eq!(store.units(&space, 0, 50)?[0].area_centi, 8_975); // 89.75 m², exactly
//! # Ok(()) }
//! ```

pub mod deliberation;
pub mod doc;
pub mod error;
pub mod identity;
pub mod ledger;
pub mod poll;
pub mod space;
pub mod store;
pub mod survey;
pub mod sync;
pub mod trust;

pub use error::{Error, Refusal, Result};

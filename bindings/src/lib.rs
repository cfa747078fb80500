//! The bindings of `linli-core` (uniffi proc macros). This crate converts
//! types and delegates: every exported method is a call into the core and a
//! conversion of what it returns. It decides nothing. "The bridging layer is
//! not API": apps program against the generated Kotlin/Swift/Python.
//!
//! Every call blocks (SQLite, automerge); apps call it off their UI thread.

use std::sync::Arc;

use linli_core::space::{Role as CoreRole, SpaceEdit};
use linli_core::store::Store;

uniffi::setup_scaffolding!();

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
    /// Storage or an internal fault; retrying may help, reporting it does.
    #[error("internal: {detail}")]
    Internal { detail: String },
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
}

/// One device's Linli: the store in the app's data directory, with the
/// device key inside.
#[derive(Debug, uniffi::Object)]
pub struct LinliApp {
    store: Store,
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
        let store = Store::open(std::path::Path::new(&data_dir).join("linli.db"))?;
        Ok(Arc::new(LinliApp { store }))
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
        Ok(Invitation { code: inv.code, member_id: inv.member_id })
    }
}

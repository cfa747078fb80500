//! The register beyond creating a space and inviting: what is on (the item
//! list), members' names, devices and removal, grids, households, links to
//! units and verified owners. Conversions only; the rights are checked by
//! the core (`linli_core::space`).

use linli_core::identity::DeviceId;
use linli_core::space::{Relation as CoreRelation, SpaceEdit};

use crate::{LinliApp, Result, page};

/// What a member is to a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum Relation {
    Owner,
    Tenant,
    Family,
}

impl From<Relation> for CoreRelation {
    fn from(r: Relation) -> Self {
        match r {
            Relation::Owner => CoreRelation::Owner,
            Relation::Tenant => CoreRelation::Tenant,
            Relation::Family => CoreRelation::Family,
        }
    }
}

/// A vote, survey, topic, consultation or activity, as the "what is on"
/// list shows it, newest first.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ItemInfo {
    pub item_id: String,
    /// `vote`, `survey`, `topic`, `consultation`, `activity`…
    pub kind: String,
    pub title: String,
    pub created_by: String,
    pub created_at_ms: i64,
}

#[uniffi::export]
impl LinliApp {
    pub fn items(&self, space_id: String, offset: i64, limit: i64) -> Result<Vec<ItemInfo>> {
        let (offset, limit) = page(offset, limit);
        Ok(self
            .store
            .items(&space_id, offset, limit)?
            .into_iter()
            .map(|i| ItemInfo {
                item_id: i.item_id,
                kind: i.kind,
                title: i.title,
                created_by: i.created_by,
                created_at_ms: i.created_at,
            })
            .collect())
    }

    pub fn rename_member(&self, space_id: String, member_id: String, name: String) -> Result<()> {
        self.edit(&space_id, SpaceEdit::Rename { member: member_id, name })
    }

    /// Coordinators: remove a member; what they wrote before stays.
    pub fn remove_member(&self, space_id: String, member_id: String) -> Result<()> {
        self.edit(&space_id, SpaceEdit::RemoveMember { member: member_id })
    }

    /// Add another device (a tablet) of a member, by its `device_id()`.
    pub fn add_device(&self, space_id: String, member_id: String, device_id: String, label: String) -> Result<()> {
        let device = DeviceId::from_hex(&device_id)?;
        self.edit(&space_id, SpaceEdit::AddDevice { member: member_id, device, label })
    }

    /// Revoke a lost phone: its changes made from now on are refused.
    pub fn revoke_device(&self, space_id: String, member_id: String, device_id: String) -> Result<()> {
        let device = DeviceId::from_hex(&device_id)?;
        self.edit(&space_id, SpaceEdit::RevokeDevice { member: member_id, device })
    }

    pub fn add_grid(&self, space_id: String, grid_id: String, name: String) -> Result<()> {
        self.edit(&space_id, SpaceEdit::AddGrid { grid: grid_id, name })
    }

    pub fn add_household(&self, space_id: String, household_id: String, label: String) -> Result<()> {
        self.edit(&space_id, SpaceEdit::AddHousehold { household: household_id, label })
    }

    /// Put a member in a household (None: none), which answers per-household surveys.
    pub fn set_household(&self, space_id: String, member_id: String, household_id: Option<String>) -> Result<()> {
        self.edit(&space_id, SpaceEdit::SetHousehold { member: member_id, household: household_id })
    }

    /// Link a member to a unit as owner, tenant or family.
    pub fn link_unit(&self, space_id: String, member_id: String, unit_id: String, relation: Relation) -> Result<()> {
        self.edit(&space_id, SpaceEdit::Link { member: member_id, unit: unit_id, relation: relation.into() })
    }

    /// Coordinators: record that an owner's title was checked (owners' votes count only verified owners).
    pub fn verify_owner(&self, space_id: String, member_id: String, unit_id: String) -> Result<()> {
        let by = self.store.my_member(&space_id)?;
        self.edit(&space_id, SpaceEdit::VerifyOwner { member: member_id, unit: unit_id, by })
    }

    /// Admins: how many supports put a topic on the agenda.
    pub fn set_support_threshold(&self, space_id: String, supports: i64) -> Result<()> {
        self.edit(&space_id, SpaceEdit::SetSupportThreshold { supports })
    }
}

impl LinliApp {
    pub(crate) fn edit(&self, space_id: &str, edit: SpaceEdit) -> Result<()> {
        self.store.edit_space(space_id, &[edit])?;
        Ok(())
    }
}

//! Residents without phones, and owners' decisions that stand up in law:
//! members registered with no device, paper ballots, proxy ballots, answers
//! taken at the door, hours logged for a volunteer, the register edits real
//! life needs, and the public notice of an owners' decision. Conversions
//! only; the rules are in `linli_core::poll`, `linli_core::survey`,
//! `linli_core::ledger` and `linli_core::space`.

use linli_core::poll::{self, owners};
use linli_core::space::{Role as CoreRole, SpaceEdit};
use linli_core::{ledger, survey};

use crate::{Invitation, LinliApp, LinliError, Result, Role, choices};

/// A unit as an owners' decision's report lists it (no names).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct UnitLineInfo {
    pub unit_id: String,
    /// Building-entrance-room.
    pub label: String,
    pub area_centi: i64,
}

impl From<owners::UnitLine> for UnitLineInfo {
    fn from(u: owners::UnitLine) -> Self {
        UnitLineInfo { unit_id: u.unit, label: u.label, area_centi: u.area_centi }
    }
}

fn lines(v: Vec<owners::UnitLine>) -> Vec<UnitLineInfo> {
    v.into_iter().map(Into::into).collect()
}

/// The art. 278 figures of an owners' decision, every numerator and
/// denominator stated.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct OwnersFigures {
    /// All owners (heads) and the total exclusive area of the units in scope.
    pub total_heads: i64,
    pub total_area_centi: i64,
    pub participating_heads: i64,
    pub participating_area_centi: i64,
    pub approving_heads: i64,
    pub approving_area_centi: i64,
    pub opposing_heads: i64,
    pub opposing_area_centi: i64,
    pub abstaining_heads: i64,
    pub abstaining_area_centi: i64,
    pub took_part: Vec<UnitLineInfo>,
    /// Could have voted and did not.
    pub absent: Vec<UnitLineInfo>,
    /// Owners registered, none verified: what verification remains.
    pub unverified: Vec<UnitLineInfo>,
    pub no_owner: Vec<UnitLineInfo>,
    pub developer_units: Vec<UnitLineInfo>,
}

impl From<&poll::OwnersReport> for OwnersFigures {
    fn from(o: &poll::OwnersReport) -> Self {
        OwnersFigures {
            total_heads: o.total.heads,
            total_area_centi: o.total.area_centi,
            participating_heads: o.participation_heads.numerator,
            participating_area_centi: o.participation_area.numerator,
            approving_heads: o.approving.heads,
            approving_area_centi: o.approving.area_centi,
            opposing_heads: o.opposing.heads,
            opposing_area_centi: o.opposing.area_centi,
            abstaining_heads: o.abstaining.heads,
            abstaining_area_centi: o.abstaining.area_centi,
            took_part: lines(o.took_part.clone()),
            absent: lines(o.absent.clone()),
            unverified: lines(o.unverified.clone()),
            no_owner: lines(o.no_owner.clone()),
            developer_units: lines(o.developer_units.clone()),
        }
    }
}

/// One publication of a vote's result (the latest is the official one).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Publication {
    pub at_ms: i64,
    /// The coordinator who published it.
    pub by: String,
    pub result: crate::VoteResult,
}

/// The public notice (公示) of a closed owners' decision in three forms.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct OwnersNotice {
    pub markdown: String,
    pub html: String,
    /// UTF-8 with a BOM, CRLF: opens correctly in Excel and WPS.
    pub csv: String,
}

#[uniffi::export]
impl LinliApp {
    // -- The register

    /// Coordinators: register a member who has no phone. They are active at
    /// once and take part through what is entered for them. Returns their id.
    pub fn add_member_without_phone(&self, space_id: String, name: String, roles: Vec<Role>) -> Result<String> {
        let roles: Vec<CoreRole> = roles.into_iter().map(CoreRole::from).collect();
        Ok(self.store.add_member(&space_id, &name, &roles)?)
    }

    /// Coordinators: an invite that gives a phone to a member registered
    /// without one; everything entered for them stays theirs.
    pub fn invite_member(&self, space_id: String, member_id: String) -> Result<Invitation> {
        let inv = self.store.invite_member(&space_id, &member_id, None)?;
        Ok(Invitation { code: inv.code, member_id: inv.member_id, invite_id: inv.invite_id })
    }

    /// Coordinators: an invite not yet used admits no phone from now on.
    pub fn revoke_invite(&self, space_id: String, invite_id: String) -> Result<()> {
        let by = self.store.my_member(&space_id)?;
        self.edit(&space_id, SpaceEdit::RevokeInvite { invite: invite_id, by })
    }

    /// Coordinators: a link ends (a unit sold, a tenant moved out), dated.
    /// Votes already open keep the electorate they froze.
    pub fn end_link(&self, space_id: String, member_id: String, unit_id: String) -> Result<()> {
        let by = self.store.my_member(&space_id)?;
        self.edit(&space_id, SpaceEdit::EndLink { member: member_id, unit: unit_id, by })
    }

    /// Coordinators: withdraw an owner's verification, dated.
    pub fn withdraw_verification(&self, space_id: String, member_id: String, unit_id: String) -> Result<()> {
        let by = self.store.my_member(&space_id)?;
        self.edit(&space_id, SpaceEdit::WithdrawVerification { member: member_id, unit: unit_id, by })
    }

    /// Coordinators: set (or clear, with None) a unit's grid and household.
    pub fn set_unit_place(
        &self,
        space_id: String,
        unit_id: String,
        grid_id: Option<String>,
        household_id: Option<String>,
    ) -> Result<()> {
        self.edit(&space_id, SpaceEdit::SetUnitPlace { unit: unit_id, grid: grid_id, household: household_id })
    }

    /// Coordinators: mark a unit unsold or undelivered, still the developer's
    /// (such units count as one owner together in owners' decisions).
    pub fn set_developer_unit(&self, space_id: String, unit_id: String, developer: bool) -> Result<()> {
        self.edit(&space_id, SpaceEdit::SetDeveloperUnit { unit: unit_id, developer })
    }

    /// Coordinators: record which co-owner votes for a unit (None: any
    /// verified co-owner, by the documented rule).
    pub fn designate_voter(&self, space_id: String, unit_id: String, member_id: Option<String>) -> Result<()> {
        self.edit(&space_id, SpaceEdit::DesignateVoter { unit: unit_id, member: member_id })
    }

    // -- Taking part for someone

    /// Cast a ballot for a member who gave this member their proxy.
    pub fn cast_as_proxy(
        &self,
        space_id: String,
        vote_id: String,
        for_member: String,
        choices_: Vec<i32>,
    ) -> Result<String> {
        Ok(poll::cast_as_proxy(&self.store, &space_id, &vote_id, &for_member, &choices(choices_)?)?)
    }

    /// Interviewers (coordinators): enter the answers of a member taken at
    /// their door (入户调查). They count as the member's response; the audit
    /// shows who entered them. Returns the receipt.
    pub fn submit_response_for(
        &self,
        space_id: String,
        survey_id: String,
        member_id: String,
        answers_json: String,
    ) -> Result<String> {
        Ok(survey::submit_for(&self.store, &space_id, &survey_id, &member_id, &answers_json)?)
    }

    /// Coordinators: log hours a volunteer without a phone gave, to a member
    /// (`to_member`) or for an activity. Credited once the recipient (or
    /// another coordinator) confirms.
    #[allow(clippy::too_many_arguments)]
    pub fn log_hours_for(
        &self,
        space_id: String,
        volunteer_id: String,
        to_member: Option<String>,
        activity_id: Option<String>,
        category_id: String,
        minutes: i64,
        given_on_ms: i64,
        note: String,
    ) -> Result<String> {
        let input = crate::points::hours_input(to_member, activity_id, category_id, minutes, given_on_ms, note);
        Ok(ledger::log_hours_for(&self.store, &space_id, &volunteer_id, &input)?)
    }

    /// Every publication of a vote's result, oldest first: a ballot cast
    /// before the close that arrived after a publication is counted by
    /// publishing again, and the earlier publications stay, dated.
    pub fn vote_publications(&self, space_id: String, vote_id: String) -> Result<Vec<Publication>> {
        Ok(poll::publications(&self.store, &space_id, &vote_id)?
            .into_iter()
            .map(|p| Publication { at_ms: p.at, by: p.by, result: p.tally.into() })
            .collect())
    }

    // -- Owners' decisions

    /// The art. 278 figures of an owners' decision, from the published
    /// result if there is one, else from the ballots this device holds.
    pub fn owners_figures(&self, space_id: String, vote_id: String) -> Result<Option<OwnersFigures>> {
        let t = self.owners_tally(&space_id, &vote_id)?;
        Ok(t.owners.as_ref().map(OwnersFigures::from))
    }

    /// The public notice of a closed owners' decision: the units and areas
    /// that took part (no names), each threshold with its numbers, and the
    /// outcome.
    pub fn owners_notice(&self, space_id: String, vote_id: String) -> Result<OwnersNotice> {
        let v = poll::vote(&self.store, &space_id, &vote_id)?;
        if !matches!(v.stage, poll::Stage::Closed | poll::Stage::Published) {
            return Err(LinliError::InvalidInput { detail: "a notice is for a closed decision".into() });
        }
        let t = self.owners_tally(&space_id, &vote_id)?;
        let not_owners = || LinliError::InvalidInput { detail: "the vote is not an owners' decision".into() };
        Ok(OwnersNotice {
            markdown: owners::notice_markdown(&t).ok_or_else(not_owners)?,
            html: owners::notice_html(&t).ok_or_else(not_owners)?,
            csv: owners::notice_csv(&t).ok_or_else(not_owners)?,
        })
    }
}

impl LinliApp {
    fn owners_tally(&self, space_id: &str, vote_id: &str) -> Result<poll::Tally> {
        if let Some(t) = poll::published(&self.store, space_id, vote_id)? {
            return Ok(t);
        }
        poll::results(&self.store, space_id, vote_id)?
            .ok_or_else(|| LinliError::NotAllowed { detail: "the results are hidden until the close".into() })
    }
}

//! Points for services (积分换服务): the ledger's actions and views.
//! Conversions only; every rule is in `linli_core::ledger`.

use linli_core::ledger::{self, HoursStatus};

use crate::{LinliApp, Result, json};

/// Hours given to a member or for an activity, as the core takes them.
pub(crate) fn hours_input(
    to: Option<String>,
    activity: Option<String>,
    category: String,
    minutes: i64,
    on: i64,
    note: String,
) -> ledger::HoursInput {
    ledger::HoursInput { to, activity, category, minutes, on, note }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum OfferKind {
    Offer,
    Request,
}

impl From<OfferKind> for ledger::OfferKind {
    fn from(k: OfferKind) -> Self {
        match k {
            OfferKind::Offer => ledger::OfferKind::Offer,
            OfferKind::Request => ledger::OfferKind::Request,
        }
    }
}

/// What a participation rule rewards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum Participation {
    Survey,
    Vote,
    Meeting,
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct CategoryInfo {
    pub category_id: String,
    pub name: String,
    pub points_per_hour: i64,
    pub active: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct RewardInfo {
    pub reward_id: String,
    pub name: String,
    pub description: String,
    pub price: i64,
    /// A member providing it, or `community`.
    pub provider: String,
    pub stock: Option<i64>,
    pub left: Option<i64>,
    pub active: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct OfferInfo {
    pub offer_id: String,
    pub author: String,
    /// `offer` or `request`.
    pub kind: String,
    pub category_id: String,
    pub title: String,
    pub description: String,
    pub availability: String,
    /// `open` or `closed`.
    pub status: String,
    pub at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct HoursInfo {
    pub hours_id: String,
    pub volunteer: String,
    pub recipient: Option<String>,
    pub activity_id: Option<String>,
    pub category_id: String,
    pub minutes: i64,
    pub given_on_ms: i64,
    pub note: String,
    /// `pending`, `confirmed`, `declined`, `credited`, `rejected` or `set_aside`.
    pub status: String,
    /// Why it was declined, rejected or set aside.
    pub reason: Option<String>,
    /// Points credited, once they are.
    pub points: Option<i64>,
    /// The coordinator who logged them for a volunteer without a phone.
    pub entered_by: Option<String>,
}

impl From<ledger::Hours> for HoursInfo {
    fn from(h: ledger::Hours) -> Self {
        let (status, reason) = match h.status {
            HoursStatus::Pending => ("pending", None),
            HoursStatus::Confirmed => ("confirmed", None),
            HoursStatus::Declined { reason } => ("declined", Some(reason)),
            HoursStatus::Credited => ("credited", None),
            HoursStatus::Rejected { reason } => ("rejected", Some(reason)),
            HoursStatus::SetAside { reason } => ("set_aside", Some(reason)),
        };
        HoursInfo {
            hours_id: h.id,
            volunteer: h.volunteer,
            recipient: h.recipient,
            activity_id: h.activity,
            category_id: h.category,
            minutes: h.minutes,
            given_on_ms: h.on,
            note: h.note,
            status: status.into(),
            reason,
            points: h.points,
            entered_by: h.entered_by,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ActivityInfo {
    pub activity_id: String,
    pub title: String,
    pub category_id: String,
    pub starts_at_ms: i64,
    pub place: String,
    pub slots: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct RosterEntry {
    pub member_id: String,
    pub name: String,
    pub signed_up_at_ms: Option<i64>,
    pub waitlisted: bool,
    /// Minutes credited at check-in, if checked in.
    pub minutes: Option<i64>,
}

/// One member checked in at an activity, with the minutes to credit.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct CheckIn {
    pub member_id: String,
    pub minutes: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct BalanceInfo {
    pub member_id: String,
    pub points: i64,
    /// The lowest balance allowed before a spend is flagged.
    pub limit: i64,
    /// Unresolved flags on this member's movements.
    pub flagged: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct StatementLine {
    pub movement_id: String,
    pub at_ms: i64,
    /// `hours`, `activity`, `participation`, `transfer` or `redeem`.
    pub reason: String,
    pub counterpart: String,
    /// Positive: credited; negative: debited.
    pub points: i64,
    pub balance: i64,
    /// `applied`, `flagged`, `accepted` or `voided`.
    pub status: String,
    pub category_id: String,
    pub minutes: i64,
    pub note: String,
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct StatementInfo {
    pub member_id: String,
    pub opening: i64,
    pub closing: i64,
    pub lines: Vec<StatementLine>,
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct LedgerFlag {
    pub movement_id: String,
    /// `overdraft` or `out_of_stock`.
    pub kind: String,
    /// The payer, or the reward out of stock.
    pub account: String,
    pub balance_after: i64,
    pub limit: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct VolunteerHoursInfo {
    pub member_id: String,
    pub name: String,
    pub minutes: i64,
    pub points: i64,
    pub entries: i64,
}

#[uniffi::export]
impl LinliApp {
    // -- The catalogue (coordinators)

    /// Create (`category_id` None) or change a service category; a new rate
    /// applies to services given from now on.
    pub fn set_category(
        &self,
        space_id: String,
        category_id: Option<String>,
        name: String,
        points_per_hour: i64,
        active: bool,
    ) -> Result<String> {
        Ok(ledger::set_category(&self.store, &space_id, category_id.as_deref(), &name, points_per_hour, active)?)
    }

    pub fn categories(&self, space_id: String) -> Result<Vec<CategoryInfo>> {
        Ok(ledger::categories(&self.store, &space_id)?
            .into_iter()
            .map(|c| CategoryInfo { category_id: c.id, name: c.name, points_per_hour: c.rate, active: c.active })
            .collect())
    }

    /// Create (`reward_id` None) or change a reward; `provider_member` None
    /// means the community provides it.
    #[allow(clippy::too_many_arguments)]
    pub fn set_reward(
        &self,
        space_id: String,
        reward_id: Option<String>,
        name: String,
        description: String,
        price: i64,
        stock: Option<i64>,
        provider_member: Option<String>,
        active: bool,
    ) -> Result<String> {
        let input =
            ledger::RewardInput { id: reward_id, name, description, price, stock, provider: provider_member, active };
        Ok(ledger::set_reward(&self.store, &space_id, &input)?)
    }

    pub fn rewards(&self, space_id: String) -> Result<Vec<RewardInfo>> {
        Ok(ledger::rewards(&self.store, &space_id)?
            .into_iter()
            .map(|r| RewardInfo {
                reward_id: r.id,
                name: r.name,
                description: r.description,
                price: r.price,
                provider: r.provider,
                stock: r.stock,
                left: r.left,
                active: r.active,
            })
            .collect())
    }

    /// Reward taking part (once per member per item); `item_id` None: every
    /// item of that kind.
    pub fn add_participation_rule(
        &self,
        space_id: String,
        on: Participation,
        item_id: Option<String>,
        points: i64,
    ) -> Result<String> {
        let on = match on {
            Participation::Survey => ledger::RuleOn::Survey,
            Participation::Vote => ledger::RuleOn::Vote,
            Participation::Meeting => ledger::RuleOn::Meeting,
        };
        Ok(ledger::add_rule(&self.store, &space_id, on, item_id.as_deref(), points)?)
    }

    /// Coordinators: award participation in a vote or a survey to everyone
    /// its results count (publishing the result does it too). Awards are
    /// public entries of the ledger, so every phone shows the same balances.
    /// Returns how many awards were written.
    pub fn award_participation(&self, space_id: String, item_id: String) -> Result<i64> {
        Ok(ledger::award_participation(&self.store, &space_id, &item_id)? as i64)
    }

    pub fn end_participation_rule(&self, space_id: String, rule_id: String) -> Result<()> {
        Ok(ledger::end_rule(&self.store, &space_id, &rule_id)?)
    }

    pub fn set_points_limit(&self, space_id: String, member_id: String, min_balance: i64) -> Result<()> {
        Ok(ledger::set_limit(&self.store, &space_id, &member_id, min_balance)?)
    }

    // -- Offers and requests

    pub fn post_offer(
        &self,
        space_id: String,
        kind: OfferKind,
        category_id: String,
        title: String,
        description: String,
        availability: String,
    ) -> Result<String> {
        let input = ledger::OfferInput { kind: kind.into(), category: category_id, title, description, availability };
        Ok(ledger::post_offer(&self.store, &space_id, &input)?)
    }

    pub fn set_offer_open(&self, space_id: String, offer_id: String, open: bool) -> Result<()> {
        Ok(ledger::set_offer_open(&self.store, &space_id, &offer_id, open)?)
    }

    pub fn offers(&self, space_id: String, kind: Option<OfferKind>, open_only: bool) -> Result<Vec<OfferInfo>> {
        Ok(ledger::offers(&self.store, &space_id, kind.map(Into::into), open_only)?
            .into_iter()
            .map(|o| OfferInfo {
                offer_id: o.id,
                author: o.author,
                kind: o.kind,
                category_id: o.category,
                title: o.title,
                description: o.description,
                availability: o.availability,
                status: o.status,
                at_ms: o.at,
            })
            .collect())
    }

    // -- Earning

    /// Log hours given to a member (`to_member`) or for an activity; nothing
    /// is credited until the recipient or a coordinator confirms.
    #[allow(clippy::too_many_arguments)]
    pub fn log_hours(
        &self,
        space_id: String,
        to_member: Option<String>,
        activity_id: Option<String>,
        category_id: String,
        minutes: i64,
        given_on_ms: i64,
        note: String,
    ) -> Result<String> {
        let input = hours_input(to_member, activity_id, category_id, minutes, given_on_ms, note);
        Ok(ledger::log_hours(&self.store, &space_id, &input)?)
    }

    /// The recipient confirms hours given to them.
    pub fn confirm_hours(&self, space_id: String, hours_id: String) -> Result<()> {
        Ok(ledger::confirm_hours(&self.store, &space_id, &hours_id)?)
    }

    /// The recipient declines hours, with a reason; a coordinator decides.
    pub fn decline_hours(&self, space_id: String, hours_id: String, reason: String) -> Result<()> {
        Ok(ledger::decline_hours(&self.store, &space_id, &hours_id, &reason)?)
    }

    /// Coordinators: credit or reject hours (a dispute, an activity, a
    /// recipient without a phone).
    pub fn decide_hours(&self, space_id: String, hours_id: String, credit: bool, reason: String) -> Result<()> {
        Ok(ledger::decide_hours(&self.store, &space_id, &hours_id, credit, &reason)?)
    }

    /// Hours given or received by a member, newest first.
    pub fn hours(&self, space_id: String, member_id: String) -> Result<Vec<HoursInfo>> {
        Ok(ledger::hours(&self.store, &space_id, &member_id)?.into_iter().map(HoursInfo::from).collect())
    }

    /// Hours waiting for this member's answer (and, for coordinators, a decision).
    pub fn hours_to_answer(&self, space_id: String) -> Result<Vec<HoursInfo>> {
        Ok(ledger::hours_to_answer(&self.store, &space_id)?.into_iter().map(HoursInfo::from).collect())
    }

    // -- Activities

    pub fn create_activity(
        &self,
        space_id: String,
        title: String,
        category_id: String,
        starts_at_ms: i64,
        place: String,
        slots: Option<i64>,
    ) -> Result<String> {
        let input = ledger::ActivityInput { title, category: category_id, starts_at: starts_at_ms, place, slots };
        Ok(ledger::create_activity(&self.store, &space_id, &input)?)
    }

    pub fn activities(&self, space_id: String) -> Result<Vec<ActivityInfo>> {
        Ok(ledger::activities(&self.store, &space_id)?
            .into_iter()
            .map(|a| ActivityInfo {
                activity_id: a.id,
                title: a.title,
                category_id: a.category,
                starts_at_ms: a.starts_at,
                place: a.place,
                slots: a.slots,
            })
            .collect())
    }

    /// Sign up for an activity (`join` false: withdraw).
    pub fn sign_up(&self, space_id: String, activity_id: String, join: bool) -> Result<()> {
        Ok(ledger::sign_up(&self.store, &space_id, &activity_id, join)?)
    }

    pub fn roster(&self, space_id: String, activity_id: String) -> Result<Vec<RosterEntry>> {
        Ok(ledger::roster(&self.store, &space_id, &activity_id)?
            .into_iter()
            .map(|r| RosterEntry {
                member_id: r.member,
                name: r.name,
                signed_up_at_ms: r.signed_up_at,
                waitlisted: r.waitlisted,
                minutes: r.minutes,
            })
            .collect())
    }

    /// Coordinators: check members in and credit them at once.
    pub fn check_in(&self, space_id: String, activity_id: String, attendees: Vec<CheckIn>) -> Result<()> {
        let attendees: Vec<(String, i64)> = attendees.into_iter().map(|c| (c.member_id, c.minutes)).collect();
        Ok(ledger::check_in(&self.store, &space_id, &activity_id, &attendees)?)
    }

    // -- Spending

    /// Give points to a neighbour (or `community`); returns the debit's id.
    pub fn transfer_points(&self, space_id: String, to_member: String, points: i64, note: String) -> Result<String> {
        Ok(ledger::transfer(&self.store, &space_id, &to_member, points, &note)?)
    }

    /// Redeem a reward at its current price; returns the debit's id.
    pub fn redeem_reward(&self, space_id: String, reward_id: String) -> Result<String> {
        Ok(ledger::redeem(&self.store, &space_id, &reward_id)?)
    }

    // -- The ledger

    pub fn balance(&self, space_id: String, member_id: String) -> Result<BalanceInfo> {
        let b = ledger::balance(&self.store, &space_id, &member_id)?;
        Ok(BalanceInfo { member_id: b.member, points: b.points, limit: b.limit, flagged: b.flagged as i64 })
    }

    /// A member's statement over [from, until) (the member or coordinators).
    pub fn statement(
        &self,
        space_id: String,
        member_id: String,
        from_ms: Option<i64>,
        until_ms: Option<i64>,
    ) -> Result<StatementInfo> {
        let s = ledger::statement(&self.store, &space_id, &member_id, from_ms, until_ms)?;
        Ok(StatementInfo {
            member_id: s.member,
            opening: s.opening,
            closing: s.closing,
            lines: s
                .lines
                .into_iter()
                .map(|l| StatementLine {
                    movement_id: l.movement,
                    at_ms: l.at,
                    reason: l.reason,
                    counterpart: l.counterpart,
                    points: l.points,
                    balance: l.balance,
                    status: l.status,
                    category_id: l.category,
                    minutes: l.minutes,
                    note: l.note,
                })
                .collect(),
        })
    }

    /// Unresolved flags, in ledger order.
    pub fn ledger_flags(&self, space_id: String) -> Result<Vec<LedgerFlag>> {
        Ok(ledger::flags(&self.store, &space_id)?
            .into_iter()
            .map(|f| LedgerFlag {
                movement_id: f.movement,
                kind: match f.kind {
                    ledger::FlagKind::Overdraft => "overdraft".into(),
                    ledger::FlagKind::OutOfStock => "out_of_stock".into(),
                },
                account: f.account,
                balance_after: f.balance_after,
                limit: f.limit,
            })
            .collect())
    }

    /// Coordinators: resolve a flag — void the movement, or accept it.
    pub fn resolve_flag(&self, space_id: String, movement_id: String, void: bool, reason: String) -> Result<()> {
        let r = if void { ledger::Resolution::Void } else { ledger::Resolution::Accept };
        Ok(ledger::resolve(&self.store, &space_id, &movement_id, r, &reason)?)
    }

    /// Totals over [from, until) as JSON: issued, redeemed, transferred, in
    /// circulation, by category, by reason, by month (docs/ledger.md).
    pub fn ledger_totals_json(&self, space_id: String, from_ms: Option<i64>, until_ms: Option<i64>) -> Result<String> {
        json(&ledger::totals(&self.store, &space_id, from_ms, until_ms)?)
    }

    pub fn volunteer_hours(
        &self,
        space_id: String,
        from_ms: Option<i64>,
        until_ms: Option<i64>,
    ) -> Result<Vec<VolunteerHoursInfo>> {
        Ok(ledger::volunteer_hours(&self.store, &space_id, from_ms, until_ms)?
            .into_iter()
            .map(|v| VolunteerHoursInfo {
                member_id: v.member,
                name: v.name,
                minutes: v.minutes,
                points: v.points,
                entries: v.entries,
            })
            .collect())
    }

    /// Coordinators: the ledger as CSV (UTF-8 with BOM, CRLF).
    pub fn export_ledger_csv(&self, space_id: String, from_ms: Option<i64>, until_ms: Option<i64>) -> Result<String> {
        Ok(ledger::export_csv(&self.store, &space_id, from_ms, until_ms)?)
    }

    pub fn export_ledger_json(&self, space_id: String, from_ms: Option<i64>, until_ms: Option<i64>) -> Result<String> {
        Ok(ledger::export_json(&self.store, &space_id, from_ms, until_ms)?)
    }
}

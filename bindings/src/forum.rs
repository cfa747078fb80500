//! Deliberation beyond topics and threads: reactions, a topic's status,
//! consultations with attendance and shared minutes, follow-up tasks and the
//! moderation log. Conversions only; the rules are in
//! `linli_core::deliberation`.

use linli_core::deliberation;

use crate::{LinliApp, LinliError, Result};

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ModerationEntry {
    pub post_id: String,
    pub topic_id: String,
    pub reason: String,
    pub by: String,
    pub at_ms: i64,
}

fn index(n: i64, what: &str) -> Result<usize> {
    usize::try_from(n).map_err(|_| LinliError::InvalidInput { detail: format!("{what} is negative") })
}

#[uniffi::export]
impl LinliApp {
    /// React to a post (`👍`, `❤️`…); once per member per reaction.
    pub fn react(&self, space_id: String, post_id: String, reaction: String) -> Result<()> {
        Ok(deliberation::react(&self.store, &space_id, &post_id, &reaction)?)
    }

    /// Earlier bodies of an edited post, oldest first.
    pub fn post_history(&self, space_id: String, post_id: String) -> Result<Vec<String>> {
        Ok(deliberation::post_history(&self.store, &space_id, &post_id)?)
    }

    /// Every hidden post with its reason: anyone can read it.
    pub fn moderation_log(&self, space_id: String) -> Result<Vec<ModerationEntry>> {
        Ok(deliberation::moderation_log(&self.store, &space_id)?
            .into_iter()
            .map(|m| ModerationEntry { post_id: m.post, topic_id: m.topic, reason: m.reason, by: m.by, at_ms: m.at })
            .collect())
    }

    /// Coordinators: put a topic on the agenda without waiting for supports.
    pub fn accept_topic(&self, space_id: String, topic_id: String) -> Result<()> {
        Ok(deliberation::accept_topic(&self.store, &space_id, &topic_id)?)
    }

    pub fn decline_topic(&self, space_id: String, topic_id: String, reason: String) -> Result<()> {
        Ok(deliberation::decline_topic(&self.store, &space_id, &topic_id, &reason)?)
    }

    /// Coordinators: merge a duplicate into another topic.
    pub fn merge_topic(&self, space_id: String, topic_id: String, into_topic_id: String) -> Result<()> {
        Ok(deliberation::merge_topic(&self.store, &space_id, &topic_id, &into_topic_id)?)
    }

    /// Coordinators: a consultation (议事会) with its agenda of topics.
    pub fn create_consultation(
        &self,
        space_id: String,
        title: String,
        date: String,
        place: String,
        agenda: Vec<String>,
    ) -> Result<String> {
        Ok(deliberation::create_consultation(&self.store, &space_id, &title, &date, &place, &agenda)?)
    }

    /// Coordinators: attendance, also for people without a phone.
    pub fn mark_attendance(
        &self,
        space_id: String,
        consultation_id: String,
        member_id: String,
        present: bool,
    ) -> Result<()> {
        Ok(deliberation::mark_attendance(&self.store, &space_id, &consultation_id, &member_id, present)?)
    }

    pub fn attendance(&self, space_id: String, consultation_id: String) -> Result<Vec<String>> {
        Ok(deliberation::attendance(&self.store, &space_id, &consultation_id)?)
    }

    /// Edit the minutes (several phones at once merge): delete `delete`
    /// characters at `at`, then insert `text` there.
    pub fn edit_minutes(
        &self,
        space_id: String,
        consultation_id: String,
        at: i64,
        delete: i64,
        text: String,
    ) -> Result<()> {
        let (at, delete) = (index(at, "a position")?, index(delete, "a length")?);
        Ok(deliberation::edit_minutes(&self.store, &space_id, &consultation_id, at, delete, &text)?)
    }

    pub fn minutes(&self, space_id: String, consultation_id: String) -> Result<String> {
        Ok(deliberation::minutes(&self.store, &space_id, &consultation_id)?)
    }

    /// Coordinators: a follow-up task under a topic's decision.
    pub fn add_task(
        &self,
        space_id: String,
        topic_id: String,
        title: String,
        responsible: String,
        due: String,
    ) -> Result<String> {
        Ok(deliberation::add_task(&self.store, &space_id, &topic_id, &title, &responsible, &due)?)
    }

    /// Coordinators: a task's status (`todo`, `doing`, `done`) with an
    /// evidence note and the volunteer hours spent on it.
    pub fn update_task(
        &self,
        space_id: String,
        topic_id: String,
        task_id: String,
        status: String,
        note: String,
        hours_ids: Vec<String>,
    ) -> Result<()> {
        Ok(deliberation::update_task(&self.store, &space_id, &topic_id, &task_id, &status, &note, &hours_ids)?)
    }

    /// Coordinators: close the loop with the satisfaction vote held on it.
    pub fn close_loop(&self, space_id: String, topic_id: String, satisfaction_vote_id: String) -> Result<()> {
        Ok(deliberation::close_loop(&self.store, &space_id, &topic_id, &satisfaction_vote_id)?)
    }
}

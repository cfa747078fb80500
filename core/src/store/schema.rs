//! The SQLite schema, as numbered migrations. `PRAGMA user_version` holds the
//! number of migrations applied. Never edit a migration that has shipped: add
//! one. `tests::upgrade_from_every_version_matches_fresh` checks that a store
//! upgraded from each old version has exactly the schema of a fresh one.
//!
//! Tables, by migration:
//!
//! 1. Documents and trust.
//!    - `meta(key, value)`: this device's key seed (`device_seed`), and other
//!      per-store facts.
//!    - `spaces(space_id, name, member_id)`: the spaces this store holds, and
//!      the member this device is in each (NULL on a server or hub that only
//!      hosts the space).
//!    - `docs(space_id, doc_id, kind, snapshot, compacted_at)`: one automerge
//!      document; `snapshot` is a full `save()` (empty until the first
//!      compaction). Written when the document is made and when it is
//!      compacted, not on every change.
//!    - `chunks(space_id, doc_id, seq, bytes)`: changes appended since the
//!      snapshot, in order. Snapshot + chunks load the document; compaction
//!      folds the chunks into a new snapshot in the same transaction.
//!    - `changes(space_id, doc_id, actor, seq, hash, signature)`: every merged
//!      change's signature, keyed by (actor, seq): the key that detects
//!      equivocation and finds a change's signature (a change names both).
//!    - `refusals(id, space_id, doc_id, hash, actor, reason, at)`: the audit
//!      trail of refused changes.
//!    - `flags(space_id, device, reason, evidence, at)`: devices caught
//!      equivocating; a coordinator resolves them.
//! 2. Query tables for list views, written in the same transaction as the
//!    document bytes they are derived from.
//!    - `members(space_id, member_id, name, status, roles, joined_at)`;
//!      `roles` is a comma-separated list in a fixed order.
//!    - `devices(space_id, device, member_id, revoked_at)`.
//!    - `units(space_id, unit_id, building, entrance, room, area_centi, grid_id, household_id)`.
//!    - `links(space_id, member_id, unit_id, relation, verified)`.
//!    - `grids(space_id, grid_id, name)`, `households(space_id, household_id, label)`.
//!    - `items(space_id, item_id, kind, title, created_by, created_at)`: the item index.
//! 3. Sync.
//!    - `changes.arrived`: a per-space arrival number, in the order changes were
//!      merged here (a causal order): the feed peers read with a cursor.
//!    - `peers(peer, space_id, epoch, recv_cursor, sent_cursor)`: per peer and
//!      space, how far into the peer's feed this store has read (for the
//!      peer's `epoch`), and up to which arrival number the peer has this
//!      store's changes.
//!    - `nonces(device, nonce, at)`: request nonces already seen, so a replayed
//!      request is refused even after a restart. Pruned after the window.
//!    - `meta.epoch`: 16 random bytes naming this store's feed.
//! 4. Votes.
//!    - `ballots(space_id, vote_id, author, entry, voter, mode, choice, at, receipt)`:
//!      every ballot entry of every member's ballot document (`own/<author>/…/<vote>`):
//!      who it is for, how it was cast (own, proxy, paper), the choice (JSON
//!      list of option indexes), its time, and the hash of the change that
//!      wrote it (the voter's receipt). Tallies read this, not the documents.
//!    - `proxy_grants(space_id, vote_id, grantor, entry, proxy, at)`.
//!    - `held(space_id, doc_id, hash, bytes, signature, at)`: changes from a
//!      device the register does not know yet (or that depend on such
//!      changes), kept and tried again whenever the register changes.
//! 5. Deliberation (all derived from members' forum documents and the topics'
//!    coordination documents; ids of topics and posts start with their
//!    author's member id, so no member can claim another's).
//!    - `spaces.support_threshold`: supports a topic needs to reach the agenda.
//!    - `topics(space_id, topic_id, author, title, category, description, at)`.
//!    - `topic_status(space_id, topic_id, status, reason, merged_into, at)`: set
//!      by coordinators (accepted, declined, merged, decided).
//!    - `supports(space_id, topic_id, member, at)`: one row per member.
//!    - `posts(space_id, post_id, topic_id, author, parent, quote, body, at, edited_at, retracted)`.
//!    - `hides(space_id, post_id, topic_id, reason, by_member, at)`: the moderation log.
//!    - `reactions(space_id, post_id, member, reaction)`.
//! 6. Surveys; 7. points for services (see the migrations' comments).
//! 8. Hostile peers.
//!    - `held.actor`: the actor of a held change, so held changes are capped
//!      per device ([`super::HELD_PER_DEVICE`]), not per space.
//! 9. Signatures, version 2.
//!    - `changes.sig_version`: 2 for a signature over (space, document,
//!      hash); 1 for one over the hash alone, made before. A store re-signs
//!      its own device's changes when it opens; a version-1 row is never
//!      served to a peer, and is upgraded when a peer offers the same change
//!      with a valid version-2 signature.
//! 10. `refusals_by_time`: refusals of the last minute are counted per space,
//!     so a flood of bad changes leaves a bounded audit trail.
//! 11. `refusals_by_sender`: `refusals.actor` is the device that sent the
//!     refused change, and the audit trail is capped per sender and minute.
//! 12. `arrivals`: the highest arrival number given per space. A rebuild that
//!     drops the latest change must not give its number to another change.

use rusqlite::Connection;

use crate::error::{Error, Result};

pub const MIGRATIONS: &[&str] = &[
    // 1: documents and trust
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL) STRICT;
     CREATE TABLE spaces (
        space_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        member_id TEXT
     ) STRICT;
     CREATE TABLE docs (
        space_id TEXT NOT NULL,
        doc_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        snapshot BLOB NOT NULL,
        compacted_at INTEGER NOT NULL,
        PRIMARY KEY (space_id, doc_id)
     ) STRICT;
     CREATE TABLE chunks (
        space_id TEXT NOT NULL,
        doc_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        bytes BLOB NOT NULL,
        PRIMARY KEY (space_id, doc_id, seq)
     ) STRICT, WITHOUT ROWID;
     CREATE TABLE changes (
        space_id TEXT NOT NULL,
        doc_id TEXT NOT NULL,
        actor BLOB NOT NULL,
        seq INTEGER NOT NULL,
        hash BLOB NOT NULL,
        signature BLOB NOT NULL,
        PRIMARY KEY (space_id, doc_id, actor, seq)
     ) STRICT, WITHOUT ROWID;
     CREATE TABLE refusals (
        id INTEGER PRIMARY KEY,
        space_id TEXT NOT NULL,
        doc_id TEXT NOT NULL,
        hash BLOB,
        actor BLOB,
        reason TEXT NOT NULL,
        at INTEGER NOT NULL
     ) STRICT;
     CREATE TABLE flags (
        space_id TEXT NOT NULL,
        device BLOB NOT NULL,
        reason TEXT NOT NULL,
        evidence BLOB NOT NULL,
        at INTEGER NOT NULL,
        PRIMARY KEY (space_id, device, evidence)
     ) STRICT;",
    // 2: query tables for list views
    "CREATE TABLE members (
        space_id TEXT NOT NULL,
        member_id TEXT NOT NULL,
        name TEXT NOT NULL,
        status TEXT NOT NULL,
        roles TEXT NOT NULL,
        joined_at INTEGER NOT NULL,
        PRIMARY KEY (space_id, member_id)
     ) STRICT;
     CREATE INDEX members_by_name ON members (space_id, name);
     CREATE TABLE devices (
        space_id TEXT NOT NULL,
        device BLOB NOT NULL,
        member_id TEXT NOT NULL,
        revoked_at INTEGER,
        PRIMARY KEY (space_id, device)
     ) STRICT;
     CREATE TABLE units (
        space_id TEXT NOT NULL,
        unit_id TEXT NOT NULL,
        building TEXT NOT NULL,
        entrance TEXT NOT NULL,
        room TEXT NOT NULL,
        area_centi INTEGER NOT NULL,
        grid_id TEXT,
        household_id TEXT,
        PRIMARY KEY (space_id, unit_id)
     ) STRICT;
     CREATE INDEX units_by_place ON units (space_id, building, entrance, room);
     CREATE TABLE links (
        space_id TEXT NOT NULL,
        member_id TEXT NOT NULL,
        unit_id TEXT NOT NULL,
        relation TEXT NOT NULL,
        verified INTEGER NOT NULL,
        PRIMARY KEY (space_id, member_id, unit_id)
     ) STRICT;
     CREATE TABLE grids (space_id TEXT NOT NULL, grid_id TEXT NOT NULL, name TEXT NOT NULL, PRIMARY KEY (space_id, grid_id)) STRICT;
     CREATE TABLE households (space_id TEXT NOT NULL, household_id TEXT NOT NULL, label TEXT NOT NULL, PRIMARY KEY (space_id, household_id)) STRICT;
     CREATE TABLE items (
        space_id TEXT NOT NULL,
        item_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        title TEXT NOT NULL,
        created_by TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (space_id, item_id)
     ) STRICT;
     CREATE INDEX items_by_time ON items (space_id, created_at);",
    // 3: sync
    "ALTER TABLE changes ADD COLUMN arrived INTEGER NOT NULL DEFAULT 0;
     CREATE INDEX changes_by_arrival ON changes (space_id, arrived);
     CREATE TABLE peers (
        peer TEXT NOT NULL,
        space_id TEXT NOT NULL,
        epoch BLOB NOT NULL,
        recv_cursor INTEGER NOT NULL,
        sent_cursor INTEGER NOT NULL,
        PRIMARY KEY (peer, space_id)
     ) STRICT;
     CREATE TABLE nonces (
        device BLOB NOT NULL,
        nonce BLOB NOT NULL,
        at INTEGER NOT NULL,
        PRIMARY KEY (device, nonce)
     ) STRICT, WITHOUT ROWID;",
    // 4: votes
    "CREATE TABLE ballots (
        space_id TEXT NOT NULL,
        vote_id TEXT NOT NULL,
        author TEXT NOT NULL,
        entry TEXT NOT NULL,
        voter TEXT NOT NULL,
        mode TEXT NOT NULL,
        choice TEXT NOT NULL,
        at INTEGER NOT NULL,
        receipt BLOB NOT NULL,
        PRIMARY KEY (space_id, vote_id, author, entry)
     ) STRICT, WITHOUT ROWID;
     CREATE TABLE proxy_grants (
        space_id TEXT NOT NULL,
        vote_id TEXT NOT NULL,
        grantor TEXT NOT NULL,
        entry TEXT NOT NULL,
        proxy TEXT NOT NULL,
        at INTEGER NOT NULL,
        PRIMARY KEY (space_id, vote_id, grantor, entry)
     ) STRICT, WITHOUT ROWID;
     CREATE TABLE held (
        space_id TEXT NOT NULL,
        doc_id TEXT NOT NULL,
        hash BLOB NOT NULL,
        bytes BLOB NOT NULL,
        signature BLOB NOT NULL,
        at INTEGER NOT NULL,
        PRIMARY KEY (space_id, doc_id, hash)
     ) STRICT, WITHOUT ROWID;",
    // 5: deliberation
    "ALTER TABLE spaces ADD COLUMN support_threshold INTEGER NOT NULL DEFAULT 5;
     CREATE TABLE topics (
        space_id TEXT NOT NULL, topic_id TEXT NOT NULL, author TEXT NOT NULL, title TEXT NOT NULL,
        category TEXT NOT NULL, description TEXT NOT NULL, at INTEGER NOT NULL,
        PRIMARY KEY (space_id, topic_id)
     ) STRICT, WITHOUT ROWID;
     CREATE INDEX topics_by_time ON topics (space_id, at, topic_id);
     CREATE TABLE topic_status (
        space_id TEXT NOT NULL, topic_id TEXT NOT NULL, status TEXT NOT NULL, reason TEXT NOT NULL,
        merged_into TEXT, at INTEGER NOT NULL,
        PRIMARY KEY (space_id, topic_id)
     ) STRICT, WITHOUT ROWID;
     CREATE TABLE supports (
        space_id TEXT NOT NULL, topic_id TEXT NOT NULL, member TEXT NOT NULL, at INTEGER NOT NULL,
        PRIMARY KEY (space_id, topic_id, member)
     ) STRICT, WITHOUT ROWID;
     CREATE TABLE posts (
        space_id TEXT NOT NULL, post_id TEXT NOT NULL, topic_id TEXT NOT NULL, author TEXT NOT NULL,
        parent TEXT, quote TEXT, body TEXT NOT NULL, at INTEGER NOT NULL, edited_at INTEGER,
        retracted INTEGER NOT NULL,
        PRIMARY KEY (space_id, post_id)
     ) STRICT, WITHOUT ROWID;
     CREATE INDEX posts_by_topic ON posts (space_id, topic_id, retracted, at);
     CREATE TABLE hides (
        space_id TEXT NOT NULL, post_id TEXT NOT NULL, topic_id TEXT NOT NULL, reason TEXT NOT NULL,
        by_member TEXT NOT NULL, at INTEGER NOT NULL,
        PRIMARY KEY (space_id, post_id)
     ) STRICT, WITHOUT ROWID;
     CREATE TABLE reactions (
        space_id TEXT NOT NULL, post_id TEXT NOT NULL, member TEXT NOT NULL, reaction TEXT NOT NULL,
        PRIMARY KEY (space_id, post_id, member, reaction)
     ) STRICT, WITHOUT ROWID;",
    // 6: surveys. Responses are projected from members' documents; drafts
    // are this device's own and never leave it.
    "CREATE TABLE responses (
        space_id TEXT NOT NULL, survey_id TEXT NOT NULL, author TEXT NOT NULL, entry TEXT NOT NULL,
        version TEXT NOT NULL, answers TEXT NOT NULL, at INTEGER NOT NULL, receipt BLOB NOT NULL,
        PRIMARY KEY (space_id, survey_id, author, entry)
     ) STRICT, WITHOUT ROWID;
     CREATE TABLE survey_drafts (
        space_id TEXT NOT NULL, survey_id TEXT NOT NULL, answers TEXT NOT NULL, saved_at INTEGER NOT NULL,
        PRIMARY KEY (space_id, survey_id)
     ) STRICT, WITHOUT ROWID;",
    // 7: points for services. Everything the ledger settles is projected
    // from documents; movements themselves are derived when read
    // (`ledger::book`), never stored as truth.
    "CREATE TABLE attendance (
        space_id TEXT NOT NULL, consultation_id TEXT NOT NULL, member TEXT NOT NULL, present INTEGER NOT NULL,
        at INTEGER NOT NULL,
        PRIMARY KEY (space_id, consultation_id, member)
     ) STRICT, WITHOUT ROWID;
     CREATE INDEX attendance_by_member ON attendance (space_id, member);
     CREATE INDEX ballots_by_voter ON ballots (space_id, voter);
     CREATE INDEX responses_by_author ON responses (space_id, author);
     CREATE TABLE ledger_categories (
        space_id TEXT NOT NULL, category_id TEXT NOT NULL, name TEXT NOT NULL, active INTEGER NOT NULL,
        PRIMARY KEY (space_id, category_id)
     ) STRICT, WITHOUT ROWID;
     CREATE TABLE ledger_rates (
        space_id TEXT NOT NULL, category_id TEXT NOT NULL, from_ms INTEGER NOT NULL, rate INTEGER NOT NULL,
        PRIMARY KEY (space_id, category_id, from_ms)
     ) STRICT, WITHOUT ROWID;
     CREATE TABLE ledger_rewards (
        space_id TEXT NOT NULL, reward_id TEXT NOT NULL, name TEXT NOT NULL, description TEXT NOT NULL,
        provider TEXT NOT NULL, stock INTEGER, active INTEGER NOT NULL,
        PRIMARY KEY (space_id, reward_id)
     ) STRICT, WITHOUT ROWID;
     CREATE TABLE ledger_prices (
        space_id TEXT NOT NULL, reward_id TEXT NOT NULL, from_ms INTEGER NOT NULL, price INTEGER NOT NULL,
        PRIMARY KEY (space_id, reward_id, from_ms)
     ) STRICT, WITHOUT ROWID;
     CREATE TABLE ledger_rules (
        space_id TEXT NOT NULL, rule_id TEXT NOT NULL, on_kind TEXT NOT NULL, item_id TEXT NOT NULL,
        points INTEGER NOT NULL, from_ms INTEGER NOT NULL, until_ms INTEGER,
        PRIMARY KEY (space_id, rule_id)
     ) STRICT, WITHOUT ROWID;
     CREATE TABLE ledger_limits (
        space_id TEXT NOT NULL, member TEXT NOT NULL, min_balance INTEGER NOT NULL,
        PRIMARY KEY (space_id, member)
     ) STRICT, WITHOUT ROWID;
     CREATE TABLE ledger_hours (
        space_id TEXT NOT NULL, hours_id TEXT NOT NULL, volunteer TEXT NOT NULL, recipient TEXT NOT NULL,
        activity_id TEXT NOT NULL, category_id TEXT NOT NULL, minutes INTEGER NOT NULL, on_ms INTEGER NOT NULL,
        note TEXT NOT NULL, at INTEGER NOT NULL, receipt BLOB NOT NULL,
        PRIMARY KEY (space_id, hours_id)
     ) STRICT, WITHOUT ROWID;
     CREATE INDEX ledger_hours_by_volunteer ON ledger_hours (space_id, volunteer);
     CREATE INDEX ledger_hours_by_recipient ON ledger_hours (space_id, recipient);
     CREATE TABLE ledger_answers (
        space_id TEXT NOT NULL, hours_id TEXT NOT NULL, source TEXT NOT NULL, by_member TEXT NOT NULL,
        answer TEXT NOT NULL, reason TEXT NOT NULL, at INTEGER NOT NULL, receipt BLOB NOT NULL,
        PRIMARY KEY (space_id, hours_id, source)
     ) STRICT, WITHOUT ROWID;
     CREATE TABLE ledger_debits (
        space_id TEXT NOT NULL, debit_id TEXT NOT NULL, payer TEXT NOT NULL, payee TEXT NOT NULL,
        points INTEGER NOT NULL, kind TEXT NOT NULL, reward_id TEXT NOT NULL, note TEXT NOT NULL,
        at INTEGER NOT NULL, receipt BLOB NOT NULL,
        PRIMARY KEY (space_id, debit_id)
     ) STRICT, WITHOUT ROWID;
     CREATE INDEX ledger_debits_by_payer ON ledger_debits (space_id, payer);
     CREATE INDEX ledger_debits_by_payee ON ledger_debits (space_id, payee);
     CREATE INDEX ledger_debits_by_reward ON ledger_debits (space_id, reward_id);
     CREATE TABLE ledger_resolutions (
        space_id TEXT NOT NULL, movement_id TEXT NOT NULL, resolution TEXT NOT NULL, reason TEXT NOT NULL,
        by_member TEXT NOT NULL, at INTEGER NOT NULL,
        PRIMARY KEY (space_id, movement_id)
     ) STRICT, WITHOUT ROWID;
     CREATE TABLE activities (
        space_id TEXT NOT NULL, activity_id TEXT NOT NULL, title TEXT NOT NULL, category_id TEXT NOT NULL,
        starts_at INTEGER NOT NULL, place TEXT NOT NULL, slots INTEGER,
        PRIMARY KEY (space_id, activity_id)
     ) STRICT, WITHOUT ROWID;
     CREATE TABLE activity_signups (
        space_id TEXT NOT NULL, activity_id TEXT NOT NULL, member TEXT NOT NULL, withdrawn INTEGER NOT NULL,
        at INTEGER NOT NULL,
        PRIMARY KEY (space_id, activity_id, member)
     ) STRICT, WITHOUT ROWID;
     CREATE TABLE activity_checkins (
        space_id TEXT NOT NULL, activity_id TEXT NOT NULL, member TEXT NOT NULL, minutes INTEGER NOT NULL,
        by_member TEXT NOT NULL, at INTEGER NOT NULL, receipt BLOB NOT NULL,
        PRIMARY KEY (space_id, activity_id, member)
     ) STRICT, WITHOUT ROWID;
     CREATE INDEX activity_checkins_by_member ON activity_checkins (space_id, member);
     CREATE TABLE offers (
        space_id TEXT NOT NULL, offer_id TEXT NOT NULL, author TEXT NOT NULL, kind TEXT NOT NULL,
        category_id TEXT NOT NULL, title TEXT NOT NULL, description TEXT NOT NULL, availability TEXT NOT NULL,
        status TEXT NOT NULL, at INTEGER NOT NULL,
        PRIMARY KEY (space_id, offer_id)
     ) STRICT, WITHOUT ROWID;",
    // 8: held changes are counted (and capped) per device
    "ALTER TABLE held ADD COLUMN actor BLOB NOT NULL DEFAULT x'';
     CREATE INDEX held_by_actor ON held (space_id, actor);",
    // 9: change signatures bind the space and the document (version 2)
    "ALTER TABLE changes ADD COLUMN sig_version INTEGER NOT NULL DEFAULT 1;",
    // 10: the audit trail of refusals is rate-limited per space
    "CREATE INDEX refusals_by_time ON refusals (space_id, at);",
    // 11: refusals are recorded (and capped) per sending device, in `actor`
    "CREATE INDEX refusals_by_sender ON refusals (space_id, actor, at);",
    // 12: the highest arrival number given per space, so none is given twice
    "CREATE TABLE arrivals (space_id TEXT PRIMARY KEY, last INTEGER NOT NULL) STRICT;",
    // 13: a response names the member it counts for (an interviewer enters
    // answers for a member at their door), and hours the member who gave
    // them (a coordinator logs hours for a volunteer without a phone); until
    // now both were their author
    "ALTER TABLE responses ADD COLUMN respondent TEXT NOT NULL DEFAULT '';
     UPDATE responses SET respondent = author;
     CREATE INDEX responses_by_respondent ON responses (space_id, respondent);
     ALTER TABLE ledger_hours ADD COLUMN entered_by TEXT NOT NULL DEFAULT '';",
    // 14: participation in votes and surveys rests on public facts: a
    // coordinator's award entry in `item/ledger-<year>` (who took part in
    // which item, and when), which every reader of the ledger holds; and
    // devices by member, for the members list's count of phones
    "CREATE TABLE ledger_awards (
        space_id TEXT NOT NULL, kind TEXT NOT NULL, item_id TEXT NOT NULL, member TEXT NOT NULL,
        at INTEGER NOT NULL, by_member TEXT NOT NULL,
        PRIMARY KEY (space_id, kind, item_id, member)
     ) STRICT, WITHOUT ROWID;
     CREATE INDEX ledger_awards_by_member ON ledger_awards (space_id, member);
     CREATE INDEX devices_by_member ON devices (space_id, member_id);",
    // 15: changes dated too far ahead of this replica's clock (and those
    // built on them) wait here until the clock reaches them
    "CREATE TABLE waiting (
        space_id TEXT NOT NULL, doc_id TEXT NOT NULL, hash BLOB NOT NULL,
        bytes BLOB NOT NULL, signature BLOB NOT NULL, actor BLOB NOT NULL, until INTEGER NOT NULL,
        PRIMARY KEY (space_id, doc_id, hash)
     ) STRICT, WITHOUT ROWID;
     CREATE INDEX waiting_by_until ON waiting (space_id, until);",
    // 16: who may read a change's document ('' for every member, else the
    // one member besides coordinators), so a member's feed reads only rows
    // it may read instead of walking every member's private ballots
    "ALTER TABLE changes ADD COLUMN reader TEXT NOT NULL DEFAULT '';
     UPDATE changes SET reader = substr(doc_id, 5, instr(substr(doc_id, 5), '/') - 1)
        WHERE doc_id LIKE 'own/%/priv/%';
     CREATE INDEX changes_by_reader ON changes (space_id, reader, arrived);",
];

/// Bring the schema up to `target` migrations (normally all of them).
pub fn migrate_to(conn: &mut Connection, target: usize) -> Result<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(Error::SchemaTooNew { found: version, known });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().take(target).skip(version.max(0) as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

pub fn migrate(conn: &mut Connection) -> Result<()> {
    migrate_to(conn, MIGRATIONS.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(conn: &Connection) -> Vec<(String, String)> {
        let mut stmt =
            conn.prepare("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name").expect("prepare");
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).expect("query").collect::<Result<_, _>>().expect("rows")
    }

    #[test]
    fn upgrade_from_every_version_matches_fresh() {
        let mut fresh = Connection::open_in_memory().expect("open");
        migrate(&mut fresh).expect("fresh");
        let want = schema(&fresh);
        assert!(want.iter().any(|(n, _)| n == "members"), "the latest schema has the query tables");
        for start in 0..MIGRATIONS.len() {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("old.db");
            {
                let mut old = Connection::open(&path).expect("open");
                migrate_to(&mut old, start).expect("old");
                old.execute_batch("INSERT INTO meta VALUES ('probe', x'01')").ok();
            }
            let mut conn = Connection::open(&path).expect("reopen");
            migrate(&mut conn).expect("upgrade");
            assert_eq!(schema(&conn), want, "upgrade from version {start}");
            let v: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).expect("version");
            assert_eq!(v, MIGRATIONS.len() as i64);
        }
    }

    #[test]
    fn migration_16_names_the_reader_of_rows_already_stored() {
        let mut conn = Connection::open_in_memory().expect("open");
        migrate_to(&mut conn, 15).expect("15");
        for (i, doc) in
            ["own/ab12cd34ef56ab78/priv/2026", "own/ab12cd34ef56ab78/pub/2026", "item/v1", "space"].iter().enumerate()
        {
            conn.execute(
                "INSERT INTO changes (space_id, doc_id, actor, seq, hash, signature, arrived, sig_version)
                 VALUES ('s', ?1, x'01', ?2, ?3, x'', ?2, 2)",
                rusqlite::params![doc, i as i64 + 1, vec![i as u8; 32]],
            )
            .expect("row");
        }
        migrate(&mut conn).expect("upgrade");
        let readers: Vec<String> = conn
            .prepare("SELECT reader FROM changes ORDER BY arrived")
            .expect("prepare")
            .query_map([], |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        assert_eq!(readers, ["ab12cd34ef56ab78", "", "", ""]);
    }

    #[test]
    fn a_newer_store_is_refused() {
        let mut conn = Connection::open_in_memory().expect("open");
        conn.pragma_update(None, "user_version", 99).expect("set");
        assert!(matches!(migrate(&mut conn), Err(Error::SchemaTooNew { found: 99, .. })));
    }
}

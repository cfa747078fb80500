//! Query tables: the rows list views read, derived from documents and written
//! in the same SQLite transaction as the document bytes (see `schema.rs`).
//! Each projection rewrites exactly the rows of the entries a write touched.

use automerge::transaction::Transactable;
use automerge::{Automerge, ObjType, ROOT};
use rusqlite::{Connection, params};

use crate::error::Result;
use crate::space::{Section, SpaceView, Touched, Write, get_i64, get_str, map_at};

pub(super) fn space(tx: &Connection, space: &str, v: &SpaceView, touched: &Touched) -> Result<()> {
    for (section, keys) in &touched.0 {
        for key in keys {
            match section {
                Section::Members => {
                    tx.execute("DELETE FROM members WHERE space_id = ?1 AND member_id = ?2", params![space, key])?;
                    tx.execute("DELETE FROM devices WHERE space_id = ?1 AND member_id = ?2", params![space, key])?;
                    if let Some(m) = v.members.get(key) {
                        let roles: Vec<&str> = m.roles.iter().map(|r| r.as_str()).collect();
                        tx.execute(
                            "INSERT INTO members (space_id, member_id, name, status, roles, joined_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                            params![space, key, m.name, m.status.as_str(), roles.join(","), m.joined_at],
                        )?;
                        let mut stmt = tx.prepare_cached("INSERT OR REPLACE INTO devices (space_id, device, member_id, revoked_at) VALUES (?1, ?2, ?3, ?4)")?;
                        for (d, dev) in &m.devices {
                            stmt.execute(params![space, d.0.to_vec(), key, dev.revoked_at])?;
                        }
                    }
                }
                Section::Units => {
                    tx.execute("DELETE FROM units WHERE space_id = ?1 AND unit_id = ?2", params![space, key])?;
                    if let Some(u) = v.units.get(key) {
                        tx.execute(
                            "INSERT INTO units (space_id, unit_id, building, entrance, room, area_centi, grid_id, household_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                            params![space, key, u.building, u.entrance, u.room, u.area_centi, u.grid, u.household],
                        )?;
                    }
                }
                Section::Links => {
                    let (member, unit) = key.split_once(':').unwrap_or((key.as_str(), ""));
                    tx.execute(
                        "DELETE FROM links WHERE space_id = ?1 AND member_id = ?2 AND unit_id = ?3",
                        params![space, member, unit],
                    )?;
                    if let Some(l) = v.links.get(key) {
                        tx.execute(
                            "INSERT INTO links (space_id, member_id, unit_id, relation, verified) VALUES (?1, ?2, ?3, ?4, ?5)",
                            params![space, l.member, l.unit, l.relation.as_str(), l.verified],
                        )?;
                    }
                }
                Section::Grids => {
                    tx.execute("DELETE FROM grids WHERE space_id = ?1 AND grid_id = ?2", params![space, key])?;
                    if let Some(name) = v.grids.get(key) {
                        tx.execute(
                            "INSERT INTO grids (space_id, grid_id, name) VALUES (?1, ?2, ?3)",
                            params![space, key, name],
                        )?;
                    }
                }
                Section::Households => {
                    tx.execute(
                        "DELETE FROM households WHERE space_id = ?1 AND household_id = ?2",
                        params![space, key],
                    )?;
                    if let Some(label) = v.households.get(key) {
                        tx.execute(
                            "INSERT INTO households (space_id, household_id, label) VALUES (?1, ?2, ?3)",
                            params![space, key, label],
                        )?;
                    }
                }
                Section::Invites => {}
            }
        }
    }
    if touched.meta_touched() {
        // A space first seen here (a server or hub hosting it) is recorded
        // without a member of this device's.
        tx.execute(
            "INSERT INTO spaces (space_id, name, member_id) VALUES (?1, ?2, NULL)
             ON CONFLICT (space_id) DO UPDATE SET name = excluded.name",
            params![space, v.name],
        )?;
    }
    Ok(())
}

/// The item index: `ROOT[<item id>] = { kind, title, created_by, created_at }`.
pub(super) fn write_index_entry<T: Transactable>(
    tx: &mut T,
    item: &str,
    kind: &str,
    title: &str,
    by: &str,
    now: i64,
) -> Result<()> {
    let e = tx.put_object(ROOT, item, ObjType::Map)?;
    tx.put(&e, "kind", kind)?;
    tx.put(&e, "title", title)?;
    tx.put(&e, "created_by", by)?;
    tx.put(&e, "created_at", now)?;
    Ok(())
}

pub(super) fn index(tx: &Connection, space: &str, doc: &Automerge, writes: &[Write]) -> Result<()> {
    for item in super::root_keys(writes) {
        tx.execute("DELETE FROM items WHERE space_id = ?1 AND item_id = ?2", params![space, item])?;
        if let Some(e) = map_at(doc, &ROOT, &item) {
            tx.execute(
                "INSERT INTO items (space_id, item_id, kind, title, created_by, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    space,
                    item,
                    get_str(doc, &e, "kind").unwrap_or_default(),
                    get_str(doc, &e, "title").unwrap_or_default(),
                    get_str(doc, &e, "created_by").unwrap_or_default(),
                    get_i64(doc, &e, "created_at").unwrap_or_default()
                ],
            )?;
        }
    }
    Ok(())
}

/// Ballot documents (`own/<author>/…/<vote>`): entries `b/…` are ballots,
/// `g/…` proxy grants. Each row keeps the hash of the change that wrote the
/// entry: the voter's receipt.
pub(super) fn own(
    tx: &Connection,
    space: &str,
    author: &str,
    vote: &str,
    doc: &Automerge,
    writes: &[Write],
) -> Result<()> {
    for key in super::root_keys(writes) {
        let Some(e) = map_at(doc, &ROOT, &key) else { continue };
        if key.starts_with("b/") {
            let receipt = doc.hash_for_opid(&e).map(|h| h.0.to_vec()).unwrap_or_default();
            tx.prepare_cached(
                "INSERT OR REPLACE INTO ballots (space_id, vote_id, author, entry, voter, mode, choice, at, receipt)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                space,
                vote,
                author,
                key,
                get_str(doc, &e, "for").unwrap_or_default(),
                get_str(doc, &e, "mode").unwrap_or_default(),
                get_str(doc, &e, "choice").unwrap_or_default(),
                get_i64(doc, &e, "at").unwrap_or_default(),
                receipt
            ])?;
        } else if key.starts_with("g/") {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO proxy_grants (space_id, vote_id, grantor, entry, proxy, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                space,
                vote,
                author,
                key,
                get_str(doc, &e, "to").unwrap_or_default(),
                get_i64(doc, &e, "at").unwrap_or_default()
            ])?;
        }
    }
    Ok(())
}

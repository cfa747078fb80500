//! What the core's benchmarks share: quick mode, the plain-SQLite baseline's
//! connection, file sizes, and a space full of members with device keys.
#![allow(dead_code)]

use linli_core::identity::DeviceKey;
use linli_core::space::{Role, SpaceEdit};
use linli_core::store::Store;
use rusqlite::Connection;

/// `LINLI_BENCH_QUICK=1` shrinks every size (the test command uses it).
pub fn quick() -> bool {
    std::env::var("LINLI_BENCH_QUICK").is_ok()
}

/// A plain SQLite connection with the store's durability settings.
pub fn plain_conn(path: &std::path::Path) -> Connection {
    let c = Connection::open(path).expect("open");
    c.pragma_update(None, "journal_mode", "WAL").expect("wal");
    c.pragma_update(None, "synchronous", "NORMAL").expect("sync");
    c
}

/// The database file's size once its WAL is folded in.
pub fn checkpointed_size(db: &std::path::Path) -> u64 {
    if let Ok(c) = Connection::open(db) {
        let _ = c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    }
    std::fs::metadata(db).map(|m| m.len()).unwrap_or(0)
}

/// Members `m00000…` with one device key each, added to `space` by its admin.
pub fn members_with_devices(store: &Store, space: &str, n: usize) -> Vec<(String, DeviceKey)> {
    let members: Vec<(String, DeviceKey)> =
        (0..n).map(|i| (format!("m{i:05}"), DeviceKey::generate().expect("key"))).collect();
    let mut edits = Vec::new();
    for (i, (m, k)) in members.iter().enumerate() {
        edits.push(SpaceEdit::AddMember { member: m.clone(), name: format!("居民{i}"), roles: vec![Role::Resident] });
        edits.push(SpaceEdit::AddDevice { member: m.clone(), device: k.id(), label: "phone".into() });
    }
    for chunk in edits.chunks(1_000) {
        store.edit_space(space, chunk).expect("members");
    }
    members
}

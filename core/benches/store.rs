//! Store benchmarks, printed as ratios against a baseline run in the same
//! process (`cargo bench -p linli-core --bench store`).
//!
//! 1. A signed local write (one post into the author's own document: an
//!    automerge transaction, an ed25519 signature, one SQLite transaction
//!    holding the chunk, the signature row and the document row) against a
//!    plain SQLite insert of the same row with the same durability settings
//!    (WAL, synchronous=NORMAL, one transaction per row).
//! 2. Cold open of a store holding a large space (5,000 members, 3,000
//!    units) to its first list, in a fresh process, with peak memory; against
//!    opening a plain SQLite file with the same rows and reading the same page.
//!
//! `LINLI_BENCH_QUICK=1` shrinks the sizes (used to check the bench runs).

use std::time::{Duration, Instant};

use automerge::ROOT;
use automerge::transaction::Transactable;
use linli_core::doc::DocId;
use linli_core::space::{Role, SpaceEdit};
use linli_core::store::Store;
use rusqlite::params;

mod common;

use common::{checkpointed_size, plain_conn, quick};

fn per_op(d: Duration, n: usize) -> f64 {
    d.as_secs_f64() * 1e6 / n as f64
}

fn local_write() {
    let n = if quick() { 300 } else { 5_000 };
    let dir = tempfile::tempdir().expect("tempdir");
    // Baseline: the same row, one transaction each.
    let conn = plain_conn(&dir.path().join("plain.db"));
    conn.execute_batch(
        "CREATE TABLE posts (id TEXT PRIMARY KEY, member TEXT NOT NULL, body TEXT NOT NULL, at INTEGER NOT NULL)",
    )
    .expect("table");
    let body = "三号楼东侧路灯不亮已经一周了，晚上老人出门不方便，请尽快维修。";
    let t = Instant::now();
    for i in 0..n {
        conn.execute(
            "INSERT INTO posts (id, member, body, at) VALUES (?1, ?2, ?3, ?4)",
            params![format!("p{i}"), "m1", body, i as i64],
        )
        .expect("insert");
    }
    let plain = t.elapsed();
    let plain_bytes = checkpointed_size(&dir.path().join("plain.db"));

    let path = dir.path().join("linli.db");
    let store = Store::open(&path).expect("store");
    let space = store.create_space("bench", "me").expect("space");
    let me = store.my_member(&space).expect("me");
    let doc = DocId::own_public(&me, "2026");
    let size_before = checkpointed_size(&path);
    let t = Instant::now();
    for i in 0..n {
        store
            .write(&space, &doc, |tx| {
                let p = tx.put_object(ROOT, format!("p{i}"), automerge::ObjType::Map)?;
                tx.put(&p, "body", body)?;
                tx.put(&p, "at", i as i64)?;
                Ok(())
            })
            .expect("write");
    }
    let linli = t.elapsed();
    let bytes = checkpointed_size(&path).saturating_sub(size_before);
    println!(
        "local write   : linli {:.1} µs/op, plain SQLite insert {:.1} µs/op, ratio {:.2}x  ({n} writes into one document)",
        per_op(linli, n),
        per_op(plain, n),
        linli.as_secs_f64() / plain.as_secs_f64()
    );
    println!("                {} bytes on disk per write (plain SQLite: {})", bytes / n as u64, plain_bytes / n as u64);
}

fn file_size(db: &std::path::Path) -> u64 {
    let wal = db.with_extension("db-wal");
    std::fs::metadata(db).map(|m| m.len()).unwrap_or(0) + std::fs::metadata(wal).map(|m| m.len()).unwrap_or(0)
}

fn build_large(path: &std::path::Path, plain: &std::path::Path) -> String {
    let (members, units) = if quick() { (500, 300) } else { (5_000, 3_000) };
    let store = Store::open(path).expect("store");
    let space = store.create_space("大型社区", "管理员").expect("space");
    let t = Instant::now();
    let mut edits = Vec::new();
    for u in 0..units {
        edits.push(SpaceEdit::AddUnit {
            unit: format!("u{u:05}"),
            building: format!("{}栋", u / 120 + 1),
            entrance: format!("{}单元", (u / 30) % 4 + 1),
            room: format!("{}{:02}", (u % 30) / 2 + 1, u % 2 + 1),
            area_centi: 6_000 + (u as i64 * 37) % 9_000,
            grid: None,
            household: None,
        });
    }
    for m in 0..members {
        edits.push(SpaceEdit::AddMember {
            member: format!("m{m:05}"),
            name: format!("居民{m:05}"),
            roles: vec![Role::Resident],
        });
    }
    for chunk in edits.chunks(200) {
        store.edit_space(&space, chunk).expect("edit");
    }
    eprintln!("(built {members} members and {units} units in {:.1} s)", t.elapsed().as_secs_f64());
    let conn = plain_conn(plain);
    conn.execute_batch("CREATE TABLE members (member_id TEXT PRIMARY KEY, name TEXT NOT NULL, status TEXT NOT NULL, roles TEXT NOT NULL); CREATE INDEX by_name ON members (name);").expect("t");
    let tx = conn.unchecked_transaction().expect("tx");
    for m in 0..members {
        tx.execute(
            "INSERT INTO members VALUES (?1, ?2, 'active', 'resident')",
            params![format!("m{m:05}"), format!("居民{m:05}")],
        )
        .expect("i");
    }
    tx.commit().expect("commit");
    space
}

/// Runs in a fresh process: open, first page of members; prints µs and peak KiB.
fn cold_open_child(path: &str, space: &str, plain: bool) {
    let t = Instant::now();
    let n = if plain {
        let conn = plain_conn(std::path::Path::new(path));
        let mut stmt = conn
            .prepare("SELECT member_id, name, status, roles FROM members ORDER BY name, member_id LIMIT 50")
            .expect("prep");
        let rows: Vec<(String, String)> =
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).expect("q").collect::<Result<_, _>>().expect("rows");
        rows.len()
    } else {
        let store = Store::open(path).expect("open");
        store.members(space, 0, 50).expect("members").len()
    };
    let us = t.elapsed().as_micros();
    assert_eq!(n, 50);
    println!("{us} {}", peak_kib());
}

fn peak_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn run_child(args: &[&str]) -> (f64, f64) {
    let out = std::process::Command::new(std::env::current_exe().expect("exe")).args(args).output().expect("child");
    let s = String::from_utf8_lossy(&out.stdout);
    let mut it = s.split_whitespace();
    let us: f64 = it.next().and_then(|v| v.parse().ok()).expect("µs");
    let kib: f64 = it.next().and_then(|v| v.parse().ok()).expect("KiB");
    (us / 1000.0, kib / 1024.0)
}

fn cold_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("large.db");
    let plain = dir.path().join("plain.db");
    let space = build_large(&path, &plain);
    let p = path.to_string_lossy().to_string();
    let q = plain.to_string_lossy().to_string();
    let runs = 5;
    let mut linli = Vec::new();
    let mut base = Vec::new();
    for _ in 0..runs {
        linli.push(run_child(&["--cold-open", &p, &space]));
        base.push(run_child(&["--cold-open-plain", &q, &space]));
    }
    let med = |v: &mut Vec<(f64, f64)>| {
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        v[v.len() / 2]
    };
    let (lm, lk) = med(&mut linli);
    let (bm, bk) = med(&mut base);
    println!(
        "cold open     : linli {lm:.2} ms to the first page of members (peak {lk:.1} MiB); plain SQLite {bm:.2} ms (peak {bk:.1} MiB); ratio {:.2}x",
        lm / bm
    );
    println!("                store file {:.1} MiB", file_size(&path) as f64 / 1048576.0);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("--cold-open") => return cold_open_child(&args[2], &args[3], false),
        Some("--cold-open-plain") => return cold_open_child(&args[2], &args[3], true),
        _ => {}
    }
    let only = |name: &str| {
        !args.iter().any(|a| a.starts_with("--only-")) || args.iter().any(|a| a == &format!("--only-{name}"))
    };
    if only("write") {
        local_write();
    }
    if only("open") {
        cold_open();
    }
}

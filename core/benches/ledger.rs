//! Ledger benchmarks, as ratios against baselines in the same run
//! (`cargo bench -p linli-core --bench ledger`; `LINLI_BENCH_QUICK=1` shrinks it).
//!
//! 1. Logging hours, against a plain SQLite insert of the same row into a
//!    table holding the ledger (same durability settings).
//! 2. A member's balance, and the space's totals, with 100,000 movements in
//!    the ledger, against SQL over a plain table of the same movements.
//! 3. Cold open (a fresh process opens the store and reads one balance):
//!    time and peak memory, against the same from the plain file.
//!
//! The ledger is built from real signed changes in members' yearly ledger
//! documents: hours given to the next member, confirmed by them, and
//! transfers back. To keep the build short each change carries 20 entries
//! (the app writes one per change); the query tables, which balances and
//! reports read, are the same either way.

use std::time::Instant;

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{Automerge, ObjType, ROOT};
use linli_core::doc::{DocId, SignedChange};
use linli_core::ledger::{self, HoursInput};
use linli_core::store::{Store, now_ms, year_of};
use rusqlite::params;

mod common;

use common::{members_with_devices, plain_conn, quick};

const PLAIN_BALANCE: &str = "SELECT COALESCE(sum(CASE WHEN dst = ?1 THEN points ELSE -points END), 0)
    FROM movements WHERE dst = ?1 OR src = ?1";

/// One entry written into a member's ledger document.
type Entry = Box<dyn Fn(&mut automerge::transaction::Transaction<'_>)>;

fn build(path: &std::path::Path, plain: &std::path::Path) -> (String, Vec<String>, usize) {
    // LINLI_BENCH_MEMBERS changes how many members share the movements
    // (the default gives 100 movements a member; 200 gives 500).
    let members = std::env::var("LINLI_BENCH_MEMBERS").ok().and_then(|n| n.parse().ok());
    let (members, movements) =
        if quick() { (members.unwrap_or(50), 10_000) } else { (members.unwrap_or(1_000), 100_000) };
    let store = Store::open(path).expect("store");
    let space = store.create_space("bench", "主任").expect("space");
    ledger::set_category(&store, &space, Some("care"), "助老", 10, true).expect("category");
    let keys = members_with_devices(&store, &space, members);
    let pc = plain_conn(plain);
    pc.execute_batch(
        "CREATE TABLE movements (id TEXT PRIMARY KEY, src TEXT, dst TEXT, points INTEGER, reason TEXT, category TEXT,
            minutes INTEGER, at INTEGER, note TEXT);
         CREATE INDEX movements_src ON movements (src);
         CREATE INDEX movements_dst ON movements (dst);
         CREATE TABLE logged (id TEXT PRIMARY KEY, src TEXT, dst TEXT, points INTEGER, reason TEXT, category TEXT,
            minutes INTEGER, at INTEGER, note TEXT);",
    )
    .expect("plain");
    let ptx = pc.unchecked_transaction().expect("tx");
    let year = year_of(now_ms());
    // Per member: `hours` hours given to the next member and confirmed by
    // them, and `transfers` transfers of 1 point to the next member.
    let per_member = movements / members;
    let hours = per_member * 7 / 10;
    let transfers = per_member - hours;
    let start = now_ms() - 86_400_000;
    let ids: Vec<String> = keys.iter().map(|(m, _)| m.clone()).collect();
    for (i, (m, k)) in keys.iter().enumerate() {
        let next = &ids[(i + 1) % ids.len()];
        let prev = &ids[(i + ids.len() - 1) % ids.len()];
        let mut doc = Automerge::new().with_actor(k.actor());
        let mut batch = Vec::new();
        let mut entries: Vec<Entry> = Vec::new();
        for h in 0..hours {
            let (hid, to, at) = (format!("{m}-{year}-h{h:05}"), next.clone(), start + h as i64 * 10);
            entries.push(Box::new(move |tx| {
                let e = tx.put_object(ROOT, format!("h/{hid}"), ObjType::Map).expect("h");
                tx.put(&e, "to", to.as_str()).expect("to");
                tx.put(&e, "activity", "").expect("a");
                tx.put(&e, "category", "care").expect("c");
                tx.put(&e, "minutes", 60).expect("m");
                tx.put(&e, "on", at).expect("on");
                tx.put(&e, "note", "陪老人散步").expect("n");
                tx.put(&e, "at", at).expect("at");
            }));
            ptx.execute(
                "INSERT INTO movements VALUES (?1, 'community', ?2, 10, 'hours', 'care', 60, ?3, '陪老人散步')",
                params![format!("h/{m}-{year}-h{h:05}"), m, at + 1],
            )
            .expect("row");
            // The confirmation of the previous member's hours given to this one.
            let (phid, at) = (format!("{prev}-{year}-h{h:05}"), start + h as i64 * 10 + 1);
            entries.push(Box::new(move |tx| {
                let e = tx.put_object(ROOT, format!("c/{phid}"), ObjType::Map).expect("c");
                tx.put(&e, "answer", "confirm").expect("a");
                tx.put(&e, "reason", "").expect("r");
                tx.put(&e, "at", at).expect("at");
            }));
        }
        for t in 0..transfers {
            let (did, to, at) = (format!("{m}-{year}-d{t:05}"), next.clone(), start + (hours + t) as i64 * 10 + 5);
            entries.push(Box::new(move |tx| {
                let e = tx.put_object(ROOT, format!("d/{did}"), ObjType::Map).expect("d");
                tx.put(&e, "to", to.as_str()).expect("to");
                tx.put(&e, "points", 1).expect("p");
                tx.put(&e, "kind", "transfer").expect("k");
                tx.put(&e, "reward", "").expect("r");
                tx.put(&e, "note", "谢谢").expect("n");
                tx.put(&e, "at", at).expect("at");
            }));
            ptx.execute(
                "INSERT INTO movements VALUES (?1, ?2, ?3, 1, 'transfer', '', 0, ?4, '谢谢')",
                params![format!("d/{m}-{year}-d{t:05}"), m, next, at],
            )
            .expect("row");
        }
        let doc_id = DocId::own_public(m, &format!("ledger-{year}"));
        for chunk in entries.chunks(20) {
            let mut tx = doc.transaction();
            for f in chunk {
                f(&mut tx);
            }
            tx.commit_with(CommitOptions::default().with_time(now_ms()));
            let c = doc.get_last_local_change().expect("change");
            batch.push(SignedChange {
                bytes: c.raw_bytes().to_vec(),
                signature: k.sign_change(&space, &doc_id, &c.hash()).to_vec(),
            });
        }
        let r = store.apply(&space, &doc_id, batch).expect("apply");
        assert!(r.refused.is_empty(), "{:?}", r.refused.first());
    }
    ptx.commit().expect("commit");
    (space, ids, members * per_member)
}

fn peak_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn cold_child(path: &str, space: &str, member: &str, plain: bool) {
    let t = Instant::now();
    let b = if plain {
        let c = plain_conn(std::path::Path::new(path));
        c.query_row(PLAIN_BALANCE, params![member], |r| r.get::<_, i64>(0)).expect("balance")
    } else {
        let store = Store::open(path).expect("open");
        ledger::balance(&store, space, member).expect("balance").points
    };
    println!("{} {} {}", t.elapsed().as_micros(), peak_kib(), b);
}

fn child(args: &[&str]) -> (f64, u64, i64) {
    let out = std::process::Command::new(std::env::current_exe().expect("exe")).args(args).output().expect("child");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut parts = text.split_whitespace();
    let us: f64 = parts.next().and_then(|s| s.parse().ok()).expect("µs");
    let kib: u64 = parts.next().and_then(|s| s.parse().ok()).expect("KiB");
    let balance: i64 = parts.next().and_then(|s| s.parse().ok()).expect("balance");
    (us / 1000.0, kib, balance)
}

fn per_call<T>(n: usize, mut f: impl FnMut(usize) -> T) -> f64 {
    let t = Instant::now();
    for i in 0..n {
        std::hint::black_box(f(i));
    }
    t.elapsed().as_secs_f64() / n as f64
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("--cold") => return cold_child(&args[2], &args[3], &args[4], false),
        Some("--cold-plain") => return cold_child(&args[2], &args[3], &args[4], true),
        _ => {}
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, plain) = (dir.path().join("linli.db"), dir.path().join("plain.db"));
    let t = Instant::now();
    let (space, members, n_movements) = build(&path, &plain);
    eprintln!("(built {n_movements} movements in {:.1} s)", t.elapsed().as_secs_f64());
    let store = Store::open(&path).expect("store");
    let pc = plain_conn(&plain);
    let (book, settled) = ledger::ledger(&store, &space).expect("ledger");
    assert_eq!(book.movements.len(), n_movements, "every movement is in the book");
    let m = &members[members.len() / 2];
    let want = ledger::balance(&store, &space, m).expect("balance").points;
    let plain_balance: i64 = pc.query_row(PLAIN_BALANCE, params![m], |r| r.get(0)).expect("plain");
    assert_eq!(want, plain_balance, "the baseline computes the same balance");
    assert_eq!(settled.balances.get(m.as_str()).copied(), Some(want));

    // 1. Logging hours (the admin's device gives them to a member).
    let n = if quick() { 100 } else { 1_000 };
    let input = |i: usize| HoursInput {
        to: Some(members[i % members.len()].clone()),
        activity: None,
        category: "care".into(),
        minutes: 60,
        on: now_ms() - 3_600_000,
        note: "陪老人散步".into(),
    };
    let linli = per_call(n, |i| ledger::log_hours(&store, &space, &input(i)).expect("log"));
    let base = per_call(n, |i| {
        pc.execute(
            "INSERT INTO logged VALUES (?1, 'community', ?2, 10, 'hours', 'care', 60, ?3, '陪老人散步')",
            params![format!("x{i}"), members[i % members.len()], i as i64],
        )
        .expect("row")
    });
    println!(
        "log hours: linli {:.1} µs, plain SQLite insert {:.1} µs, ratio {:.2}x",
        linli * 1e6,
        base * 1e6,
        linli / base
    );

    if let Ok(n) = std::env::var("LINLI_BENCH_BALANCE_LOOP") {
        // For a profiler: only balances.
        let n: usize = n.parse().unwrap_or(1_000);
        per_call(n, |i| ledger::balance(&store, &space, &members[i % members.len()]).expect("balance"));
        return;
    }
    // 2. A balance and the totals over the whole ledger, warm.
    let linli = per_call(200, |i| ledger::balance(&store, &space, &members[i % members.len()]).expect("balance"));
    let base = per_call(200, |i| {
        pc.query_row(PLAIN_BALANCE, params![members[i % members.len()]], |r| r.get::<_, i64>(0)).expect("plain")
    });
    println!(
        "a member's balance ({} movements each) with {n_movements} in the ledger: linli {:.3} ms, plain SQL sum {:.3} ms, ratio {:.2}x",
        n_movements / members.len(),
        linli * 1e3,
        base * 1e3,
        linli / base
    );
    let linli = per_call(3, |_| ledger::totals(&store, &space, None, None).expect("totals"));
    let base = per_call(3, |_| {
        let mut stmt = pc
            .prepare_cached(
                "SELECT reason, category, substr(datetime(at / 1000, 'unixepoch'), 1, 7), sum(points), sum(minutes), count(*)
                 FROM movements GROUP BY 1, 2, 3",
            )
            .expect("prep");
        stmt.query_map([], |r| r.get::<_, i64>(3)).expect("q").count()
    });
    println!(
        "the space's totals over {n_movements} movements: linli {:.1} ms, plain SQL group-by {:.1} ms, ratio {:.2}x",
        linli * 1e3,
        base * 1e3,
        linli / base
    );
    let linli = per_call(3, |_| ledger::flags(&store, &space).expect("flags"));
    println!("settling the whole ledger (the flag list): {:.1} ms", linli * 1e3);

    // 3. Cold open: a fresh process opens the file and reads one balance.
    drop(store);
    let p = path.to_string_lossy().to_string();
    let q = plain.to_string_lossy().to_string();
    let mut cold: Vec<(f64, u64, i64)> = (0..5).map(|_| child(&["--cold", &p, &space, m])).collect();
    let mut cold_plain: Vec<(f64, u64, i64)> = (0..5).map(|_| child(&["--cold-plain", &q, &space, m])).collect();
    assert!(cold.iter().chain(&cold_plain).all(|c| c.2 == want), "a cold open reads the same balance");
    cold.sort_by(|a, b| a.0.total_cmp(&b.0));
    cold_plain.sort_by(|a, b| a.0.total_cmp(&b.0));
    println!(
        "cold open + balance: linli {:.2} ms, peak {:.1} MiB; plain SQLite {:.2} ms, peak {:.1} MiB; time ratio {:.2}x",
        cold[2].0,
        cold[2].1 as f64 / 1024.0,
        cold_plain[2].0,
        cold_plain[2].1 as f64 / 1024.0,
        cold[2].0 / cold_plain[2].0
    );
}

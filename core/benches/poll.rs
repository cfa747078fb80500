//! Vote benchmarks, as ratios against baselines run in the same process
//! (`cargo bench -p linli-core --bench poll`; `LINLI_BENCH_QUICK=1` shrinks it).
//!
//! 1. Casting a ballot into a vote that already holds N (10,000) ballots,
//!    each in its voter's own signed document, against a plain SQLite insert
//!    of the same row into a table holding N rows (same durability).
//! 2. Tallying the N ballots (every rule: electorate, dates, modes, revotes)
//!    against `SELECT choice, count(*) … GROUP BY choice` over the same rows.
//! 3. Bytes per ballot on disk, and on the wire in a sync request.

use std::time::Instant;

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{Automerge, ObjType, ROOT};
use linli_core::doc::{DocId, SignedChange};
use linli_core::poll::{self, BallotVisibility, Eligibility, VoteKind, VoteSpec};
use linli_core::store::{Store, now_ms};
use linli_core::sync::wire::{DocBatch, Request};
use rusqlite::params;

mod common;

use common::{checkpointed_size, members_with_devices, plain_conn, quick};

fn main() {
    let n = if quick() { 500 } else { 10_000 };
    let casts = if quick() { 200 } else { 2_000 };
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("linli.db");
    let store = Store::open(&path).expect("store");
    let space = store.create_space("bench", "主任").expect("space");
    let keys = members_with_devices(&store, &space, n);
    let spec = VoteSpec {
        title: "满意度测评".into(),
        kind: VoteKind::Satisfaction,
        eligibility: Eligibility::AllMembers,
        visibility: BallotVisibility::CoordinatorsOnly,
        hide_results: false,
        proxy_limit: 1,
    };
    let vote = poll::create(&store, &space, &spec).expect("vote");
    poll::open(&store, &space, &vote).expect("open");

    // N ballots, each signed by its voter's device in its own document.
    let before = checkpointed_size(&path);
    let mut wire_one = 0;
    let t = Instant::now();
    for (i, (m, k)) in keys.iter().enumerate() {
        let m = m.clone();
        let mut d = Automerge::new().with_actor(k.actor());
        let mut tx = d.transaction();
        let at = now_ms();
        let b = tx.put_object(ROOT, format!("b/{at:013}/{i:016x}"), ObjType::Map).expect("entry");
        tx.put(&b, "for", m.as_str()).expect("for");
        tx.put(&b, "mode", "own").expect("mode");
        tx.put(&b, "choice", format!("[{}]", i % 5)).expect("choice");
        tx.put(&b, "at", at).expect("at");
        tx.commit_with(CommitOptions::default().with_time(at));
        let c = d.get_last_local_change().expect("change");
        let doc = DocId::own_private(&m, &vote);
        let sc =
            SignedChange { bytes: c.raw_bytes().to_vec(), signature: k.sign_change(&space, &doc, &c.hash()).to_vec() };
        if i == 0 {
            let req = Request {
                space: [0; 16],
                epoch: [0; 16],
                cursor: 1,
                batches: vec![DocBatch::changes(doc.clone(), vec![sc.clone()])],
            };
            let body = req.encode();
            let header = linli_core::sync::auth::header_with_key(k, &k.id(), linli_core::sync::SYNC_PATH, at, &body)
                .expect("header");
            wire_one = body.len() + header.len();
        }
        let r = store.apply(&space, &doc, vec![sc]).expect("apply");
        assert_eq!(r.accepted.len(), 1);
    }
    let disk = (checkpointed_size(&path) - before) / n as u64;
    eprintln!("(merged {n} ballots from {n} devices in {:.1} s)", t.elapsed().as_secs_f64());

    // Baseline table with the same rows, same durability.
    let plain = plain_conn(&dir.path().join("plain.db"));
    plain.execute_batch("CREATE TABLE ballots (vote TEXT NOT NULL, member TEXT NOT NULL, choice INTEGER NOT NULL, at INTEGER NOT NULL, PRIMARY KEY (vote, member, at))").expect("table");
    {
        let tx = plain.unchecked_transaction().expect("tx");
        for i in 0..n {
            tx.execute(
                "INSERT INTO ballots VALUES (?1, ?2, ?3, ?4)",
                params![vote, format!("m{i:05}"), (i % 5) as i64, i as i64],
            )
            .expect("row");
        }
        tx.commit().expect("commit");
    }

    // 1. Casting. A voter's ballot goes into their own small document for the
    // vote; measure this device casting its first ballot in each of `casts`
    // votes, in a store whose ballots table already holds the N ballots.
    let mut small = spec.clone();
    small.eligibility = Eligibility::Role { role: "coordinator".into() };
    let votes: Vec<String> = (0..casts)
        .map(|_| {
            let v = poll::create(&store, &space, &small).expect("vote");
            poll::open(&store, &space, &v).expect("open");
            v
        })
        .collect();
    let t = Instant::now();
    for (i, v) in votes.iter().enumerate() {
        poll::cast(&store, &space, v, &[(i % 5) as u32]).expect("cast");
    }
    let linli_cast = t.elapsed().as_secs_f64() / casts as f64;
    // The same device changing its ballot in the large vote, many times over.
    let revotes = casts / 10;
    let t = Instant::now();
    for i in 0..revotes {
        poll::cast(&store, &space, &vote, &[(i % 5) as u32]).expect("cast");
    }
    let linli_revote = t.elapsed().as_secs_f64() / revotes as f64;
    let t = Instant::now();
    for i in 0..casts {
        plain
            .execute(
                "INSERT INTO ballots VALUES (?1, ?2, ?3, ?4)",
                params![vote, "coordinator", (i % 5) as i64, (n + i) as i64],
            )
            .expect("row");
    }
    let plain_cast = t.elapsed().as_secs_f64() / casts as f64;
    println!(
        "cast a ballot (store holding {n} ballots): linli {:.1} µs, plain SQLite insert {:.1} µs, ratio {:.2}x",
        linli_cast * 1e6,
        plain_cast * 1e6,
        linli_cast / plain_cast
    );
    println!("  one device revoting {revotes} times in the large vote: {:.1} µs per revote", linli_revote * 1e6);

    // 2. Tallying.
    let runs = 10;
    let t = Instant::now();
    let mut counted = 0;
    for _ in 0..runs {
        counted = poll::results(&store, &space, &vote).expect("tally").expect("visible").counted;
    }
    let linli_tally = t.elapsed().as_secs_f64() / runs as f64;
    let t = Instant::now();
    let mut groups = 0;
    for _ in 0..runs {
        let mut stmt =
            plain.prepare("SELECT choice, count(*) FROM ballots WHERE vote = ?1 GROUP BY choice").expect("prep");
        groups = stmt.query_map([&vote], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))).expect("q").count();
    }
    let plain_tally = t.elapsed().as_secs_f64() / runs as f64;
    assert_eq!(counted as usize, n + 1, "every member's ballot and the coordinator's count once");
    assert_eq!(groups, 5);
    println!(
        "tally {} ballots: linli {:.2} ms, SQLite GROUP BY {:.2} ms, ratio {:.2}x",
        n + revotes,
        linli_tally * 1e3,
        plain_tally * 1e3,
        linli_tally / plain_tally
    );
    println!(
        "bytes per ballot: {disk} on disk (database, its query rows and signature), {wire_one} on the wire (one ballot in a signed sync request)"
    );
}

//! Deliberation benchmarks, as ratios against baselines in the same run
//! (`cargo bench -p linli-core --bench deliberation`; `LINLI_BENCH_QUICK=1` shrinks it).
//!
//! 1. Posting into a thread that holds 5,000 posts, against a plain SQLite
//!    insert of the same row into a table holding them (same durability).
//! 2. Opening the topic list (first page, with support and post counts) of a
//!    space with 2,000 topics and 40,000 posts, cold (a fresh process) and
//!    warm, against the same page from a plain SQLite file.

use std::time::Instant;

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{Automerge, ObjType, ROOT};
use linli_core::deliberation as d;
use linli_core::doc::{DocId, SignedChange};
use linli_core::store::{Store, now_ms};
use rusqlite::params;

mod common;

use common::{members_with_devices, plain_conn, quick};

fn forum_doc(member: &str) -> DocId {
    DocId::own_public(member, &format!("forum-{}", linli_core::store::year_of(now_ms())))
}

fn build(path: &std::path::Path, plain: &std::path::Path) -> (String, String) {
    let (members, topics, posts) = if quick() { (50, 100, 2_000) } else { (500, 2_000, 40_000) };
    let store = Store::open(path).expect("store");
    let space = store.create_space("bench", "主任").expect("space");
    let keys = members_with_devices(&store, &space, members);
    let pc = plain_conn(plain);
    pc.execute_batch(
        "CREATE TABLE topics (id TEXT PRIMARY KEY, author TEXT, title TEXT, category TEXT, at INTEGER);
         CREATE INDEX topics_at ON topics (at);
         CREATE TABLE posts (id TEXT PRIMARY KEY, topic TEXT, author TEXT, body TEXT, at INTEGER);
         CREATE INDEX posts_topic ON posts (topic);",
    )
    .expect("plain");
    let ptx = pc.unchecked_transaction().expect("tx");
    // Each member raises topics and posts, one signed change each, in their own forum document.
    let per_member_topics = topics / members;
    let per_member_posts = posts / members;
    let mut all_topics = Vec::new();
    let mut big = String::new();
    for (i, (m, k)) in keys.iter().enumerate() {
        let m = m.clone();
        let mut doc = Automerge::new().with_actor(k.actor());
        let mut batch = Vec::new();
        let forum = forum_doc(&m);
        let mut commit = |doc: &mut Automerge, f: &mut dyn FnMut(&mut automerge::transaction::Transaction<'_>)| {
            let mut tx = doc.transaction();
            f(&mut tx);
            tx.commit_with(CommitOptions::default().with_time(now_ms()));
            let c = doc.get_last_local_change().expect("change");
            batch.push(SignedChange {
                bytes: c.raw_bytes().to_vec(),
                signature: k.sign_change(&space, &forum, &c.hash()).to_vec(),
            });
        };
        for t in 0..per_member_topics {
            let id = format!("{m}-t{t:04}");
            let at = now_ms();
            commit(&mut doc, &mut |tx| {
                let e = tx.put_object(ROOT, format!("t/{id}"), ObjType::Map).expect("t");
                tx.put(&e, "title", format!("议题{t}：小区停车难")).expect("title");
                tx.put(&e, "category", "交通").expect("cat");
                tx.put(&e, "description", "晚上车位不够").expect("desc");
                tx.put(&e, "at", at).expect("at");
            });
            ptx.execute(
                "INSERT INTO topics VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, m, format!("议题{t}：小区停车难"), "交通", at],
            )
            .expect("row");
            all_topics.push(id);
        }
        if big.is_empty() {
            big = all_topics[0].clone();
        }
        for p in 0..per_member_posts {
            // A quarter of all posts go into one big thread.
            let topic = if p % 4 == 0 { big.clone() } else { all_topics[(i * 7 + p) % all_topics.len()].clone() };
            let id = format!("{m}-p{p:05}");
            let at = now_ms();
            commit(&mut doc, &mut |tx| {
                let e = tx.put_object(ROOT, format!("p/{id}"), ObjType::Map).expect("p");
                tx.put(&e, "topic", topic.as_str()).expect("topic");
                tx.put(&e, "parent", "").expect("parent");
                tx.put(&e, "quote", "").expect("quote");
                tx.put(&e, "body", "同意，晚上十点以后基本找不到车位。").expect("body");
                tx.put(&e, "at", at).expect("at");
            });
            ptx.execute(
                "INSERT INTO posts VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, topic, m, "同意，晚上十点以后基本找不到车位。", at],
            )
            .expect("row");
        }
        let r = store.apply(&space, &forum_doc(&m), batch).expect("apply");
        assert!(r.refused.is_empty(), "{:?}", r.refused.first());
    }
    ptx.commit().expect("commit");
    (space, big)
}

fn cold_child(path: &str, space: &str, plain: bool) {
    let t = Instant::now();
    let n = if plain {
        let c = plain_conn(std::path::Path::new(path));
        let mut stmt = c
            .prepare(
                "SELECT t.id, t.title, (SELECT count(*) FROM posts p WHERE p.topic = t.id) FROM topics t ORDER BY t.at DESC LIMIT 50",
            )
            .expect("prep");
        stmt.query_map([], |r| r.get::<_, String>(0)).expect("q").count()
    } else {
        let store = Store::open(path).expect("open");
        d::topics(&store, space, 0, 50).expect("topics").len()
    };
    assert_eq!(n, 50);
    println!("{}", t.elapsed().as_micros());
}

fn child(args: &[&str]) -> f64 {
    let out = std::process::Command::new(std::env::current_exe().expect("exe")).args(args).output().expect("child");
    String::from_utf8_lossy(&out.stdout).trim().parse::<f64>().expect("µs") / 1000.0
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("--cold") => return cold_child(&args[2], &args[3], false),
        Some("--cold-plain") => return cold_child(&args[2], &args[3], true),
        _ => {}
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, plain) = (dir.path().join("linli.db"), dir.path().join("plain.db"));
    let t = Instant::now();
    let (space, big) = build(&path, &plain);
    eprintln!("(built in {:.1} s)", t.elapsed().as_secs_f64());

    // 1. Posting into the big thread.
    let store = Store::open(&path).expect("store");
    let before = d::thread(&store, &space, &big).expect("thread").len();
    let n = if quick() { 100 } else { 1_000 };
    let t = Instant::now();
    for i in 0..n {
        d::post(&store, &space, &big, &format!("第{i}条回复：赞成增加夜间临时车位"), None, None).expect("post");
    }
    let linli = t.elapsed().as_secs_f64() / n as f64;
    let pc = plain_conn(&plain);
    let t = Instant::now();
    for i in 0..n {
        pc.execute(
            "INSERT INTO posts VALUES (?1, ?2, ?3, ?4, ?5)",
            params![format!("x{i}"), big, "me", format!("第{i}条回复：赞成增加夜间临时车位"), i as i64],
        )
        .expect("row");
    }
    let base = t.elapsed().as_secs_f64() / n as f64;
    println!(
        "post into a thread of {before}: linli {:.1} µs, plain SQLite insert {:.1} µs, ratio {:.2}x",
        linli * 1e6,
        base * 1e6,
        linli / base
    );

    // 2. The topic list, cold (fresh processes) and warm.
    drop(store);
    let p = path.to_string_lossy().to_string();
    let q = plain.to_string_lossy().to_string();
    let mut cold: Vec<f64> = (0..5).map(|_| child(&["--cold", &p, &space])).collect();
    let mut cold_plain: Vec<f64> = (0..5).map(|_| child(&["--cold-plain", &q, &space])).collect();
    cold.sort_by(f64::total_cmp);
    cold_plain.sort_by(f64::total_cmp);
    let store = Store::open(&path).expect("store");
    let _ = d::topics(&store, &space, 0, 50).expect("warm up");
    let t = Instant::now();
    for _ in 0..20 {
        d::topics(&store, &space, 0, 50).expect("topics");
    }
    let warm = t.elapsed().as_secs_f64() * 1e3 / 20.0;
    println!(
        "topic list (first 50 with counts): cold {:.2} ms (plain SQLite {:.2} ms, ratio {:.2}x); warm {:.2} ms",
        cold[2],
        cold_plain[2],
        cold[2] / cold_plain[2],
        warm
    );
}

//! Survey benchmarks, as ratios against baselines run in the same process
//! (`cargo bench -p linli-core --bench survey`; `LINLI_BENCH_QUICK=1` shrinks it).
//!
//! 1. Submitting a response (validated against the survey's skip logic and
//!    constraints, signed, in the member's own document) to a survey that
//!    holds N (5,000) responses, against a plain SQLite insert of the same
//!    row (the answers as JSON) into a table holding N rows.
//! 2. Results over M (50,000) responses (every rule: audience, dates,
//!    versions, re-validation, latest per respondent, then counts, means,
//!    medians, rankings) against SQL aggregates over the same rows: SQLite's
//!    JSON functions over the response rows, and, as a second baseline, a
//!    normalised table of one row per answer.
//! 3. Bytes per response on disk, and on the wire in a sync request.

use std::time::Instant;

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{Automerge, ObjType, ROOT};
use linli_core::doc::{DocId, SignedChange};
use linli_core::identity::DeviceKey;
use linli_core::space::{Relation, SpaceEdit};
use linli_core::store::{Store, now_ms};
use linli_core::survey::{self, results::Filter};
use linli_core::sync::wire::{DocBatch, Request};
use rusqlite::params;
use serde_json::json;

mod common;

use common::{checkpointed_size, members_with_devices, plain_conn, quick};

fn definition(title: &str) -> String {
    json!({
        "format": "linli-survey/1",
        "title": title,
        "items": [
            {"type": "number", "id": "people", "label": "家庭人数", "required": true, "min": 1, "max": 20},
            {"type": "number", "id": "age", "label": "您的年龄", "required": true, "min": 0, "max": 130},
            {"type": "group", "id": "elder", "label": "长者服务", "relevant": "${age} >= 60", "items": [
                {"type": "single", "id": "alone", "label": "是否独居", "required": true,
                 "options": [{"value": "yes", "label": "是"}, {"value": "no", "label": "否"}]},
                {"type": "multiple", "id": "help", "label": "需要的服务", "relevant": "${alone} = 'yes'",
                 "min": 1, "max": 3, "other": true,
                 "options": [{"value": "meals", "label": "助餐"}, {"value": "visits", "label": "上门探访"},
                             {"value": "health", "label": "健康监测"}]}
            ]},
            {"type": "number", "id": "kids", "label": "儿童人数", "constraint": ". < ${people}"},
            {"type": "ranking", "id": "priority", "label": "优先改造", "max": 2,
             "options": [{"value": "lift", "label": "加装电梯"}, {"value": "park", "label": "停车"},
                         {"value": "green", "label": "绿化"}]},
            {"type": "rating", "id": "sat", "label": "满意度", "scale": 5},
            {"type": "date", "id": "moved", "label": "入住日期"},
            {"type": "text", "id": "say", "label": "其他建议", "max_length": 200}
        ]
    })
    .to_string()
}

/// A varied, valid answer sheet.
fn sheet(i: usize) -> serde_json::Value {
    let people = 1 + i % 6;
    let age = 20 + (i * 7) % 70;
    let priority = [["lift", "park"], ["park", "green"], ["green", "lift"]][i % 3];
    let mut a = json!({
        "people": people, "age": age, "kids": (i % people),
        "priority": priority,
        "sat": 1 + i % 5, "moved": format!("20{:02}-0{}-1{}", 10 + i % 16, 1 + i % 9, i % 10),
    });
    if age >= 60 {
        a["alone"] = json!(if i.is_multiple_of(2) { "yes" } else { "no" });
        if i.is_multiple_of(2) {
            a["help"] = json!(["meals", "visits", "health"][..1 + i % 3]);
        }
    }
    if i.is_multiple_of(4) {
        a["say"] = json!("希望增加助餐点，谢谢");
    }
    a
}

fn signed_response(k: &DeviceKey, space: &str, doc: &DocId, version: &str, i: usize) -> SignedChange {
    let mut d = Automerge::new().with_actor(k.actor());
    let mut tx = d.transaction();
    let at = now_ms();
    let e = tx.put_object(ROOT, format!("a/{at:013}/{i:016x}"), ObjType::Map).expect("entry");
    tx.put(&e, "version", version).expect("version");
    tx.put(&e, "answers", sheet(i).to_string()).expect("answers");
    tx.put(&e, "at", at).expect("at");
    tx.commit_with(CommitOptions::default().with_time(at));
    let c = d.get_last_local_change().expect("change");
    SignedChange { bytes: c.raw_bytes().to_vec(), signature: k.sign_change(space, doc, &c.hash()).to_vec() }
}

fn main() {
    let n = if quick() { 500 } else { 5_000 };
    // `LINLI_BENCH_RESPONSES` overrides M (each response needs a member with a device).
    let m = std::env::var("LINLI_BENCH_RESPONSES").ok().and_then(|v| v.parse().ok()).unwrap_or(if quick() {
        2_000
    } else {
        50_000
    });
    let submits = if quick() { 100 } else { 1_000 };
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("linli.db");
    let store = Store::open(&path).expect("store");
    let space = store.create_space("bench", "主任").expect("space");
    let t = Instant::now();
    let keys = members_with_devices(&store, &space, m);
    eprintln!("({m} members in {:.1} s)", t.elapsed().as_secs_f64());
    let big = survey::create(&store, &space, &definition("居民需求调查")).expect("survey");
    survey::publish(&store, &space, &big).expect("publish");
    let version = survey::survey(&store, &space, &big).expect("survey").versions[0].key.clone();

    // N responses, each signed by its member's device in its own document.
    let before = checkpointed_size(&path);
    let mut wire_one = 0;
    let t = Instant::now();
    let add = |range: std::ops::Range<usize>, wire: &mut usize| {
        for i in range {
            let (member, k) = &keys[i];
            let doc = DocId::own_private(member, &big);
            let sc = signed_response(k, &space, &doc, &version, i);
            if i == 0 {
                let req = Request {
                    space: [0; 16],
                    epoch: [0; 16],
                    cursor: 1,
                    batches: vec![DocBatch::changes(doc.clone(), vec![sc.clone()])],
                };
                let body = req.encode();
                let header =
                    linli_core::sync::auth::header_with_key(k, &k.id(), linli_core::sync::SYNC_PATH, now_ms(), &body)
                        .expect("header");
                *wire = body.len() + header.len();
            }
            let r = store.apply(&space, &doc, vec![sc]).expect("apply");
            assert_eq!(r.accepted.len(), 1);
        }
    };
    add(0..n, &mut wire_one);
    let disk = (checkpointed_size(&path) - before) / n as u64;
    eprintln!("(merged {n} responses from {n} devices in {:.1} s)", t.elapsed().as_secs_f64());

    let plain = plain_conn(&dir.path().join("plain.db"));
    plain
        .execute_batch(
            "CREATE TABLE responses (survey TEXT NOT NULL, member TEXT NOT NULL, at INTEGER NOT NULL, answers TEXT NOT NULL, PRIMARY KEY (survey, member, at));
             CREATE TABLE answers (survey TEXT NOT NULL, response INTEGER NOT NULL, question TEXT NOT NULL, value TEXT, num REAL);",
        )
        .expect("tables");
    let fill = |range: std::ops::Range<usize>| {
        let tx = plain.unchecked_transaction().expect("tx");
        for i in range {
            let a = sheet(i);
            tx.execute(
                "INSERT INTO responses VALUES (?1, ?2, ?3, ?4)",
                params![big, keys[i].0, i as i64, a.to_string()],
            )
            .expect("row");
            for (q, v) in a.as_object().into_iter().flatten() {
                let values: Vec<&serde_json::Value> = match v.as_array() {
                    Some(l) => l.iter().collect(),
                    None => vec![v],
                };
                for v in values {
                    tx.execute(
                        "INSERT INTO answers VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![
                            big,
                            i as i64,
                            q,
                            v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()),
                            v.as_f64()
                        ],
                    )
                    .expect("answer");
                }
            }
        }
        tx.commit().expect("commit");
    };
    fill(0..n);

    // 1. Submitting. This device (the coordinator, in every audience) submits
    // its first response in each of `submits` surveys, in a store whose
    // responses table already holds the N responses, then resubmits in the
    // large one.
    // They target one building, where only this device's member lives, so
    // their audiences stay small.
    let me = store.my_member(&space).expect("me");
    store
        .edit_space(
            &space,
            &[
                SpaceEdit::AddUnit {
                    unit: "office".into(),
                    building: "办公楼".into(),
                    entrance: "1".into(),
                    room: "101".into(),
                    area_centi: 2_000,
                    grid: None,
                    household: None,
                },
                SpaceEdit::Link { member: me, unit: "office".into(), relation: Relation::Tenant },
            ],
        )
        .expect("office");
    let small = |title: &str| {
        let mut d: serde_json::Value = serde_json::from_str(&definition(title)).expect("json");
        d["target"] = json!({"type": "buildings", "names": ["办公楼"]});
        d.to_string()
    };
    let surveys: Vec<String> = (0..submits)
        .map(|i| {
            let s = survey::create(&store, &space, &small(&format!("调查{i}"))).expect("survey");
            survey::publish(&store, &space, &s).expect("publish");
            s
        })
        .collect();
    let sheets: Vec<String> = (0..submits).map(|i| sheet(i).to_string()).collect();
    let t = Instant::now();
    for (s, a) in surveys.iter().zip(&sheets) {
        survey::submit(&store, &space, s, a).expect("submit");
    }
    let linli_submit = t.elapsed().as_secs_f64() / submits as f64;
    let again = submits / 10;
    let t = Instant::now();
    for a in &sheets[..again] {
        survey::submit(&store, &space, &big, a).expect("resubmit");
    }
    let linli_again = t.elapsed().as_secs_f64() / again as f64;
    // `LINLI_BENCH_PARTS=1`: where a submission's time goes.
    if std::env::var("LINLI_BENCH_PARTS").is_ok() {
        let t = Instant::now();
        for s in &surveys {
            survey::survey(&store, &space, s).expect("load");
        }
        eprintln!("  (parts) load a survey: {:.1} µs", t.elapsed().as_secs_f64() / submits as f64 * 1e6);
        let t = Instant::now();
        for (s, a) in surveys.iter().zip(&sheets) {
            survey::check(&store, &space, s, a).expect("check");
        }
        eprintln!("  (parts) load + check: {:.1} µs", t.elapsed().as_secs_f64() / submits as f64 * 1e6);
        let t = Instant::now();
        for _ in &surveys {
            store.my_member(&space).expect("me");
        }
        eprintln!("  (parts) my_member: {:.1} µs", t.elapsed().as_secs_f64() / submits as f64 * 1e6);
        let t = Instant::now();
        for (i, s) in surveys.iter().enumerate() {
            store
                .write(&space, &DocId::own_private("m00000x", s), |tx| {
                    tx.put(ROOT, format!("k{i}"), "v")?;
                    Ok(())
                })
                .ok();
        }
        eprintln!(
            "  (parts) a bare write to a new document: {:.1} µs",
            t.elapsed().as_secs_f64() / submits as f64 * 1e6
        );
        let t = Instant::now();
        for s in &surveys {
            survey::discard_draft(&store, &space, s).expect("discard");
        }
        eprintln!("  (parts) discard a draft: {:.1} µs", t.elapsed().as_secs_f64() / submits as f64 * 1e6);
        let me = store.my_member(&space).expect("me");
        let t = Instant::now();
        for (i, s) in surveys.iter().enumerate() {
            store
                .write(&space, &DocId::own_private(&me, &format!("{s}x")), |tx| {
                    tx.put(ROOT, format!("k{i}"), "v")?;
                    Ok(())
                })
                .expect("w");
        }
        eprintln!(
            "  (parts) a bare write to my new document: {:.1} µs",
            t.elapsed().as_secs_f64() / submits as f64 * 1e6
        );
    }
    let t = Instant::now();
    for (i, a) in sheets.iter().enumerate() {
        plain
            .execute("INSERT INTO responses VALUES (?1, ?2, ?3, ?4)", params![big, "coordinator", (m + i) as i64, a])
            .expect("row");
    }
    let plain_submit = t.elapsed().as_secs_f64() / submits as f64;
    plain.execute("DELETE FROM responses WHERE member = 'coordinator'", []).expect("undo");
    println!(
        "submit a response (store holding {n} responses): linli {:.1} µs, plain SQLite insert {:.1} µs, ratio {:.2}x",
        linli_submit * 1e6,
        plain_submit * 1e6,
        linli_submit / plain_submit
    );
    println!(
        "  one member resubmitting {again} times in the large survey: {:.1} µs per resubmission",
        linli_again * 1e6
    );
    println!(
        "bytes per response: {disk} on disk (database, its query row and signature), {wire_one} on the wire (one response in a signed sync request)"
    );

    // 2. Results over M responses.
    let t = Instant::now();
    add(n..m, &mut 0);
    fill(n..m);
    eprintln!("(grew to {m} responses in {:.1} s)", t.elapsed().as_secs_f64());
    let runs = if quick() { 3 } else { 5 };
    let t = Instant::now();
    let mut r = None;
    for _ in 0..runs {
        r = Some(survey::results(&store, &space, &big, &Filter::default()).expect("results"));
    }
    let linli_results = t.elapsed().as_secs_f64() / runs as f64;
    let r = r.expect("ran");
    assert_eq!(r.responses as usize, m + 1, "every member and the coordinator count once");
    let t = Instant::now();
    let mut groups = 0;
    for _ in 0..runs {
        groups = plain
            .prepare(
                "SELECT j.key, j.value, count(*) FROM responses r, json_each(r.answers) j
                 WHERE r.survey = ?1 AND j.type NOT IN ('array', 'object') GROUP BY j.key, j.value",
            )
            .expect("prep")
            .query_map([&big], |r| r.get::<_, i64>(2))
            .expect("q")
            .count();
        groups += plain
            .prepare(
                "SELECT j.key, e.value, count(*) FROM responses r, json_each(r.answers) j, json_each(j.value) e
                 WHERE r.survey = ?1 AND j.type = 'array' GROUP BY j.key, e.value",
            )
            .expect("prep")
            .query_map([&big], |r| r.get::<_, i64>(2))
            .expect("q")
            .count();
        groups += plain
            .prepare(
                "SELECT j.key, avg(j.value), min(j.value), max(j.value) FROM responses r, json_each(r.answers) j
                 WHERE r.survey = ?1 AND j.type IN ('integer', 'real') GROUP BY j.key",
            )
            .expect("prep")
            .query_map([&big], |r| r.get::<_, f64>(1))
            .expect("q")
            .count();
    }
    let json_sql = t.elapsed().as_secs_f64() / runs as f64;
    let t = Instant::now();
    for _ in 0..runs {
        let a = plain
            .prepare("SELECT question, value, count(*) FROM answers WHERE survey = ?1 GROUP BY question, value")
            .expect("prep")
            .query_map([&big], |r| r.get::<_, i64>(2))
            .expect("q")
            .count();
        let b = plain
            .prepare(
                "SELECT question, avg(num), min(num), max(num) FROM answers WHERE survey = ?1 AND num IS NOT NULL GROUP BY question",
            )
            .expect("prep")
            .query_map([&big], |r| r.get::<_, f64>(1))
            .expect("q")
            .count();
        assert!(a > 0 && b > 0);
    }
    let normal_sql = t.elapsed().as_secs_f64() / runs as f64;
    assert!(groups > 0);
    println!(
        "results over {} responses: linli {:.1} ms, SQL over the same rows (JSON functions) {:.1} ms, ratio {:.2}x; \
         a normalised answers table (one row per answer) {:.1} ms, ratio {:.2}x",
        m + 1,
        linli_results * 1e3,
        json_sql * 1e3,
        linli_results / json_sql,
        normal_sql * 1e3,
        linli_results / normal_sql
    );
}

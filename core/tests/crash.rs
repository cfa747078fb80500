//! Kill a writer with SIGKILL mid-stream, many times: every write it
//! acknowledged survives, the query tables agree with the documents, and
//! SQLite's integrity check passes.
//!
//! The writer is this test binary re-executed with `LINLI_CRASH_STORE` set,
//! running only the ignored test `crash_writer`.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use automerge::transaction::Transactable;
use automerge::{ROOT, ReadDoc};
use linli_core::doc::DocId;
use linli_core::space::SpaceEdit;
use linli_core::store::Store;

const ENV: &str = "LINLI_CRASH_STORE";

#[test]
#[ignore = "the writer half of sigkill_never_loses_an_acknowledged_write; run by it"]
fn crash_writer() {
    let Ok(path) = std::env::var(ENV) else { return };
    let store = Store::open(&path).expect("open");
    let space = match store.spaces().expect("spaces").first() {
        Some(s) => s.space_id.clone(),
        None => store.create_space("crash", "writer").expect("create"),
    };
    let me = store.my_member(&space).expect("me");
    let doc = DocId::own_private(&me, "2026");
    let start = store.read(&space, &doc, |d| d.length(ROOT)).expect("read")
        + store.units(&space, 0, u32::MAX).expect("units").len();
    let mut out = std::io::stdout().lock();
    for i in start..start + 100_000 {
        if i % 4 == 0 {
            let unit = format!("u{i}");
            store
                .edit_space(
                    &space,
                    &[SpaceEdit::AddUnit {
                        unit: unit.clone(),
                        building: "1".into(),
                        entrance: "1".into(),
                        room: format!("{i}"),
                        area_centi: 100 + i as i64,
                        grid: None,
                        household: None,
                    }],
                )
                .expect("unit");
            writeln!(out, "ACK unit {unit}").expect("stdout");
        } else if i % 4 == 1 {
            // An item and its index entry: one transaction, never one without the other.
            let item = format!("item{i}");
            store
                .write_item(&space, &item, "activity", "清扫", |tx| {
                    tx.put(ROOT, "kind", "crash-item")?;
                    Ok(())
                })
                .expect("item");
            writeln!(out, "ACK item {item}").expect("stdout");
        } else {
            let key = format!("k{i}");
            store
                .write(&space, &doc, |tx| {
                    tx.put(ROOT, key.as_str(), i as i64)?;
                    Ok(())
                })
                .expect("write");
            writeln!(out, "ACK key {key}").expect("stdout");
        }
        out.flush().expect("flush");
    }
}

#[test]
fn sigkill_never_loses_an_acknowledged_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("crash.db");
    let exe = std::env::current_exe().expect("exe");
    let mut acked_keys = BTreeSet::new();
    let mut acked_units = BTreeSet::new();
    let mut acked_items = BTreeSet::new();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for round in 0..20 {
        let mut child = Command::new(&exe)
            .args(["crash_writer", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
            .env(ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn writer");
        let stdout = child.stdout.take().expect("stdout");
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in BufReader::new(stdout).lines() {
                match line {
                    Ok(l) => lines.push(l),
                    Err(_) => break,
                }
            }
            lines
        });
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let wait = Duration::from_millis(40 + seed % 160);
        let started = Instant::now();
        while started.elapsed() < wait {
            std::thread::sleep(Duration::from_millis(5));
        }
        child.kill().expect("SIGKILL");
        let status = child.wait().expect("wait");
        assert!(!status.success(), "round {round}: the writer was killed, not finished");
        for line in reader.join().expect("reader") {
            match line.split_whitespace().collect::<Vec<_>>().as_slice() {
                ["ACK", "key", k] => {
                    acked_keys.insert(k.to_string());
                }
                ["ACK", "unit", u] => {
                    acked_units.insert(u.to_string());
                }
                ["ACK", "item", i] => {
                    acked_items.insert(i.to_string());
                }
                _ => {}
            }
        }
        // Reopen as the app would after the crash.
        let store = Store::open(&path).expect("reopen");
        assert_eq!(store.integrity_check().expect("check"), "ok", "round {round}");
        let Some(space) = store.spaces().expect("spaces").first().map(|s| s.space_id.clone()) else {
            continue;
        };
        let me = store.my_member(&space).expect("me");
        let doc = DocId::own_private(&me, "2026");
        let keys: BTreeSet<String> = store.read(&space, &doc, |d| d.keys(ROOT).collect()).expect("keys");
        for k in &acked_keys {
            assert!(keys.contains(k), "round {round}: acknowledged {k} was lost");
        }
        let view = store.view(&space).expect("view");
        let rows: BTreeSet<String> =
            store.units(&space, 0, u32::MAX).expect("units").into_iter().map(|u| u.unit_id).collect();
        let in_doc: BTreeSet<String> = view.units.keys().cloned().collect();
        assert_eq!(rows, in_doc, "round {round}: query table and document agree");
        for u in &acked_units {
            assert!(in_doc.contains(u), "round {round}: acknowledged unit {u} was lost");
        }
        let listed: BTreeSet<String> =
            store.items(&space, 0, u32::MAX).expect("items").into_iter().map(|i| i.item_id).collect();
        let item_docs: BTreeSet<String> = store
            .doc_ids(&space)
            .expect("docs")
            .into_iter()
            .filter_map(|d| match d {
                DocId::Item { item } if item.starts_with("item") => Some(item),
                _ => None,
            })
            .collect();
        assert_eq!(listed, item_docs, "round {round}: every item has its index entry and no entry lacks its item");
        for i in &acked_items {
            assert!(listed.contains(i), "round {round}: acknowledged item {i} was lost");
        }
    }
    assert!(
        acked_keys.len() + acked_units.len() > 20,
        "the writer made progress ({} acks)",
        acked_keys.len() + acked_units.len()
    );
}

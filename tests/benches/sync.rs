//! Sync benchmarks, with baselines measured in the same run
//! (`cargo bench -p linli-tests --bench sync`; `LINLI_BENCH_QUICK=1` shrinks it).
//!
//! 1. N devices (200) each with one new ballot sync through a real server on
//!    loopback, from 8 client threads: syncs per second, round trips, and
//!    bytes per device against the same ballot sent as plain JSON.
//! 2. A resident's incremental sync (one ballot up) after every other member
//!    of the space cast a private ballot since its last sync, at growing
//!    sizes of the space: milliseconds per sync, and the ratio of the largest
//!    size to the smallest (flat is 1).
//! 3. A coordinator's new phone makes its first sync of a large space
//!    (5,000 members, 3,000 units, 60,000 ballots, 40,000 posts): bytes against
//!    the gzip'd JSON export of the same data, seconds, and the peak memory of
//!    the server and of the phone, each in a process of its own.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{Automerge, ROOT};
use linli_core::doc::{DocId, SignedChange};
use linli_core::identity::DeviceKey;
use linli_core::space::{Role, SpaceEdit};
use linli_core::store::{Store, now_ms};
use linli_core::sync::{self, SyncOptions};
use linli_tests::{TestServer, http, opts, phone, sync_with};

fn quick() -> bool {
    std::env::var("LINLI_BENCH_QUICK").is_ok()
}

fn peak_kib(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn many_devices() {
    let n = if quick() { 20 } else { 200 };
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path());
    let t = http(&server.base);
    let coord = phone();
    let space = coord.create_space("bench", "coordinator").expect("space");
    let invites: Vec<_> = (0..n)
        .map(|i| coord.create_invite(&space, &format!("居民{i}"), &[Role::Resident], None).expect("invite"))
        .collect();
    sync_with(&coord, &space, "server", &t);
    let mut devices = Vec::new();
    for inv in &invites {
        let p = phone();
        let (_, member) = sync::join(&p, &inv.code, "居民", "server", &t, &opts()).expect("join");
        devices.push((p, member));
    }
    for (p, _) in &devices {
        sync_with(p, &space, "server", &t);
    }
    // One new ballot each.
    let vote = "v2026-03";
    for (p, m) in &devices {
        p.write(&space, &DocId::own_private(m, vote), |tx| {
            tx.put(ROOT, "choice", "yes")?;
            tx.put(ROOT, "at", now_ms())?;
            Ok(())
        })
        .expect("ballot");
    }
    let json: usize = devices
        .iter()
        .map(|(_, m)| {
            serde_json::json!({ "space": space, "vote": vote, "member": m, "choice": "yes", "at": now_ms() })
                .to_string()
                .len()
                + r#"{"ok":true}"#.len()
        })
        .sum();
    let start = Instant::now();
    let reports: Vec<sync::SyncReport> = std::thread::scope(|s| {
        let lanes: Vec<_> = (0..8)
            .map(|lane| {
                let (devices, space, base) = (&devices, &space, &server.base);
                s.spawn(move || {
                    let t = http(base);
                    (lane..devices.len())
                        .step_by(8)
                        .map(|i| {
                            sync::sync(&devices[i].0, space, "server", &t, &SyncOptions::default(), &mut |_| {})
                                .expect("sync")
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        lanes.into_iter().flat_map(|h| h.join().expect("lane")).collect()
    });
    let secs = start.elapsed().as_secs_f64();
    let bytes: usize = reports.iter().map(|r| r.bytes_up + r.bytes_down).sum();
    let max_rounds = reports.iter().map(|r| r.rounds).max().unwrap_or(0);
    eprintln!(
        "(up {} down {} received {} per device)",
        reports.iter().map(|r| r.bytes_up).sum::<usize>() / n,
        reports.iter().map(|r| r.bytes_down).sum::<usize>() / n,
        reports.iter().map(|r| r.received).sum::<usize>() / n
    );
    let attempts: u32 = reports.iter().map(|r| r.attempts).sum();
    println!(
        "{n} devices, one ballot each: {:.0} syncs/s over 8 client threads; round trips per sync: max {max_rounds} ({attempts} requests in all)",
        n as f64 / secs
    );
    println!(
        "  bytes per device: linli {} (up+down), plain JSON ballot {} ; ratio {:.2}x",
        bytes / n,
        json / n,
        bytes as f64 / json as f64
    );
}

/// A resident's sync of one ballot, after each of the `n` other members of
/// the space cast a private ballot since that resident's last sync: the
/// median of five, in milliseconds.
fn sync_after_others(n: usize) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path());
    let t = http(&server.base);
    let admin = phone();
    let space = admin.create_space("bench", "管理员").expect("space");
    let resident = phone();
    let keys: Vec<DeviceKey> = (0..n).map(|_| DeviceKey::generate().expect("key")).collect();
    let mut edits = vec![
        SpaceEdit::AddMember { member: "r".into(), name: "居民".into(), roles: vec![Role::Resident] },
        SpaceEdit::AddDevice { member: "r".into(), device: resident.device_id(), label: "phone".into() },
    ];
    for (m, k) in keys.iter().enumerate() {
        edits.push(SpaceEdit::AddMember {
            member: format!("m{m:05}"),
            name: format!("居民{m}"),
            roles: vec![Role::Resident],
        });
        edits.push(SpaceEdit::AddDevice { member: format!("m{m:05}"), device: k.id(), label: "phone".into() });
    }
    for chunk in edits.chunks(300) {
        admin.edit_space(&space, chunk).expect("edit");
    }
    sync_with(&admin, &space, "server", &t);
    sync_with(&resident, &space, "server", &t);
    let store = server.store(&space);
    let mut times = Vec::new();
    for round in 0..5 {
        let vote = format!("v{round}");
        for (m, k) in keys.iter().enumerate() {
            let doc = DocId::own_private(&format!("m{m:05}"), &vote);
            let mut d = Automerge::new().with_actor(k.actor());
            let mut tx = d.transaction();
            tx.put(ROOT, "choice", "满意").expect("put");
            tx.commit_with(CommitOptions::default().with_time(now_ms()));
            let c = d.get_last_local_change().expect("change");
            let signed = SignedChange {
                bytes: c.raw_bytes().to_vec(),
                signature: k.sign_change(&space, &doc, &c.hash()).to_vec(),
            };
            assert_eq!(store.apply(&space, &doc, vec![signed]).expect("apply").accepted.len(), 1);
        }
        resident
            .write(&space, &DocId::own_private("r", &vote), |tx| {
                tx.put(ROOT, "choice", "满意")?;
                Ok(())
            })
            .expect("ballot");
        let start = Instant::now();
        let r = sync_with(&resident, &space, "server", &t);
        times.push(start.elapsed().as_secs_f64() * 1e3);
        assert_eq!(r.received, 0, "no neighbour's ballot comes down");
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn sync_by_size() {
    let sizes: &[usize] = if quick() { &[50, 400] } else { &[50, 1_000, 5_000] };
    let ms: Vec<f64> = sizes.iter().map(|n| sync_after_others(*n)).collect();
    for (n, t) in sizes.iter().zip(&ms) {
        println!("incremental sync of one ballot after {n} other members' ballots: {t:.2} ms (median of 5)");
    }
    if let (Some(first), Some(last)) = (ms.first(), ms.last()) {
        println!(
            "  sync cost at {} members vs {}: ratio {:.2}x (flat is 1)",
            sizes[sizes.len() - 1],
            sizes[0],
            last / first
        );
    }
}

struct Large {
    space: String,
    json_gz: usize,
    changes: usize,
}

/// Build the large space straight into the server's store (its register by
/// an admin store, members' documents signed by their own device keys).
fn build_large(server_dir: &std::path::Path, phone_device: &linli_core::identity::DeviceId) -> Large {
    let (members, units, ballots, posts) = if quick() { (300, 200, 6, 4) } else { (5_000, 3_000, 12, 8) };
    let t = Instant::now();
    let admin = phone();
    let space = admin.create_space("大型社区", "管理员").expect("space");
    let me = admin.my_member(&space).expect("me");
    let mut export = serde_json::json!({ "members": [], "units": [], "ballots": [], "posts": [] });
    let mut edits = Vec::new();
    for u in 0..units {
        edits.push(SpaceEdit::AddUnit {
            unit: format!("u{u:05}"),
            building: format!("{}栋", u / 120 + 1),
            entrance: "1单元".into(),
            room: format!("{}", 101 + u % 30),
            area_centi: 6_000 + (u as i64 * 37) % 9_000,
            grid: None,
            household: None,
        });
        export["units"].as_array_mut().expect("a").push(serde_json::json!({ "id": format!("u{u:05}"), "building": format!("{}栋", u / 120 + 1), "entrance": "1单元", "room": format!("{}", 101 + u % 30), "area_centi": 6_000 + (u as i64 * 37) % 9_000 }));
    }
    let keys: Vec<DeviceKey> = (0..members).map(|_| DeviceKey::generate().expect("key")).collect();
    for (m, k) in keys.iter().enumerate() {
        let id = format!("m{m:05}");
        edits.push(SpaceEdit::AddMember {
            member: id.clone(),
            name: format!("居民{m:05}"),
            roles: vec![Role::Resident],
        });
        edits.push(SpaceEdit::AddDevice { member: id.clone(), device: k.id(), label: "phone".into() });
        export["members"].as_array_mut().expect("a").push(serde_json::json!({ "id": id, "name": format!("居民{m:05}"), "roles": ["resident"], "device": k.id().to_hex() }));
    }
    edits.push(SpaceEdit::AddDevice { member: me, device: *phone_device, label: "new phone".into() });
    for chunk in edits.chunks(300) {
        admin.edit_space(&space, chunk).expect("edit");
    }
    let server = Store::open(server_dir.join(linli_server::STORE_FILE)).expect("server store");
    let r = server
        .apply(&space, &DocId::Space, admin.changes_since(&space, &DocId::Space, &[]).expect("space"))
        .expect("apply");
    assert!(r.refused.is_empty());
    let mut changes = r.accepted.len();
    // Each member's ballots and posts, one change each, signed by the member's key.
    for (m, k) in keys.iter().enumerate() {
        let id = format!("m{m:05}");
        for (doc, n, kind) in
            [(DocId::own_private(&id, "2026"), ballots, "ballots"), (DocId::own_public(&id, "2026"), posts, "posts")]
        {
            let mut d = Automerge::new().with_actor(k.actor());
            let mut batch = Vec::new();
            for i in 0..n {
                let mut tx = d.transaction();
                let key = format!("{kind}{i}");
                let value = if kind == "ballots" {
                    ["很满意", "满意", "基本满意", "不满意"][i % 4].to_string()
                } else {
                    format!("第{i}条：楼道灯已经修好了，谢谢大家")
                };
                tx.put(ROOT, key.as_str(), value.as_str()).expect("put");
                tx.commit_with(CommitOptions::default().with_time(now_ms()));
                let c = d.get_last_local_change().expect("change");
                batch.push(SignedChange {
                    bytes: c.raw_bytes().to_vec(),
                    signature: k.sign_change(&space, &doc, &c.hash()).to_vec(),
                });
                export[kind]
                    .as_array_mut()
                    .expect("a")
                    .push(serde_json::json!({ "member": id, "key": key, "value": value }));
            }
            let r = server.apply(&space, &doc, batch).expect("apply");
            assert!(r.refused.is_empty(), "{:?}", r.refused);
            changes += r.accepted.len();
        }
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(export.to_string().as_bytes()).expect("gzip");
    let json_gz = gz.finish().expect("gzip").len();
    eprintln!("(built {members} members, {units} units, {changes} changes in {:.1} s)", t.elapsed().as_secs_f64());
    Large { space, json_gz, changes }
}

fn first_sync() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server_dir = dir.path().join("server");
    std::fs::create_dir_all(&server_dir).expect("dir");
    let phone_dir = dir.path().join("phone");
    std::fs::create_dir_all(&phone_dir).expect("dir");
    let device = Store::open(phone_dir.join("linli.db")).expect("phone").device_id();
    let large = build_large(&server_dir, &device);
    let exe = std::env::current_exe().expect("exe");
    let mut server = Command::new(&exe)
        .args(["--serve", &server_dir.to_string_lossy()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("server");
    let mut line = String::new();
    BufReader::new(server.stdout.take().expect("stdout")).read_line(&mut line).expect("addr");
    let base = line.trim().to_string();
    let out = Command::new(&exe)
        .args(["--first-sync", &base, &large.space, &phone_dir.to_string_lossy()])
        .output()
        .expect("phone");
    let server_peak = peak_kib(&server.id().to_string());
    let _ = server.kill();
    let _ = server.wait();
    let s = String::from_utf8_lossy(&out.stdout);
    let v: Vec<f64> = s.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    let [secs, bytes, rounds, received, phone_peak] = v[..] else {
        panic!("phone printed {s:?} {}", String::from_utf8_lossy(&out.stderr))
    };
    assert_eq!(received as usize, large.changes, "the new phone received every change");
    println!(
        "first sync of the large space ({} changes): {:.2} s in {rounds} rounds; {:.1} MiB on the wire vs gzip'd JSON export {:.1} MiB, ratio {:.2}x",
        large.changes,
        secs,
        bytes / 1048576.0,
        large.json_gz as f64 / 1048576.0,
        bytes / large.json_gz as f64
    );
    println!("  peak memory: server {:.0} MiB, phone {:.0} MiB", server_peak as f64 / 1024.0, phone_peak / 1024.0);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("--serve") => {
            let config = linli_server::Config {
                creators: linli_core::sync::Creators::Anyone,
                ..linli_server::Config::new(([127, 0, 0, 1], 0).into(), args[2].clone())
            };
            let spaces = Arc::new(linli_server::open_spaces(&config).expect("store"));
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("rt");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind(config.listen).await.expect("bind");
                println!("http://{}", listener.local_addr().expect("addr"));
                axum::serve(
                    listener,
                    linli_server::router(linli_server::AppState::new(spaces, config.creators.clone())),
                )
                .await
                .expect("serve");
            });
            return;
        }
        Some("--first-sync") => {
            let store = Store::open(std::path::Path::new(&args[4]).join("linli.db")).expect("phone");
            let t = Instant::now();
            let r = sync::sync(&store, &args[3], "server", &http(&args[2]), &SyncOptions::default(), &mut |_| {})
                .expect("first sync");
            println!(
                "{} {} {} {} {}",
                t.elapsed().as_secs_f64(),
                r.bytes_up + r.bytes_down,
                r.rounds,
                r.received,
                peak_kib("self")
            );
            return;
        }
        _ => {}
    }
    let only = |name: &str| {
        !args.iter().any(|a| a.starts_with("--only-")) || args.iter().any(|a| a == &format!("--only-{name}"))
    };
    if only("devices") {
        many_devices();
    }
    if only("size") {
        sync_by_size();
    }
    if only("first") {
        first_sync();
    }
}

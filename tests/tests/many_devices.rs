//! Fifty devices do random work for several rounds and sync — through the
//! server and through a coordinator's phone acting as a meeting hub — over a
//! transport that loses requests, loses answers after the peer acted on them,
//! garbles answers, duplicates and replays requests late; the server is
//! restarted in the middle of a round. At the end every device holds exactly
//! what the server holds of every document it may read, and no acknowledged
//! write is missing anywhere.

use std::collections::BTreeMap;
use std::sync::Mutex;

use automerge::transaction::Transactable;
use automerge::{ROOT, ReadDoc};
use linli_core::doc::DocId;
use linli_core::space::{Role, SpaceEdit};
use linli_core::sync::{self, hub::Hub};
use linli_tests::{Faulty, Movable, TestServer, http, opts, phone, sync_with};

const DEVICES: usize = 50;
const ROUNDS: usize = 5;

struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn fifty_devices_with_faults_and_a_restart_end_identical() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = TestServer::start(dir.path());
    let to_server = Movable(Mutex::new(http(&server.base)));
    let coord = phone();
    let space = coord.create_space("faults", "coordinator").expect("create");
    sync_with(&coord, &space, "server", &to_server);

    // Everyone joins over HTTP; two residents become coordinators too.
    let mut phones = vec![(coord, String::new())];
    phones[0].1 = phones[0].0.my_member(&space).expect("me");
    for i in 1..DEVICES {
        let inv = phones[0].0.create_invite(&space, &format!("居民{i}"), &[Role::Resident], None).expect("invite");
        sync_with(&phones[0].0, &space, "server", &to_server);
        let p = phone();
        let (_, member) = sync::join(&p, &inv.code, &format!("居民{i}"), "server", &to_server, &opts()).expect("join");
        phones.push((p, member));
    }
    for i in [1, 2] {
        let m = phones[i].1.clone();
        phones[0]
            .0
            .edit_space(&space, &[SpaceEdit::SetRole { member: m, role: Role::Coordinator, granted: true }])
            .expect("role");
    }
    sync_with(&phones[0].0, &space, "server", &to_server);
    for (p, _) in &phones[1..3] {
        sync_with(p, &space, "server", &to_server);
    }

    let hub = Hub::start(phones[0].0.store.clone(), "127.0.0.1:0").expect("hub");
    let to_hub = http(&hub.link());
    // What each device wrote, to prove nothing is lost: device -> (doc, key).
    let written: Mutex<BTreeMap<usize, Vec<(DocId, String)>>> = Mutex::new(BTreeMap::new());
    let faults = Mutex::new([0u32; 6]);
    let mut rng = Rng(0x5eed_1234_abcd_9876);

    for round in 0..ROUNDS {
        // Random work on every device.
        for (i, (p, member)) in phones.iter().enumerate() {
            let n = rng.below(4);
            for k in 0..n {
                let key = format!("r{round}d{i}k{k}");
                let doc = match rng.below(3) {
                    0 => DocId::own_public(member, "2026"),
                    1 => DocId::own_private(member, "2026"),
                    _ => DocId::own_private(member, &format!("p{}", round % 2)),
                };
                p.write(&space, &doc, |tx| {
                    tx.put(ROOT, key.as_str(), round as i64)?;
                    Ok(())
                })
                .expect("write");
                written.lock().expect("written").entry(i).or_default().push((doc, key));
            }
            if i < 3 && rng.below(2) == 0 {
                // Coordinators edit the register and the item index, concurrently.
                let unit = format!("u{round}x{i}");
                p.edit_space(
                    &space,
                    &[SpaceEdit::AddUnit {
                        unit,
                        building: format!("{i}"),
                        entrance: "1".into(),
                        room: format!("{round}"),
                        area_centi: 7_000 + i as i64,
                        grid: None,
                        household: None,
                    }],
                )
                .expect("unit");
                p.index_item(&space, &format!("item{round}x{i}"), "vote", "表决").expect("index");
            }
        }
        // Everyone syncs, in four threads, through faults; some via the hub.
        let choices: Vec<bool> = (0..DEVICES).map(|i| i != 0 && rng.below(3) == 0).collect();
        std::thread::scope(|s| {
            for lane in 0..4 {
                let phones = &phones;
                let (choices, to_server, to_hub, space, faults) = (&choices, &to_server, &to_hub, &space, &faults);
                s.spawn(move || {
                    // One faulty link per lane to each peer, shared by the lane's devices, so a
                    // request held back from one device arrives during another's sync.
                    let seed = (round * 1000 + lane + 1) as u64 * 0x9e37_79b9;
                    let via_server = Faulty::new(to_server, seed);
                    let via_hub = Faulty::new(to_hub, seed ^ 0xabcd);
                    for i in (lane..DEVICES).step_by(4) {
                        let (peer, faulty) = if choices[i] { ("hub", &via_hub) } else { ("server", &via_server) };
                        let r = sync::sync(&phones[i].0, space, peer, faulty, &opts(), &mut |_| {});
                        r.unwrap_or_else(|e| panic!("device {i} round {round} via {peer}: {e}"));
                    }
                    let mut total = faults.lock().expect("faults");
                    for f in [&via_server, &via_hub] {
                        let f = f.faults.lock().expect("faults");
                        for k in 0..6 {
                            total[k] += f[k];
                        }
                    }
                });
            }
            if round == 2 {
                // Restart the server while the lanes are syncing.
                std::thread::sleep(std::time::Duration::from_millis(30));
                server.restart();
                *to_server.0.lock().expect("transport") = http(&server.base);
            }
        });
        // The hub's phone carries what it gathered to the server.
        sync_with(&phones[0].0, &space, "server", &to_server);
    }
    drop(hub);

    // Settle: everyone syncs with the server until nothing moves.
    for _ in 0..2 {
        for (p, _) in &phones {
            sync_with(p, &space, "server", &to_server);
        }
    }
    let view = server.store(&space).view(&space).expect("view");
    assert_eq!(server.store(&space).integrity_check().expect("check"), "ok");
    for (i, (p, member)) in phones.iter().enumerate() {
        let mine = p.view(&space).expect("view");
        assert!(
            mine == view,
            "device {i}: the register differs (members {} vs {}, units {} vs {}, created {} vs {})",
            mine.members.len(),
            view.members.len(),
            mine.units.len(),
            view.units.len(),
            mine.created_at,
            view.created_at
        );
        for doc in server.store(&space).doc_ids(&space).expect("docs") {
            let want = server.store(&space).heads(&space, &doc).expect("heads");
            let have = p.heads(&space, &doc).expect("heads");
            if view.may_read(member, &doc) {
                assert_eq!(have, want, "device {i}: {doc}");
            } else {
                assert!(have.is_empty(), "device {i} holds {doc} it may not read");
            }
        }
    }
    // Nothing acknowledged was lost.
    let written = written.into_inner().expect("written");
    let mut total = 0;
    for writes in written.values() {
        for (doc, key) in writes {
            let present = server
                .store(&space)
                .read(&space, doc, |d| d.get(ROOT, key.as_str()).ok().flatten().is_some())
                .expect("read");
            assert!(present, "{doc} {key} was lost");
            total += 1;
        }
    }
    assert!(total > 100, "the devices did real work ({total} writes)");
    let faults = faults.into_inner().expect("faults");
    for (k, name) in
        ["lost request", "lost answer", "garbled answer", "duplicate", "held", "late replay"].iter().enumerate()
    {
        assert!(faults[k] > 0, "the {name} fault never happened: {faults:?}");
    }
    assert!(!view.units.is_empty(), "the coordinators' register edits arrived");
    assert_eq!(view.members.len(), DEVICES);
}

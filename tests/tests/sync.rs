//! Sync through a real linli-server on loopback.

use std::collections::HashSet;

use automerge::ROOT;
use automerge::transaction::Transactable;
use linli_core::doc::DocId;
use linli_core::identity::DeviceKey;
use linli_core::space::{Role, SpaceEdit};
use linli_core::store::{Store, now_ms};
use linli_core::sync::wire::{DocBatch, Request};
use linli_core::sync::{self, SYNC_PATH, auth};
use linli_tests::{TestServer, http, opts, phone, sync_with};

/// Every document `who` may read, with its heads, as held by `store`.
fn readable_heads(
    store: &Store,
    space: &str,
    who: &str,
    view: &linli_core::space::SpaceView,
) -> Vec<(String, Vec<automerge::ChangeHash>)> {
    let mut out: Vec<_> = store
        .doc_ids(space)
        .expect("docs")
        .into_iter()
        .filter(|d| view.may_read(who, d))
        .map(|d| (d.to_string(), store.heads(space, &d).expect("heads")))
        .collect();
    out.sort();
    out
}

#[test]
fn a_space_syncs_through_the_server_with_read_scopes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path());
    let t = http(&server.base);
    let coord = phone();
    let space = coord.create_space("幸福里", "王老师").expect("create");
    let first = sync_with(&coord, &space, "server", &t);
    assert_eq!(first.rounds, 1);
    assert_eq!(server.store(&space).view(&space).expect("server view").name, "幸福里");

    // Two residents join over HTTP with invite codes.
    let mut residents = Vec::new();
    for name in ["李阿姨", "陈大爷"] {
        let inv = coord.create_invite(&space, name, &[Role::Resident], None).expect("invite");
        sync_with(&coord, &space, "server", &t);
        let p = phone();
        let (s, member) = sync::join(&p, &inv.code, name, "server", &t, &opts()).expect("join");
        assert_eq!((s.as_str(), member.as_str()), (space.as_str(), inv.member_id.as_str()));
        residents.push((p, member));
    }
    // Each writes a public post and a private answer; the coordinator indexes an item.
    for (p, m) in &residents {
        p.write(&space, &DocId::own_public(m, "2026"), |tx| {
            tx.put(ROOT, "post", "楼道灯坏了")?;
            Ok(())
        })
        .expect("public");
        p.write(&space, &DocId::own_private(m, "2026"), |tx| {
            tx.put(ROOT, "answer", "needs a ramp")?;
            Ok(())
        })
        .expect("private");
        sync_with(p, &space, "server", &t);
    }
    coord.index_item(&space, "survey1", "survey", "需求调查").expect("index");
    for _ in 0..2 {
        sync_with(&coord, &space, "server", &t);
        for (p, _) in &residents {
            sync_with(p, &space, "server", &t);
        }
    }
    let view = server.store(&space).view(&space).expect("view");
    let coord_member = coord.my_member(&space).expect("me");
    assert_eq!(
        readable_heads(&coord, &space, &coord_member, &view),
        readable_heads(&server.store(&space), &space, &coord_member, &view)
    );
    let (a, a_m) = &residents[0];
    let (_, b_m) = &residents[1];
    assert_eq!(readable_heads(a, &space, a_m, &view), readable_heads(&server.store(&space), &space, a_m, &view));
    assert_eq!(a.view(&space).expect("view"), view);
    assert_eq!(a.items(&space, 0, 10).expect("items").len(), 1);
    // Read scopes: a resident never receives a neighbour's private document; the coordinator does.
    let b_private = DocId::own_private(b_m, "2026");
    assert!(
        a.heads(&space, &b_private).expect("heads").is_empty(),
        "a neighbour's private answers never reach this phone"
    );
    assert!(!coord.heads(&space, &b_private).expect("heads").is_empty(), "coordinators receive named answers");
    assert!(!a.heads(&space, &DocId::own_public(b_m, "2026")).expect("heads").is_empty());
}

#[test]
fn a_current_device_syncs_in_one_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path());
    let t = http(&server.base);
    let coord = phone();
    let space = coord.create_space("s", "c").expect("create");
    sync_with(&coord, &space, "server", &t);
    let me = coord.my_member(&space).expect("me");
    for i in 0..3 {
        coord
            .write(&space, &DocId::own_private(&me, "2026"), |tx| {
                tx.put(ROOT, format!("k{i}"), i)?;
                Ok(())
            })
            .expect("write");
        let r = sync_with(&coord, &space, "server", &t);
        assert_eq!((r.rounds, r.attempts, r.sent), (1, 1, 1), "one round trip, one change");
    }
    // Nothing new: still one round trip, nothing sent.
    let r = sync_with(&coord, &space, "server", &t);
    assert_eq!((r.rounds, r.sent, r.received), (1, 0, 0));

    // Residents who joined receive each other's admissions, and never send
    // back what they received from the server.
    let invites: Vec<_> = (0..3)
        .map(|i| coord.create_invite(&space, &format!("r{i}"), &[Role::Resident], None).expect("invite"))
        .collect();
    sync_with(&coord, &space, "server", &t);
    let mut phones = Vec::new();
    for inv in &invites {
        let p = phone();
        sync::join(&p, &inv.code, "r", "server", &t, &opts()).expect("join");
        phones.push(p);
    }
    for p in &phones {
        sync_with(p, &space, "server", &t);
        let r = sync_with(p, &space, "server", &t);
        assert_eq!((r.rounds, r.sent, r.received), (1, 0, 0), "a current phone sends nothing back");
    }
}

#[test]
fn a_restarted_or_replaced_server_gets_everything_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = TestServer::start(dir.path());
    let coord = phone();
    let space = coord.create_space("s", "c").expect("create");
    sync_with(&coord, &space, "server", &http(&server.base));
    server.restart();
    coord.edit_space(&space, &[SpaceEdit::AddGrid { grid: "g1".into(), name: "一网格".into() }]).expect("grid");
    sync_with(&coord, &space, "server", &http(&server.base));
    assert!(server.store(&space).view(&space).expect("view").grids.contains_key("g1"), "the restart lost nothing");
    // A brand-new server (new epoch, empty): the phone notices and resends everything.
    let other = tempfile::tempdir().expect("tempdir");
    let fresh = TestServer::start(other.path());
    sync_with(&coord, &space, "server", &http(&fresh.base));
    assert_eq!(fresh.store(&space).view(&space).expect("view"), coord.view(&space).expect("view"));
}

/// A signed request with any body, as an attacker or a broken client would
/// send it; the answer as text.
fn raw(base: &str, key: &DeviceKey, body: &[u8], header: Option<String>) -> (u16, String) {
    let (status, bytes) = raw_with(base, key, body, header);
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// The same, the answer as bytes; signed by `key` unless `header` is given.
fn raw_with(base: &str, key: &DeviceKey, body: &[u8], header: Option<String>) -> (u16, Vec<u8>) {
    let peer = linli_core::sync::Transport::peer(&http(base)).expect("the server's identity");
    let header =
        header.unwrap_or_else(|| auth::header_with_key(key, &peer, SYNC_PATH, now_ms(), body).expect("header"));
    let resp = reqwest::blocking::Client::new()
        .post(format!("{base}{SYNC_PATH}"))
        .header(auth::HEADER, header)
        .body(body.to_vec())
        .send()
        .expect("send");
    let status = resp.status().as_u16();
    (status, resp.bytes().map(|b| b.to_vec()).unwrap_or_default())
}

#[test]
fn bad_requests_get_clear_4xx_and_change_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path());
    let t = http(&server.base);
    let coord = phone();
    let space = coord.create_space("s", "c").expect("create");
    sync_with(&coord, &space, "server", &t);
    let other = phone();
    let other_space = other.create_space("elsewhere", "x").expect("create");
    sync_with(&other, &other_space, "server", &t);
    let before = (
        server.store(&space).max_arrived(&space).expect("max"),
        server.store(&space).refusals(&space).expect("audit").len(),
    );
    let space_bytes: [u8; 16] = hex::decode(&space).expect("hex").try_into().expect("16");
    let empty = Request { space: space_bytes, epoch: [0; 16], cursor: 0, batches: vec![] }.encode();

    // An unknown device.
    let stranger = DeviceKey::generate().expect("key");
    let (status, body) = raw(&server.base, &stranger, &empty, None);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("\"error\":\"forbidden\""), "{body}");

    // A device of another space.
    let e = sync::sync(&other, &space, "server", &t, &opts(), &mut |_| {}).expect_err("wrong space");
    assert!(matches!(e, sync::SyncError::Rejected { status: 403, .. }), "{e:?}");

    // A stranger's request is refused before anything is written, however
    // often it is sent (its nonce is not even recorded).
    let header = auth::header_with_key(&stranger, &server.device_id(), SYNC_PATH, now_ms(), &empty).expect("header");
    assert_eq!(raw(&server.base, &stranger, &empty, Some(header.clone())).0, 403);
    assert_eq!(raw(&server.base, &stranger, &empty, Some(header)).0, 403);

    // A request with no or a broken signature, or a stale clock.
    let (status, _) = raw(&server.base, &stranger, &empty, Some("v1 garbage".into()));
    assert_eq!(status, 401);
    let stale =
        auth::header_with_key(&stranger, &server.device_id(), SYNC_PATH, now_ms() - 3_600_000, &empty).expect("header");
    assert_eq!(raw(&server.base, &stranger, &empty, Some(stale)).0, 401);

    // Garbage that is correctly signed.
    let (status, body) = raw(&server.base, &stranger, b"\x00\x01garbage", None);
    assert_eq!(status, 400, "{body}");

    // An oversized body.
    let huge = vec![0u8; sync::MAX_BODY + 1];
    let resp =
        reqwest::blocking::Client::new().post(format!("{}{SYNC_PATH}", server.base)).body(huge).send().expect("send");
    assert_eq!(resp.status().as_u16(), 413);

    let after = (
        server.store(&space).max_arrived(&space).expect("max"),
        server.store(&space).refusals(&space).expect("audit").len(),
    );
    assert_eq!(after, before, "refused requests merged and recorded nothing");

    // A forged change inside a correctly signed request from a real member's
    // device: the request is served, the change refused and reported.
    let me = coord.my_member(&space).expect("me");
    let tablet = DeviceKey::generate().expect("key");
    coord
        .edit_space(&space, &[SpaceEdit::AddDevice { member: me.clone(), device: tablet.id(), label: "tablet".into() }])
        .expect("device");
    sync_with(&coord, &space, "server", &t);
    // A member's request replayed: the same header and body twice.
    let header = auth::header_with_key(&tablet, &server.device_id(), SYNC_PATH, now_ms(), &empty).expect("header");
    assert_eq!(raw(&server.base, &tablet, &empty, Some(header.clone())).0, 200);
    let (status, body) = raw(&server.base, &tablet, &empty, Some(header));
    assert_eq!(status, 409, "{body}");
    // A member's request made for another peer (a meeting hub) is refused here.
    let hub = DeviceKey::generate().expect("key").id();
    let for_hub = auth::header_with_key(&tablet, &hub, SYNC_PATH, now_ms(), &empty).expect("header");
    let (status, body) = raw(&server.base, &tablet, &empty, Some(for_hub));
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("another peer"), "{body}");
    let before = (
        server.store(&space).max_arrived(&space).expect("max"),
        server.store(&space).refusals(&space).expect("audit").len(),
    );
    let doc = DocId::own_private(&me, "2026");
    let mut d = automerge::Automerge::new().with_actor(coord.device_id().actor());
    let mut tx = d.transaction();
    tx.put(ROOT, "ballot", "forged").expect("put");
    tx.commit();
    let change = d.get_last_local_change().expect("change");
    let forged = linli_core::doc::SignedChange {
        bytes: change.raw_bytes().to_vec(),
        signature: stranger.sign_change(&space, &doc, &change.hash()).to_vec(),
    };
    let req = Request {
        space: space_bytes,
        epoch: [0; 16],
        cursor: 0,
        batches: vec![DocBatch::changes(doc.clone(), vec![forged])],
    };
    let (status, _) = raw(&server.base, &tablet, &req.encode(), None);
    assert_eq!(status, 200, "the member's request is served");
    assert_eq!(server.store(&space).max_arrived(&space).expect("max"), before.0, "nothing merged");
    assert!(server.store(&space).heads(&space, &doc).expect("heads").is_empty());
    let audit = server.store(&space).refusals(&space).expect("audit");
    assert_eq!(audit.len(), before.1 + 1, "the refusal is on record");
    assert!(audit.last().expect("row").reason.contains("signature"), "{audit:?}");
    // The same request signed by someone else's key instead of the device it names is not served.
    let body = req.encode();
    let h = auth::header(&tablet.id(), &server.device_id(), SYNC_PATH, now_ms(), &body, |m| {
        Ok(stranger.sign_tagged(auth::TAG, m))
    })
    .expect("header");
    assert_eq!(raw(&server.base, &stranger, &body, Some(h)).0, 401);

    // The metrics saw it all.
    let metrics = reqwest::blocking::get(format!("{}/metrics", server.base)).expect("metrics").text().expect("text");
    assert!(metrics.contains("linli_requests_total{outcome=\"client_error\"}"), "{metrics}");
    let ids: HashSet<_> =
        [&space, &other_space].into_iter().filter(|s| server.spaces.get(s).expect("get").is_some()).cloned().collect();
    assert!(ids.contains(&space) && ids.contains(&other_space));
}

/// A refusal tells the sender nothing about documents it may not read: a
/// resident's change into a neighbour's private document (their ballots and
/// named answers) gets the same answer whether that document holds the
/// change it names as its dep or not, and no answer names the neighbours.
#[test]
fn refusals_reveal_nothing_of_another_members_private_documents() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path());
    let t = http(&server.base);
    let coord = phone();
    let space = coord.create_space("幸福里", "王老师").expect("create");
    let (b, c, tablet) = (phone(), phone(), DeviceKey::generate().expect("key"));
    let mut edits = Vec::new();
    for (m, device) in [("a", tablet.id()), ("b", b.device_id()), ("c", c.device_id())] {
        edits.push(SpaceEdit::AddMember { member: m.into(), name: m.into(), roles: vec![Role::Resident] });
        edits.push(SpaceEdit::AddDevice { member: m.into(), device, label: "phone".into() });
    }
    coord.edit_space(&space, &edits).expect("members");
    sync_with(&coord, &space, "server", &t);
    // B's private document holds a change on the server; C's change never left C's phone.
    let mut heads = Vec::new();
    for (p, m) in [(&b, "b"), (&c, "c")] {
        sync_with(p, &space, "server", &t);
        let doc = DocId::own_private(m, "2026");
        p.write(&space, &doc, |tx| {
            tx.put(ROOT, "ballot", "yes")?;
            Ok(())
        })
        .expect("write");
        heads.push(p.heads(&space, &doc).expect("heads"));
    }
    sync_with(&b, &space, "server", &t);
    // A learned both hashes (a receipt, a shoulder) and builds on each.
    let answer_for = |m: &str, deps: &[automerge::ChangeHash]| {
        let doc = DocId::own_private(m, "2026");
        let mut d = automerge::Automerge::new().with_actor(tablet.actor());
        let mut tx = d.transaction();
        tx.put(ROOT, "ballot", "no").expect("put");
        tx.commit();
        let mut e = d.get_last_local_change().expect("change").decode();
        e.hash = None;
        e.deps = deps.to_vec();
        e.start_op = std::num::NonZeroU64::new(2).expect("2");
        let change = automerge::Change::from(e);
        let signed = linli_core::doc::SignedChange {
            bytes: change.raw_bytes().to_vec(),
            signature: tablet.sign_change(&space, &doc, &change.hash()).to_vec(),
        };
        let space_bytes = hex::decode(&space).expect("hex").try_into().expect("16 bytes");
        let req = Request {
            space: space_bytes,
            epoch: [0; 16],
            cursor: 0,
            batches: vec![DocBatch::changes(doc, vec![signed])],
        };
        let (status, body) = raw_with(&server.base, &tablet, &req.encode(), None);
        assert_eq!(status, 200);
        let r = linli_core::sync::wire::Response::decode(&body).expect("answer").results;
        assert_eq!(r.len(), 1);
        (
            r[0].accepted,
            r[0].missing,
            r[0].refused.iter().map(|s| s.replace(&format!("own/{m}/"), "own/_/")).collect::<Vec<_>>(),
        )
    };
    let to_b = answer_for("b", &heads[0]);
    let to_c = answer_for("c", &heads[1]);
    println!("into B's document: {to_b:?}; into C's: {to_c:?}");
    assert_eq!(to_b, to_c, "the answer shows whether a neighbour's private document holds a change");
    assert_eq!(to_b.0, 0);
    assert!(!to_b.1, "no 'missing history' for a document the sender may not read");
    assert!(server.store(&space).heads(&space, &DocId::own_private("c", "2026")).expect("heads").is_empty());
}

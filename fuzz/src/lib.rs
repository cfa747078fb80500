//! The harness shared by Linli's fuzz targets (see `README.md`).
//!
//! A fixed **world**: the space of `core/tests/fixtures/fuzz-world.bin` (its
//! register, a member's private document with some content, and an empty
//! public one), made once by `examples/gen_corpus.rs`. One of the admin's
//! devices has a key known to the fuzzer ([`KEY_SEED`]), so whatever the
//! fuzzer makes can be signed correctly and gets past the signature check to
//! the consistency checks and automerge.
//!
//! A [`World`] is set up once per process: a store that received the
//! fixture, like a server would, is kept as a template file; the store under
//! test is a copy of it. Whenever an input gets a change accepted, the store
//! is checked and replaced by a fresh copy, so every input meets the same
//! state and a crash replays from its input alone.

use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use automerge::transaction::{CommitOptions, Transaction};
use automerge::{ActorId, Automerge, ChangeHash, ExpandedChange};
use linli_core::doc::{DocId, SignedChange};
use linli_core::identity::DeviceKey;
use linli_core::store::{ApplyReport, Store};
use linli_core::sync::wire::{DocBatch, Request, SignedHash};

/// The seed of the fuzzer's device key, a device of the world's admin.
pub const KEY_SEED: [u8; 32] = *b"linli fuzz device key, not real!";
/// The epoch of the store under test, so inputs can hold a cursor it knows.
pub const EPOCH: [u8; 16] = *b"linli-fuzz-epoch";
/// Where the world is kept (shared with `core/tests/decoders.rs`).
pub const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../core/tests/fixtures/fuzz-world.bin");
/// Check the store's integrity every this many inputs.
pub const CHECK_EVERY: u64 = 512;

/// The fuzzer's device key.
pub fn key() -> &'static DeviceKey {
    static KEY: OnceLock<DeviceKey> = OnceLock::new();
    KEY.get_or_init(|| DeviceKey::from_seed(KEY_SEED))
}

/// Sign a change of `doc` in `space` as the fuzzer's device (signatures bind
/// the space and the document). The one place that calls the signing API.
pub fn sign(space: &str, doc: &DocId, hash: &ChangeHash) -> Vec<u8> {
    key().sign_change(space, doc, hash).to_vec()
}

// ---------------------------------------------------------------------------
// The fixture

/// The world's documents, as a sync request would carry them.
#[derive(Debug, Clone)]
pub struct Fixture {
    pub space: String,
    pub space_bytes: [u8; 16],
    /// When the world was made; requests are dated then.
    pub now: i64,
    /// Every document with its changes, the register first.
    pub docs: Vec<(DocId, Vec<SignedChange>)>,
}

impl Fixture {
    /// Stored as a wire request whose cursor holds `now`.
    pub fn encode(&self) -> Vec<u8> {
        let batches = self.docs.iter().map(|(d, c)| DocBatch::changes(d.clone(), c.clone())).collect();
        Request { space: self.space_bytes, epoch: [0; 16], cursor: self.now as u64, batches }.encode()
    }

    pub fn decode(bytes: &[u8]) -> Fixture {
        let req = Request::decode(bytes).expect("the fixture is a wire request");
        Fixture {
            space: hex::encode(req.space),
            space_bytes: req.space,
            now: req.cursor as i64,
            docs: req.batches.into_iter().map(|b| (b.doc, b.changes)).collect(),
        }
    }

    pub fn load() -> Fixture {
        Fixture::decode(&std::fs::read(FIXTURE).expect("the fixture (run the gen_corpus example)"))
    }

    /// A document of the world chosen by a byte of input.
    pub fn doc(&self, sel: u8) -> usize {
        usize::from(sel) % self.docs.len()
    }

    /// An honest change by the fuzzer's device on top of everything the
    /// world holds of document `i`, made by `f`, dated `now`.
    pub fn next_change(&self, i: usize, f: impl FnOnce(&mut Transaction<'_>)) -> SignedChange {
        let (doc_id, changes) = &self.docs[i];
        let mut doc = Automerge::new();
        for c in changes {
            doc.load_incremental(&c.bytes).expect("fixture change");
        }
        doc.set_actor(key().actor());
        let mut tx = doc.transaction();
        f(&mut tx);
        tx.commit_with(CommitOptions::default().with_time(self.now));
        let change = doc.get_last_local_change().expect("a change");
        SignedChange { bytes: change.raw_bytes().to_vec(), signature: sign(&self.space, doc_id, &change.hash()) }
    }

    /// Re-encode a change after `f` rewrote any of its fields, signed by the fuzzer's device.
    pub fn forge(&self, i: usize, change: &SignedChange, f: impl FnOnce(&mut ExpandedChange)) -> SignedChange {
        let mut e = automerge::Change::try_from(change.bytes.as_slice()).expect("a change").decode();
        e.hash = None;
        f(&mut e);
        let forged = automerge::Change::from(e);
        SignedChange {
            bytes: forged.raw_bytes().to_vec(),
            signature: sign(&self.space, &self.docs[i].0, &forged.hash()),
        }
    }

    /// Every actor of the world, the fuzzer's first.
    pub fn actors(&self) -> Vec<ActorId> {
        let mut out = vec![key().actor()];
        for (_, changes) in &self.docs {
            for c in changes {
                let a = automerge::Change::try_from(c.bytes.as_slice()).expect("a change").actor_id().clone();
                if !out.contains(&a) {
                    out.push(a);
                }
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------
// Panics

thread_local! {
    static IN_STORE: Cell<bool> = const { Cell::new(false) };
    static IN_HARNESS: Cell<bool> = const { Cell::new(false) };
    static LAST_PANIC: RefCell<String> = const { RefCell::new(String::new()) };
}
static CONTAINED: AtomicU64 = AtomicU64::new(0);
/// Accepted changes after which the document no longer loads from its own
/// `save()` (a known issue, see `README.md`): counted and printed, a crash
/// only with `LINLI_FUZZ_STRICT_RELOAD` set, so the runs go on to find others.
static UNLOADABLE: AtomicU64 = AtomicU64::new(0);

/// libFuzzer's hook aborts on any panic, even one the store contains (it
/// runs automerge under `catch_unwind`). Replace it: only a panic that
/// escapes a call to the store is a crash (see [`guarded`]). Panics inside
/// the store are counted and the first few printed. With
/// `LINLI_FUZZ_STRICT_PANICS` set, libFuzzer's hook stays, and every
/// panic, contained or not, is a crash (to hunt automerge's own bugs).
fn install_panic_hook() {
    if std::env::var_os("LINLI_FUZZ_STRICT_PANICS").is_some() {
        return;
    }
    drop(std::panic::take_hook());
    std::panic::set_hook(Box::new(|info| {
        let msg = info.to_string();
        if IN_STORE.get() {
            let n = CONTAINED.fetch_add(1, Ordering::Relaxed) + 1;
            if n <= 10 || n.is_power_of_two() {
                eprintln!("[linli-fuzz] panic #{n} inside the store (a crash only if it escapes): {msg}");
            }
        } else if !IN_HARNESS.get() {
            eprintln!("[linli-fuzz] {msg}");
        }
        LAST_PANIC.with_borrow_mut(|l| *l = msg);
    }));
}

/// Call the store: a panic that escapes it is a crash.
pub fn guarded<T>(what: &str, f: impl FnOnce() -> T) -> T {
    IN_STORE.set(true);
    let r = catch_unwind(AssertUnwindSafe(f));
    IN_STORE.set(false);
    match r {
        Ok(v) => v,
        Err(_) => {
            let msg = LAST_PANIC.with_borrow(|l| l.clone());
            eprintln!("[linli-fuzz] a panic escaped {what}: {msg}");
            std::process::abort()
        }
    }
}

/// Run harness code that feeds automerge hostile values (forging a change):
/// a panic there is automerge's, on the sender's side; the input is skipped.
pub fn harness<T>(f: impl FnOnce() -> T) -> Option<T> {
    IN_HARNESS.set(true);
    let r = catch_unwind(AssertUnwindSafe(f)).ok();
    IN_HARNESS.set(false);
    r
}

// ---------------------------------------------------------------------------
// The world

/// A store holding the fixture, and a template to start again from.
#[derive(Debug)]
pub struct World {
    pub fixture: Fixture,
    pub store: Store,
    dir: tempfile::TempDir,
    template: PathBuf,
    serial: u64,
    inputs: u64,
}

impl World {
    pub fn new() -> World {
        let fixture = Fixture::load();
        let dir = tempfile::tempdir().expect("tempdir");
        let template = dir.path().join("template.db");
        {
            let store = Store::open(&template).expect("open");
            for (doc, changes) in &fixture.docs {
                if changes.is_empty() {
                    continue;
                }
                let r = store.apply(&fixture.space, doc, changes.clone()).expect("apply the fixture");
                assert_eq!(r.accepted.len(), changes.len(), "the fixture merges: {r:?}");
            }
        }
        {
            // A known epoch, so inputs can name it; one file, no WAL beside it.
            let conn = rusqlite::Connection::open(&template).expect("template");
            conn.execute("UPDATE meta SET value = ?1 WHERE key = 'epoch'", [EPOCH.to_vec()]).expect("epoch");
            conn.pragma_update(None, "journal_mode", "DELETE").expect("journal");
        }
        let first = dir.path().join("store-0.db");
        copy(&template, &first);
        let store = Store::open(&first).expect("open");
        assert_eq!(store.epoch(), EPOCH);
        World { fixture, store, dir, template, serial: 0, inputs: 0 }
    }

    /// Replace the store by a fresh copy of the template.
    pub fn reset(&mut self) {
        let old = self.dir.path().join(format!("store-{}.db", self.serial));
        self.serial += 1;
        let path = self.dir.path().join(format!("store-{}.db", self.serial));
        copy(&self.template, &path);
        self.store = Store::open(&path).expect("open");
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", old.display()));
        }
    }

    pub fn doc(&self, sel: u8) -> &DocId {
        &self.fixture.docs[self.fixture.doc(sel)].0
    }

    /// The store still answers: SQLite's check passes and every document loads.
    pub fn check(&self) {
        let ok = guarded("integrity_check", || self.store.integrity_check()).expect("integrity_check");
        assert_eq!(ok, "ok", "SQLite integrity");
        for (doc, _) in &self.fixture.docs {
            guarded("heads", || self.store.heads(&self.fixture.space, doc)).expect("heads");
        }
    }

    /// A document that took changes still saves and loads back whole.
    pub fn check_doc(&self, doc: &DocId) {
        let (heads, reloaded) = guarded("Store::read", || {
            self.store
                .read(&self.fixture.space, doc, |d| (d.get_heads(), Automerge::load(&d.save()).map(|l| l.get_heads())))
        })
        .expect("read");
        if reloaded.as_ref().ok() != Some(&heads) {
            let n = UNLOADABLE.fetch_add(1, Ordering::Relaxed) + 1;
            if std::env::var_os("LINLI_FUZZ_STRICT_RELOAD").is_some() {
                panic!("an accepted change left a document that does not reload from its own save: {reloaded:?}");
            }
            if n <= 3 || n.is_power_of_two() {
                eprintln!(
                    "[linli-fuzz] finding #{n}: an accepted change left a document that does not reload from its own save: {reloaded:?}"
                );
            }
        }
    }

    /// Count an input; check the store every [`CHECK_EVERY`].
    pub fn tick(&mut self) {
        self.inputs += 1;
        if self.inputs.is_multiple_of(CHECK_EVERY) {
            self.check();
        }
    }

    /// After an input: if it got anything merged, check and start again.
    pub fn settle(&mut self, accepted: bool) {
        // LINLI_FUZZ_RESET_ALWAYS: a fresh world for every input (slower),
        // so that a crash reproduces from its input alone.
        if accepted || std::env::var_os("LINLI_FUZZ_RESET_ALWAYS").is_some() {
            self.check();
            self.reset();
        }
        self.tick();
    }

    /// Merge `changes` into `doc`: a report, never a panic nor an error; a
    /// document that accepted nothing is unchanged, unless the report says it
    /// was rebuilt (one half of an equivocating pair arrived: the pair is
    /// decided in canonical order, so the newcomer may take the other's place).
    pub fn apply(&mut self, doc: &DocId, changes: Vec<SignedChange>) -> ApplyReport {
        let space = self.fixture.space.clone();
        let before = guarded("heads", || self.store.heads(&space, doc)).expect("heads");
        let r = guarded("Store::apply", || self.store.apply(&space, doc, changes)).expect("apply gives a report");
        if r.accepted.is_empty() && !r.also_changed.contains(doc) {
            let after = guarded("heads", || self.store.heads(&space, doc)).expect("heads");
            assert_eq!(before, after, "nothing accepted, the document is unchanged");
        } else {
            self.check_doc(doc);
        }
        self.settle(!r.accepted.is_empty());
        r
    }

    /// Merge `snapshot` (automerge bytes) as a whole document.
    pub fn apply_snapshot(&mut self, doc: &DocId, snapshot: &[u8], signed: &[SignedHash]) -> ApplyReport {
        let space = self.fixture.space.clone();
        let r = guarded("Store::apply_snapshot", || self.store.apply_snapshot(&space, doc, snapshot, signed))
            .expect("apply_snapshot gives a report");
        self.settle(!r.accepted.is_empty());
        r
    }
}

/// Copy a file, again when a signal (libFuzzer's timer) interrupts it.
fn copy(from: &std::path::Path, to: &std::path::Path) {
    loop {
        match std::fs::copy(from, to) {
            Ok(_) => return,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => panic!("copy the template store: {e}"),
        }
    }
}

impl Default for World {
    fn default() -> Self {
        World::new()
    }
}

/// The process's world, set up on first use.
pub fn with_world<T>(f: impl FnOnce(&mut World) -> T) -> T {
    static WORLD: OnceLock<Mutex<World>> = OnceLock::new();
    let world = WORLD.get_or_init(|| {
        install_panic_hook();
        Mutex::new(World::new())
    });
    let mut w = world.lock().unwrap_or_else(|p| p.into_inner());
    f(&mut w)
}

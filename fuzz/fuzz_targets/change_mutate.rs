//! Structured: take real changes of the world (or honest next changes by the
//! fuzzer's device), rewrite their fields — sequence number, start op, time,
//! deps, actor, and the operations themselves — re-encode them with
//! automerge, sign them correctly, and merge up to four in one batch. Most
//! inputs get past parsing and the signature check, so this reaches the
//! consistency checks, the causal ordering of a batch and automerge's merge
//! far more often than raw bytes do.
#![no_main]

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use automerge::legacy::{ElementId, Key, MarkData, ObjectId, Op, OpId, OpType};
use automerge::transaction::Transactable;
use automerge::{ActorId, ChangeHash, ExpandedChange, ObjType, ROOT, ScalarValue};
use libfuzzer_sys::fuzz_target;
use linli_core::doc::SignedChange;
use linli_core::trust::parse_change;
use linli_fuzz::{Fixture, harness, with_world};

#[derive(Arbitrary, Debug)]
struct Input {
    /// The document the batch goes to (else the first change's own).
    doc: Option<u8>,
    changes: Vec<Forged>,
}

#[derive(Arbitrary, Debug)]
struct Forged {
    base: u8,
    edits: Vec<Edit>,
}

#[derive(Arbitrary, Debug)]
enum Edit {
    Seq(i8),
    SeqTo(u64),
    StartOp(i8),
    StartOpTo(u64),
    Time(i64),
    NoDeps,
    DropDep(u8),
    AddDep(u8),
    /// Depend on a change forged earlier in this input.
    DepOnEarlier(u8),
    ForeignDep([u8; 32]),
    Actor(Who),
    Message(Option<String>),
    Extra(Vec<u8>),
    DropOp(u8),
    DupOp(u8),
    SwapOps(u8, u8),
    EditOp(u8, OpEdit),
    NewOp(Obj, KeyEdit, bool, Action),
}

#[derive(Arbitrary, Debug)]
enum Who {
    Known(u8),
    Other([u8; 32]),
    Bytes(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
struct Ref {
    /// Counter relative to the change's start op.
    counter: i16,
    actor: u8,
}

#[derive(Arbitrary, Debug)]
enum Obj {
    Root,
    Id(Ref),
}

#[derive(Arbitrary, Debug)]
enum KeyEdit {
    Map(String),
    Head,
    Elem(Ref),
}

#[derive(Arbitrary, Debug)]
enum OpEdit {
    Insert(bool),
    Obj(Obj),
    Key(KeyEdit),
    Pred(Vec<Ref>),
    Action(Action),
}

#[derive(Arbitrary, Debug)]
enum Action {
    Make(u8),
    Delete,
    Increment(i64),
    Int(i64),
    Uint(u64),
    F64(f64),
    Str(String),
    Bytes(Vec<u8>),
    Counter(i64),
    Timestamp(i64),
    Bool(bool),
    Null,
    Unknown(u8, Vec<u8>),
    MarkBegin(String, bool),
    MarkEnd(bool),
}

/// Changes to start from, hashes to depend on, actors to name.
struct Pool {
    changes: Vec<(usize, SignedChange)>,
    hashes: Vec<ChangeHash>,
    actors: Vec<ActorId>,
}

fn pool(f: &Fixture) -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let mut changes: Vec<(usize, SignedChange)> = Vec::new();
        for (i, (_, cs)) in f.docs.iter().enumerate() {
            changes.extend(cs.iter().map(|c| (i, c.clone())));
            changes.push((
                i,
                f.next_change(i, |tx| {
                    tx.put(ROOT, "fuzz", 1).expect("put");
                    let l = tx.put_object(ROOT, "fuzz-list", ObjType::List).expect("list");
                    tx.insert(&l, 0, "x").expect("insert");
                    tx.increment(ROOT, "n", 1).ok();
                }),
            ));
        }
        let hashes = changes
            .iter()
            .map(|(_, c)| automerge::Change::try_from(c.bytes.as_slice()).expect("change").hash())
            .collect();
        Pool { changes, hashes, actors: f.actors() }
    })
}

fn actor(p: &Pool, who: &Who) -> ActorId {
    match who {
        Who::Known(i) => p.actors[usize::from(*i) % p.actors.len()].clone(),
        Who::Other(b) => ActorId::from(&b[..]),
        Who::Bytes(b) => ActorId::from(&b[..b.len().min(64)]),
    }
}

fn op_id(p: &Pool, start: u64, r: &Ref) -> OpId {
    OpId(
        (start as i64).saturating_add(i64::from(r.counter)).max(0) as u64,
        p.actors[usize::from(r.actor) % p.actors.len()].clone(),
    )
}

fn obj(p: &Pool, start: u64, o: &Obj) -> ObjectId {
    match o {
        Obj::Root => ObjectId::Root,
        Obj::Id(r) => ObjectId::Id(op_id(p, start, r)),
    }
}

fn key(p: &Pool, start: u64, k: &KeyEdit) -> Key {
    match k {
        KeyEdit::Map(s) => Key::Map(s.as_str().into()),
        KeyEdit::Head => Key::Seq(ElementId::Head),
        KeyEdit::Elem(r) => Key::Seq(ElementId::Id(op_id(p, start, r))),
    }
}

fn action(a: &Action) -> OpType {
    let put = |v: ScalarValue| OpType::Put(v);
    match a {
        Action::Make(t) => {
            OpType::Make([ObjType::Map, ObjType::List, ObjType::Text, ObjType::Table][usize::from(*t) % 4])
        }
        Action::Delete => OpType::Delete,
        Action::Increment(n) => OpType::Increment(*n),
        Action::Int(n) => put(ScalarValue::Int(*n)),
        Action::Uint(n) => put(ScalarValue::Uint(*n)),
        Action::F64(n) => put(ScalarValue::F64(*n)),
        Action::Str(s) => put(ScalarValue::Str(s.as_str().into())),
        Action::Bytes(b) => put(ScalarValue::Bytes(b.clone())),
        Action::Counter(n) => put(ScalarValue::counter(*n)),
        Action::Timestamp(n) => put(ScalarValue::Timestamp(*n)),
        Action::Bool(b) => put(ScalarValue::Boolean(*b)),
        Action::Null => put(ScalarValue::Null),
        Action::Unknown(t, b) => put(ScalarValue::Unknown { type_code: *t, bytes: b.clone() }),
        Action::MarkBegin(name, expand) => OpType::MarkBegin(MarkData {
            name: name.as_str().into(),
            value: ScalarValue::Boolean(true),
            expand: *expand,
        }),
        Action::MarkEnd(expand) => OpType::MarkEnd(*expand),
    }
}

fn edit(p: &Pool, earlier: &[ChangeHash], e: &mut ExpandedChange, ed: &Edit) {
    let start = e.start_op.get();
    let at = |n: &u8, len: usize| usize::from(*n) % len.max(1);
    match ed {
        Edit::Seq(d) => e.seq = e.seq.saturating_add_signed(i64::from(*d)),
        Edit::SeqTo(s) => e.seq = *s,
        Edit::StartOp(d) => {
            e.start_op = std::num::NonZeroU64::new(start.saturating_add_signed(i64::from(*d)).max(1)).expect("nonzero")
        }
        Edit::StartOpTo(s) => e.start_op = std::num::NonZeroU64::new((*s).max(1)).expect("nonzero"),
        Edit::Time(t) => e.time = *t,
        Edit::NoDeps => e.deps.clear(),
        Edit::DropDep(i) => {
            if !e.deps.is_empty() {
                let i = at(i, e.deps.len());
                e.deps.remove(i);
            }
        }
        Edit::AddDep(i) => e.deps.push(p.hashes[at(i, p.hashes.len())]),
        Edit::DepOnEarlier(i) => {
            if !earlier.is_empty() {
                e.deps.push(earlier[at(i, earlier.len())]);
            }
        }
        Edit::ForeignDep(h) => e.deps.push(ChangeHash(*h)),
        Edit::Actor(w) => e.actor_id = actor(p, w),
        Edit::Message(m) => e.message = m.clone(),
        Edit::Extra(b) => e.extra_bytes = b.clone(),
        Edit::DropOp(i) => {
            if !e.operations.is_empty() {
                let i = at(i, e.operations.len());
                e.operations.remove(i);
            }
        }
        Edit::DupOp(i) => {
            if !e.operations.is_empty() {
                let i = at(i, e.operations.len());
                let op = e.operations[i].clone();
                e.operations.insert(i, op);
            }
        }
        Edit::SwapOps(i, j) => {
            if !e.operations.is_empty() {
                let (i, j) = (at(i, e.operations.len()), at(j, e.operations.len()));
                e.operations.swap(i, j);
            }
        }
        Edit::EditOp(i, oe) => {
            if e.operations.is_empty() {
                return;
            }
            let i = at(i, e.operations.len());
            let op = &mut e.operations[i];
            match oe {
                OpEdit::Insert(b) => op.insert = *b,
                OpEdit::Obj(o) => op.obj = obj(p, start, o),
                OpEdit::Key(k) => op.key = key(p, start, k),
                OpEdit::Pred(rs) => op.pred = rs.iter().take(8).map(|r| op_id(p, start, r)).collect::<Vec<_>>().into(),
                OpEdit::Action(a) => op.action = action(a),
            }
        }
        Edit::NewOp(o, k, insert, a) => e.operations.push(Op {
            action: action(a),
            obj: obj(p, start, o),
            key: key(p, start, k),
            pred: Vec::new().into(),
            insert: *insert,
        }),
    }
}

fuzz_target!(|input: Input| {
    with_world(|w| {
        let p = pool(&w.fixture);
        let mut batch = Vec::new();
        let mut hashes = Vec::new();
        let mut doc = input.doc.map(|d| w.fixture.doc(d));
        for f in input.changes.iter().take(4) {
            let (i, base) = &p.changes[usize::from(f.base) % p.changes.len()];
            let d = *doc.get_or_insert(*i);
            let forged = harness(|| {
                w.fixture.forge(d, base, |e| {
                    for ed in f.edits.iter().take(16) {
                        edit(p, &hashes, e, ed);
                    }
                })
            });
            // Automerge could not encode it: no peer could send it either.
            let Some(forged) = forged else { return };
            // Parsed as the store will (automerge's decoder can panic on what its encoder made).
            if let Ok(c) = parse_change(&forged.bytes) {
                hashes.push(c.hash());
            }
            batch.push(forged);
        }
        let Some(d) = doc else { return };
        if std::env::var_os("LINLI_FUZZ_DUMP").is_some() {
            // The batch in the raw format of `change_validation` (a document byte, a change).
            for (n, c) in batch.iter().enumerate() {
                let mut out = vec![d as u8];
                out.extend_from_slice(&c.bytes);
                std::fs::write(format!("mutated-{n}.bin"), out).expect("dump");
            }
        }
        let doc_id = w.fixture.docs[d].0.clone();
        w.apply(&doc_id, batch);
    });
});

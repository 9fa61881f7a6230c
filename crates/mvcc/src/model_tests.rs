//! Property test of the [`Store`] against a naive model: the full key -> value map at
//! every revision.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use proptest::prelude::*;

use crate::kvstore_compaction::Progress;
use crate::{
    CompactionJob, Event, EventType, KeyValue, MvccError, RangeOptions, RangeResult, Store, StoreConfig,
};

const KEYS: [&[u8]; 5] = [b"a", b"ab", b"b", b"c", b"d"];
const ENDS: [&[u8]; 8] = [b"", b"\0", b"a", b"ab", b"b", b"c", b"d", b"z"];
/// Ranges checked at every revision after every step.
const RANGES: [(&[u8], &[u8]); 12] = [
    (b"", b"\0"),
    (b"a", b""),
    (b"ab", b""),
    (b"b", b""),
    (b"c", b""),
    (b"d", b""),
    (b"b", b"\0"),
    (b"a", b"c"),
    (b"ab", b"d"),
    (b"c", b"b"),
    (b"a", b"a"),
    (b"", b""),
];

#[derive(Debug, Clone)]
enum TxnOp {
    Put(usize, u8),
    Delete(usize),
    DeleteRange(usize, usize),
    /// Range read inside the txn, compared with the model's txn state.
    Read(usize, usize),
}

#[derive(Debug, Clone, Copy)]
enum CompactMode {
    Run,
    Defer,
    Partial(usize),
}

#[derive(Debug, Clone)]
enum Step {
    Batch {
        txns: Vec<Vec<TxnOp>>,
        durable: bool,
        abort: bool,
        ci: u64,
    },
    Compact {
        pick: u16,
        mode: CompactMode,
    },
    RunPending,
    Reopen,
}

fn txn_op() -> impl Strategy<Value = TxnOp> {
    prop_oneof![
        5 => (0..KEYS.len(), any::<u8>()).prop_map(|(k, v)| TxnOp::Put(k, v)),
        2 => (0..KEYS.len()).prop_map(TxnOp::Delete),
        1 => (0..KEYS.len(), 0..ENDS.len()).prop_map(|(k, e)| TxnOp::DeleteRange(k, e)),
        1 => (0..KEYS.len(), 0..ENDS.len()).prop_map(|(k, e)| TxnOp::Read(k, e)),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    let mode = prop_oneof![
        Just(CompactMode::Run),
        Just(CompactMode::Defer),
        (1usize..4).prop_map(CompactMode::Partial),
    ];
    prop_oneof![
        8 => (
            prop::collection::vec(prop::collection::vec(txn_op(), 0..4), 1..3),
            prop::bool::weighted(0.2),
            prop::bool::weighted(0.1),
            any::<u64>(),
        )
            .prop_map(|(txns, durable, abort, ci)| Step::Batch { txns, durable, abort, ci }),
        2 => (any::<u16>(), mode).prop_map(|(pick, mode)| Step::Compact { pick, mode }),
        1 => Just(Step::RunPending),
        1 => Just(Step::Reopen),
    ]
}

type State = BTreeMap<Vec<u8>, KeyValue>;

/// The state at every revision; `states[r]` for `r >= 1`.
struct Model {
    states: Vec<State>,
    /// `events[r]`: the changes of revision `r`.
    events: Vec<Vec<Event>>,
    compact: i64,
    ci: u64,
}

impl Model {
    fn new() -> Self {
        Model {
            states: vec![BTreeMap::new(), BTreeMap::new()],
            events: vec![Vec::new(), Vec::new()],
            compact: -1,
            ci: 0,
        }
    }

    fn current(&self) -> i64 {
        i64::try_from(self.states.len()).unwrap() - 1
    }

    fn state(&self, rev: i64) -> &State {
        &self.states[usize::try_from(rev).unwrap()]
    }
}

fn in_span(k: &[u8], key: &[u8], end: &[u8]) -> bool {
    match end {
        [] => k == key,
        [0] => k >= key,
        _ => k >= key && k < end,
    }
}

fn model_range(state: &State, key: &[u8], end: &[u8], opts: RangeOptions) -> (Vec<KeyValue>, i64) {
    let all: Vec<KeyValue> = state
        .iter()
        .filter(|(k, _)| in_span(k, key, end))
        .map(|(_, kv)| kv.clone())
        .collect();
    let count = i64::try_from(all.len()).unwrap();
    let kvs = if opts.count_only {
        Vec::new()
    } else if opts.limit > 0 {
        all.into_iter()
            .take(usize::try_from(opts.limit).unwrap())
            .collect()
    } else {
        all
    };
    (kvs, count)
}

fn check_range(
    got: Result<RangeResult, MvccError>,
    state: &State,
    cur: i64,
    key: &[u8],
    end: &[u8],
    opts: RangeOptions,
) -> Result<(), TestCaseError> {
    let got = got.map_err(|e| TestCaseError::fail(format!("range {key:?}..{end:?} {opts:?}: {e}")))?;
    let (kvs, count) = model_range(state, key, end, opts);
    prop_assert_eq!(&got.kvs, &kvs, "range {:?}..{:?} {:?}", key, end, opts);
    prop_assert_eq!(got.count, count, "count {:?}..{:?} {:?}", key, end, opts);
    prop_assert_eq!(got.rev, cur);
    Ok(())
}

fn check(store: &Store, m: &Model) -> Result<(), TestCaseError> {
    let cur = m.current();
    prop_assert_eq!(store.current_revision(), cur);
    prop_assert_eq!(store.compact_revision(), m.compact);
    prop_assert_eq!(store.consistent_index(), m.ci);
    let r = store.read();
    prop_assert_eq!(r.rev(), cur);
    let first = m.compact.max(1);
    for rev in (first..=cur).chain([0]) {
        let state = m.state(if rev == 0 { cur } else { rev });
        for (key, end) in RANGES {
            let opts = RangeOptions {
                rev,
                ..RangeOptions::default()
            };
            check_range(r.range(key, end, opts), state, cur, key, end, opts)?;
        }
        for opts in [
            RangeOptions {
                rev,
                limit: 1,
                count_only: false,
            },
            RangeOptions {
                rev,
                limit: 2,
                count_only: false,
            },
            RangeOptions {
                rev,
                limit: -1,
                count_only: false,
            },
            RangeOptions {
                rev,
                limit: 1,
                count_only: true,
            },
        ] {
            check_range(r.range(b"", b"\0", opts), state, cur, b"", b"\0", opts)?;
        }
    }
    for rev in 1..m.compact {
        let opts = RangeOptions {
            rev,
            ..RangeOptions::default()
        };
        prop_assert!(
            matches!(r.range(b"", b"\0", opts), Err(MvccError::Compacted)),
            "rev {}",
            rev
        );
    }
    let future = RangeOptions {
        rev: cur + 1,
        ..RangeOptions::default()
    };
    prop_assert!(matches!(r.range(b"a", b"", future), Err(MvccError::FutureRev)));

    // Events from every revision after the compaction revision.
    for start in (m.compact + 1).max(1)..=cur + 1 {
        let want: Vec<Event> = m.events[usize::try_from(start).unwrap()..].concat();
        let (got, next) = r
            .events(start, 0)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&got, &want, "events from {}", start);
        prop_assert_eq!(next, cur + 1);
    }
    if m.compact > 1 {
        prop_assert!(matches!(r.events(m.compact - 1, 0), Err(MvccError::Compacted)));
    }
    // Paged events: whole revisions per page.
    let mut start = (m.compact + 1).max(1);
    let mut paged = Vec::new();
    while start <= cur {
        let (page, next) = r
            .events(start, 1)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(next > start);
        paged.extend(page);
        start = next;
    }
    let first_event = usize::try_from((m.compact + 1).max(1)).unwrap();
    prop_assert_eq!(paged, m.events[first_event.min(m.events.len())..].concat());
    Ok(())
}

fn cfg() -> StoreConfig {
    StoreConfig {
        compaction_batch_limit: 3,
        compaction_sleep: Duration::ZERO,
    }
}

fn run_txn(
    t: &mut crate::TxnWrite<'_, '_>,
    ops: &[TxnOp],
    base: &State,
    begin: i64,
) -> Result<(State, Vec<Event>), TestCaseError> {
    let main = begin + 1;
    let mut state = base.clone();
    let mut events = Vec::new();
    let fail = |e: MvccError| TestCaseError::fail(e.to_string());
    for op in ops {
        match *op {
            TxnOp::Put(k, v) => {
                let key = KEYS[k].to_vec();
                let lease = i64::from(v % 3);
                let (create_revision, version) = match state.get(&key) {
                    Some(kv) => (kv.create_revision, kv.version + 1),
                    None => (main, 1),
                };
                let kv = KeyValue {
                    key: key.clone(),
                    create_revision,
                    mod_revision: main,
                    version,
                    value: vec![v],
                    lease,
                };
                prop_assert_eq!(t.put(&key, &[v], lease).map_err(fail)?, main);
                events.push(Event {
                    kind: EventType::Put,
                    kv: kv.clone(),
                });
                state.insert(key, kv);
            }
            TxnOp::Delete(_) | TxnOp::DeleteRange(..) => {
                let (key, end) = match *op {
                    TxnOp::Delete(k) => (KEYS[k], &b""[..]),
                    TxnOp::DeleteRange(k, e) => (KEYS[k], ENDS[e]),
                    _ => unreachable!(),
                };
                let doomed: Vec<Vec<u8>> = state.keys().filter(|k| in_span(k, key, end)).cloned().collect();
                let n = t.delete_range(key, end).map_err(fail)?;
                prop_assert_eq!(n, i64::try_from(doomed.len()).unwrap());
                for k in doomed {
                    state.remove(&k);
                    events.push(Event {
                        kind: EventType::Delete,
                        kv: KeyValue {
                            key: k,
                            mod_revision: main,
                            ..KeyValue::default()
                        },
                    });
                }
            }
            TxnOp::Read(k, e) => {
                let rev = if events.is_empty() { begin } else { main };
                prop_assert_eq!(t.rev(), rev);
                let opts = RangeOptions::default();
                check_range(
                    t.range(KEYS[k], ENDS[e], opts),
                    &state,
                    rev,
                    KEYS[k],
                    ENDS[e],
                    opts,
                )?;
                // An earlier revision from inside the txn.
                if begin > 1 {
                    let opts = RangeOptions {
                        rev: begin - 1,
                        ..RangeOptions::default()
                    };
                    let _ = t.range(KEYS[k], ENDS[e], opts);
                }
            }
        }
    }
    Ok((state, events))
}

fn run_case(path: &Path, steps: Vec<Step>) -> Result<(), TestCaseError> {
    let fail = |e: MvccError| TestCaseError::fail(e.to_string());
    let (mut store, job) = Store::open(path, cfg()).map_err(fail)?;
    prop_assert!(job.is_none());
    let mut m = Model::new();
    let mut pending: Vec<CompactionJob> = Vec::new();
    check(&store, &m)?;
    for step in steps {
        match step {
            Step::Batch {
                txns,
                durable,
                abort,
                ci,
            } => {
                let mut b = store.begin_batch().map_err(fail)?;
                let mut states = Vec::new();
                let mut evs = Vec::new();
                let mut base = m.state(m.current()).clone();
                let mut cur = m.current();
                for ops in &txns {
                    prop_assert_eq!(b.current_revision(), cur);
                    let mut t = b.txn();
                    let (state, events) = run_txn(&mut t, ops, &base, cur)?;
                    let res = t.end();
                    prop_assert_eq!(&res.changes, &events);
                    if events.is_empty() {
                        prop_assert_eq!(res.rev, cur);
                    } else {
                        cur += 1;
                        prop_assert_eq!(res.rev, cur);
                        base = state.clone();
                        states.push(state);
                        evs.push(events);
                    }
                }
                b.set_consistent_index(ci, 1).map_err(fail)?;
                // Readers do not see the uncommitted batch.
                check(&store, &m)?;
                if abort {
                    drop(b);
                } else {
                    b.commit(durable).map_err(fail)?;
                    m.states.extend(states);
                    m.events.extend(evs);
                    m.ci = ci;
                }
            }
            Step::Compact { pick, mode } => {
                let cur = m.current();
                let mut b = store.begin_batch().map_err(fail)?;
                prop_assert!(matches!(b.compact(cur + 1), Err(MvccError::FutureRev)));
                if m.compact >= 0 {
                    prop_assert!(matches!(b.compact(m.compact), Err(MvccError::Compacted)));
                }
                if m.compact >= cur {
                    continue;
                }
                let rev = m.compact + 1 + i64::from(pick) % (cur - m.compact);
                let job = b.compact(rev).map_err(fail)?;
                b.commit(false).map_err(fail)?;
                m.compact = rev;
                // The deleted history of the model is no longer needed.
                match mode {
                    CompactMode::Run => store.run_compaction(job).map_err(fail)?,
                    CompactMode::Defer => pending.push(job),
                    CompactMode::Partial(n) => {
                        let p = store.run_compaction_batches(&job, Some(n)).map_err(fail)?;
                        if p == Progress::Interrupted {
                            pending.push(job);
                        }
                    }
                }
            }
            Step::RunPending => {
                for job in pending.drain(..) {
                    store.run_compaction(job).map_err(fail)?;
                }
            }
            Step::Reopen => {
                drop(store);
                let (s, job) = Store::open(path, cfg()).map_err(fail)?;
                store = s;
                pending.clear();
                if let Some(job) = job {
                    prop_assert_eq!(job.revision(), m.compact);
                    pending.push(job);
                }
            }
        }
        check(&store, &m)?;
    }
    // Finally run everything left and reopen once more.
    for job in pending.drain(..) {
        store.run_compaction(job).map_err(fail)?;
    }
    check(&store, &m)?;
    drop(store);
    let (store, job) = Store::open(path, cfg()).map_err(fail)?;
    prop_assert!(job.is_none());
    check(&store, &m)?;
    Ok(())
}

proptest! {
    #[test]
    fn store_matches_model(steps in prop::collection::vec(step(), 1..32)) {
        let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
        run_case(&dir.path().join("db"), steps)?;
    }
}

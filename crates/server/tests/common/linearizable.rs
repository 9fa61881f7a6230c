//! A linearizability checker for etcd's KV model on one key, in the spirit of porcupine but
//! using what etcd gives: every acknowledged put has a unique revision, so the writes are
//! totally ordered and every read names the write it saw (by its unique value and mod
//! revision). The history is linearizable iff real time never contradicts that order:
//!
//! * a write that finished before another started has the lower revision;
//! * a read never sees a write that started after the read finished, nor a write older
//!   than one that finished before the read started (stale read);
//! * reads are monotonic in real time: a read that finished before another started saw a
//!   write at most as new;
//! * a write that finished before a read started is visible to it; a read that finished
//!   before a write started does not see it.
//!
//! A put that failed or timed out may or may not have happened: if a read saw its value it
//! happened (with the revision that read reports), otherwise it is ignored.

use std::collections::HashMap;
use std::time::Instant;

#[derive(Debug, Clone)]
pub enum Op {
    /// Put of a unique value; `rev` is the revision the server acknowledged (None: unknown
    /// outcome).
    Put { value: String, rev: Option<i64> },
    /// A linearizable read: the value seen and its mod revision (None: the key was absent).
    Get { seen: Option<(String, i64)> },
}

#[derive(Debug, Clone)]
pub struct Event {
    /// Who did it, for the error messages (e.g. "client 3 via member 1").
    pub tag: String,
    pub start: Instant,
    /// None: no answer (timeout or error) — for a get this makes it irrelevant.
    pub end: Option<Instant>,
    pub op: Op,
}

/// A write as the checker orders it.
struct Write {
    rev: i64,
    start: Instant,
    /// None: outcome unknown to the client (it counts as finished only at infinity).
    end: Option<Instant>,
}

/// Returns the first violation found, described, or Ok with (writes, reads) checked.
pub fn check(history: &[Event]) -> Result<(usize, usize), String> {
    // revision of every value that is known to have been written
    let mut rev_of: HashMap<&str, i64> = HashMap::new();
    for e in history {
        match &e.op {
            Op::Put { value, rev: Some(r) } => {
                rev_of.insert(value, *r);
            }
            Op::Get { seen: Some((v, r)) } => {
                if let Some(prev) = rev_of.insert(v, *r)
                    && prev != *r
                {
                    return Err(format!("value {v:?} seen at revisions {prev} and {r}"));
                }
            }
            _ => {}
        }
    }
    let mut writes: Vec<Write> = Vec::new();
    for e in history {
        if let Op::Put { value, rev } = &e.op {
            let known = rev.or_else(|| rev_of.get(value.as_str()).copied());
            if let Some(r) = known {
                writes.push(Write {
                    rev: r,
                    start: e.start,
                    end: if rev.is_some() { e.end } else { None },
                });
            }
        }
    }
    writes.sort_by_key(|w| w.rev);
    for pair in writes.windows(2) {
        if pair[0].rev == pair[1].rev {
            return Err(format!("two writes acknowledged at revision {}", pair[0].rev));
        }
    }
    // writes in real-time order must have increasing revisions
    for a in &writes {
        for b in &writes {
            if let Some(a_end) = a.end
                && a_end < b.start
                && a.rev > b.rev
            {
                return Err(format!(
                    "write at revision {} finished before the write at revision {} started",
                    a.rev, b.rev
                ));
            }
        }
    }
    let reads: Vec<(Instant, Instant, i64, &str)> = history
        .iter()
        .filter_map(|e| match (&e.op, e.end) {
            (Op::Get { seen }, Some(end)) => Some((
                e.start,
                end,
                seen.as_ref().map(|s| s.1).unwrap_or(0),
                e.tag.as_str(),
            )),
            _ => None,
        })
        .collect();
    let t0 = history.iter().map(|e| e.start).min();
    let ms = |t: Instant| t0.map(|t0| t.duration_since(t0).as_millis()).unwrap_or(0);
    for &(start, end, seen, tag) in &reads {
        if seen != 0 {
            let w = writes
                .iter()
                .find(|w| w.rev == seen)
                .ok_or_else(|| format!("a read saw revision {seen}, which no put wrote"))?;
            if w.start > end {
                return Err(format!("a read saw revision {seen} before its put started"));
            }
        }
        // every write that finished before the read started must be visible
        for w in &writes {
            if let Some(w_end) = w.end
                && w_end < start
                && w.rev > seen
            {
                return Err(format!(
                    "stale read ({tag}, {}-{} ms): saw revision {seen} although the write at revision {} had finished at {} ms",
                    ms(start),
                    ms(end),
                    w.rev,
                    ms(w_end)
                ));
            }
        }
    }
    for &(s1, e1, r1, t1) in &reads {
        for &(s2, e2, r2, t2) in &reads {
            if e1 < s2 && r1 > r2 {
                return Err(format!(
                    "non-monotonic reads: a read ({t1}, {}-{} ms) saw revision {r1}, a later one ({t2}, {}-{} ms) revision {r2}",
                    ms(s1),
                    ms(e1),
                    ms(s2),
                    ms(e2)
                ));
            }
        }
    }
    Ok((writes.len(), reads.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(base: Instant, ms: u64) -> Instant {
        base + Duration::from_millis(ms)
    }

    fn put(base: Instant, s: u64, e: Option<u64>, v: &str, rev: Option<i64>) -> Event {
        Event {
            tag: String::new(),
            start: at(base, s),
            end: e.map(|e| at(base, e)),
            op: Op::Put { value: v.into(), rev },
        }
    }

    fn get(base: Instant, s: u64, e: u64, seen: Option<(&str, i64)>) -> Event {
        Event {
            tag: String::new(),
            start: at(base, s),
            end: Some(at(base, e)),
            op: Op::Get {
                seen: seen.map(|(v, r)| (v.to_string(), r)),
            },
        }
    }

    #[test]
    fn accepts_linearizable_histories() {
        let b = Instant::now();
        let h = vec![
            put(b, 0, Some(10), "a", Some(2)),
            get(b, 5, 8, None), // concurrent with the put: may miss it
            put(b, 20, Some(30), "b", Some(3)),
            get(b, 25, 35, Some(("a", 2))), // concurrent with b
            get(b, 40, 45, Some(("b", 3))),
            put(b, 50, None, "c", None), // unknown outcome, never seen
        ];
        assert_eq!(check(&h), Ok((2, 3)));
    }

    #[test]
    fn rejects_stale_reads() {
        let b = Instant::now();
        let h = vec![
            put(b, 0, Some(10), "a", Some(2)),
            put(b, 20, Some(30), "b", Some(3)),
            get(b, 40, 45, Some(("a", 2))),
        ];
        assert!(check(&h).unwrap_err().contains("stale read"));
    }

    #[test]
    fn rejects_writes_out_of_real_time_order() {
        let b = Instant::now();
        let h = vec![
            put(b, 0, Some(10), "a", Some(5)),
            put(b, 20, Some(30), "b", Some(3)),
        ];
        assert!(check(&h).is_err());
    }

    #[test]
    fn rejects_non_monotonic_reads() {
        let b = Instant::now();
        let h = vec![
            put(b, 0, Some(100), "a", Some(2)),
            put(b, 0, Some(100), "b", Some(3)),
            get(b, 10, 20, Some(("b", 3))),
            get(b, 30, 40, Some(("a", 2))),
        ];
        assert!(check(&h).unwrap_err().contains("non-monotonic"));
    }

    #[test]
    fn an_unacknowledged_write_that_was_seen_counts() {
        let b = Instant::now();
        let h = vec![
            put(b, 0, None, "a", None),
            get(b, 10, 20, Some(("a", 2))),
            get(b, 30, 40, None), // the key vanished: stale
        ];
        assert!(check(&h).is_err());
        let ok = vec![put(b, 0, None, "a", None), get(b, 10, 20, Some(("a", 2)))];
        assert_eq!(check(&ok), Ok((1, 1)));
    }

    #[test]
    fn rejects_reads_of_writes_that_never_happened() {
        let b = Instant::now();
        let h = vec![get(b, 10, 20, Some(("ghost", 7)))];
        assert!(check(&h).is_err());
    }
}

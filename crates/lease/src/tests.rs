//! Lessor tests on virtual time: every instant is `t0 + offset`, nothing sleeps.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;

fn cfg() -> LessorConfig {
    LessorConfig {
        min_ttl: 2,
        checkpoint_interval: None,
    }
}

fn primary(now: Instant) -> Lessor {
    let mut l = Lessor::new(cfg());
    l.promote(Duration::ZERO, now);
    l
}

const S: Duration = Duration::from_secs(1);

#[test]
fn min_ttl_as_etcd_computes_it() {
    // defaults: 100 ms heartbeat, 1000 ms election -> 15 ticks * 100 ms = 1.5 s -> 2 s
    assert_eq!(LessorConfig::min_ttl_for(100, 1000), 2);
    assert_eq!(LessorConfig::min_ttl_for(100, 2000), 3);
    assert_eq!(LessorConfig::min_ttl_for(500, 5000), 8);
    assert_eq!(LessorConfig::min_ttl_for(0, 1000), 2);
}

#[test]
fn grant_checks_id_ttl_and_duplicates() {
    let t0 = Instant::now();
    let mut l = primary(t0);
    assert_eq!(l.grant(NO_LEASE, 10, t0), Err(LeaseError::NotFound));
    assert_eq!(l.grant(1, MAX_LEASE_TTL + 1, t0), Err(LeaseError::TtlTooLarge));
    let r = l.grant(1, MAX_LEASE_TTL, t0).unwrap();
    assert_eq!(r.ttl, MAX_LEASE_TTL);
    assert_eq!(l.grant(1, 5, t0), Err(LeaseError::Exists));
    // below the minimum: raised to it
    assert_eq!(l.grant(2, 1, t0).unwrap().ttl, 2);
    assert_eq!(l.grant(3, -7, t0).unwrap().ttl, 2);
    assert_eq!(l.len(), 3);
}

#[test]
fn expiry_on_the_primary_only() {
    let t0 = Instant::now();
    let mut l = primary(t0);
    l.grant(1, 3, t0).unwrap();
    l.grant(2, 10, t0).unwrap();
    assert!(l.expired(t0 + 2 * S, 100).is_empty());
    assert_eq!(l.expired(t0 + 3 * S, 100), vec![1]);
    // offered again only after the retry interval
    assert!(l.expired(t0 + 4 * S, 100).is_empty());
    assert_eq!(l.expired(t0 + 6 * S, 100), vec![1]);
    assert!(l.remove(1));
    assert!(l.expired(t0 + 9 * S, 100).is_empty());
    assert_eq!(l.expired(t0 + 10 * S, 100), vec![2]);

    let mut f = Lessor::new(cfg());
    f.grant(1, 3, t0).unwrap();
    assert!(
        f.expired(t0 + 100 * S, 100).is_empty(),
        "a follower never expires leases"
    );
    assert_eq!(f.renew(1, t0), Err(LeaseError::NotPrimary));
}

#[test]
fn expired_respects_the_limit() {
    let t0 = Instant::now();
    let mut l = primary(t0);
    for id in 1..=10 {
        l.grant(id, 5, t0).unwrap();
    }
    let a = l.expired(t0 + 5 * S, 4);
    let b = l.expired(t0 + 5 * S, 4);
    let c = l.expired(t0 + 5 * S, 4);
    assert_eq!((a.len(), b.len(), c.len()), (4, 4, 2));
    let all: BTreeSet<_> = a.into_iter().chain(b).chain(c).collect();
    assert_eq!(all.len(), 10);
}

#[test]
fn renew_restarts_the_ttl() {
    let t0 = Instant::now();
    let mut l = primary(t0);
    l.grant(7, 5, t0).unwrap();
    assert_eq!(l.renew(7, t0 + 4 * S), Ok((5, None)));
    assert!(
        l.expired(t0 + 6 * S, 10).is_empty(),
        "renewed at 4 s: alive until 9 s"
    );
    assert_eq!(l.status(7, false, t0 + 6 * S).unwrap().remaining, 3);
    assert_eq!(l.expired(t0 + 9 * S, 10), vec![7]);
    assert_eq!(l.renew(7, t0 + 9 * S), Err(LeaseError::Expired));
    assert_eq!(l.renew(8, t0), Err(LeaseError::NotFound));
}

#[test]
fn status_truncates_like_go() {
    let t0 = Instant::now();
    let mut l = primary(t0);
    l.grant(1, 10, t0).unwrap();
    let s = l.status(1, true, t0 + Duration::from_millis(1)).unwrap();
    assert_eq!((s.granted_ttl, s.remaining), (10, 9));
    assert!(l.status(2, false, t0).is_none());
    let mut f = Lessor::new(cfg());
    f.grant(1, 10, t0).unwrap();
    assert_eq!(f.status(1, false, t0).unwrap().remaining, 9_223_372_036);
}

#[test]
fn attachments_follow_puts_and_deletes() {
    let t0 = Instant::now();
    let mut l = primary(t0);
    l.grant(1, 10, t0).unwrap();
    l.grant(2, 10, t0).unwrap();
    l.on_put(b"b", 1);
    l.on_put(b"a", 1);
    l.on_put(b"c", 2);
    assert_eq!(l.revoke_keys(1).unwrap(), vec![b"a".to_vec(), b"b".to_vec()]);
    // re-put with another lease moves it; with none detaches it
    l.on_put(b"a", 2);
    l.on_put(b"b", 0);
    assert!(l.revoke_keys(1).unwrap().is_empty());
    assert_eq!(l.revoke_keys(2).unwrap(), vec![b"a".to_vec(), b"c".to_vec()]);
    l.on_delete(b"c");
    assert_eq!(l.status(2, true, t0).unwrap().keys, vec![b"a".to_vec()]);
    assert!(l.remove(2));
    assert_eq!(l.revoke_keys(2), Err(LeaseError::NotFound));
    // the key's lease is forgotten with the lease
    l.on_put(b"a", 1);
    assert_eq!(l.revoke_keys(1).unwrap(), vec![b"a".to_vec()]);
}

#[test]
fn promote_extends_and_demote_stops_expiry() {
    let t0 = Instant::now();
    let mut l = primary(t0);
    l.grant(1, 5, t0).unwrap();
    l.demote();
    assert!(l.expired(t0 + 60 * S, 10).is_empty());
    // new leader at 60 s, election timeout 1 s: full TTL + 1 s from then
    l.promote(S, t0 + 60 * S);
    assert!(l.expired(t0 + 65 * S, 10).is_empty());
    assert_eq!(l.expired(t0 + 66 * S, 10), vec![1]);
}

#[test]
fn restored_leases_expire_after_promotion() {
    let t0 = Instant::now();
    let mut l = Lessor::new(cfg());
    l.restore(LeaseRecord {
        id: 9,
        ttl: 4,
        remaining_ttl: 0,
    });
    l.on_put(b"k", 9);
    assert!(l.expired(t0 + 100 * S, 10).is_empty());
    l.promote(S, t0);
    assert_eq!(l.expired(t0 + 5 * S, 10), vec![9]);
    assert_eq!(l.revoke_keys(9).unwrap(), vec![b"k".to_vec()]);
}

#[test]
fn leases_sorted_by_expiry() {
    let t0 = Instant::now();
    let mut l = primary(t0);
    l.grant(1, 30, t0).unwrap();
    l.grant(2, 10, t0).unwrap();
    l.grant(3, 20, t0).unwrap();
    assert_eq!(l.leases(), vec![2, 3, 1]);
}

#[test]
fn checkpoints_keep_long_ttls_honest() {
    let t0 = Instant::now();
    let mut l = Lessor::new(LessorConfig {
        min_ttl: 2,
        checkpoint_interval: Some(10 * S),
    });
    l.promote(Duration::ZERO, t0);
    l.grant(1, 100, t0).unwrap();
    l.grant(2, 5, t0).unwrap(); // shorter than the interval: never checkpointed
    assert!(l.due_checkpoints(t0 + 9 * S).is_empty());
    let cps = l.due_checkpoints(t0 + 10 * S);
    assert_eq!(
        cps,
        vec![Checkpoint {
            id: 1,
            remaining_ttl: 90
        }]
    );
    let rec = l.checkpoint(cps[0], t0 + 10 * S).unwrap();
    assert_eq!(rec.remaining_ttl, 90);
    // rescheduled when applied
    assert_eq!(
        l.due_checkpoints(t0 + 20 * S),
        vec![Checkpoint {
            id: 1,
            remaining_ttl: 80
        }]
    );
    // leadership moves at 20 s: the new leader gives the checkpointed 90 s, not 100 s
    l.demote();
    l.promote(Duration::ZERO, t0 + 20 * S);
    assert_eq!(l.status(1, false, t0 + 20 * S).unwrap().remaining, 90);
    // a keep-alive clears the checkpoint and asks to propose that
    assert_eq!(
        l.renew(1, t0 + 21 * S),
        Ok((
            100,
            Some(Checkpoint {
                id: 1,
                remaining_ttl: 0
            })
        ))
    );
    assert_eq!(l.status(1, false, t0 + 21 * S).unwrap().remaining, 100);
}

#[test]
fn promote_spreads_a_pile_of_expiries() {
    let t0 = Instant::now();
    let mut l = Lessor::new(cfg());
    let n = 3 * LEASE_REVOKE_RATE as i64;
    for id in 1..=n {
        l.grant(id, 10, t0).unwrap();
    }
    l.promote(Duration::ZERO, t0);
    // without spreading all 3000 would expire at 10 s
    let revoke = |l: &mut Lessor, t: Instant| {
        let ids = l.expired(t, usize::MAX);
        for id in &ids {
            l.remove(*id);
        }
        ids.len()
    };
    let at_10 = revoke(&mut l, t0 + 10 * S);
    assert_eq!(at_10, (3 * LEASE_REVOKE_RATE) / 4);
    let mut total = at_10;
    let mut t = t0 + 10 * S;
    while total < n as usize {
        t += S;
        let got = revoke(&mut l, t);
        assert!(got <= LEASE_REVOKE_RATE, "{got} leases at once");
        total += got;
        assert!(t < t0 + 20 * S, "expiries spread too far");
    }
}

#[test]
fn record_roundtrip() {
    let r = LeaseRecord {
        id: -5,
        ttl: 60,
        remaining_ttl: 12,
    };
    assert_eq!(LeaseRecord::decode(&r.encode()).unwrap(), r);
    assert!(LeaseRecord::decode(&[0xff]).is_err());
}

#[derive(Debug, Clone)]
enum Op {
    Grant(i64),
    Revoke(i64),
    Put(u8, i64),
    Delete(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1i64..6).prop_map(Op::Grant),
        (1i64..6).prop_map(Op::Revoke),
        (0u8..12, 0i64..6).prop_map(|(k, l)| Op::Put(k, l)),
        (0u8..12).prop_map(Op::Delete),
    ]
}

proptest! {
    /// Attachments against a model: key -> lease of its last put, leases -> keys.
    #[test]
    fn attachments_match_a_model(ops in prop::collection::vec(op(), 1..200)) {
        let t0 = Instant::now();
        let mut l = primary(t0);
        let mut leases: BTreeSet<i64> = BTreeSet::new();
        let mut keys: BTreeMap<u8, i64> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Grant(id) => {
                    let r = l.grant(id, 10, t0);
                    prop_assert_eq!(r.is_ok(), leases.insert(id));
                }
                Op::Revoke(id) => {
                    match l.revoke_keys(id) {
                        Ok(ks) => {
                            prop_assert!(leases.remove(&id));
                            let want: Vec<Vec<u8>> = keys.iter().filter(|(_, l)| **l == id).map(|(k, _)| vec![*k]).collect();
                            prop_assert_eq!(&ks, &want);
                            for k in ks { l.on_delete(&k); keys.remove(&k[0]); }
                            prop_assert!(l.remove(id));
                        }
                        Err(_) => prop_assert!(!leases.contains(&id)),
                    }
                }
                Op::Put(k, id) => {
                    // the applier refuses a put with an unknown lease
                    if id != NO_LEASE && !leases.contains(&id) { continue; }
                    l.on_put(&[k], id);
                    keys.insert(k, id);
                }
                Op::Delete(k) => {
                    l.on_delete(&[k]);
                    keys.remove(&k);
                }
            }
        }
        for id in &leases {
            let want: Vec<Vec<u8>> = keys.iter().filter(|(_, l)| **l == *id).map(|(k, _)| vec![*k]).collect();
            prop_assert_eq!(l.revoke_keys(*id).unwrap(), want);
        }
    }
}

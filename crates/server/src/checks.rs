//! Request validation done before anything is proposed or read (etcd's `v3rpc/key.go`).

use retcd_api::EtcdError;
use retcd_api::etcdserverpb::{
    DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest, range_request, request_op,
};

use std::collections::HashSet;

pub fn check_range(r: &RangeRequest) -> Result<(), EtcdError> {
    if r.key.is_empty() {
        return Err(EtcdError::EmptyKey);
    }
    if range_request::SortOrder::try_from(r.sort_order).is_err()
        || range_request::SortTarget::try_from(r.sort_target).is_err()
    {
        return Err(EtcdError::InvalidSortOption);
    }
    Ok(())
}

pub fn check_put(r: &PutRequest) -> Result<(), EtcdError> {
    if r.key.is_empty() {
        return Err(EtcdError::EmptyKey);
    }
    if r.ignore_value && !r.value.is_empty() {
        return Err(EtcdError::ValueProvided);
    }
    if r.ignore_lease && r.lease != 0 {
        return Err(EtcdError::LeaseProvided);
    }
    Ok(())
}

pub fn check_delete(r: &DeleteRangeRequest) -> Result<(), EtcdError> {
    if r.key.is_empty() {
        return Err(EtcdError::EmptyKey);
    }
    Ok(())
}

fn check_request_op(u: &RequestOp, max_txn_ops: usize) -> Result<(), EtcdError> {
    match &u.request {
        Some(request_op::Request::RequestRange(r)) => check_range(r),
        Some(request_op::Request::RequestPut(r)) => check_put(r),
        Some(request_op::Request::RequestDeleteRange(r)) => check_delete(r),
        Some(request_op::Request::RequestTxn(r)) => check_txn_ops(r, max_txn_ops),
        // an empty op
        None => Err(EtcdError::KeyNotFound),
    }
}

fn check_txn_ops(r: &TxnRequest, max_txn_ops: usize) -> Result<(), EtcdError> {
    let opc = r.compare.len().max(r.success.len()).max(r.failure.len());
    if opc > max_txn_ops {
        return Err(EtcdError::TooManyOps);
    }
    if r.compare.iter().any(|c| c.key.is_empty()) {
        return Err(EtcdError::EmptyKey);
    }
    for u in r.success.iter().chain(r.failure.iter()) {
        check_request_op(u, max_txn_ops - opc)?;
    }
    Ok(())
}

/// etcd's `checkTxnRequest` followed by the duplicate-key check of both branches.
pub fn check_txn(r: &TxnRequest, max_txn_ops: usize) -> Result<(), EtcdError> {
    check_txn_ops(r, max_txn_ops)?;
    check_intervals(&r.success)?;
    check_intervals(&r.failure)?;
    Ok(())
}

/// etcd's `checkIntervals`: a txn must not write one key twice in the same branch (puts in
/// both branches of a nested txn are fine, they exclude each other).
/// Deleted intervals: (start, end); `None` is a single key, `Some([0])` everything from start.
type DelIntervals = Vec<(Vec<u8>, Option<Vec<u8>>)>;

pub fn check_intervals(reqs: &[RequestOp]) -> Result<(HashSet<Vec<u8>>, DelIntervals), EtcdError> {
    fn intersects(dels: &[(Vec<u8>, Option<Vec<u8>>)], k: &[u8]) -> bool {
        dels.iter().any(|(start, end)| match end {
            None => start.as_slice() == k,
            Some(end) if end.as_slice() == [0] => k >= start.as_slice(),
            Some(end) => k >= start.as_slice() && k < end.as_slice(),
        })
    }
    let mut dels: DelIntervals = Vec::new();
    for req in reqs {
        if let Some(request_op::Request::RequestDeleteRange(d)) = &req.request {
            let end = if d.range_end.is_empty() {
                None
            } else {
                Some(d.range_end.clone())
            };
            dels.push((d.key.clone(), end));
        }
    }
    let mut puts: HashSet<Vec<u8>> = HashSet::new();
    for req in reqs {
        let Some(request_op::Request::RequestTxn(t)) = &req.request else {
            continue;
        };
        let (puts_then, dels_then) = check_intervals(&t.success)?;
        let (puts_else, dels_else) = check_intervals(&t.failure)?;
        for k in &puts_then {
            if puts.contains(k) || intersects(&dels, k) {
                return Err(EtcdError::DuplicateKey);
            }
            puts.insert(k.clone());
        }
        for k in puts_else {
            if puts.contains(&k) && !puts_then.contains(&k) {
                return Err(EtcdError::DuplicateKey);
            }
            if intersects(&dels, &k) {
                return Err(EtcdError::DuplicateKey);
            }
            puts.insert(k);
        }
        dels.extend(dels_then);
        dels.extend(dels_else);
    }
    for req in reqs {
        let Some(request_op::Request::RequestPut(p)) = &req.request else {
            continue;
        };
        if puts.contains(&p.key) || intersects(&dels, &p.key) {
            return Err(EtcdError::DuplicateKey);
        }
        puts.insert(p.key.clone());
    }
    Ok((puts, dels))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put_op(k: &str) -> RequestOp {
        RequestOp {
            request: Some(request_op::Request::RequestPut(PutRequest {
                key: k.into(),
                ..Default::default()
            })),
        }
    }
    fn del_op(k: &str, end: &str) -> RequestOp {
        RequestOp {
            request: Some(request_op::Request::RequestDeleteRange(DeleteRangeRequest {
                key: k.into(),
                range_end: end.into(),
                ..Default::default()
            })),
        }
    }

    #[test]
    fn duplicate_keys() {
        let t = |ops: Vec<RequestOp>| {
            check_txn(
                &TxnRequest {
                    success: ops,
                    ..Default::default()
                },
                128,
            )
        };
        assert_eq!(t(vec![put_op("a"), put_op("a")]), Err(EtcdError::DuplicateKey));
        assert_eq!(
            t(vec![put_op("a"), del_op("a", "")]),
            Err(EtcdError::DuplicateKey)
        );
        assert_eq!(
            t(vec![put_op("b"), del_op("a", "c")]),
            Err(EtcdError::DuplicateKey)
        );
        assert_eq!(t(vec![put_op("c"), del_op("a", "c")]), Ok(()));
        assert_eq!(t(vec![del_op("a", "c"), del_op("b", "d")]), Ok(()));
        // puts in both branches of a nested txn exclude each other
        let nested = RequestOp {
            request: Some(request_op::Request::RequestTxn(TxnRequest {
                success: vec![put_op("x")],
                failure: vec![put_op("x")],
                ..Default::default()
            })),
        };
        assert_eq!(t(vec![nested.clone()]), Ok(()));
        assert_eq!(t(vec![nested, put_op("x")]), Err(EtcdError::DuplicateKey));
    }

    #[test]
    fn too_many_ops_and_empty_keys() {
        let ops: Vec<RequestOp> = (0..129).map(|i| put_op(&format!("k{i}"))).collect();
        let r = TxnRequest {
            success: ops.clone(),
            ..Default::default()
        };
        assert_eq!(check_txn(&r, 128), Err(EtcdError::TooManyOps));
        let r = TxnRequest {
            failure: ops[..128].to_vec(),
            ..Default::default()
        };
        assert_eq!(check_txn(&r, 128), Ok(()));
        let r = TxnRequest {
            success: vec![put_op("")],
            ..Default::default()
        };
        assert_eq!(check_txn(&r, 128), Err(EtcdError::EmptyKey));
        let r = TxnRequest {
            success: vec![RequestOp { request: None }],
            ..Default::default()
        };
        assert_eq!(check_txn(&r, 128), Err(EtcdError::KeyNotFound));
        assert_eq!(
            check_put(&PutRequest {
                key: b"k".to_vec(),
                ignore_value: true,
                value: b"v".to_vec(),
                ..Default::default()
            }),
            Err(EtcdError::ValueProvided)
        );
        assert_eq!(
            check_range(&RangeRequest {
                key: b"k".to_vec(),
                sort_order: 9,
                ..Default::default()
            }),
            Err(EtcdError::InvalidSortOption)
        );
    }
}

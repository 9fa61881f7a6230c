//! What a raft log entry carries: etcd's `InternalRaftRequest` (same field numbers as etcd's
//! `raft_internal.proto` for the requests it holds), protobuf-encoded.

use retcd_api::etcdserverpb::{
    CompactionRequest, DeleteRangeRequest, LeaseCheckpointRequest, LeaseGrantRequest, LeaseRevokeRequest,
    PutRequest, TxnRequest,
};

/// etcd's `RequestHeader` (only the id matters here).
#[derive(Clone, PartialEq, prost::Message)]
pub struct RequestHeader {
    #[prost(uint64, tag = "1")]
    pub id: u64,
}

/// One proposal. Exactly one request field is set.
#[derive(Clone, PartialEq, prost::Message)]
pub struct InternalRaftRequest {
    #[prost(message, optional, tag = "100")]
    pub header: Option<RequestHeader>,
    #[prost(message, optional, tag = "4")]
    pub put: Option<PutRequest>,
    #[prost(message, optional, tag = "5")]
    pub delete_range: Option<DeleteRangeRequest>,
    #[prost(message, optional, tag = "6")]
    pub txn: Option<TxnRequest>,
    #[prost(message, optional, tag = "7")]
    pub compaction: Option<CompactionRequest>,
    #[prost(message, optional, tag = "8")]
    pub lease_grant: Option<LeaseGrantRequest>,
    #[prost(message, optional, tag = "9")]
    pub lease_revoke: Option<LeaseRevokeRequest>,
    #[prost(message, optional, tag = "11")]
    pub lease_checkpoint: Option<LeaseCheckpointRequest>,
}

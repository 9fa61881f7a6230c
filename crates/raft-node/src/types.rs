//! The openraft type configuration: what a log entry carries and how members are named.

use std::any::Any;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The application data of a log entry: an encoded internal request (etcd's
/// `InternalRaftRequest`). This crate never looks inside it.
#[derive(Clone, PartialEq, Eq)]
pub struct RaftRequest(pub Vec<u8>);

impl fmt::Debug for RaftRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RaftRequest({} bytes)", self.0.len())
    }
}

impl fmt::Display for RaftRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// What applying one entry produced, handed back to the proposer. The applier decides the
/// concrete type; the proposer downcasts it.
pub struct ApplyReply(pub Box<dyn Any + Send + Sync>);

impl ApplyReply {
    pub fn new<T: Any + Send + Sync>(value: T) -> Self {
        ApplyReply(Box::new(value))
    }

    /// Reply for entries without client data (blank and membership entries).
    pub fn none() -> Self {
        ApplyReply(Box::new(()))
    }
}

impl fmt::Debug for ApplyReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApplyReply")
    }
}

/// etcd's member metadata, replicated in the raft membership (etcd keeps it in its v2 store).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MemberNode {
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
}

pub type LeaderId = openraft::impls::leader_id_std::LeaderId<u64, u64>;

openraft::declare_raft_types!(
    /// retcd's raft types: member ids are etcd's 64-bit member ids, one leader per term (as etcd).
    pub TypeConfig:
        D = RaftRequest,
        R = ApplyReply,
        NodeId = u64,
        Node = MemberNode,
        Term = u64,
        LeaderId = LeaderId,
);

pub type LogId = openraft::alias::LogIdOf<TypeConfig>;
pub type Vote = openraft::alias::VoteOf<TypeConfig>;
pub type Entry = openraft::alias::EntryOf<TypeConfig>;
pub type Membership = openraft::Membership<u64, MemberNode>;
pub type StoredMembership = openraft::alias::StoredMembershipOf<TypeConfig>;
pub type CommittedLeaderId = openraft::alias::CommittedLeaderIdOf<TypeConfig>;

pub fn log_id(term: u64, index: u64) -> LogId {
    openraft::LogId::new(CommittedLeaderId::new(term), index)
}

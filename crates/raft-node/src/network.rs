//! The peer network seen by openraft. A single-member cluster never sends anything; the gRPC
//! peer transport for multi-member clusters replaces [`NoPeers`] (multi-member issue).

use std::future::Future;

use openraft::RaftNetworkV2;
use openraft::errors::{RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};

use crate::state_machine::SnapshotData;
use crate::types::{MemberNode, TypeConfig, Vote};

/// A network with no peers: every RPC reports the target unreachable.
#[derive(Clone, Default)]
pub struct NoPeers;

fn unreachable(target: u64) -> Unreachable<TypeConfig> {
    Unreachable::new(&std::io::Error::other(format!(
        "no peer transport to member {target:x} (single-member server)"
    )))
}

impl RaftNetworkFactory<TypeConfig> for NoPeers {
    type Network = NoPeerClient;

    async fn new_client(&mut self, target: u64, _node: &MemberNode) -> Self::Network {
        NoPeerClient { target }
    }
}

pub struct NoPeerClient {
    target: u64,
}

impl RaftNetworkV2<TypeConfig> for NoPeerClient {
    type SnapshotData = SnapshotData;

    async fn append_entries(
        &mut self,
        _rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        Err(RPCError::Unreachable(unreachable(self.target)))
    }

    async fn vote(
        &mut self,
        _rpc: VoteRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        Err(RPCError::Unreachable(unreachable(self.target)))
    }

    async fn full_snapshot(
        &mut self,
        _vote: Vote,
        _snapshot: openraft::alias::SnapshotOf<TypeConfig, SnapshotData>,
        _cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        Err(StreamingError::Unreachable(unreachable(self.target)))
    }
}

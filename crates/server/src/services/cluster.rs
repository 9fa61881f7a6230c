//! etcdserverpb.Cluster: MemberList from the replicated membership; membership changes are
//! not built yet (issue 6).

use std::sync::Arc;

use retcd_api::etcdserverpb::cluster_server::Cluster;
use retcd_api::etcdserverpb::{
    Member, MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse, MemberPromoteRequest,
    MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse, MemberUpdateRequest,
    MemberUpdateResponse, ResponseHeader,
};
use retcd_api::unimplemented;
use tonic::{Request, Response, Status};

use crate::etcdserver::EtcdServer;

pub struct ClusterService {
    pub s: Arc<EtcdServer>,
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(&self, _: Request<MemberAddRequest>) -> Result<Response<MemberAddResponse>, Status> {
        Err(unimplemented("etcdserverpb.Cluster/MemberAdd", "issue 6"))
    }

    async fn member_remove(
        &self,
        _: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        Err(unimplemented("etcdserverpb.Cluster/MemberRemove", "issue 6"))
    }

    async fn member_update(
        &self,
        _: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        Err(unimplemented("etcdserverpb.Cluster/MemberUpdate", "issue 6"))
    }

    async fn member_list(
        &self,
        _: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        let members = self
            .s
            .raft
            .members()
            .into_iter()
            .map(|(id, node, is_learner)| Member {
                id,
                name: node.name,
                peer_ur_ls: node.peer_urls,
                client_ur_ls: node.client_urls,
                is_learner,
            })
            .collect();
        // etcd's member list header carries no revision.
        let header = Some(ResponseHeader {
            cluster_id: self.s.cluster_id,
            member_id: self.s.member_id,
            revision: 0,
            raft_term: self.s.raft.term(),
        });
        Ok(Response::new(MemberListResponse { header, members }))
    }

    async fn member_promote(
        &self,
        _: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        Err(unimplemented("etcdserverpb.Cluster/MemberPromote", "issue 6"))
    }
}

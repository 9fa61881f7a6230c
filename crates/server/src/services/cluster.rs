//! etcdserverpb.Cluster: MemberList from the replicated membership, and membership changes
//! (MemberAdd with learners, MemberRemove, MemberUpdate, MemberPromote) with etcd's checks
//! and errors, carried out through raft by the leader.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use retcd_api::EtcdError;
use retcd_api::etcdserverpb::cluster_server::Cluster;
use retcd_api::etcdserverpb::{
    Member, MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse, MemberPromoteRequest,
    MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse, MemberUpdateRequest,
    MemberUpdateResponse, ResponseHeader,
};
use retcd_raft_node::{MemberChange, MemberNode, RaftNodeError};
use sha1::{Digest, Sha1};
use tonic::{Request, Response, Status};

use crate::etcdserver::EtcdServer;

pub struct ClusterService {
    pub s: Arc<EtcdServer>,
}

/// etcd allows one learner at a time.
const MAX_LEARNERS: usize = 1;

/// etcd's `NewMember` id for a member added at run time: sha1 of the sorted peer URLs and
/// the time in seconds (no cluster name), first 8 bytes.
fn added_member_id(peer_urls: &[String], unix_secs: u64) -> u64 {
    let mut urls = peer_urls.to_vec();
    urls.sort();
    let mut h = Sha1::new();
    h.update(urls.concat().as_bytes());
    h.update(unix_secs.to_string().as_bytes());
    let d = h.finalize();
    u64::from_be_bytes(d[..8].try_into().unwrap_or([0; 8]))
}

/// etcd's `types.NewURLs`: every URL parses, has a scheme and a host:port, no path.
fn valid_peer_urls(urls: &[String]) -> bool {
    !urls.is_empty()
        && urls.iter().all(|u| {
            let Some((scheme, rest)) = u.split_once("://") else {
                return false;
            };
            matches!(scheme, "http" | "https" | "unix" | "unixs")
                && !rest.is_empty()
                && !rest.contains('/')
                && rest
                    .rsplit_once(':')
                    .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
        })
}

fn membership_err(e: RaftNodeError) -> Status {
    match e {
        RaftNodeError::LearnerNotReady => EtcdError::LearnerNotReady.into(),
        RaftNodeError::NoLeader => EtcdError::NoLeader.into(),
        RaftNodeError::LeaderChanged | RaftNodeError::NotLeader { .. } => EtcdError::LeaderChanged.into(),
        RaftNodeError::Stopped(_) => EtcdError::Stopped.into(),
        other => EtcdError::Internal(other.to_string()).into(),
    }
}

impl EtcdServer {
    /// The members, by id, as etcd's `Member` messages.
    pub fn members(&self) -> Vec<Member> {
        self.raft
            .members()
            .into_iter()
            .map(|(id, node, is_learner)| Member {
                id,
                name: node.name,
                peer_ur_ls: node.peer_urls,
                client_ur_ls: node.client_urls,
                is_learner,
            })
            .collect()
    }

    /// etcd's membership headers carry no revision.
    fn member_header(&self) -> Option<ResponseHeader> {
        Some(ResponseHeader {
            cluster_id: self.cluster_id,
            member_id: self.member_id,
            revision: 0,
            raft_term: self.raft.term(),
        })
    }

    pub fn member_list(&self) -> MemberListResponse {
        MemberListResponse {
            header: self.member_header(),
            members: self.members(),
        }
    }

    /// etcd's strict reconfiguration check for adding a voter: after the change, the
    /// members that have started (published their name) must still be a quorum.
    fn ready_to_add_voter(&self, members: &[Member]) -> bool {
        let voters: Vec<&Member> = members.iter().filter(|m| !m.is_learner).collect();
        let n = voters.len() + 1;
        let started = voters.iter().filter(|m| !m.name.is_empty()).count();
        if started == 1 && n == 2 {
            return true;
        }
        started > n / 2
    }

    fn find_member(&self, id: u64) -> Result<Member, Status> {
        self.members()
            .into_iter()
            .find(|m| m.id == id)
            .ok_or_else(|| EtcdError::MemberNotFound.into())
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(
        &self,
        request: Request<MemberAddRequest>,
    ) -> Result<Response<MemberAddResponse>, Status> {
        let md = request.metadata().clone();
        self.s
            .as_caller(&md, async move {
                self.s.auth.check_admin()?;
                let r = request.into_inner();
                if !valid_peer_urls(&r.peer_ur_ls) {
                    return Err(EtcdError::MemberBadUrls.into());
                }
                let members = self.s.members();
                if members
                    .iter()
                    .any(|m| m.peer_ur_ls.iter().any(|u| r.peer_ur_ls.contains(u)))
                {
                    return Err(EtcdError::PeerUrlExist.into());
                }
                if r.is_learner {
                    if members.iter().filter(|m| m.is_learner).count() >= MAX_LEARNERS {
                        return Err(EtcdError::TooManyLearners.into());
                    }
                } else if !self.s.ready_to_add_voter(&members) {
                    return Err(EtcdError::MemberNotEnoughStarted.into());
                }
                let secs = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                let id = added_member_id(&r.peer_ur_ls, secs);
                if members.iter().any(|m| m.id == id) {
                    return Err(EtcdError::MemberExist.into());
                }
                let node = MemberNode {
                    name: String::new(),
                    peer_urls: r.peer_ur_ls.clone(),
                    client_urls: vec![],
                };
                self.s
                    .raft
                    .change_member(MemberChange::Add {
                        id,
                        node,
                        learner: r.is_learner,
                    })
                    .await
                    .map_err(membership_err)?;
                Ok(Response::new(MemberAddResponse {
                    header: self.s.member_header(),
                    member: Some(Member {
                        id,
                        name: String::new(),
                        peer_ur_ls: r.peer_ur_ls,
                        client_ur_ls: vec![],
                        is_learner: r.is_learner,
                    }),
                    members: self.s.members(),
                }))
            })
            .await
    }

    async fn member_remove(
        &self,
        request: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        let md = request.metadata().clone();
        self.s
            .as_caller(&md, async move {
                self.s.auth.check_admin()?;
                let id = request.into_inner().id;
                let target = self.s.find_member(id)?;
                if !target.is_learner {
                    // strict reconfiguration: the started voters left must be a quorum
                    let members = self.s.members();
                    let voters: Vec<&Member> =
                        members.iter().filter(|m| !m.is_learner && m.id != id).collect();
                    let started = voters.iter().filter(|m| !m.name.is_empty()).count();
                    if started <= voters.len() / 2 {
                        return Err(EtcdError::MemberNotEnoughStarted.into());
                    }
                }
                self.s
                    .raft
                    .change_member(MemberChange::Remove { id })
                    .await
                    .map_err(membership_err)?;
                Ok(Response::new(MemberRemoveResponse {
                    header: self.s.member_header(),
                    members: self.s.members(),
                }))
            })
            .await
    }

    async fn member_update(
        &self,
        request: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        let md = request.metadata().clone();
        self.s
            .as_caller(&md, async move {
                self.s.auth.check_admin()?;
                let r = request.into_inner();
                if !valid_peer_urls(&r.peer_ur_ls) {
                    return Err(EtcdError::MemberBadUrls.into());
                }
                let target = self.s.find_member(r.id)?;
                if self
                    .s
                    .members()
                    .iter()
                    .any(|m| m.id != r.id && m.peer_ur_ls.iter().any(|u| r.peer_ur_ls.contains(u)))
                {
                    return Err(EtcdError::PeerUrlExist.into());
                }
                let node = MemberNode {
                    name: target.name,
                    peer_urls: r.peer_ur_ls,
                    client_urls: target.client_ur_ls,
                };
                self.s
                    .raft
                    .change_member(MemberChange::SetNode { id: r.id, node })
                    .await
                    .map_err(membership_err)?;
                Ok(Response::new(MemberUpdateResponse {
                    header: self.s.member_header(),
                    members: self.s.members(),
                }))
            })
            .await
    }

    /// etcd 3.5's `linearizable` option: the membership as of a ReadIndex (this member
    /// has applied every change committed before the request), not the local view.
    async fn member_list(
        &self,
        request: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        // etcd 3.4 answers without looking at the credentials (a token that is not
        // valid is not refused)
        async move {
            if request.into_inner().linearizable {
                self.s.linearizable_read().await?;
            }
            Ok(Response::new(self.s.member_list()))
        }
        .await
    }

    async fn member_promote(
        &self,
        request: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        let md = request.metadata().clone();
        self.s
            .as_caller(&md, async move {
                self.s.auth.check_admin()?;
                let id = request.into_inner().id;
                let target = self.s.find_member(id)?;
                if !target.is_learner {
                    return Err(EtcdError::MemberNotLearner.into());
                }
                self.s
                    .raft
                    .change_member(MemberChange::Promote { id })
                    .await
                    .map_err(membership_err)?;
                Ok(Response::new(MemberPromoteResponse {
                    header: self.s.member_header(),
                    members: self.s.members(),
                }))
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_url_validation() {
        assert!(valid_peer_urls(&["http://127.0.0.1:2380".into()]));
        assert!(valid_peer_urls(&[
            "https://10.0.0.1:2380".into(),
            "http://h:1".into()
        ]));
        assert!(!valid_peer_urls(&[]));
        assert!(!valid_peer_urls(&["127.0.0.1:2380".into()]));
        assert!(!valid_peer_urls(&["http://127.0.0.1".into()]));
        assert!(!valid_peer_urls(&["http://127.0.0.1:2380/x".into()]));
        assert!(!valid_peer_urls(&["ftp://127.0.0.1:2380".into()]));
    }

    #[test]
    fn added_member_ids_depend_on_urls_and_time() {
        let a = added_member_id(&["http://127.0.0.1:2380".into()], 1_700_000_000);
        assert_eq!(
            a,
            added_member_id(&["http://127.0.0.1:2380".into()], 1_700_000_000)
        );
        assert_ne!(
            a,
            added_member_id(&["http://127.0.0.1:2380".into()], 1_700_000_001)
        );
        assert_ne!(
            a,
            added_member_id(&["http://127.0.0.1:2381".into()], 1_700_000_000)
        );
    }
}

//! etcdserverpb.Lease: LeaseGrant, LeaseRevoke, LeaseKeepAlive, LeaseTimeToLive,
//! LeaseLeases (etcd's v3rpc `LeaseServer` over `EtcdServer`'s lease methods).

use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use futures::Stream;
use retcd_api::EtcdError;
use retcd_api::etcdserverpb::lease_server::Lease;
use retcd_api::etcdserverpb::{
    LeaseCheckpoint, LeaseCheckpointRequest, LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest,
    LeaseKeepAliveResponse, LeaseLeasesRequest, LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse,
    LeaseStatus, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};
use retcd_lease::{LeaseError, NO_LEASE};
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};

use crate::applier::Applied;
use crate::etcdserver::{EtcdServer, request_timeout};
use crate::lease::lease_error;
use crate::raft_request::InternalRaftRequest;

pub struct LeaseService {
    pub s: Arc<EtcdServer>,
}

fn unexpected() -> Status {
    EtcdError::Internal("unexpected apply result".into()).into()
}

/// Responses a keep-alive stream may have queued for a client that does not read.
const KEEPALIVE_QUEUE: usize = 16;

impl EtcdServer {
    /// etcd's `LeaseGrant`: picks an id when none is given, then grants through raft.
    pub async fn lease_grant(&self, mut r: LeaseGrantRequest) -> Result<LeaseGrantResponse, Status> {
        while r.id == NO_LEASE {
            // only positive ids
            r.id = (self.id_gen.next() & (i64::MAX as u64)) as i64;
        }
        match self
            .propose(InternalRaftRequest {
                lease_grant: Some(r),
                ..Default::default()
            })
            .await?
        {
            Applied::LeaseGrant(mut resp) => {
                self.fill(&mut resp.header);
                Ok(resp)
            }
            _ => Err(unexpected()),
        }
    }

    pub async fn lease_revoke(&self, id: i64) -> Result<LeaseRevokeResponse, Status> {
        match self
            .propose(InternalRaftRequest {
                lease_revoke: Some(LeaseRevokeRequest { id }),
                ..Default::default()
            })
            .await?
        {
            Applied::LeaseRevoke(mut resp) => {
                self.fill(&mut resp.header);
                Ok(resp)
            }
            _ => Err(unexpected()),
        }
    }

    /// etcd's `LeaseRenew` on the leader: the lease's TTL, `None` when it is gone. An
    /// expired lease whose revoke is on its way waits for the revoke (then: gone).
    pub async fn lease_renew(&self, id: i64) -> Result<Option<i64>, Status> {
        let deadline = tokio::time::Instant::now() + request_timeout(&self.cfg);
        loop {
            let notified = self.leases.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let renewed = self.leases.lock().renew(id, Instant::now());
            match renewed {
                Ok((ttl, clear)) => {
                    if let Some(cp) = clear {
                        // tell the other members the checkpointed remaining TTL is gone
                        let req = InternalRaftRequest {
                            lease_checkpoint: Some(LeaseCheckpointRequest {
                                checkpoints: vec![LeaseCheckpoint {
                                    id: cp.id,
                                    remaining_ttl: cp.remaining_ttl,
                                }],
                            }),
                            ..Default::default()
                        };
                        self.propose(req).await?;
                    }
                    return Ok(Some(ttl));
                }
                Err(LeaseError::NotFound) => return Ok(None),
                Err(LeaseError::Expired) => {
                    if tokio::time::timeout_at(deadline, notified).await.is_err() {
                        return Err(EtcdError::Timeout.into());
                    }
                }
                Err(e) => return Err(lease_error(e).into()),
            }
        }
    }
}

#[tonic::async_trait]
impl Lease for LeaseService {
    async fn lease_grant(
        &self,
        request: Request<LeaseGrantRequest>,
    ) -> Result<Response<LeaseGrantResponse>, Status> {
        Ok(Response::new(self.s.lease_grant(request.into_inner()).await?))
    }

    async fn lease_revoke(
        &self,
        request: Request<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        Ok(Response::new(self.s.lease_revoke(request.into_inner().id).await?))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        let r = request.into_inner();
        let status = self.s.leases.lock().status(r.id, r.keys, Instant::now());
        let mut resp = match status {
            Some(st) => LeaseTimeToLiveResponse {
                header: None,
                id: r.id,
                ttl: st.remaining,
                granted_ttl: st.granted_ttl,
                keys: st.keys,
            },
            // etcd answers a missing lease with TTL -1 rather than an error
            None => LeaseTimeToLiveResponse {
                header: None,
                id: r.id,
                ttl: -1,
                granted_ttl: 0,
                keys: Vec::new(),
            },
        };
        self.s.fill(&mut resp.header);
        Ok(Response::new(resp))
    }

    async fn lease_leases(
        &self,
        _request: Request<LeaseLeasesRequest>,
    ) -> Result<Response<LeaseLeasesResponse>, Status> {
        let ids = self.s.leases.lock().leases();
        let mut resp = LeaseLeasesResponse {
            header: None,
            leases: ids.into_iter().map(|id| LeaseStatus { id }).collect(),
        };
        self.s.fill(&mut resp.header);
        Ok(Response::new(resp))
    }

    type LeaseKeepAliveStream = Pin<Box<dyn Stream<Item = Result<LeaseKeepAliveResponse, Status>> + Send>>;

    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let mut incoming = request.into_inner();
        let (tx, rx) = mpsc::channel(KEEPALIVE_QUEUE);
        let s = self.s.clone();
        tokio::spawn(async move {
            // requests of one stream are answered in order, as etcd's keepAliveLoop does
            loop {
                let req = match incoming.message().await {
                    Ok(Some(req)) => req,
                    Ok(None) => return,
                    Err(e) => {
                        tracing::debug!("lease keepalive stream: {e}");
                        return;
                    }
                };
                let ttl = match s.lease_renew(req.id).await {
                    // a gone lease answers TTL 0
                    Ok(ttl) => ttl.unwrap_or(0),
                    Err(st) => {
                        let _ = tx.send(Err(st)).await;
                        return;
                    }
                };
                let mut resp = LeaseKeepAliveResponse {
                    header: None,
                    id: req.id,
                    ttl,
                };
                s.fill(&mut resp.header);
                if tx.send(Ok(resp)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}

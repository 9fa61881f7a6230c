//! etcdserverpb.Lease: LeaseGrant, LeaseRevoke, LeaseKeepAlive, LeaseTimeToLive,
//! LeaseLeases (etcd's v3rpc `LeaseServer` over `EtcdServer`'s lease methods).

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use retcd_api::etcdserverpb::lease_server::Lease;
use retcd_api::etcdserverpb::{
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseLeasesRequest,
    LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse, LeaseStatus, LeaseTimeToLiveRequest,
    LeaseTimeToLiveResponse,
};
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};

use crate::etcdserver::EtcdServer;

pub struct LeaseService {
    pub s: Arc<EtcdServer>,
}

/// Responses a keep-alive stream may have queued for a client that does not read.
const KEEPALIVE_QUEUE: usize = 16;

#[tonic::async_trait]
impl Lease for LeaseService {
    async fn lease_grant(
        &self,
        request: Request<LeaseGrantRequest>,
    ) -> Result<Response<LeaseGrantResponse>, Status> {
        let md = request.metadata().clone();
        self.s
            .as_caller(&md, async move {
                Ok(Response::new(self.s.lease_grant(request.into_inner()).await?))
            })
            .await
    }

    async fn lease_revoke(
        &self,
        request: Request<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        let md = request.metadata().clone();
        self.s
            .as_caller(&md, async move {
                Ok(Response::new(self.s.lease_revoke(request.into_inner().id).await?))
            })
            .await
    }

    async fn lease_time_to_live(
        &self,
        request: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        // etcd 3.4 answers without looking at the credentials (a token that is not
        // valid is not refused)
        async move {
            let mut resp = self.s.lease_time_to_live(request.into_inner()).await?;
            self.s.fill(&mut resp.header);
            Ok(Response::new(resp))
        }
        .await
    }

    async fn lease_leases(
        &self,
        _request: Request<LeaseLeasesRequest>,
    ) -> Result<Response<LeaseLeasesResponse>, Status> {
        // etcd 3.4 answers without looking at the credentials (a token that is not
        // valid is not refused)
        async move {
            let ids = self.s.leases.lock().leases();
            let mut resp = LeaseLeasesResponse {
                header: None,
                leases: ids.into_iter().map(|id| LeaseStatus { id }).collect(),
            };
            self.s.fill(&mut resp.header);
            Ok(Response::new(resp))
        }
        .await
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

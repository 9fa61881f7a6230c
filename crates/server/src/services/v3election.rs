//! v3electionpb.Election: Campaign, Proclaim, Leader, Observe, Resign, as etcd's
//! v3election server runs `concurrency.Election` on its own KV: the candidate with the
//! lowest create revision under `<name>/` is the leader.

use std::pin::Pin;

use futures::Stream;
use retcd_api::EtcdError;
use retcd_api::etcdserverpb::{DeleteRangeRequest, PutRequest, RequestOp, ResponseHeader, request_op};
use retcd_api::mvccpb;
use retcd_api::v3electionpb::election_server::Election;
use retcd_api::v3electionpb::{
    CampaignRequest, CampaignResponse, LeaderKey, LeaderRequest, LeaderResponse, ProclaimRequest,
    ProclaimResponse, ResignRequest, ResignResponse,
};
use retcd_mvcc::EventType;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};

use super::concurrency::{
    DeleteOnDrop, Recipes, as_client_error, create_revision_is, first_create, lease_key, op_get, prefix_end,
    range_kvs,
};

pub struct ElectionService {
    pub r: Recipes,
}

fn prefix_of(name: &[u8]) -> Vec<u8> {
    let mut p = name.to_vec();
    p.push(b'/');
    p
}

fn op_put(key: &[u8], value: Vec<u8>, lease: i64) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(PutRequest {
            key: key.to_vec(),
            value,
            lease,
            ..Default::default()
        })),
    }
}

fn to_kv(ev: &retcd_mvcc::Event) -> mvccpb::KeyValue {
    let kv = &ev.kv;
    mvccpb::KeyValue {
        key: kv.key.clone(),
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
        value: kv.value.clone(),
        lease: kv.lease,
    }
}

impl ElectionService {
    /// etcd's `Election.Proclaim` for a resumed leader: puts the value if `leader` still
    /// holds its key.
    async fn proclaim(&self, leader: &LeaderKey, value: Vec<u8>) -> Result<Option<ResponseHeader>, Status> {
        let resp = self
            .r
            .txn(
                vec![create_revision_is(&leader.key, leader.rev)],
                vec![op_put(&leader.key, value, leader.lease)],
                vec![],
            )
            .await?;
        if !resp.succeeded {
            return Err(EtcdError::ElectionNotLeader.into());
        }
        Ok(resp.header)
    }

    /// etcd's `Election.Resign`: deletes the leader key if it is still this leader's.
    async fn resign(&self, leader: &LeaderKey) -> Result<Option<ResponseHeader>, Status> {
        let del = RequestOp {
            request: Some(request_op::Request::RequestDeleteRange(DeleteRangeRequest {
                key: leader.key.clone(),
                ..Default::default()
            })),
        };
        let resp = self
            .r
            .txn(
                vec![create_revision_is(&leader.key, leader.rev)],
                vec![del],
                vec![],
            )
            .await?;
        Ok(resp.header)
    }
}

/// etcd's `Election.observe`: sends the current leader, then every change of its value,
/// then the next leader when it resigns, until the client goes away.
async fn observe(
    r: Recipes,
    prefix: Vec<u8>,
    tx: mpsc::Sender<Result<LeaderResponse, Status>>,
) -> Result<(), Status> {
    loop {
        let resp = r.s.range(first_create(&prefix)).await?;
        let (mut header, kv) = match resp.kvs.into_iter().next() {
            Some(kv) => (resp.header.unwrap_or_default(), kv),
            None => {
                // wait for the first put on the prefix
                let rev = resp.header.as_ref().map(|h| h.revision).unwrap_or(0);
                let end = prefix_end(&prefix);
                let mut w = r.watch(&prefix, Some(&end), rev, false);
                let mut found = None;
                while found.is_none() {
                    let batch = w.recv().await;
                    if batch.compact_revision != 0 {
                        return Err(EtcdError::Compacted.into());
                    }
                    // only puts: a delete would make this spin
                    if let Some(ev) = batch.events.iter().find(|e| e.kind == EventType::Put) {
                        let mut h = r.s.header(batch.revision).unwrap_or_default();
                        h.revision = ev.kv.mod_revision;
                        found = Some((h, to_kv(ev)));
                    }
                }
                found.unwrap_or_default()
            }
        };
        if tx
            .send(Ok(LeaderResponse {
                header: Some(header),
                kv: Some(kv.clone()),
            }))
            .await
            .is_err()
        {
            return Ok(());
        }
        // follow this leader's key until it is deleted
        let mut w = r.watch(&kv.key, None, header.revision + 1, false);
        'leader: loop {
            let batch = w.recv().await;
            if batch.compact_revision != 0 {
                return Err(EtcdError::Compacted.into());
            }
            for ev in batch.events.iter() {
                if ev.kind == EventType::Delete {
                    break 'leader;
                }
                header = r.s.header(batch.revision).unwrap_or_default();
                if tx
                    .send(Ok(LeaderResponse {
                        header: Some(header),
                        kv: Some(to_kv(ev)),
                    }))
                    .await
                    .is_err()
                {
                    return Ok(());
                }
            }
        }
    }
}

#[tonic::async_trait]
impl Election for ElectionService {
    async fn campaign(
        &self,
        request: Request<CampaignRequest>,
    ) -> Result<Response<CampaignResponse>, Status> {
        let md = request.metadata().clone();
        self.r
            .s
            .as_caller(&md, async move {
                self.campaign_inner(request.into_inner())
                    .await
                    .map(Response::new)
                    .map_err(as_client_error)
            })
            .await
    }

    async fn proclaim(
        &self,
        request: Request<ProclaimRequest>,
    ) -> Result<Response<ProclaimResponse>, Status> {
        let md = request.metadata().clone();
        self.r
            .s
            .as_caller(&md, async move {
                let req = request.into_inner();
                let leader = req.leader.ok_or(EtcdError::ElectionMissingLeaderKey)?;
                let header = ElectionService::proclaim(self, &leader, req.value)
                    .await
                    .map_err(as_client_error)?;
                Ok(Response::new(ProclaimResponse { header }))
            })
            .await
    }

    async fn leader(&self, request: Request<LeaderRequest>) -> Result<Response<LeaderResponse>, Status> {
        let md = request.metadata().clone();
        self.r
            .s
            .as_caller(&md, async move {
                let prefix = prefix_of(&request.into_inner().name);
                let resp = self
                    .r
                    .s
                    .range(first_create(&prefix))
                    .await
                    .map_err(as_client_error)?;
                let kv = resp.kvs.into_iter().next().ok_or(EtcdError::ElectionNoLeader)?;
                Ok(Response::new(LeaderResponse {
                    header: resp.header,
                    kv: Some(kv),
                }))
            })
            .await
    }

    type ObserveStream = Pin<Box<dyn Stream<Item = Result<LeaderResponse, Status>> + Send>>;

    async fn observe(
        &self,
        request: Request<LeaderRequest>,
    ) -> Result<Response<Self::ObserveStream>, Status> {
        let who = self.r.s.auth.info_from(request.metadata())?;
        let prefix = prefix_of(&request.into_inner().name);
        let (tx, rx) = mpsc::channel(16);
        let r = self.r.clone();
        tokio::spawn(crate::auth::scoped(who, async move {
            let errors = tx.clone();
            tokio::select! {
                res = observe(r, prefix, tx) => {
                    if let Err(e) = res {
                        let _ = errors.send(Err(as_client_error(e))).await;
                    }
                }
                _ = errors.closed() => {}
            }
        }));
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn resign(&self, request: Request<ResignRequest>) -> Result<Response<ResignResponse>, Status> {
        let md = request.metadata().clone();
        self.r
            .s
            .as_caller(&md, async move {
                let leader = request
                    .into_inner()
                    .leader
                    .ok_or(EtcdError::ElectionMissingLeaderKey)?;
                let header = ElectionService::resign(self, &leader)
                    .await
                    .map_err(as_client_error)?;
                Ok(Response::new(ResignResponse { header }))
            })
            .await
    }
}

impl ElectionService {
    async fn campaign_inner(&self, req: CampaignRequest) -> Result<CampaignResponse, Status> {
        let lease = self.r.session_lease(req.lease).await?;
        let prefix = prefix_of(&req.name);
        let key = lease_key(&prefix, lease);
        let resp = self
            .r
            .txn(
                vec![create_revision_is(&key, 0)],
                vec![op_put(&key, req.value.clone(), lease)],
                vec![op_get(&key)],
            )
            .await?;
        let mut leader = LeaderKey {
            name: req.name.clone(),
            key: key.clone(),
            rev: resp.header.as_ref().map(|h| h.revision).unwrap_or(0),
            lease,
        };
        // give up our candidacy if the client goes away while waiting
        let guard = DeleteOnDrop {
            r: self.r.clone(),
            key: Some(key.clone()),
        };
        if !resp.succeeded
            && let Some(kv) = range_kvs(&resp, 0).first()
        {
            leader.rev = kv.create_revision;
            if kv.value != req.value
                && let Err(e) = self.proclaim(&leader, req.value.clone()).await
            {
                guard.disarm();
                let _ = self.resign(&leader).await;
                return Err(e);
            }
        }
        self.r.wait_deletes(&prefix, leader.rev - 1).await?;
        guard.disarm();
        Ok(CampaignResponse {
            header: resp.header,
            leader: Some(leader),
        })
    }
}

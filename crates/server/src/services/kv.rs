//! etcdserverpb.KV: Range, Put, DeleteRange, Txn, Compact.

use std::sync::Arc;

use retcd_api::EtcdError;
use retcd_api::etcdserverpb::kv_server::Kv;
use retcd_api::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse,
    RangeRequest, RangeResponse, TxnRequest, TxnResponse,
};
use tonic::{Request, Response, Status};

use crate::applier::{self, Applied};
use crate::checks;
use crate::etcdserver::EtcdServer;
use crate::raft_request::InternalRaftRequest;

pub struct KvService {
    pub s: Arc<EtcdServer>,
}

fn unexpected() -> Status {
    EtcdError::Internal("unexpected apply result".into()).into()
}

fn internal(e: impl std::fmt::Display) -> Status {
    EtcdError::Internal(e.to_string()).into()
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(&self, request: Request<RangeRequest>) -> Result<Response<RangeResponse>, Status> {
        let r = request.into_inner();
        checks::check_range(&r)?;
        if !r.serializable {
            self.s.linearizable_read().await?;
        }
        let store = self.s.store.clone();
        // Large ranges are CPU and disk work: keep them off the async workers.
        let mut resp = tokio::task::spawn_blocking(move || applier::range(&store.read(), &r))
            .await
            .map_err(internal)?
            .map_err(internal)??;
        self.s.fill(&mut resp.header);
        Ok(Response::new(resp))
    }

    async fn put(&self, request: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let r = request.into_inner();
        checks::check_put(&r)?;
        match self
            .s
            .propose(InternalRaftRequest {
                put: Some(r),
                ..Default::default()
            })
            .await?
        {
            Applied::Put(mut resp) => {
                self.s.fill(&mut resp.header);
                Ok(Response::new(resp))
            }
            _ => Err(unexpected()),
        }
    }

    async fn delete_range(
        &self,
        request: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        let r = request.into_inner();
        checks::check_delete(&r)?;
        match self
            .s
            .propose(InternalRaftRequest {
                delete_range: Some(r),
                ..Default::default()
            })
            .await?
        {
            Applied::DeleteRange(mut resp) => {
                self.s.fill(&mut resp.header);
                Ok(Response::new(resp))
            }
            _ => Err(unexpected()),
        }
    }

    async fn txn(&self, request: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        let r = request.into_inner();
        checks::check_txn(&r, self.s.cfg.max_txn_ops as usize)?;
        if applier::txn_is_readonly(&r) {
            if !applier::txn_is_serializable(&r) {
                self.s.linearizable_read().await?;
            }
            let store = self.s.store.clone();
            let mut resp = tokio::task::spawn_blocking(move || {
                let view = store.read();
                applier::read_only_txn(&view, &r, store.compact_revision())
            })
            .await
            .map_err(internal)?
            .map_err(internal)??;
            self.s.fill(&mut resp.header);
            return Ok(Response::new(resp));
        }
        match self
            .s
            .propose(InternalRaftRequest {
                txn: Some(r),
                ..Default::default()
            })
            .await?
        {
            Applied::Txn(mut resp) => {
                self.s.fill(&mut resp.header);
                Ok(Response::new(resp))
            }
            _ => Err(unexpected()),
        }
    }

    async fn compact(
        &self,
        request: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        let r = request.into_inner();
        let physical = r.physical;
        match self
            .s
            .propose(InternalRaftRequest {
                compaction: Some(r),
                ..Default::default()
            })
            .await?
        {
            Applied::Compaction(mut resp, done) => {
                if physical {
                    // Wait until the compacted history is gone from the backend.
                    let _ = done.await;
                }
                self.s.fill(&mut resp.header);
                Ok(Response::new(resp))
            }
            _ => Err(unexpected()),
        }
    }
}

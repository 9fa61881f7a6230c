//! etcdserverpb.KV: Range, Put, DeleteRange, Txn, Compact.

use std::sync::Arc;

use retcd_api::etcdserverpb::kv_server::Kv;
use retcd_api::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse,
    RangeRequest, RangeResponse, TxnRequest, TxnResponse,
};
use tonic::{Request, Response, Status};

use crate::checks;
use crate::etcdserver::EtcdServer;

pub struct KvService {
    pub s: Arc<EtcdServer>,
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(&self, request: Request<RangeRequest>) -> Result<Response<RangeResponse>, Status> {
        let md = request.metadata().clone();
        self.s
            .as_caller(&md, async move {
                let r = request.into_inner();
                checks::check_range(&r)?;
                Ok(Response::new(self.s.range(r).await?))
            })
            .await
    }

    async fn put(&self, request: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let md = request.metadata().clone();
        self.s
            .as_caller(&md, async move {
                let r = request.into_inner();
                checks::check_put(&r)?;
                Ok(Response::new(self.s.put(r).await?))
            })
            .await
    }

    async fn delete_range(
        &self,
        request: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        let md = request.metadata().clone();
        self.s
            .as_caller(&md, async move {
                let r = request.into_inner();
                checks::check_delete(&r)?;
                Ok(Response::new(self.s.delete_range(r).await?))
            })
            .await
    }

    async fn txn(&self, request: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        let md = request.metadata().clone();
        self.s
            .as_caller(&md, async move {
                let r = request.into_inner();
                checks::check_txn(&r, self.s.cfg.max_txn_ops as usize)?;
                Ok(Response::new(self.s.txn(r).await?))
            })
            .await
    }

    async fn compact(
        &self,
        request: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        let md = request.metadata().clone();
        self.s
            .as_caller(&md, async move {
                Ok(Response::new(self.s.compact(request.into_inner()).await?))
            })
            .await
    }
}

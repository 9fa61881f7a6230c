//! v3lockpb.Lock: Lock and Unlock, as etcd's v3lock server runs the concurrency mutex
//! (`concurrency.NewMutex(session(lease), name).Lock`) on its own KV.

use retcd_api::etcdserverpb::{PutRequest, RequestOp, request_op};
use retcd_api::v3lockpb::lock_server::Lock;
use retcd_api::v3lockpb::{LockRequest, LockResponse, UnlockRequest, UnlockResponse};
use tonic::{Request, Response, Status};

use super::concurrency::{
    DeleteOnDrop, Recipes, as_client_error, create_revision_is, first_create, lease_key, op_get, op_range,
    range_kvs,
};

pub struct LockService {
    pub r: Recipes,
}

#[tonic::async_trait]
impl Lock for LockService {
    async fn lock(&self, request: Request<LockRequest>) -> Result<Response<LockResponse>, Status> {
        let md = request.metadata().clone();
        self.r
            .s
            .as_caller(&md, async move {
                self.lock_inner(request.into_inner())
                    .await
                    .map(Response::new)
                    .map_err(as_client_error)
            })
            .await
    }

    async fn unlock(&self, request: Request<UnlockRequest>) -> Result<Response<UnlockResponse>, Status> {
        let md = request.metadata().clone();
        self.r
            .s
            .as_caller(&md, async move {
                let header = self
                    .r
                    .delete(&request.into_inner().key)
                    .await
                    .map_err(as_client_error)?;
                Ok(Response::new(UnlockResponse { header }))
            })
            .await
    }
}

impl LockService {
    async fn lock_inner(&self, req: LockRequest) -> Result<LockResponse, Status> {
        let lease = self.r.session_lease(req.lease).await?;
        let mut prefix = req.name;
        prefix.push(b'/');
        let my_key = lease_key(&prefix, lease);
        // put self in the waiters unless this session already is one; fetch the owner in
        // the same txn so an uncontended lock costs one request
        let put = RequestOp {
            request: Some(request_op::Request::RequestPut(PutRequest {
                key: my_key.clone(),
                lease,
                ..Default::default()
            })),
        };
        let resp = self
            .r
            .txn(
                vec![create_revision_is(&my_key, 0)],
                vec![put, op_range(first_create(&prefix))],
                vec![op_get(&my_key), op_range(first_create(&prefix))],
            )
            .await?;
        let mut my_rev = resp.header.as_ref().map(|h| h.revision).unwrap_or(0);
        if !resp.succeeded
            && let Some(kv) = range_kvs(&resp, 0).first()
        {
            my_rev = kv.create_revision;
        }
        let owner = range_kvs(&resp, 1).first();
        if owner.is_none_or(|kv| kv.create_revision == my_rev) {
            return Ok(LockResponse {
                header: resp.header,
                key: my_key,
            });
        }
        // wait for every waiter ahead; give up our place if the client goes away
        let guard = DeleteOnDrop {
            r: self.r.clone(),
            key: Some(my_key.clone()),
        };
        let header = self.r.wait_deletes(&prefix, my_rev - 1).await?;
        guard.disarm();
        Ok(LockResponse { header, key: my_key })
    }
}

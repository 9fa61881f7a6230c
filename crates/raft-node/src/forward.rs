//! A follower's proposals on their way to the leader, batched (etcd's followers hand
//! proposals to the leader as raft messages on the peer stream, many per write).
//!
//! Proposals queue here; one task sends them in `ProposeBatch` calls, at most
//! [`MAX_IN_FLIGHT`] at once. While those are on the wire the next proposals accumulate,
//! so a lone client's proposal leaves at once and a busy follower sends few large calls
//! instead of one call per proposal.

use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::RaftNodeError;
use crate::peer::{Client, pb};

/// Batches on the wire at once.
const MAX_IN_FLIGHT: usize = 4;
/// Proposals, and their bytes, per batch.
const MAX_BATCH: usize = 1024;
const MAX_BATCH_BYTES: usize = 4 << 20;

/// Finds a peer client for a member id (the leader the proposal is for).
pub(crate) type Dial = Arc<dyn Fn(u64) -> Option<Client> + Send + Sync>;

struct Pending {
    leader: u64,
    data: Vec<u8>,
    reply: oneshot::Sender<Result<u64, RaftNodeError>>,
}

/// The queue of proposals for the leader. Cloning shares it; the sending task ends when
/// the last clone is dropped.
#[derive(Clone)]
pub(crate) struct Forwarder {
    tx: mpsc::UnboundedSender<Pending>,
}

impl Forwarder {
    pub(crate) fn start(dial: Dial) -> Forwarder {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(rx, dial));
        Forwarder { tx }
    }

    /// Hands `data` to member `leader`; the log index it was committed at.
    pub(crate) async fn propose(&self, leader: u64, data: Vec<u8>) -> Result<u64, RaftNodeError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Pending { leader, data, reply })
            .map_err(|_| RaftNodeError::NoLeader)?;
        rx.await.unwrap_or(Err(RaftNodeError::NoLeader))
    }
}

async fn run(mut rx: mpsc::UnboundedReceiver<Pending>, dial: Dial) {
    let room = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut carried: Option<Pending> = None;
    loop {
        // Wait for room first: what arrives meanwhile goes in the next batch.
        let Ok(permit) = room.clone().acquire_owned().await else {
            return;
        };
        let first = match carried.take() {
            Some(p) => p,
            None => match rx.recv().await {
                Some(p) => p,
                None => return,
            },
        };
        let leader = first.leader;
        let mut bytes = first.data.len();
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(p) if p.leader == leader => {
                    bytes += p.data.len();
                    batch.push(p);
                }
                Ok(p) => {
                    // for another leader: starts the next batch
                    carried = Some(p);
                    break;
                }
                Err(_) => break,
            }
        }
        let client = dial(leader);
        tokio::spawn(async move {
            let _permit = permit;
            send(client, batch).await;
        });
    }
}

async fn send(client: Option<Client>, batch: Vec<Pending>) {
    let Some(mut client) = client else {
        for p in batch {
            let _ = p.reply.send(Err(RaftNodeError::NoLeader));
        }
        return;
    };
    let (data, replies): (Vec<_>, Vec<_>) = batch.into_iter().map(|p| (p.data, p.reply)).unzip();
    let n = data.len();
    match client.propose_batch(pb::ProposeBatchRequest { data }).await {
        Ok(r) => {
            let results = r.into_inner().results;
            if results.len() != n {
                for reply in replies {
                    let _ = reply.send(Err(RaftNodeError::NoLeader));
                }
                return;
            }
            for (reply, r) in replies.into_iter().zip(results) {
                let _ = reply.send(if r.not_leader {
                    Err(RaftNodeError::LeaderChanged)
                } else {
                    Ok(r.index)
                });
            }
        }
        Err(st) => {
            let leader_changed = st.code() == tonic::Code::FailedPrecondition;
            for reply in replies {
                let _ = reply.send(Err(if leader_changed {
                    RaftNodeError::LeaderChanged
                } else {
                    RaftNodeError::NoLeader
                }));
            }
        }
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::peer::fake::FakePeer;
    use crate::peer::make_client;

    /// While [`MAX_IN_FLIGHT`] batches are on the wire, later proposals wait and then
    /// leave together; every proposal gets its own answer; a member that is not known
    /// answers "no leader".
    #[tokio::test]
    async fn proposals_that_wait_travel_together_and_each_gets_its_answer() {
        let leader = FakePeer::default();
        let url = leader.clone().serve().await;
        let ch = tonic::transport::Endpoint::from_shared(url)
            .unwrap()
            .connect_lazy();
        let fwd = Forwarder::start(Arc::new(move |id| (id == 1).then(|| make_client(ch.clone(), 7))));

        let mut tasks = Vec::new();
        for i in 0..200u8 {
            let fwd = fwd.clone();
            tasks.push(tokio::spawn(async move { fwd.propose(1, vec![i]).await }));
        }
        for (i, t) in tasks.into_iter().enumerate() {
            assert_eq!(t.await.unwrap().unwrap(), i as u64);
        }
        let sizes = leader.batch_sizes.lock().unwrap().clone();
        assert_eq!(sizes.iter().sum::<usize>(), 200);
        assert!(
            sizes.len() < 20,
            "200 proposals in {} calls: {sizes:?}",
            sizes.len()
        );

        assert!(matches!(
            fwd.propose(1, b"stale".to_vec()).await,
            Err(RaftNodeError::LeaderChanged)
        ));
        assert!(matches!(
            fwd.propose(2, vec![1]).await,
            Err(RaftNodeError::NoLeader)
        ));
    }
}

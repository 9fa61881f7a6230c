//! etcd's `pkg/wait`: a proposer registers its request id before proposing and the applier
//! hands the applied result to whoever registered it. A follower's forwarded proposal is
//! answered this way once the follower applies the entry itself.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use tokio::sync::oneshot;

use crate::applier::ApplyResult;

#[derive(Default)]
pub struct Wait {
    waiters: Mutex<HashMap<u64, oneshot::Sender<ApplyResult>>>,
}

impl Wait {
    /// Proposals registered and not answered yet.
    pub fn pending(&self) -> usize {
        self.waiters.lock().map(|w| w.len()).unwrap_or(0)
    }

    /// Registers `id`; the receiver gets the result when the entry is applied here.
    pub fn register(&self, id: u64) -> oneshot::Receiver<ApplyResult> {
        let (tx, rx) = oneshot::channel();
        self.lock().insert(id, tx);
        rx
    }

    /// Forgets `id` (the proposal failed or its proposer gave up).
    pub fn cancel(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// Hands `result` to the proposer of `id`; gives it back if nobody waits for it here.
    pub fn trigger(&self, id: u64, result: ApplyResult) -> Option<ApplyResult> {
        match self.lock().remove(&id) {
            Some(tx) => {
                // a proposer that went away is fine
                let _ = tx.send(result);
                None
            }
            None => Some(result),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<ApplyResult>>> {
        self.waiters.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use retcd_api::EtcdError;

    #[test]
    fn register_trigger_cancel() {
        let w = Wait::default();
        let mut rx = w.register(7);
        assert!(
            w.trigger(8, Err(EtcdError::Timeout)).is_some(),
            "nobody waits for 8"
        );
        assert!(w.trigger(7, Err(EtcdError::KeyNotFound)).is_none());
        assert!(matches!(rx.try_recv(), Ok(Err(EtcdError::KeyNotFound))));
        let _rx = w.register(9);
        w.cancel(9);
        assert!(w.trigger(9, Err(EtcdError::Timeout)).is_some());
    }
}

//! retcd's consensus layer: the only crate that uses openraft.
//!
//! It owns the raft log (a CRC'd, fsync-batched WAL via `raft-log`), drives openraft, and
//! hands committed entries, in order and in batches, to a [`Backend`] supplied by the server
//! (the applier over the MVCC store). Proposers get the backend's reply once their entry is
//! applied. It must not depend on the MVCC store, the etcd API or the server: requests and replies
//! are opaque here.
//!
//! # Layout
//! - `types`: the openraft type configuration (`TypeConfig`, `MemberNode`, `RaftRequest`).
//! - `log_store`: `RaftLogStorage` over the WAL; the durability contract.
//! - `state_machine`: `RaftStateMachine` over a [`Backend`]; applied state kept with the data.
//! - `peer`: the peer transport (gRPC on the peer URLs): openraft's RPCs, proposal and
//!   read-index forwarding to the leader, application calls.
//! - `forward`: a follower's proposals batched to the leader (`ProposeBatch`).
//! - `node`: [`RaftNode`], the server's handle: propose, read-index, status, shutdown.
//! - `observe`: fsync and peer round-trip measurements for the server's metrics.

mod forward;
mod log_store;
mod node;
pub mod observe;
mod peer;
mod state_machine;
mod types;

pub use log_store::LogStore;
pub use node::{MemberChange, Proposed, RaftNode, RaftNodeConfig, RaftNodeError, RaftStatus};
pub use peer::{AppHandler, JOIN_INFO_METHOD, PeerTls, call_member};
pub use state_machine::{ApplyBatch, ApplyEntry, Backend, SnapshotSource};
pub use types::{ApplyReply, MemberNode};

/// The log or the state machine can no longer be trusted (a failed fsync, a WAL that refuses
/// writes, a backend error while applying): stop the process loudly rather than serve on
/// without durability.
pub(crate) fn fatal(msg: &str) -> ! {
    tracing::error!("{msg}; stopping");
    eprintln!("retcd: FATAL: {msg}");
    std::process::exit(2);
}

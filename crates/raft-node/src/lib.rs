//! retcd's consensus layer: the only crate that uses openraft.
//!
//! It owns the raft log (a CRC'd, fsync-batched WAL via `raft-log`), drives openraft, and
//! hands committed entries, in order and in batches, to a [`Backend`] supplied by the server
//! (the applier over the MVCC store). Proposers get the backend's reply once their entry is
//! applied. It must not depend on gRPC, the MVCC store or the server: requests and replies
//! are opaque here.
//!
//! # Layout
//! - `types`: the openraft type configuration (`TypeConfig`, `MemberNode`, `RaftRequest`).
//! - `log_store`: `RaftLogStorage` over the WAL; the durability contract.
//! - `state_machine`: `RaftStateMachine` over a [`Backend`]; applied state kept with the data.
//! - `network`: what openraft uses to reach peers (none yet for a single member).
//! - `node`: [`RaftNode`], the server's handle: propose, read-index, status, shutdown.

mod log_store;
mod network;
mod node;
mod state_machine;
mod types;

pub use log_store::LogStore;
pub use node::{RaftNode, RaftNodeConfig, RaftNodeError, RaftStatus};
pub use state_machine::{ApplyBatch, ApplyEntry, Backend};
pub use types::{ApplyReply, MemberNode};

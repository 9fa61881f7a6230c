//! The gRPC services on the client port.

pub mod auth;
pub mod cluster;
pub mod concurrency;
pub mod kv;
pub mod lease;
pub mod maintenance;
pub mod v3election;
pub mod v3lock;
pub mod watch;

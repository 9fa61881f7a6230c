//! The gRPC services on the client port.

pub mod cluster;
pub mod kv;
pub mod lease;
pub mod maintenance;
pub mod unimplemented;
pub mod watch;

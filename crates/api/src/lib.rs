//! retcd's wire layer: the etcd v3 API types and the one error table.
//!
//! This crate holds
//! - the Rust code generated from the protos in `<workspace>/proto` (prost
//!   messages plus tonic clients and servers), in modules named after the
//!   proto packages: [`etcdserverpb`] (KV, Watch, Lease, Cluster,
//!   Maintenance, Auth), [`mvccpb`], [`authpb`], [`v3lockpb`] and
//!   [`v3electionpb`]. gRPC method paths are etcd's own, e.g.
//!   `/etcdserverpb.KV/Range`, so etcd's clients talk to retcd unchanged;
//! - [`EtcdError`], the single table of etcd server errors with etcd's exact
//!   messages and gRPC codes. Every error a client can see goes through it;
//! - [`ids`]: etcd's derivation of member and cluster ids;
//! - [`FILE_DESCRIPTOR_SET`], the encoded descriptors of all the protos (for
//!   gRPC reflection or JSON mapping).
//!
//! It must stay a leaf: it must not depend on storage (`retcd-mvcc`),
//! consensus (`retcd-raft-node`, openraft) or the server crate. Those depend
//! on it, never the other way round.

mod error;
pub mod ids;

pub use error::{EtcdError, unimplemented};

/// Storage-level types: `KeyValue` and watch `Event` (proto package `mvccpb`).
#[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
pub mod mvccpb {
    tonic::include_proto!("mvccpb");
}

/// Stored auth records: users, roles and permissions (proto package `authpb`).
#[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
pub mod authpb {
    tonic::include_proto!("authpb");
}

/// The etcd v3 client API: messages and the KV, Watch, Lease, Cluster,
/// Maintenance and Auth services (proto package `etcdserverpb`).
#[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
pub mod etcdserverpb {
    tonic::include_proto!("etcdserverpb");
}

/// The Lock service (proto package `v3lockpb`).
#[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
pub mod v3lockpb {
    tonic::include_proto!("v3lockpb");
}

/// The Election service (proto package `v3electionpb`).
#[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
pub mod v3electionpb {
    tonic::include_proto!("v3electionpb");
}

/// Encoded `google.protobuf.FileDescriptorSet` of every proto compiled into
/// this crate (including imports), for gRPC reflection or JSON mapping.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/retcd_descriptor.bin"));

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn descriptor_set_is_present() {
        assert!(!FILE_DESCRIPTOR_SET.is_empty());
    }

    #[test]
    fn method_paths_match_etcd() {
        // The generated servers expose their service names; etcd clients
        // build paths as "/<package>.<Service>/<Method>".
        use tonic::server::NamedService;
        type Kv = etcdserverpb::kv_server::KvServer<()>;
        assert_eq!(<Kv as NamedService>::NAME, "etcdserverpb.KV");
        assert_eq!(
            <etcdserverpb::watch_server::WatchServer<()> as NamedService>::NAME,
            "etcdserverpb.Watch"
        );
        assert_eq!(
            <etcdserverpb::lease_server::LeaseServer<()> as NamedService>::NAME,
            "etcdserverpb.Lease"
        );
        assert_eq!(
            <etcdserverpb::cluster_server::ClusterServer<()> as NamedService>::NAME,
            "etcdserverpb.Cluster"
        );
        assert_eq!(
            <etcdserverpb::maintenance_server::MaintenanceServer<()> as NamedService>::NAME,
            "etcdserverpb.Maintenance"
        );
        assert_eq!(
            <etcdserverpb::auth_server::AuthServer<()> as NamedService>::NAME,
            "etcdserverpb.Auth"
        );
        assert_eq!(
            <v3lockpb::lock_server::LockServer<()> as NamedService>::NAME,
            "v3lockpb.Lock"
        );
        assert_eq!(
            <v3electionpb::election_server::ElectionServer<()> as NamedService>::NAME,
            "v3electionpb.Election"
        );
    }

    /// Hand-encoded bytes (tag = field_number << 3 | wire_type) pin field
    /// numbers that etcd clients rely on.
    #[test]
    fn range_request_field_numbers() {
        let req = etcdserverpb::RangeRequest {
            key: b"k".to_vec(),
            range_end: b"z".to_vec(),
            limit: 1,
            revision: 2,
            sort_order: etcdserverpb::range_request::SortOrder::Descend as i32,
            sort_target: etcdserverpb::range_request::SortTarget::Value as i32,
            serializable: true,
            keys_only: true,
            count_only: true,
            min_mod_revision: 3,
            max_mod_revision: 4,
            min_create_revision: 5,
            max_create_revision: 6,
        };
        let expected: &[u8] = &[
            0x0a, 1, b'k', // 1: key
            0x12, 1, b'z', // 2: range_end
            0x18, 1, // 3: limit
            0x20, 2, // 4: revision
            0x28, 2, // 5: sort_order = DESCEND
            0x30, 4, // 6: sort_target = VALUE
            0x38, 1, // 7: serializable
            0x40, 1, // 8: keys_only
            0x48, 1, // 9: count_only
            0x50, 3, // 10: min_mod_revision
            0x58, 4, // 11: max_mod_revision
            0x60, 5, // 12: min_create_revision
            0x68, 6, // 13: max_create_revision
        ];
        assert_eq!(req.encode_to_vec(), expected);
    }

    #[test]
    fn put_request_field_numbers() {
        let req = etcdserverpb::PutRequest {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            lease: 7,
            prev_kv: true,
            ignore_value: true,
            ignore_lease: true,
        };
        let expected: &[u8] = &[0x0a, 1, b'k', 0x12, 1, b'v', 0x18, 7, 0x20, 1, 0x28, 1, 0x30, 1];
        assert_eq!(req.encode_to_vec(), expected);
    }

    #[test]
    fn status_response_field_numbers() {
        let resp = etcdserverpb::StatusResponse {
            header: Some(etcdserverpb::ResponseHeader {
                cluster_id: 1,
                member_id: 2,
                revision: 3,
                raft_term: 4,
            }),
            version: "3".into(),
            db_size: 5,
            leader: 6,
            raft_index: 7,
            raft_term: 8,
            raft_applied_index: 9,
            errors: vec!["e".into()],
            db_size_in_use: 10,
            is_learner: true,
            ..Default::default()
        };
        let expected: &[u8] = &[
            0x0a, 8, 0x08, 1, 0x10, 2, 0x18, 3, 0x20, 4, // 1: header
            0x12, 1, b'3', // 2: version
            0x18, 5, // 3: dbSize
            0x20, 6, // 4: leader
            0x28, 7, // 5: raftIndex
            0x30, 8, // 6: raftTerm
            0x38, 9, // 7: raftAppliedIndex
            0x42, 1, b'e', // 8: errors
            0x48, 10, // 9: dbSizeInUse
            0x50, 1, // 10: isLearner
        ];
        assert_eq!(resp.encode_to_vec(), expected);
    }

    #[test]
    fn compare_target_union_and_range_end() {
        use etcdserverpb::compare::TargetUnion;
        let cmp = |t| {
            etcdserverpb::Compare {
                target_union: Some(t),
                ..Default::default()
            }
            .encode_to_vec()
        };
        assert_eq!(cmp(TargetUnion::Version(1)), [0x20, 1]);
        assert_eq!(cmp(TargetUnion::CreateRevision(1)), [0x28, 1]);
        assert_eq!(cmp(TargetUnion::ModRevision(1)), [0x30, 1]);
        assert_eq!(cmp(TargetUnion::Value(b"v".to_vec())), [0x3a, 1, b'v']);
        assert_eq!(cmp(TargetUnion::Lease(1)), [0x40, 1]);
        let ranged = etcdserverpb::Compare {
            range_end: b"z".to_vec(),
            ..Default::default()
        };
        // Field 64, wire type 2: tag 0x202 as a varint.
        assert_eq!(ranged.encode_to_vec(), [0x82, 0x04, 1, b'z']);
    }

    #[test]
    fn event_type_values() {
        assert_eq!(mvccpb::event::EventType::Put as i32, 0);
        assert_eq!(mvccpb::event::EventType::Delete as i32, 1);
        assert_eq!(authpb::permission::Type::Readwrite as i32, 2);
    }
}

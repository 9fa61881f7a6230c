//! The persisted form of a lease: etcd's `leasepb.Lease` message (`ID = 1`, `TTL = 2`,
//! `RemainingTTL = 3`), protobuf-encoded, one per lease in the backend's lease table.

/// One lease as stored in the backend.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct LeaseRecord {
    #[prost(int64, tag = "1")]
    pub id: i64,
    #[prost(int64, tag = "2")]
    pub ttl: i64,
    /// Checkpointed remaining TTL in seconds; 0 when none.
    #[prost(int64, tag = "3")]
    pub remaining_ttl: i64,
}

impl LeaseRecord {
    pub fn encode(&self) -> Vec<u8> {
        prost::Message::encode_to_vec(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<LeaseRecord, prost::DecodeError> {
        <LeaseRecord as prost::Message>::decode(bytes)
    }
}

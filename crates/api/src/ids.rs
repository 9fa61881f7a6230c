//! Member and cluster ids, derived exactly as etcd derives them (the server uses them when
//! bootstrapping, retcdctl's `snapshot restore` for the new cluster).

use sha1::{Digest, Sha1};

/// etcd's `computeMemberId`: sha1 of the sorted peer URLs joined, then the cluster token;
/// the first 8 bytes big-endian.
pub fn member_id(peer_urls: &[String], cluster_token: &str) -> u64 {
    let mut urls: Vec<&str> = peer_urls.iter().map(|s| s.as_str()).collect();
    urls.sort_unstable();
    let mut h = Sha1::new();
    h.update(urls.concat().as_bytes());
    h.update(cluster_token.as_bytes());
    first_u64(&h.finalize())
}

/// etcd's `RaftCluster.genID`: sha1 of the sorted member ids as big-endian u64s.
pub fn cluster_id(member_ids: &[u64]) -> u64 {
    let mut ids = member_ids.to_vec();
    ids.sort_unstable();
    let mut h = Sha1::new();
    for id in ids {
        h.update(id.to_be_bytes());
    }
    first_u64(&h.finalize())
}

fn first_u64(d: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_be_bytes(b)
}

//! Member and cluster ids, derived exactly as etcd derives them so that headers, `member list`
//! and `endpoint status` show the same ids as etcd for the same flags.

// Shared with retcdctl (`snapshot restore` derives the new cluster's ids).
pub use retcd_api::ids::{cluster_id, member_id};

/// etcd's `idutil.Generator`: request and lease ids unique across members and restarts.
/// An id is the member id's low 16 bits, then 40 bits of the start time in milliseconds,
/// then an 8-bit counter; the time and counter part is one 48-bit number incremented per id.
#[derive(Debug)]
pub struct IdGenerator {
    prefix: u64,
    suffix: std::sync::atomic::AtomicU64,
}

const TS_LEN: u32 = 40;
const CNT_LEN: u32 = 8;
const SUFFIX_LEN: u32 = TS_LEN + CNT_LEN;

fn lowbit(x: u64, n: u32) -> u64 {
    x & (u64::MAX >> (64 - n))
}

impl IdGenerator {
    pub fn new(member_id: u64, unix_ms: u64) -> IdGenerator {
        IdGenerator {
            prefix: (member_id & 0xffff) << SUFFIX_LEN,
            suffix: std::sync::atomic::AtomicU64::new(lowbit(unix_ms, TS_LEN) << CNT_LEN),
        }
    }

    /// Starting now.
    pub fn now(member_id: u64) -> IdGenerator {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        IdGenerator::new(member_id, ms)
    }

    pub fn next(&self) -> u64 {
        let suffix = self.suffix.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        self.prefix | lowbit(suffix, SUFFIX_LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_generator_layout() {
        let g = IdGenerator::new(0x8e9e_05c5_2164_694d, 0x1234_5678_9abc);
        // member's low 16 bits, then the low 40 bits of the time, then the counter
        assert_eq!(g.next(), 0x694d_3456_789a_bc01);
        assert_eq!(g.next(), 0x694d_3456_789a_bc02);
        let g = IdGenerator::new(1, (1 << 40) - 1);
        g.suffix
            .store(u64::MAX >> 16, std::sync::atomic::Ordering::Relaxed);
        // the 48-bit suffix wraps without touching the prefix
        assert_eq!(g.next(), 1 << 48);
    }

    #[test]
    fn etcd_default_ids() {
        // etcd with no flags: member 8e9e05c52164694d in cluster cdf818194e3a8c32.
        let m = member_id(&["http://localhost:2380".to_string()], "etcd-cluster");
        assert_eq!(format!("{m:x}"), "8e9e05c52164694d");
        assert_eq!(format!("{:x}", cluster_id(&[m])), "cdf818194e3a8c32");
    }
}

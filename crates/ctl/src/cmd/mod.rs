//! The commands, one module per etcdctl command group, and what they share: the run context
//! (settings, output format, a lazily connected client) and Go-style argument parsing.

pub mod auth;
pub mod check;
pub mod cluster;
pub mod concurrency;
pub mod defrag;
pub mod kv;
pub mod lease;
pub mod migrate;
pub mod mirror;
pub mod snapshot;
pub mod txn;
pub mod watch;

use crate::client::{Client, Settings};
use crate::error::CtlError;
use crate::output::Out;

/// What every command gets: the resolved global flags.
pub struct Ctx {
    pub settings: Settings,
    pub out: Out,
}

impl Ctx {
    /// Connects to the endpoints (clientv3's `mustClientFromCmd`).
    pub async fn client(&self) -> Result<Client, CtlError> {
        Client::connect(&self.settings).await
    }
}

/// Go's `strconv.ParseInt(s, base, 64)` with Go's error text.
pub fn parse_i64(s: &str, base: u32) -> Result<i64, String> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(base)) {
        return Err(format!(
            "strconv.ParseInt: parsing {}: invalid syntax",
            crate::gofmt::quote(s.as_bytes())
        ));
    }
    i64::from_str_radix(s.strip_prefix('+').unwrap_or(s), base).map_err(|_| {
        format!(
            "strconv.ParseInt: parsing {}: value out of range",
            crate::gofmt::quote(s.as_bytes())
        )
    })
}

/// Go's `strconv.ParseUint(s, base, 64)` with Go's error text.
pub fn parse_u64(s: &str, base: u32) -> Result<u64, String> {
    if s.is_empty() || !s.chars().all(|c| c.is_digit(base)) {
        return Err(format!(
            "strconv.ParseUint: parsing {}: invalid syntax",
            crate::gofmt::quote(s.as_bytes())
        ));
    }
    u64::from_str_radix(s, base).map_err(|_| {
        format!(
            "strconv.ParseUint: parsing {}: value out of range",
            crate::gofmt::quote(s.as_bytes())
        )
    })
}

/// The end of the range holding every key with `key` as prefix (clientv3's
/// `GetPrefixRangeEnd`): the key with its last non-0xff byte incremented, or `\0`.
pub fn prefix_end(key: &[u8]) -> Vec<u8> {
    let mut end = key.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// `--prefix` / `--from-key` applied to a key as clientv3's `WithPrefix` / `WithFromKey` do:
/// returns the (possibly rewritten) key and the range end.
pub fn key_range(key: &[u8], prefix: bool, from_key: bool) -> (Vec<u8>, Vec<u8>) {
    if prefix {
        if key.is_empty() {
            return (vec![0], vec![0]);
        }
        return (key.to_vec(), prefix_end(key));
    }
    if from_key {
        let k = if key.is_empty() { vec![0] } else { key.to_vec() };
        return (k, vec![0]);
    }
    (key.to_vec(), Vec::new())
}

/// Lease and member ids as etcdctl prints them in sentences (`%16x`: space-padded hex).
pub fn hex16(id: u64) -> String {
    format!("{id:16x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_int_parsing() {
        assert_eq!(parse_i64("12", 10), Ok(12));
        assert_eq!(parse_i64("-3", 10), Ok(-3));
        assert_eq!(
            parse_i64("abc", 10),
            Err("strconv.ParseInt: parsing \"abc\": invalid syntax".into())
        );
        assert_eq!(parse_i64("ff", 16), Ok(255));
        assert_eq!(
            parse_u64("zz", 16),
            Err("strconv.ParseUint: parsing \"zz\": invalid syntax".into())
        );
        assert!(
            parse_i64("99999999999999999999", 10)
                .unwrap_err()
                .ends_with("value out of range")
        );
    }

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b"a"), b"b");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff"), b"\0");
        assert_eq!(key_range(b"", true, false), (vec![0], vec![0]));
        assert_eq!(key_range(b"k", false, true), (b"k".to_vec(), vec![0]));
    }
}

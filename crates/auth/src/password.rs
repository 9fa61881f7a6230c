//! Password hashes (bcrypt, as etcd).
//!
//! Both hashing and verifying are CPU heavy on purpose (about 2^cost rounds of Blowfish key
//! setup: tens of milliseconds at cost 10). Call them from a blocking thread
//! (`tokio::task::spawn_blocking`), never on the async runtime and never while holding the
//! lock around the [`AuthStore`](crate::AuthStore).

use crate::AuthError;

/// bcrypt's smallest cost (Go's `bcrypt.MinCost`).
pub const MIN_BCRYPT_COST: u32 = 4;
/// bcrypt's largest cost (Go's `bcrypt.MaxCost`).
pub const MAX_BCRYPT_COST: u32 = 31;
/// etcd's default `--bcrypt-cost` (Go's `bcrypt.DefaultCost`; the Rust crate's default
/// differs).
pub const DEFAULT_BCRYPT_COST: u32 = 10;

/// The cost etcd actually uses for `--bcrypt-cost`: the given one when it is within
/// `MIN_BCRYPT_COST..=MAX_BCRYPT_COST`, else the default (etcd logs a warning and goes on;
/// the caller can compare the result with its input to do the same).
pub fn effective_bcrypt_cost(cost: u32) -> u32 {
    if (MIN_BCRYPT_COST..=MAX_BCRYPT_COST).contains(&cost) {
        cost
    } else {
        DEFAULT_BCRYPT_COST
    }
}

/// Hashes a password for `UserAdd` / `UserChangePassword` with a fresh random salt, in the
/// `$2a$` format Go's bcrypt writes. A cost outside the valid range is replaced by the
/// default ([`effective_bcrypt_cost`]). Passwords longer than 72 bytes are truncated, as
/// etcd 3.4's bcrypt did.
///
/// CPU heavy: run it on a blocking thread.
pub fn hash_password(password: &str, cost: u32) -> Result<Vec<u8>, AuthError> {
    let parts = bcrypt::hash_with_result(password.as_bytes(), effective_bcrypt_cost(cost))
        .map_err(|e| AuthError::Internal(format!("failed to hash password: {e}")))?;
    Ok(parts.format_for_version(bcrypt::Version::TwoA).into_bytes())
}

/// What is needed to check a user's password away from the store: taken under the store's
/// lock with [`AuthStore::password_check`](crate::AuthStore::password_check) (cheap), then
/// [`verify`](Self::verify)ed without it (CPU heavy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordCheck {
    pub(crate) hash: Vec<u8>,
    /// The auth revision when the hash was read. etcd's `Authenticate` proposes the token
    /// request and retries when the store's revision moved meanwhile (the password may have
    /// changed under it).
    pub revision: u64,
}

impl PasswordCheck {
    /// Compares `password` with the stored hash. Returns the auth revision the check was
    /// made at, or `AuthFailed` when it does not match (or the stored hash is malformed).
    ///
    /// CPU heavy: run it on a blocking thread.
    pub fn verify(&self, password: &str) -> Result<u64, AuthError> {
        let Ok(hash) = std::str::from_utf8(&self.hash) else {
            return Err(AuthError::AuthFailed);
        };
        match bcrypt::verify(password.as_bytes(), hash) {
            Ok(true) => Ok(self.revision),
            Ok(false) | Err(_) => Err(AuthError::AuthFailed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_outside_the_valid_range_falls_back_to_etcds_default() {
        assert_eq!(effective_bcrypt_cost(0), 10);
        assert_eq!(effective_bcrypt_cost(3), 10);
        assert_eq!(effective_bcrypt_cost(4), 4);
        assert_eq!(effective_bcrypt_cost(31), 31);
        assert_eq!(effective_bcrypt_cost(32), 10);
    }

    #[test]
    fn hash_is_go_style_and_verifies() {
        let h = hash_password("s3cret", MIN_BCRYPT_COST).unwrap();
        let s = std::str::from_utf8(&h).unwrap();
        assert!(s.starts_with("$2a$04$"), "{s}");
        assert_eq!(s.len(), 60);
        let check = PasswordCheck {
            hash: h.clone(),
            revision: 7,
        };
        assert_eq!(check.verify("s3cret"), Ok(7));
        assert_eq!(check.verify("S3cret"), Err(AuthError::AuthFailed));
        assert_eq!(check.verify(""), Err(AuthError::AuthFailed));
        // Fresh salt each time.
        assert_ne!(hash_password("s3cret", MIN_BCRYPT_COST).unwrap(), h);
    }

    #[test]
    fn verifies_hashes_written_by_go() {
        // The known-answer vector of Go's golang.org/x/crypto/bcrypt tests (cost 10): the
        // library etcd hashes with, so stored etcd hashes check out here.
        let check = PasswordCheck {
            hash: b"$2a$10$XajjQvNhvvRt5GSeFk1xFeyqRrsxkhBkUiQeg0dt.wU1qD4aFDcga".to_vec(),
            revision: 1,
        };
        assert_eq!(check.verify("allmine"), Ok(1));
        assert_eq!(check.verify("allmin"), Err(AuthError::AuthFailed));
    }

    #[test]
    fn malformed_hash_fails_authentication() {
        for hash in [&b""[..], b"not a hash", b"$2a$04$short", &[0xff, 0xfe]] {
            let check = PasswordCheck {
                hash: hash.to_vec(),
                revision: 1,
            };
            assert_eq!(check.verify("x"), Err(AuthError::AuthFailed));
        }
    }

    #[test]
    fn long_passwords_are_truncated_at_72_bytes_like_etcd_3_4() {
        let long = "x".repeat(80);
        let h = hash_password(&long, MIN_BCRYPT_COST).unwrap();
        let check = PasswordCheck { hash: h, revision: 1 };
        assert_eq!(check.verify(&"x".repeat(72)), Ok(1));
        assert_eq!(check.verify(&"x".repeat(71)), Err(AuthError::AuthFailed));
    }
}

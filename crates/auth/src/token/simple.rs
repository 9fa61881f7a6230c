//! Simple tokens: random prefix + raft index, kept in memory with a sliding TTL.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::AuthError;

/// etcd's default `--auth-token-ttl`.
pub const DEFAULT_SIMPLE_TOKEN_TTL: Duration = Duration::from_secs(300);

/// Letters in the random part of a simple token (etcd's `defaultSimpleTokenLength`).
pub const SIMPLE_TOKEN_LENGTH: usize = 16;

const LETTERS: &[u8; 52] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// A random token prefix: [`SIMPLE_TOKEN_LENGTH`] letters `a-zA-Z`, uniformly chosen from
/// the OS's random source.
pub(crate) fn gen_prefix() -> Result<String, AuthError> {
    let mut out = String::with_capacity(SIMPLE_TOKEN_LENGTH);
    let mut buf = [0u8; 32];
    while out.len() < SIMPLE_TOKEN_LENGTH {
        getrandom::fill(&mut buf)
            .map_err(|e| AuthError::Internal(format!("no randomness for a token: {e}")))?;
        // 208 = 4 * 52: rejecting bytes above it keeps every letter equally likely.
        for b in buf.iter().filter(|b| **b < 208) {
            if out.len() == SIMPLE_TOKEN_LENGTH {
                break;
            }
            out.push(LETTERS[usize::from(*b) % LETTERS.len()] as char);
        }
    }
    Ok(out)
}

/// The raft index a simple token was issued at: what follows its single `.`. Before
/// looking a token up, the server waits until it has applied that index (etcd's
/// `isValidSimpleToken` waits on the index), so a token handed out by one member works at
/// once on any other. `None`: not a simple token.
pub fn simple_token_index(token: &str) -> Option<u64> {
    let (prefix, index) = token.split_once('.')?;
    if prefix.contains('.')
        || index.contains('.')
        || index.is_empty()
        || !index.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    index.parse().ok()
}

struct Entry {
    username: String,
    /// Valid up to and including this instant.
    deadline: Instant,
}

/// The simple tokens a member knows. Internally synchronized: lookups refresh TTLs through
/// `&self`.
pub struct SimpleTokens {
    ttl: Duration,
    tokens: Mutex<HashMap<String, Entry>>,
}

/// Tokens are credentials: `Debug` shows how many there are, not what they are.
impl std::fmt::Debug for SimpleTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimpleTokens")
            .field("ttl", &self.ttl)
            .field("tokens", &self.len())
            .finish()
    }
}

impl SimpleTokens {
    pub fn new(ttl: Duration) -> SimpleTokens {
        SimpleTokens {
            ttl,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        // The map stays consistent even if a holder panicked: every update is one insert
        // or remove.
        self.tokens.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores `"{prefix}.{index}"` for `username`, valid for the TTL from `now`, and
    /// returns it. Expired tokens are dropped on the way. (etcd panics when the token
    /// exists already; an index is applied once, so it cannot.)
    pub fn assign(&self, username: &str, prefix: &str, index: u64, now: Instant) -> String {
        let token = format!("{prefix}.{index}");
        let mut tokens = self.lock();
        tokens.retain(|_, e| e.deadline >= now);
        tokens.insert(
            token.clone(),
            Entry {
                username: username.to_string(),
                deadline: now + self.ttl,
            },
        );
        token
    }

    /// The user of a live token, restarting its TTL (etcd's `resetSimpleToken`). An
    /// expired token is forgotten and gives `None`.
    pub fn info(&self, token: &str, now: Instant) -> Option<String> {
        simple_token_index(token)?;
        let mut tokens = self.lock();
        let entry = tokens.get_mut(token)?;
        if entry.deadline < now {
            tokens.remove(token);
            return None;
        }
        entry.deadline = now + self.ttl;
        Some(entry.username.clone())
    }

    /// Forgets every token of `username` (its password changed or it was deleted).
    pub fn invalidate_user(&self, username: &str) {
        self.lock().retain(|_, e| e.username != username);
    }

    /// Forgets every token (auth was disabled).
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// Drops expired tokens; returns how many (etcd's TTL keeper does this every second;
    /// here [`assign`](Self::assign) does it, or the server may call this periodically).
    pub fn purge_expired(&self, now: Instant) -> usize {
        let mut tokens = self.lock();
        let before = tokens.len();
        tokens.retain(|_, e| e.deadline >= now);
        before - tokens.len()
    }

    /// Tokens held, expired or not.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(300);

    #[test]
    fn prefix_is_sixteen_letters_and_random() {
        let a = gen_prefix().unwrap();
        let b = gen_prefix().unwrap();
        assert_eq!(a.len(), SIMPLE_TOKEN_LENGTH);
        assert!(a.bytes().all(|c| c.is_ascii_alphabetic()), "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn prefix_uses_upper_and_lower_case() {
        let s: String = (0..50).map(|_| gen_prefix().unwrap()).collect();
        assert!(s.bytes().any(|c| c.is_ascii_lowercase()));
        assert!(s.bytes().any(|c| c.is_ascii_uppercase()));
    }

    #[test]
    fn token_index() {
        assert_eq!(simple_token_index("abcDEF.42"), Some(42));
        assert_eq!(simple_token_index(".0"), Some(0));
        assert_eq!(simple_token_index("abc"), None);
        assert_eq!(simple_token_index("abc."), None);
        assert_eq!(simple_token_index("abc.4.2"), None);
        assert_eq!(simple_token_index("a.b.4"), None);
        assert_eq!(simple_token_index("abc.x1"), None);
        assert_eq!(simple_token_index("abc.-1"), None);
        assert_eq!(simple_token_index("abc.+1"), None);
        assert_eq!(simple_token_index("abc.99999999999999999999999"), None);
        // A JWT has three parts.
        assert_eq!(simple_token_index("eyJh.eyJ1.c2ln"), None);
    }

    #[test]
    fn assign_and_look_up() {
        let t = SimpleTokens::new(TTL);
        let now = Instant::now();
        let token = t.assign("alice", "abcdefghijklmnop", 17, now);
        assert_eq!(token, "abcdefghijklmnop.17");
        assert_eq!(t.info(&token, now).as_deref(), Some("alice"));
        assert_eq!(t.info("abcdefghijklmnop.18", now), None);
        assert_eq!(t.info("garbage", now), None);
    }

    #[test]
    fn expires_after_ttl_without_use() {
        let t = SimpleTokens::new(TTL);
        let t0 = Instant::now();
        let token = t.assign("alice", "p", 1, t0);
        assert_eq!(
            t.info(&token, t0 + TTL).as_deref(),
            Some("alice"),
            "valid at the deadline"
        );
        let t1 = t0 + TTL; // that use restarted the TTL
        assert_eq!(t.info(&token, t1 + TTL + Duration::from_millis(1)), None);
        assert!(t.is_empty(), "an expired token is forgotten when met");
    }

    #[test]
    fn each_use_restarts_the_ttl() {
        let t = SimpleTokens::new(TTL);
        let mut now = Instant::now();
        let token = t.assign("alice", "p", 1, now);
        for _ in 0..10 {
            now += Duration::from_secs(200);
            assert_eq!(t.info(&token, now).as_deref(), Some("alice"));
        }
        assert_eq!(t.info(&token, now + Duration::from_secs(301)), None);
    }

    #[test]
    fn purge_and_assign_drop_expired_tokens() {
        let t = SimpleTokens::new(TTL);
        let t0 = Instant::now();
        t.assign("a", "p", 1, t0);
        t.assign("b", "p", 2, t0 + Duration::from_secs(100));
        assert_eq!(t.purge_expired(t0 + Duration::from_secs(350)), 1);
        assert_eq!(t.len(), 1);
        t.assign("c", "p", 3, t0 + Duration::from_secs(1000));
        assert_eq!(t.len(), 1, "b expired and was dropped by assign");
    }

    #[test]
    fn invalidate_user_and_clear() {
        let t = SimpleTokens::new(TTL);
        let now = Instant::now();
        let a1 = t.assign("alice", "p", 1, now);
        let a2 = t.assign("alice", "q", 2, now);
        let b = t.assign("bob", "r", 3, now);
        t.invalidate_user("alice");
        assert_eq!(t.info(&a1, now), None);
        assert_eq!(t.info(&a2, now), None);
        assert_eq!(t.info(&b, now).as_deref(), Some("bob"));
        t.clear();
        assert_eq!(t.info(&b, now), None);
    }
}

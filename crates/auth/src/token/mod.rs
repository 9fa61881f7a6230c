//! Authentication tokens (etcd's `TokenProvider`s) and the `--auth-token` option.
//!
//! - **simple** (etcd's default): a random 16-letter prefix chosen by the member that
//!   receives `Authenticate`, joined with the raft index of the Authenticate entry
//!   (`"{prefix}.{index}"`). Every member learns the token when it applies that entry and
//!   keeps it in memory for `--auth-token-ttl` (300 s) after its last use. Not signed;
//!   lost on restart.
//! - **jwt**: a JWT with the claims `username`, `revision` (the auth revision it was issued
//!   at) and `exp`, signed with the member's key; any member with the public key can verify
//!   it, nothing is stored.

mod config;
mod jwt;
mod simple;

use std::time::{Duration, Instant, SystemTime};

pub use config::{JwtConfig, SignMethod, TokenConfig, TokenConfigError};
pub use jwt::{DEFAULT_JWT_TTL, JwtTokens};
pub use simple::{DEFAULT_SIMPLE_TOKEN_TTL, SIMPLE_TOKEN_LENGTH, SimpleTokens, simple_token_index};

use crate::{AuthError, AuthInfo};

/// How this member issues and checks tokens.
#[derive(Debug)]
pub enum TokenProvider {
    Simple(SimpleTokens),
    Jwt(Box<JwtTokens>),
    /// `--auth-token ""`: no token is ever issued (`Authenticate` fails with `AuthFailed`)
    /// or accepted, as etcd's `tokenNop`.
    Nop,
}

impl TokenProvider {
    /// Simple tokens living `ttl` after their last use.
    pub fn simple(ttl: Duration) -> TokenProvider {
        TokenProvider::Simple(SimpleTokens::new(ttl))
    }

    /// The provider `--auth-token` asks for; `simple_ttl` is `--auth-token-ttl`. Reads the
    /// JWT key files.
    pub fn from_config(cfg: &TokenConfig, simple_ttl: Duration) -> Result<TokenProvider, TokenConfigError> {
        Ok(match cfg {
            TokenConfig::Simple => TokenProvider::simple(simple_ttl),
            TokenConfig::Jwt(jwt) => TokenProvider::Jwt(Box::new(JwtTokens::from_config(jwt)?)),
            TokenConfig::Nop => TokenProvider::Nop,
        })
    }

    /// etcd's `GenTokenPrefix`: called by the member that receives `Authenticate` before it
    /// proposes the request (the prefix travels in the raft entry, so every member
    /// stores the same token). Random letters for simple tokens, empty otherwise.
    pub fn gen_token_prefix(&self) -> Result<String, AuthError> {
        match self {
            TokenProvider::Simple(_) => simple::gen_prefix(),
            TokenProvider::Jwt(_) | TokenProvider::Nop => Ok(String::new()),
        }
    }

    pub(crate) fn assign(
        &self,
        username: &str,
        revision: u64,
        prefix: &str,
        index: u64,
        now: Instant,
    ) -> Result<String, AuthError> {
        match self {
            TokenProvider::Simple(s) => Ok(s.assign(username, prefix, index, now)),
            TokenProvider::Jwt(j) => j.sign_at(username, revision, SystemTime::now()),
            TokenProvider::Nop => Err(AuthError::AuthFailed),
        }
    }

    /// The user a token belongs to. Simple tokens carry no revision: they are checked at
    /// the store's current `revision`, as in etcd.
    pub(crate) fn info(&self, token: &str, revision: u64, now: Instant) -> Option<AuthInfo> {
        match self {
            TokenProvider::Simple(s) => s.info(token, now).map(|username| AuthInfo { username, revision }),
            TokenProvider::Jwt(j) => j.verify_at(token, SystemTime::now()),
            TokenProvider::Nop => None,
        }
    }

    pub(crate) fn invalidate_user(&self, username: &str) {
        if let TokenProvider::Simple(s) = self {
            s.invalidate_user(username);
        }
    }

    pub(crate) fn disable(&self) {
        if let TokenProvider::Simple(s) = self {
            s.clear();
        }
    }
}

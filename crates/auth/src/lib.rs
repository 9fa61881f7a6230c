//! The auth store (etcd's `server/auth` package, as of etcd 3.4): users, roles, key-range
//! permissions, the auth revision, password hashes and authentication tokens.
//!
//! The store is a plain data structure, like the lessor. What is replicated is applied in
//! the same order on every member through raft: each mutating method ([`AuthStore::user_add`],
//! [`AuthStore::role_grant_permission`], ...) checks the request exactly as etcd does and,
//! when it succeeds, returns the [`AuthWrite`]s to persist. The applier writes them to the
//! backend in the same transaction as the applied index, and rebuilds the store from those
//! records ([`AuthState`], [`AuthStore::load`]) when the member starts. The store never
//! touches the disk, and nothing in the apply path is random or reads a clock it was not
//! given.
//!
//! Every change of users, roles or permissions, and disabling auth, bumps the auth
//! revision (etcd's `commitRevision`); as in etcd 3.4, enabling auth and requests that
//! change nothing (granting a role the user has) do not. A key request is checked against
//! the auth revision its credentials were issued at, so a client holding a JWT from before
//! a change gets `AuthOldRevision` and authenticates again ([`AuthStore::is_permitted`]).
//!
//! What is *not* done here, and why:
//! - bcrypt is CPU heavy (tens of milliseconds at the default cost). Passwords are hashed
//!   ([`hash_password`]) and checked ([`PasswordCheck::verify`]) by the gRPC service before
//!   it proposes anything, on a blocking thread, never on the async runtime and never in
//!   apply;
//! - tokens are local: simple tokens live in the memory of each member (lost on restart, as
//!   in etcd), JWTs are signed and verified with the member's keys. The token provider is
//!   internally synchronized, so token lookups and permission checks take `&self`.
//!
//! Must not depend on the server, on raft, on tonic or on the MVCC store.

mod error;
mod password;
mod perms;
mod store;
mod token;

pub use error::AuthError;
pub use password::{
    DEFAULT_BCRYPT_COST, MAX_BCRYPT_COST, MIN_BCRYPT_COST, PasswordCheck, effective_bcrypt_cost,
    hash_password,
};
pub use store::{AuthState, AuthStore, AuthWrite};
pub use token::{
    DEFAULT_JWT_TTL, DEFAULT_SIMPLE_TOKEN_TTL, JwtConfig, JwtTokens, SIMPLE_TOKEN_LENGTH, SignMethod,
    SimpleTokens, TokenConfig, TokenConfigError, TokenProvider, simple_token_index,
};

/// Re-exported so callers need not name `retcd_api::authpb` themselves.
pub use retcd_api::authpb::{Permission, Role, User, UserAddOptions, permission::Type as PermissionType};

/// The user that must exist (with the root role) before auth can be enabled.
pub const ROOT_USER: &str = "root";

/// The role that grants everything: a user with it may do any admin operation and read and
/// write every key, whatever permissions the role itself lists.
pub const ROOT_ROLE: &str = "root";

/// Who sent a request, as far as the auth store is concerned (etcd's `AuthInfo`): the user
/// name and the auth revision its credentials were checked at.
///
/// `AuthInfo::default()` (no user, revision 0) is what a request without credentials
/// carries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct AuthInfo {
    pub username: String,
    pub revision: u64,
}

/// The access a key operation needs: `Read` for ranges, `Write` for puts and deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PermType {
    Read,
    Write,
}

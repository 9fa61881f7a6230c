//! The auth store: users, roles, the enabled flag and the auth revision.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use crate::password::PasswordCheck;
use crate::perms::UserPerms;
use crate::token::TokenProvider;
use crate::{AuthError, AuthInfo, PermType, Permission, ROOT_ROLE, ROOT_USER, Role, User, UserAddOptions};

#[cfg(test)]
mod tests;

/// Everything the store persists: what the applier writes, what a snapshot carries and what
/// [`AuthStore::load`] rebuilds the store from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuthState {
    pub enabled: bool,
    pub revision: u64,
    /// In name order.
    pub users: Vec<User>,
    /// In name order.
    pub roles: Vec<Role>,
}

/// One record to write to the backend, in the same transaction as the applied index.
/// A successful change ends with `SetRevision`.
#[derive(Debug, Clone, PartialEq)]
pub enum AuthWrite {
    PutUser(User),
    DeleteUser(String),
    PutRole(Role),
    DeleteRole(String),
    SetEnabled(bool),
    SetRevision(u64),
}

/// etcd's auth store. Mutating methods are the apply path (deterministic; called in raft
/// order on every member); everything else takes `&self`, so the server may keep the store
/// under a read-write lock and check permissions and tokens concurrently.
pub struct AuthStore {
    enabled: bool,
    revision: u64,
    users: BTreeMap<String, User>,
    roles: BTreeMap<String, Role>,
    /// Every user's merged permissions, rebuilt whenever users or roles change (etcd's
    /// `rangePermCache`).
    perms: HashMap<String, UserPerms>,
    tokens: TokenProvider,
}

/// Password hashes and tokens stay out of `Debug`.
impl std::fmt::Debug for AuthStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthStore")
            .field("enabled", &self.enabled)
            .field("revision", &self.revision)
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .field("roles", &self.roles.keys().collect::<Vec<_>>())
            .field("tokens", &self.tokens)
            .finish()
    }
}

fn name_of(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn has_root_role(u: &User) -> bool {
    u.roles.iter().any(|r| r == ROOT_ROLE)
}

fn is_no_password(u: &User) -> bool {
    u.options.is_some_and(|o| o.no_password)
}

impl AuthStore {
    /// A store with no users and roles, auth disabled, at auth revision 1 (etcd commits the
    /// first revision when it creates the auth buckets).
    pub fn new(tokens: TokenProvider) -> AuthStore {
        AuthStore::load(AuthState::default(), tokens)
    }

    /// Rebuilds the store from persisted records. A revision of 0 (nothing persisted yet)
    /// becomes 1, as etcd's `NewAuthStore` does.
    pub fn load(state: AuthState, tokens: TokenProvider) -> AuthStore {
        let users: BTreeMap<String, User> = state.users.into_iter().map(|u| (name_of(&u.name), u)).collect();
        let roles: BTreeMap<String, Role> = state.roles.into_iter().map(|r| (name_of(&r.name), r)).collect();
        let mut store = AuthStore {
            enabled: state.enabled,
            revision: state.revision.max(1),
            users,
            roles,
            perms: HashMap::new(),
            tokens,
        };
        store.refresh_all_perms();
        store
    }

    /// The records to persist or ship in a snapshot.
    pub fn state(&self) -> AuthState {
        AuthState {
            enabled: self.enabled,
            revision: self.revision,
            users: self.users.values().cloned().collect(),
            roles: self.roles.values().cloned().collect(),
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// The auth revision: bumped by every change of users, roles or permissions and by
    /// disabling auth.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    pub fn token_provider(&self) -> &TokenProvider {
        &self.tokens
    }

    /// See [`TokenProvider::gen_token_prefix`].
    pub fn gen_token_prefix(&self) -> Result<String, AuthError> {
        self.tokens.gen_token_prefix()
    }

    // --- bookkeeping ---

    fn commit(&mut self, mut writes: Vec<AuthWrite>) -> Vec<AuthWrite> {
        self.revision += 1;
        writes.push(AuthWrite::SetRevision(self.revision));
        writes
    }

    fn user_perms(&self, u: &User) -> UserPerms {
        UserPerms::build(
            u.roles
                .iter()
                .filter_map(|r| self.roles.get(r))
                .flat_map(|r| r.key_permission.iter()),
        )
    }

    fn refresh_user_perms(&mut self, name: &str) {
        match self.users.get(name) {
            Some(u) => {
                let p = self.user_perms(u);
                self.perms.insert(name.to_string(), p);
            }
            None => {
                self.perms.remove(name);
            }
        }
    }

    fn refresh_all_perms(&mut self) {
        self.perms = self
            .users
            .iter()
            .map(|(n, u)| (n.clone(), self.user_perms(u)))
            .collect();
    }

    fn put_user(&mut self, name: &str, user: User) -> AuthWrite {
        self.users.insert(name.to_string(), user.clone());
        self.refresh_user_perms(name);
        AuthWrite::PutUser(user)
    }

    fn put_role(&mut self, name: &str, role: Role) -> AuthWrite {
        self.roles.insert(name.to_string(), role.clone());
        self.refresh_all_perms();
        AuthWrite::PutRole(role)
    }

    // --- mutations (apply path) ---

    /// etcd's `AuthEnable`. Needs the user `root` holding the role `root`. Enabling when
    /// enabled does nothing. Like etcd 3.4, it does not bump the revision (no token can
    /// exist while auth is disabled).
    pub fn auth_enable(&mut self) -> Result<Vec<AuthWrite>, AuthError> {
        if self.enabled {
            return Ok(Vec::new());
        }
        let root = self.users.get(ROOT_USER).ok_or(AuthError::RootUserNotExist)?;
        if !has_root_role(root) {
            return Err(AuthError::RootRoleNotExist);
        }
        self.enabled = true;
        Ok(vec![AuthWrite::SetEnabled(true)])
    }

    /// etcd's `AuthDisable`: never fails; does nothing when disabled. Forgets every simple
    /// token.
    pub fn auth_disable(&mut self) -> Vec<AuthWrite> {
        if !self.enabled {
            return Vec::new();
        }
        self.enabled = false;
        self.tokens.disable();
        self.commit(vec![AuthWrite::SetEnabled(false)])
    }

    /// etcd's `UserAdd`. The password arrives hashed ([`crate::hash_password`], done before
    /// proposing); a user added with `no_password` gets no hash and cannot authenticate by
    /// password.
    pub fn user_add(
        &mut self,
        name: &str,
        hashed_password: Vec<u8>,
        no_password: bool,
    ) -> Result<Vec<AuthWrite>, AuthError> {
        if name.is_empty() {
            return Err(AuthError::UserEmpty);
        }
        if self.users.contains_key(name) {
            return Err(AuthError::UserAlreadyExist);
        }
        let user = User {
            name: name.as_bytes().to_vec(),
            password: if no_password { Vec::new() } else { hashed_password },
            roles: Vec::new(),
            options: Some(UserAddOptions { no_password }),
        };
        let w = self.put_user(name, user);
        Ok(self.commit(vec![w]))
    }

    /// etcd's `UserDelete`. `root` cannot be deleted while auth is enabled. The user's
    /// simple tokens stop working.
    pub fn user_delete(&mut self, name: &str) -> Result<Vec<AuthWrite>, AuthError> {
        if self.enabled && name == ROOT_USER {
            return Err(AuthError::InvalidAuthMgmt);
        }
        if self.users.remove(name).is_none() {
            return Err(AuthError::UserNotFound);
        }
        self.perms.remove(name);
        self.tokens.invalidate_user(name);
        Ok(self.commit(vec![AuthWrite::DeleteUser(name.to_string())]))
    }

    /// etcd's `UserChangePassword` (hash made before proposing). Roles and options are
    /// kept; the user's simple tokens stop working.
    pub fn user_change_password(
        &mut self,
        name: &str,
        hashed_password: Vec<u8>,
    ) -> Result<Vec<AuthWrite>, AuthError> {
        let mut user = self.users.get(name).cloned().ok_or(AuthError::UserNotFound)?;
        user.password = hashed_password;
        let w = self.put_user(name, user);
        self.tokens.invalidate_user(name);
        Ok(self.commit(vec![w]))
    }

    /// etcd's `UserGrantRole`. The role must exist, except `root`, which may be granted
    /// before it is created. Granting a role the user has already succeeds without any
    /// change (no revision bump).
    pub fn user_grant_role(&mut self, user: &str, role: &str) -> Result<Vec<AuthWrite>, AuthError> {
        let mut u = self.users.get(user).cloned().ok_or(AuthError::UserNotFound)?;
        if role != ROOT_ROLE && !self.roles.contains_key(role) {
            return Err(AuthError::RoleNotFound);
        }
        if u.roles.iter().any(|r| r == role) {
            return Ok(Vec::new());
        }
        let at = u.roles.partition_point(|r| r.as_str() < role);
        u.roles.insert(at, role.to_string());
        let w = self.put_user(user, u);
        Ok(self.commit(vec![w]))
    }

    /// etcd's `UserRevokeRole`. `root` cannot lose the role `root` while auth is enabled.
    pub fn user_revoke_role(&mut self, user: &str, role: &str) -> Result<Vec<AuthWrite>, AuthError> {
        if self.enabled && user == ROOT_USER && role == ROOT_ROLE {
            return Err(AuthError::InvalidAuthMgmt);
        }
        let mut u = self.users.get(user).cloned().ok_or(AuthError::UserNotFound)?;
        let before = u.roles.len();
        u.roles.retain(|r| r != role);
        if u.roles.len() == before {
            return Err(AuthError::RoleNotGranted);
        }
        let w = self.put_user(user, u);
        Ok(self.commit(vec![w]))
    }

    /// etcd's `RoleAdd`.
    pub fn role_add(&mut self, name: &str) -> Result<Vec<AuthWrite>, AuthError> {
        if name.is_empty() {
            return Err(AuthError::RoleEmpty);
        }
        if self.roles.contains_key(name) {
            return Err(AuthError::RoleAlreadyExist);
        }
        let role = Role {
            name: name.as_bytes().to_vec(),
            key_permission: Vec::new(),
        };
        let w = self.put_role(name, role);
        Ok(self.commit(vec![w]))
    }

    /// etcd's `RoleDelete`. `root` cannot be deleted while auth is enabled. The role is
    /// also revoked from every user holding it (a `PutUser` each, in name order).
    pub fn role_delete(&mut self, name: &str) -> Result<Vec<AuthWrite>, AuthError> {
        if self.enabled && name == ROOT_ROLE {
            return Err(AuthError::InvalidAuthMgmt);
        }
        if self.roles.remove(name).is_none() {
            return Err(AuthError::RoleNotFound);
        }
        let mut writes = vec![AuthWrite::DeleteRole(name.to_string())];
        for u in self.users.values_mut() {
            let before = u.roles.len();
            u.roles.retain(|r| r != name);
            if u.roles.len() != before {
                writes.push(AuthWrite::PutUser(u.clone()));
            }
        }
        self.refresh_all_perms();
        Ok(self.commit(writes))
    }

    /// etcd's `RoleGrantPermission`. `None` (a request without a permission) is
    /// `PermissionNotGiven`. A permission on the same `key` and `range_end` as an existing
    /// one replaces its type; otherwise it is added, keeping the list sorted by key
    /// (permissions with equal keys in the order they were granted).
    pub fn role_grant_permission(
        &mut self,
        role: &str,
        perm: Option<Permission>,
    ) -> Result<Vec<AuthWrite>, AuthError> {
        let perm = perm.ok_or(AuthError::PermissionNotGiven)?;
        let mut r = self.roles.get(role).cloned().ok_or(AuthError::RoleNotFound)?;
        let same = r
            .key_permission
            .iter_mut()
            .find(|p| p.key == perm.key && p.range_end == perm.range_end);
        match same {
            Some(p) => p.perm_type = perm.perm_type,
            None => {
                let at = r.key_permission.partition_point(|p| p.key <= perm.key);
                r.key_permission.insert(at, perm);
            }
        }
        let w = self.put_role(role, r);
        Ok(self.commit(vec![w]))
    }

    /// etcd's `RoleRevokePermission`: removes the permissions on exactly `key` and
    /// `range_end`.
    pub fn role_revoke_permission(
        &mut self,
        role: &str,
        key: &[u8],
        range_end: &[u8],
    ) -> Result<Vec<AuthWrite>, AuthError> {
        let mut r = self.roles.get(role).cloned().ok_or(AuthError::RoleNotFound)?;
        let before = r.key_permission.len();
        r.key_permission
            .retain(|p| p.key != key || p.range_end != range_end);
        if r.key_permission.len() == before {
            return Err(AuthError::PermissionNotGranted);
        }
        let w = self.put_role(role, r);
        Ok(self.commit(vec![w]))
    }

    /// etcd's `Authenticate` as applied on every member, after the receiving member checked
    /// the password ([`password_check`](Self::password_check)) and chose the `prefix`
    /// ([`gen_token_prefix`](Self::gen_token_prefix)); `index` is the raft index of the
    /// entry. Returns the token (a simple token is remembered here; a JWT is signed with
    /// the current revision). Nothing to persist.
    pub fn authenticate(
        &mut self,
        name: &str,
        prefix: &str,
        index: u64,
        now: Instant,
    ) -> Result<String, AuthError> {
        if !self.enabled {
            return Err(AuthError::AuthNotEnabled);
        }
        let user = self.users.get(name).ok_or(AuthError::AuthFailed)?;
        if is_no_password(user) {
            return Err(AuthError::AuthFailed);
        }
        self.tokens.assign(name, self.revision, prefix, index, now)
    }

    /// [`authenticate`](Self::authenticate) for a password the proposing member checked at
    /// auth revision `checked_revision` ([`PasswordCheck::verify`]): `AuthOldRevision`, and
    /// no token, when the store has moved on since (the password changed, the user was
    /// deleted, any auth change committed in between); that member then checks the
    /// password again and proposes anew. Deterministic, so every member agrees. (etcd 3.4
    /// issues the token anyway and only the proposer, seeing the revision moved, drops it
    /// and retries, leaving the token recorded on every member; here no member ever holds
    /// a token for a password that was no longer the user's when it was applied.)
    pub fn authenticate_checked(
        &mut self,
        name: &str,
        checked_revision: u64,
        prefix: &str,
        index: u64,
        now: Instant,
    ) -> Result<String, AuthError> {
        if !self.enabled {
            return Err(AuthError::AuthNotEnabled);
        }
        if checked_revision != self.revision {
            return Err(AuthError::AuthOldRevision);
        }
        self.authenticate(name, prefix, index, now)
    }

    // --- reads ---

    /// etcd's `UserGet`: the user's roles, sorted.
    pub fn user_get(&self, name: &str) -> Result<Vec<String>, AuthError> {
        self.users
            .get(name)
            .map(|u| u.roles.clone())
            .ok_or(AuthError::UserNotFound)
    }

    /// The whole record of a user (with its password hash).
    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.get(name)
    }

    /// etcd's `UserList`: every user name, sorted.
    pub fn user_list(&self) -> Vec<String> {
        self.users.keys().cloned().collect()
    }

    /// etcd's `RoleGet`: the role's permissions as stored (for `root` too, as in etcd 3.4).
    pub fn role_get(&self, name: &str) -> Result<Vec<Permission>, AuthError> {
        self.roles
            .get(name)
            .map(|r| r.key_permission.clone())
            .ok_or(AuthError::RoleNotFound)
    }

    /// etcd's `RoleList`: every role name, sorted.
    pub fn role_list(&self) -> Vec<String> {
        self.roles.keys().cloned().collect()
    }

    /// etcd's `HasRole`; false for an unknown user.
    pub fn has_role(&self, user: &str, role: &str) -> bool {
        self.users
            .get(user)
            .is_some_and(|u| u.roles.iter().any(|r| r == role))
    }

    // --- passwords and tokens ---

    /// The cheap half of etcd's `CheckPassword`: `AuthNotEnabled` when auth is disabled,
    /// `AuthFailed` for an unknown user or one added with `no_password`; otherwise what
    /// [`PasswordCheck::verify`] needs, to run without the store's lock.
    pub fn password_check(&self, name: &str) -> Result<PasswordCheck, AuthError> {
        if !self.enabled {
            return Err(AuthError::AuthNotEnabled);
        }
        let user = self.users.get(name).ok_or(AuthError::AuthFailed)?;
        if is_no_password(user) {
            return Err(AuthError::AuthFailed);
        }
        Ok(PasswordCheck {
            hash: user.password.clone(),
            revision: self.revision,
        })
    }

    /// etcd's `CheckPassword` in one call: the auth revision on success, `AuthFailed` on a
    /// wrong password or an unknown user. CPU heavy (bcrypt): call it on a blocking thread,
    /// and prefer [`password_check`](Self::password_check) + [`PasswordCheck::verify`] when
    /// the store is behind a lock.
    pub fn check_password(&self, name: &str, password: &str) -> Result<u64, AuthError> {
        self.password_check(name)?.verify(password)
    }

    /// Who a token belongs to (etcd's `AuthInfoFromCtx` once the token is found):
    /// `InvalidAuthToken` for an unknown, expired or badly signed token. A simple token is
    /// checked at the current revision and has its TTL restarted; the server waits until it
    /// has applied the token's index ([`crate::simple_token_index`]) before asking.
    pub fn auth_info(&self, token: &str, now: Instant) -> Result<AuthInfo, AuthError> {
        self.tokens
            .info(token, self.revision, now)
            .ok_or(AuthError::InvalidAuthToken)
    }

    // --- permission checks ---

    /// Whether `user` may access the keys `key`..`range_end` (`range_end` empty: the key
    /// alone; `"\0"`: every key from `key`): always for a user with the role `root`,
    /// otherwise when the permissions of the user's roles together cover the whole range.
    /// False for an unknown user. Ignores whether auth is enabled (see
    /// [`is_permitted`](Self::is_permitted)).
    pub fn is_range_permitted(&self, user: &str, key: &[u8], range_end: &[u8], perm: PermType) -> bool {
        let Some(u) = self.users.get(user) else {
            return false;
        };
        has_root_role(u)
            || self
                .perms
                .get(user)
                .is_some_and(|p| p.allows(key, range_end, perm))
    }

    /// etcd's `isOpPermitted`, for key operations: always allowed when auth is disabled;
    /// otherwise `UserEmpty` for a request without credentials (revision 0),
    /// `AuthOldRevision` when the credentials predate the last auth change (the client
    /// authenticates again and retries), `PermissionDenied` for an unknown user or a range
    /// the user may not access.
    pub fn is_permitted(
        &self,
        info: &AuthInfo,
        key: &[u8],
        range_end: &[u8],
        perm: PermType,
    ) -> Result<(), AuthError> {
        if !self.enabled {
            return Ok(());
        }
        if info.revision == 0 {
            return Err(AuthError::UserEmpty);
        }
        if info.revision < self.revision {
            return Err(AuthError::AuthOldRevision);
        }
        if self.is_range_permitted(&info.username, key, range_end, perm) {
            Ok(())
        } else {
            Err(AuthError::PermissionDenied)
        }
    }

    /// etcd's `IsPutPermitted`: write access to `key`.
    pub fn is_put_permitted(&self, info: &AuthInfo, key: &[u8]) -> Result<(), AuthError> {
        self.is_permitted(info, key, &[], PermType::Write)
    }

    /// etcd's `IsRangePermitted`: read access to the range.
    pub fn is_read_permitted(&self, info: &AuthInfo, key: &[u8], range_end: &[u8]) -> Result<(), AuthError> {
        self.is_permitted(info, key, range_end, PermType::Read)
    }

    /// etcd's `IsDeleteRangePermitted`: write access to the range.
    pub fn is_delete_range_permitted(
        &self,
        info: &AuthInfo,
        key: &[u8],
        range_end: &[u8],
    ) -> Result<(), AuthError> {
        self.is_permitted(info, key, range_end, PermType::Write)
    }

    /// etcd's `IsAdminPermitted`, for user/role/auth management and other admin requests:
    /// always allowed when auth is disabled; otherwise a request without credentials gets
    /// `UserEmpty` (what etcd 3.4 answers, checked against it), the user must exist
    /// (`UserNotFound`) and hold the role `root` (`PermissionDenied`). Like etcd 3.4 it does
    /// not compare revisions.
    pub fn is_admin_permitted(&self, info: &AuthInfo) -> Result<(), AuthError> {
        if !self.enabled {
            return Ok(());
        }
        if info.username.is_empty() {
            return Err(AuthError::UserEmpty);
        }
        let u = self.users.get(&info.username).ok_or(AuthError::UserNotFound)?;
        if has_root_role(u) {
            Ok(())
        } else {
            Err(AuthError::PermissionDenied)
        }
    }
}

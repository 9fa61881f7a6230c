use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;
use crate::perms::tests::{grant_strategy, key_strategy, model_allows, range_end_strategy};
use crate::{
    DEFAULT_SIMPLE_TOKEN_TTL, JwtTokens, MIN_BCRYPT_COST, PermissionType, SignMethod, hash_password,
};

fn store() -> AuthStore {
    AuthStore::new(TokenProvider::simple(DEFAULT_SIMPLE_TOKEN_TTL))
}

/// root (with the root role) and auth enabled.
fn enabled() -> AuthStore {
    let mut s = store();
    s.user_add("root", b"h".to_vec(), false).unwrap();
    s.user_grant_role("root", "root").unwrap();
    s.auth_enable().unwrap();
    s
}

fn perm(t: PermissionType, key: &[u8], range_end: &[u8]) -> Permission {
    Permission {
        perm_type: t as i32,
        key: key.to_vec(),
        range_end: range_end.to_vec(),
    }
}

fn info(s: &AuthStore, user: &str) -> AuthInfo {
    AuthInfo {
        username: user.to_string(),
        revision: s.revision(),
    }
}

fn user_rec(name: &str, password: &[u8], roles: &[&str], no_password: bool) -> User {
    User {
        name: name.as_bytes().to_vec(),
        password: password.to_vec(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        options: Some(UserAddOptions { no_password }),
    }
}

// --- creation and revision ---

#[test]
fn new_store_starts_disabled_at_revision_one() {
    let s = store();
    assert!(!s.is_enabled());
    assert_eq!(s.revision(), 1);
    assert!(s.user_list().is_empty());
    assert!(s.role_list().is_empty());
    assert_eq!(
        s.state(),
        AuthState {
            enabled: false,
            revision: 1,
            users: vec![],
            roles: vec![]
        }
    );
    let loaded = AuthStore::load(AuthState::default(), TokenProvider::Nop);
    assert_eq!(
        loaded.revision(),
        1,
        "revision 0 on disk becomes 1, as etcd's NewAuthStore"
    );
}

// --- auth enable / disable ---

#[test]
fn auth_enable_needs_root_user_with_root_role() {
    let mut s = store();
    assert_eq!(s.auth_enable(), Err(AuthError::RootUserNotExist));
    s.user_add("root", b"h".to_vec(), false).unwrap();
    assert_eq!(s.auth_enable(), Err(AuthError::RootRoleNotExist));
    s.role_add("root").unwrap();
    assert_eq!(
        s.auth_enable(),
        Err(AuthError::RootRoleNotExist),
        "the role must be granted"
    );
    s.user_grant_role("root", "root").unwrap();
    let rev = s.revision();
    assert_eq!(s.auth_enable(), Ok(vec![AuthWrite::SetEnabled(true)]));
    assert!(s.is_enabled());
    assert_eq!(
        s.revision(),
        rev,
        "etcd 3.4's AuthEnable does not commit a revision"
    );
    assert_eq!(s.auth_enable(), Ok(vec![]), "enabling twice is a no-op");
}

#[test]
fn root_role_can_be_granted_before_it_exists() {
    let mut s = store();
    s.user_add("root", b"h".to_vec(), false).unwrap();
    s.user_grant_role("root", "root").unwrap();
    assert!(s.role_list().is_empty());
    assert_eq!(s.auth_enable(), Ok(vec![AuthWrite::SetEnabled(true)]));
}

#[test]
fn auth_disable_bumps_revision_and_drops_tokens() {
    let mut s = store();
    assert_eq!(s.auth_disable(), vec![], "disabling when disabled does nothing");
    let mut s2 = enabled();
    let now = Instant::now();
    let token = s2.authenticate("root", "prefix", 9, now).unwrap();
    assert!(s2.auth_info(&token, now).is_ok());
    let rev = s2.revision();
    assert_eq!(
        s2.auth_disable(),
        vec![AuthWrite::SetEnabled(false), AuthWrite::SetRevision(rev + 1)]
    );
    assert!(!s2.is_enabled());
    assert_eq!(s2.auth_info(&token, now), Err(AuthError::InvalidAuthToken));
    s = s2;
    assert_eq!(s.auth_disable(), vec![]);
}

// --- users ---

#[test]
fn user_add() {
    let mut s = store();
    assert_eq!(s.user_add("", b"h".to_vec(), false), Err(AuthError::UserEmpty));
    assert_eq!(
        s.user_add("alice", b"hash".to_vec(), false),
        Ok(vec![
            AuthWrite::PutUser(user_rec("alice", b"hash", &[], false)),
            AuthWrite::SetRevision(2)
        ])
    );
    assert_eq!(
        s.user_add("alice", b"other".to_vec(), false),
        Err(AuthError::UserAlreadyExist)
    );
    assert_eq!(s.revision(), 2, "a failed request changes nothing");
    // no_password: the hash is dropped.
    assert_eq!(
        s.user_add("cn-user", b"ignored".to_vec(), true),
        Ok(vec![
            AuthWrite::PutUser(user_rec("cn-user", b"", &[], true)),
            AuthWrite::SetRevision(3)
        ])
    );
    assert_eq!(s.user_list(), vec!["alice", "cn-user"]);
}

#[test]
fn user_delete() {
    let mut s = enabled();
    assert_eq!(s.user_delete("nobody"), Err(AuthError::UserNotFound));
    assert_eq!(s.user_delete("root"), Err(AuthError::InvalidAuthMgmt));
    s.user_add("alice", b"h".to_vec(), false).unwrap();
    let rev = s.revision();
    assert_eq!(
        s.user_delete("alice"),
        Ok(vec![
            AuthWrite::DeleteUser("alice".into()),
            AuthWrite::SetRevision(rev + 1)
        ])
    );
    assert_eq!(s.user_get("alice"), Err(AuthError::UserNotFound));

    // With auth disabled root may go.
    s.auth_disable();
    assert!(s.user_delete("root").is_ok());
}

#[test]
fn user_delete_of_root_is_refused_before_the_lookup() {
    // etcd checks "root while enabled" first, so the error is InvalidAuthMgmt even if the
    // record were missing.
    let mut s = AuthStore::load(
        AuthState {
            enabled: true,
            revision: 5,
            users: vec![],
            roles: vec![],
        },
        TokenProvider::Nop,
    );
    assert_eq!(s.user_delete("root"), Err(AuthError::InvalidAuthMgmt));
}

#[test]
fn user_change_password_keeps_roles_and_options() {
    let mut s = store();
    assert_eq!(
        s.user_change_password("alice", b"x".to_vec()),
        Err(AuthError::UserNotFound)
    );
    s.role_add("r").unwrap();
    s.user_add("alice", b"old".to_vec(), false).unwrap();
    s.user_grant_role("alice", "r").unwrap();
    let rev = s.revision();
    assert_eq!(
        s.user_change_password("alice", b"new".to_vec()),
        Ok(vec![
            AuthWrite::PutUser(user_rec("alice", b"new", &["r"], false)),
            AuthWrite::SetRevision(rev + 1)
        ])
    );
}

#[test]
fn user_grant_role() {
    let mut s = store();
    assert_eq!(s.user_grant_role("alice", "r"), Err(AuthError::UserNotFound));
    s.user_add("alice", b"h".to_vec(), false).unwrap();
    assert_eq!(s.user_grant_role("alice", "r"), Err(AuthError::RoleNotFound));
    assert_eq!(
        s.user_grant_role("nobody", "nothing"),
        Err(AuthError::UserNotFound),
        "user first"
    );
    for r in ["zeta", "alpha", "mid"] {
        s.role_add(r).unwrap();
    }
    for r in ["zeta", "alpha", "mid"] {
        let rev = s.revision();
        let w = s.user_grant_role("alice", r).unwrap();
        assert_eq!(w.last(), Some(&AuthWrite::SetRevision(rev + 1)));
    }
    assert_eq!(
        s.user_get("alice").unwrap(),
        vec!["alpha", "mid", "zeta"],
        "kept sorted"
    );
    let rev = s.revision();
    assert_eq!(
        s.user_grant_role("alice", "mid"),
        Ok(vec![]),
        "granting twice changes nothing"
    );
    assert_eq!(s.revision(), rev);
    // root may be granted without the role existing.
    assert!(s.user_grant_role("alice", "root").is_ok());
    assert!(s.has_role("alice", "root"));
}

#[test]
fn user_revoke_role() {
    let mut s = enabled();
    assert_eq!(
        s.user_revoke_role("root", "root"),
        Err(AuthError::InvalidAuthMgmt)
    );
    assert_eq!(s.user_revoke_role("nobody", "r"), Err(AuthError::UserNotFound));
    s.role_add("r").unwrap();
    s.user_add("alice", b"h".to_vec(), false).unwrap();
    assert_eq!(s.user_revoke_role("alice", "r"), Err(AuthError::RoleNotGranted));
    s.user_grant_role("alice", "r").unwrap();
    let rev = s.revision();
    assert_eq!(
        s.user_revoke_role("alice", "r"),
        Ok(vec![
            AuthWrite::PutUser(user_rec("alice", b"h", &[], false)),
            AuthWrite::SetRevision(rev + 1)
        ])
    );
    // Other roles of root may go while enabled; root's root role only when disabled.
    s.user_grant_role("root", "r").unwrap();
    assert!(s.user_revoke_role("root", "r").is_ok());
    s.auth_disable();
    assert!(s.user_revoke_role("root", "root").is_ok());
}

// --- roles ---

#[test]
fn role_add() {
    let mut s = store();
    assert_eq!(s.role_add(""), Err(AuthError::RoleEmpty));
    assert_eq!(
        s.role_add("r"),
        Ok(vec![
            AuthWrite::PutRole(Role {
                name: b"r".to_vec(),
                key_permission: vec![]
            }),
            AuthWrite::SetRevision(2)
        ])
    );
    assert_eq!(s.role_add("r"), Err(AuthError::RoleAlreadyExist));
    s.role_add("a").unwrap();
    assert_eq!(s.role_list(), vec!["a", "r"]);
}

#[test]
fn role_delete_revokes_it_from_every_user() {
    let mut s = enabled();
    assert_eq!(s.role_delete("r"), Err(AuthError::RoleNotFound));
    assert_eq!(s.role_delete("root"), Err(AuthError::InvalidAuthMgmt));
    s.role_add("r").unwrap();
    s.role_add("keep").unwrap();
    s.role_grant_permission("r", Some(perm(PermissionType::Read, b"k", b"")))
        .unwrap();
    for u in ["zed", "bob", "carl"] {
        s.user_add(u, b"h".to_vec(), false).unwrap();
    }
    s.user_grant_role("zed", "r").unwrap();
    s.user_grant_role("bob", "r").unwrap();
    s.user_grant_role("bob", "keep").unwrap();
    assert!(
        s.is_permitted(&info(&s, "bob"), b"k", b"", PermType::Read)
            .is_ok()
    );
    let rev = s.revision();
    assert_eq!(
        s.role_delete("r"),
        Ok(vec![
            AuthWrite::DeleteRole("r".into()),
            AuthWrite::PutUser(user_rec("bob", b"h", &["keep"], false)),
            AuthWrite::PutUser(user_rec("zed", b"h", &[], false)),
            AuthWrite::SetRevision(rev + 1),
        ])
    );
    assert_eq!(s.role_get("r"), Err(AuthError::RoleNotFound));
    assert_eq!(
        s.is_permitted(&info(&s, "bob"), b"k", b"", PermType::Read),
        Err(AuthError::PermissionDenied)
    );
    // A new role of the same name is not granted to the former holders.
    s.role_add("r").unwrap();
    s.role_grant_permission("r", Some(perm(PermissionType::Read, b"k", b"")))
        .unwrap();
    assert_eq!(
        s.is_permitted(&info(&s, "bob"), b"k", b"", PermType::Read),
        Err(AuthError::PermissionDenied)
    );
    // root (the role) may be deleted while auth is disabled.
    s.auth_disable();
    s.role_add("root").unwrap();
    assert!(s.role_delete("root").is_ok());
}

#[test]
fn role_grant_permission() {
    let mut s = store();
    assert_eq!(
        s.role_grant_permission("r", None),
        Err(AuthError::PermissionNotGiven)
    );
    assert_eq!(
        s.role_grant_permission("r", Some(perm(PermissionType::Read, b"a", b""))),
        Err(AuthError::RoleNotFound)
    );
    s.role_add("r").unwrap();
    for (k, e) in [(&b"m"[..], &b""[..]), (b"c", b"d"), (b"x", b"\0"), (b"c", b"")] {
        s.role_grant_permission("r", Some(perm(PermissionType::Read, k, e)))
            .unwrap();
    }
    let keys = |s: &AuthStore| -> Vec<(Vec<u8>, Vec<u8>, i32)> {
        s.role_get("r")
            .unwrap()
            .into_iter()
            .map(|p| (p.key, p.range_end, p.perm_type))
            .collect()
    };
    assert_eq!(
        keys(&s),
        vec![
            (b"c".to_vec(), b"d".to_vec(), 0),
            (b"c".to_vec(), b"".to_vec(), 0),
            (b"m".to_vec(), b"".to_vec(), 0),
            (b"x".to_vec(), b"\0".to_vec(), 0),
        ],
        "sorted by key; equal keys in grant order"
    );
    // Same key and range_end: the type is replaced, and the revision still moves.
    let rev = s.revision();
    let w = s
        .role_grant_permission("r", Some(perm(PermissionType::Readwrite, b"c", b"")))
        .unwrap();
    assert_eq!(w.last(), Some(&AuthWrite::SetRevision(rev + 1)));
    assert_eq!(keys(&s)[1], (b"c".to_vec(), b"".to_vec(), 2));
    assert_eq!(keys(&s).len(), 4);
    match &w[0] {
        AuthWrite::PutRole(r) => assert_eq!(r.key_permission.len(), 4),
        other => panic!("{other:?}"),
    }
}

#[test]
fn role_revoke_permission() {
    let mut s = store();
    assert_eq!(
        s.role_revoke_permission("r", b"a", b""),
        Err(AuthError::RoleNotFound)
    );
    s.role_add("r").unwrap();
    s.role_grant_permission("r", Some(perm(PermissionType::Read, b"a", b"c")))
        .unwrap();
    assert_eq!(
        s.role_revoke_permission("r", b"a", b""),
        Err(AuthError::PermissionNotGranted)
    );
    assert_eq!(
        s.role_revoke_permission("r", b"a", b"b"),
        Err(AuthError::PermissionNotGranted)
    );
    let rev = s.revision();
    assert_eq!(
        s.role_revoke_permission("r", b"a", b"c"),
        Ok(vec![
            AuthWrite::PutRole(Role {
                name: b"r".to_vec(),
                key_permission: vec![]
            }),
            AuthWrite::SetRevision(rev + 1)
        ])
    );
}

#[test]
fn reads() {
    let mut s = store();
    assert_eq!(s.user_get("x"), Err(AuthError::UserNotFound));
    assert_eq!(s.role_get("x"), Err(AuthError::RoleNotFound));
    s.role_add("root").unwrap();
    s.role_grant_permission("root", Some(perm(PermissionType::Readwrite, b"foo", b"")))
        .unwrap();
    // etcd 3.4 shows the root role's stored permissions (3.5 shows the whole key space).
    assert_eq!(
        s.role_get("root").unwrap(),
        vec![perm(PermissionType::Readwrite, b"foo", b"")]
    );
    s.user_add("u", b"h".to_vec(), false).unwrap();
    assert_eq!(s.user_get("u"), Ok(vec![]));
    assert_eq!(s.user("u").map(|u| u.password.clone()), Some(b"h".to_vec()));
    assert!(!s.has_role("u", "root"));
    assert!(!s.has_role("nobody", "root"));
}

// --- permission checks ---

#[test]
fn checks_pass_when_auth_is_disabled() {
    let s = store();
    let nobody = AuthInfo::default();
    assert_eq!(s.is_put_permitted(&nobody, b"k"), Ok(()));
    assert_eq!(s.is_read_permitted(&nobody, b"a", b"z"), Ok(()));
    assert_eq!(s.is_delete_range_permitted(&nobody, b"a", b"\0"), Ok(()));
    assert_eq!(s.is_admin_permitted(&nobody), Ok(()));
}

#[test]
fn is_permitted_follows_etcds_order_of_checks() {
    let mut s = enabled();
    s.user_add("alice", b"h".to_vec(), false).unwrap();
    s.role_add("r").unwrap();
    s.role_grant_permission("r", Some(perm(PermissionType::Read, b"a", b"m")))
        .unwrap();
    s.user_grant_role("alice", "r").unwrap();
    let rev = s.revision();

    let no_creds = AuthInfo::default();
    assert_eq!(
        s.is_read_permitted(&no_creds, b"b", b""),
        Err(AuthError::UserEmpty)
    );
    let old = AuthInfo {
        username: "alice".into(),
        revision: rev - 1,
    };
    assert_eq!(
        s.is_read_permitted(&old, b"b", b""),
        Err(AuthError::AuthOldRevision)
    );
    let ghost = AuthInfo {
        username: "ghost".into(),
        revision: rev,
    };
    assert_eq!(
        s.is_read_permitted(&ghost, b"b", b""),
        Err(AuthError::PermissionDenied)
    );
    let alice = info(&s, "alice");
    assert_eq!(s.is_read_permitted(&alice, b"b", b""), Ok(()));
    assert_eq!(s.is_read_permitted(&alice, b"a", b"m"), Ok(()));
    assert_eq!(
        s.is_read_permitted(&alice, b"a", b"n"),
        Err(AuthError::PermissionDenied)
    );
    assert_eq!(s.is_put_permitted(&alice, b"b"), Err(AuthError::PermissionDenied));
    assert_eq!(
        s.is_delete_range_permitted(&alice, b"b", b"c"),
        Err(AuthError::PermissionDenied)
    );
    let newer = AuthInfo {
        username: "alice".into(),
        revision: rev + 10,
    };
    assert_eq!(
        s.is_read_permitted(&newer, b"b", b""),
        Ok(()),
        "only older revisions are refused"
    );

    // Root may do anything, whatever its role lists.
    let root = info(&s, "root");
    assert_eq!(s.is_put_permitted(&root, b"anything"), Ok(()));
    assert_eq!(s.is_delete_range_permitted(&root, b"", b"\0"), Ok(()));
}

#[test]
fn permission_changes_take_effect_at_once() {
    let mut s = enabled();
    s.user_add("u", b"h".to_vec(), false).unwrap();
    s.role_add("r").unwrap();
    s.user_grant_role("u", "r").unwrap();
    let check = |s: &AuthStore| s.is_range_permitted("u", b"k", b"", PermType::Write);
    assert!(!check(&s));
    s.role_grant_permission("r", Some(perm(PermissionType::Write, b"k", b"")))
        .unwrap();
    assert!(check(&s), "granting to a role reaches its users");
    s.role_grant_permission("r", Some(perm(PermissionType::Read, b"k", b"")))
        .unwrap();
    assert!(!check(&s), "replacing the type");
    s.role_grant_permission("r", Some(perm(PermissionType::Readwrite, b"k", b"")))
        .unwrap();
    assert!(check(&s));
    s.user_revoke_role("u", "r").unwrap();
    assert!(!check(&s), "revoking the role");
    s.user_grant_role("u", "r").unwrap();
    assert!(check(&s));
    s.role_revoke_permission("r", b"k", b"").unwrap();
    assert!(!check(&s), "revoking the permission");
    s.user_grant_role("u", "root").unwrap();
    assert!(check(&s), "the root role allows everything");
    s.user_delete("u").unwrap();
    assert!(!check(&s), "deleted user");
    s.user_add("u", b"h".to_vec(), false).unwrap();
    assert!(!check(&s), "a new user of the same name starts without roles");
}

#[test]
fn merged_permissions_across_roles() {
    let mut s = store();
    s.user_add("u", b"h".to_vec(), false).unwrap();
    s.role_add("r1").unwrap();
    s.role_add("r2").unwrap();
    s.role_grant_permission("r1", Some(perm(PermissionType::Read, b"a", b"f")))
        .unwrap();
    s.role_grant_permission("r2", Some(perm(PermissionType::Read, b"f", b"k")))
        .unwrap();
    s.user_grant_role("u", "r1").unwrap();
    assert!(!s.is_range_permitted("u", b"b", b"h", PermType::Read));
    s.user_grant_role("u", "r2").unwrap();
    assert!(
        s.is_range_permitted("u", b"b", b"h", PermType::Read),
        "[a,f) + [f,k) cover [b,h)"
    );
    assert!(s.is_range_permitted("u", b"a", b"k", PermType::Read));
    assert!(!s.is_range_permitted("u", b"a", b"k\0", PermType::Read));
}

#[test]
fn is_admin_permitted() {
    let mut s = enabled();
    s.user_add("alice", b"h".to_vec(), false).unwrap();
    assert_eq!(
        s.is_admin_permitted(&AuthInfo::default()),
        Err(AuthError::UserEmpty)
    );
    assert_eq!(
        s.is_admin_permitted(&info(&s, "ghost")),
        Err(AuthError::UserNotFound)
    );
    assert_eq!(
        s.is_admin_permitted(&info(&s, "alice")),
        Err(AuthError::PermissionDenied)
    );
    assert_eq!(s.is_admin_permitted(&info(&s, "root")), Ok(()));
    let stale_root = AuthInfo {
        username: "root".into(),
        revision: 1,
    };
    assert_eq!(
        s.is_admin_permitted(&stale_root),
        Ok(()),
        "etcd 3.4 checks no revision here"
    );
}

// --- passwords, authenticate, tokens ---

#[test]
fn password_checks() {
    let mut s = store();
    s.user_add("root", hash_password("rootpw", MIN_BCRYPT_COST).unwrap(), false)
        .unwrap();
    assert_eq!(s.check_password("root", "rootpw"), Err(AuthError::AuthNotEnabled));
    s.user_grant_role("root", "root").unwrap();
    s.user_add("cert", Vec::new(), true).unwrap();
    s.auth_enable().unwrap();
    assert_eq!(s.check_password("root", "rootpw"), Ok(s.revision()));
    assert_eq!(s.check_password("root", "wrong"), Err(AuthError::AuthFailed));
    assert_eq!(s.check_password("nobody", "rootpw"), Err(AuthError::AuthFailed));
    assert_eq!(
        s.check_password("cert", ""),
        Err(AuthError::AuthFailed),
        "no_password user"
    );

    let check = s.password_check("root").unwrap();
    assert_eq!(check.revision, s.revision());
    s.user_change_password("root", hash_password("new", MIN_BCRYPT_COST).unwrap())
        .unwrap();
    // The check taken before the change still names the old revision: the server sees
    // that the store moved on and starts over, as etcd's Authenticate loop does.
    assert_eq!(check.verify("rootpw"), Ok(s.revision() - 1));
    assert_eq!(s.check_password("root", "new"), Ok(s.revision()));
}

#[test]
fn authenticate_issues_simple_tokens() {
    let mut s = store();
    let now = Instant::now();
    assert_eq!(
        s.authenticate("root", "p", 1, now),
        Err(AuthError::AuthNotEnabled)
    );
    s.user_add("root", b"h".to_vec(), false).unwrap();
    s.user_grant_role("root", "root").unwrap();
    s.user_add("cert", Vec::new(), true).unwrap();
    s.user_add("alice", b"h".to_vec(), false).unwrap();
    s.auth_enable().unwrap();
    assert_eq!(s.authenticate("nobody", "p", 1, now), Err(AuthError::AuthFailed));
    assert_eq!(s.authenticate("cert", "p", 1, now), Err(AuthError::AuthFailed));

    let prefix = s.gen_token_prefix().unwrap();
    assert_eq!(prefix.len(), 16);
    let token = s.authenticate("alice", &prefix, 42, now).unwrap();
    assert_eq!(token, format!("{prefix}.42"));
    assert_eq!(crate::simple_token_index(&token), Some(42));
    assert_eq!(s.auth_info(&token, now), Ok(info(&s, "alice")));
    assert_eq!(s.auth_info("bogus.1", now), Err(AuthError::InvalidAuthToken));
    assert_eq!(s.auth_info("", now), Err(AuthError::InvalidAuthToken));

    // A simple token is always checked at the current revision.
    s.role_add("r").unwrap();
    assert_eq!(s.auth_info(&token, now).unwrap().revision, s.revision());

    // Changing the password or deleting the user drops its tokens.
    s.user_change_password("alice", b"h2".to_vec()).unwrap();
    assert_eq!(s.auth_info(&token, now), Err(AuthError::InvalidAuthToken));
    let token = s.authenticate("alice", &prefix, 43, now).unwrap();
    let root_token = s.authenticate("root", &prefix, 44, now).unwrap();
    s.user_delete("alice").unwrap();
    assert_eq!(s.auth_info(&token, now), Err(AuthError::InvalidAuthToken));
    assert!(s.auth_info(&root_token, now).is_ok(), "other users keep theirs");
}

#[test]
fn authenticate_checked_refuses_a_password_checked_before_an_auth_change() {
    let mut s = enabled();
    s.user_add("alice", hash_password("old", MIN_BCRYPT_COST).unwrap(), false)
        .unwrap();
    s.user_add("bob", b"h".to_vec(), false).unwrap();
    let now = Instant::now();
    // the member checks the password, then the change is committed before its entry
    let checked = s.password_check("alice").unwrap().verify("old").unwrap();
    assert_eq!(checked, s.revision());
    s.user_change_password("alice", hash_password("new", MIN_BCRYPT_COST).unwrap())
        .unwrap();
    assert_eq!(
        s.authenticate_checked("alice", checked, "p", 10, now),
        Err(AuthError::AuthOldRevision)
    );
    assert_eq!(
        s.auth_info("p.10", now),
        Err(AuthError::InvalidAuthToken),
        "no token recorded"
    );
    // checked again: the old password fails, the new one gets a token at this revision
    assert_eq!(
        s.password_check("alice").unwrap().verify("old"),
        Err(AuthError::AuthFailed)
    );
    let checked = s.password_check("alice").unwrap().verify("new").unwrap();
    let token = s.authenticate_checked("alice", checked, "p", 11, now).unwrap();
    assert_eq!(s.auth_info(&token, now), Ok(info(&s, "alice")));

    // the user deleted in between: no token either
    let checked = s.password_check("bob").unwrap().revision;
    s.user_delete("bob").unwrap();
    assert_eq!(
        s.authenticate_checked("bob", checked, "p", 12, now),
        Err(AuthError::AuthOldRevision)
    );
    // any auth change counts (the revision is all the check knows)
    let checked = s.password_check("alice").unwrap().revision;
    s.role_add("unrelated").unwrap();
    assert_eq!(
        s.authenticate_checked("alice", checked, "p", 13, now),
        Err(AuthError::AuthOldRevision)
    );
    assert_eq!(s.auth_info("p.12", now), Err(AuthError::InvalidAuthToken));
    assert_eq!(s.auth_info("p.13", now), Err(AuthError::InvalidAuthToken));
    // auth disabled in between: etcd's answer, not a retry
    let checked = s.password_check("alice").unwrap().revision;
    s.auth_disable();
    assert_eq!(
        s.authenticate_checked("alice", checked, "p", 14, now),
        Err(AuthError::AuthNotEnabled)
    );
}

#[test]
fn authenticate_checked_with_jwts() {
    let jwt =
        JwtTokens::from_keys(SignMethod::Hs256, Some(b"secret"), None, Duration::from_secs(300)).unwrap();
    let mut s = AuthStore::new(TokenProvider::Jwt(Box::new(jwt)));
    s.user_add("root", b"h".to_vec(), false).unwrap();
    s.user_grant_role("root", "root").unwrap();
    s.user_add("alice", b"h".to_vec(), false).unwrap();
    s.auth_enable().unwrap();
    let now = Instant::now();
    let checked = s.revision();
    let token = s.authenticate_checked("alice", checked, "", 5, now).unwrap();
    assert_eq!(s.auth_info(&token, now).unwrap().revision, checked);
    s.user_change_password("alice", b"h2".to_vec()).unwrap();
    assert_eq!(
        s.authenticate_checked("alice", checked, "", 6, now),
        Err(AuthError::AuthOldRevision),
        "no JWT is signed for the stale check"
    );
}

#[test]
fn simple_tokens_expire_on_virtual_time() {
    let ttl = Duration::from_secs(60);
    let mut s = AuthStore::new(TokenProvider::simple(ttl));
    s.user_add("root", b"h".to_vec(), false).unwrap();
    s.user_grant_role("root", "root").unwrap();
    s.auth_enable().unwrap();
    let t0 = Instant::now();
    let token = s.authenticate("root", "abc", 7, t0).unwrap();
    let t1 = t0 + Duration::from_secs(50);
    assert!(s.auth_info(&token, t1).is_ok(), "used within the TTL");
    let t2 = t1 + Duration::from_secs(55);
    assert!(s.auth_info(&token, t2).is_ok(), "the use at t1 restarted the TTL");
    let t3 = t2 + ttl + Duration::from_secs(1);
    assert_eq!(s.auth_info(&token, t3), Err(AuthError::InvalidAuthToken));
}

#[test]
fn nop_provider_never_issues_tokens() {
    let mut s = AuthStore::new(TokenProvider::Nop);
    s.user_add("root", b"h".to_vec(), false).unwrap();
    s.user_grant_role("root", "root").unwrap();
    s.auth_enable().unwrap();
    assert_eq!(s.gen_token_prefix(), Ok(String::new()));
    assert_eq!(
        s.authenticate("root", "", 1, Instant::now()),
        Err(AuthError::AuthFailed)
    );
    assert_eq!(
        s.auth_info("x.1", Instant::now()),
        Err(AuthError::InvalidAuthToken)
    );
}

#[test]
fn jwt_tokens_carry_the_revision_they_were_issued_at() {
    let jwt =
        JwtTokens::from_keys(SignMethod::Hs256, Some(b"secret"), None, Duration::from_secs(300)).unwrap();
    let mut s = AuthStore::new(TokenProvider::Jwt(Box::new(jwt)));
    s.user_add("root", b"h".to_vec(), false).unwrap();
    s.user_grant_role("root", "root").unwrap();
    s.user_add("alice", b"h".to_vec(), false).unwrap();
    s.role_add("r").unwrap();
    s.role_grant_permission("r", Some(perm(PermissionType::Read, b"k", b"")))
        .unwrap();
    s.user_grant_role("alice", "r").unwrap();
    s.auth_enable().unwrap();
    assert_eq!(s.gen_token_prefix(), Ok(String::new()));
    let now = Instant::now();
    let token = s.authenticate("alice", "", 99, now).unwrap();
    assert_eq!(token.split('.').count(), 3);
    let ai = s.auth_info(&token, now).unwrap();
    assert_eq!(ai, info(&s, "alice"));
    assert_eq!(s.is_read_permitted(&ai, b"k", b""), Ok(()));
    // Any change of users or roles makes it stale.
    s.role_add("other").unwrap();
    let ai = s.auth_info(&token, now).unwrap();
    assert_eq!(
        s.is_read_permitted(&ai, b"k", b""),
        Err(AuthError::AuthOldRevision)
    );
    // Deleting the user does not invalidate a JWT (nothing is stored), but its
    // permissions are gone.
    let token = s.authenticate("alice", "", 100, now).unwrap();
    s.user_delete("alice").unwrap();
    assert!(s.auth_info(&token, now).is_ok());
}

// --- persistence ---

/// A backend model: the records the applier would hold after writing every AuthWrite.
#[derive(Default)]
struct Backend {
    enabled: bool,
    revision: u64,
    users: BTreeMap<String, User>,
    roles: BTreeMap<String, Role>,
}

impl Backend {
    fn apply(&mut self, writes: Vec<AuthWrite>) {
        for w in writes {
            match w {
                AuthWrite::PutUser(u) => {
                    self.users.insert(name_of(&u.name), u);
                }
                AuthWrite::DeleteUser(n) => {
                    self.users.remove(&n);
                }
                AuthWrite::PutRole(r) => {
                    self.roles.insert(name_of(&r.name), r);
                }
                AuthWrite::DeleteRole(n) => {
                    self.roles.remove(&n);
                }
                AuthWrite::SetEnabled(e) => self.enabled = e,
                AuthWrite::SetRevision(r) => self.revision = r,
            }
        }
    }

    fn state(&self) -> AuthState {
        AuthState {
            enabled: self.enabled,
            revision: self.revision.max(1),
            users: self.users.values().cloned().collect(),
            roles: self.roles.values().cloned().collect(),
        }
    }
}

/// Runs one mutation, writes its records to the backend model and checks that the model
/// now holds exactly the store's state.
fn step(
    s: &mut AuthStore,
    be: &mut Backend,
    op: impl FnOnce(&mut AuthStore) -> Result<Vec<AuthWrite>, AuthError>,
) {
    be.apply(op(s).unwrap());
    assert_eq!(be.state(), s.state());
}

#[test]
fn writes_describe_every_change_and_state_round_trips() {
    let mut s = store();
    let be = &mut Backend::default();
    step(&mut s, be, |s| s.user_add("root", b"h".to_vec(), false));
    step(&mut s, be, |s| s.role_add("root"));
    step(&mut s, be, |s| s.user_grant_role("root", "root"));
    step(&mut s, be, |s| s.role_add("r"));
    step(&mut s, be, |s| {
        s.role_grant_permission("r", Some(perm(PermissionType::Read, b"a", b"z")))
    });
    step(&mut s, be, |s| s.user_add("u1", b"h".to_vec(), false));
    step(&mut s, be, |s| s.user_add("u2", Vec::new(), true));
    step(&mut s, be, |s| s.user_grant_role("u1", "r"));
    step(&mut s, be, |s| s.user_grant_role("u2", "r"));
    step(&mut s, be, |s| s.user_grant_role("u2", "r"));
    step(&mut s, be, AuthStore::auth_enable);
    step(&mut s, be, AuthStore::auth_enable);
    step(&mut s, be, |s| s.user_change_password("u1", b"h2".to_vec()));
    step(&mut s, be, |s| {
        s.role_grant_permission("r", Some(perm(PermissionType::Write, b"a", b"z")))
    });
    step(&mut s, be, |s| s.role_revoke_permission("r", b"a", b"z"));
    step(&mut s, be, |s| s.user_revoke_role("u1", "r"));
    step(&mut s, be, |s| s.role_delete("r"));
    step(&mut s, be, |s| s.user_delete("u2"));
    step(&mut s, be, |s| Ok(s.auth_disable()));

    let loaded = AuthStore::load(s.state(), TokenProvider::Nop);
    assert_eq!(loaded.state(), s.state());
    assert_eq!(loaded.revision(), s.revision());
    assert_eq!(loaded.user_list(), s.user_list());
}

#[test]
fn loaded_store_checks_permissions_like_the_original() {
    let mut s = enabled();
    s.user_add("u", b"h".to_vec(), false).unwrap();
    s.role_add("r").unwrap();
    s.role_grant_permission("r", Some(perm(PermissionType::Readwrite, b"/app/", b"/app0")))
        .unwrap();
    s.user_grant_role("u", "r").unwrap();
    let loaded = AuthStore::load(s.state(), TokenProvider::Nop);
    assert!(loaded.is_enabled());
    let ui = info(&loaded, "u");
    assert_eq!(loaded.is_put_permitted(&ui, b"/app/x"), Ok(()));
    assert_eq!(
        loaded.is_put_permitted(&ui, b"/other"),
        Err(AuthError::PermissionDenied)
    );
    assert_eq!(loaded.is_admin_permitted(&info(&loaded, "root")), Ok(()));
}

// --- property test: the store's permission checks against a naive model ---

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn store_range_checks_match_model(
        grants in prop::collection::vec((any::<bool>(), grant_strategy()), 0..6),
        queries in prop::collection::vec((key_strategy(), range_end_strategy()), 1..10),
    ) {
        let mut s = store();
        s.user_add("u", b"h".to_vec(), false).unwrap();
        s.role_add("r1").unwrap();
        s.role_add("r2").unwrap();
        s.role_add("unused").unwrap();
        s.user_grant_role("u", "r1").unwrap();
        s.user_grant_role("u", "r2").unwrap();
        for (first, g) in &grants {
            let role = if *first { "r1" } else { "r2" };
            s.role_grant_permission(role, Some(g.clone())).unwrap();
            // Noise on a role the user does not hold.
            let mut other = g.clone();
            other.key.push(b'a');
            s.role_grant_permission("unused", Some(other)).unwrap();
        }
        // What the roles hold after replacements (same key and range_end: last type wins).
        let held: Vec<Permission> = ["r1", "r2"].iter().flat_map(|r| s.role_get(r).unwrap()).collect();
        let loaded = AuthStore::load(s.state(), TokenProvider::Nop);
        for (key, range_end) in &queries {
            for p in [PermType::Read, PermType::Write] {
                let want = model_allows(&held, key, range_end, p);
                prop_assert_eq!(s.is_range_permitted("u", key, range_end, p), want);
                prop_assert_eq!(loaded.is_range_permitted("u", key, range_end, p), want);
            }
        }
    }
}

#[test]
fn debug_output_leaks_no_secrets() {
    let mut s = enabled();
    s.user_change_password("root", b"$2a$10$secret-hash".to_vec())
        .unwrap();
    let token = s.authenticate("root", "SECRETPREFIX", 3, Instant::now()).unwrap();
    let dbg = format!("{s:?}");
    assert!(dbg.contains("root"), "{dbg}");
    assert!(!dbg.contains("secret-hash"), "{dbg}");
    assert!(!dbg.contains(&token), "{dbg}");
}

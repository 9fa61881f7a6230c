//! `user ...`, `role ...` and `auth enable|disable|status`.

use retcd_api::authpb::permission::Type as PermType;
use retcd_api::authpb::{Permission, UserAddOptions};
use retcd_api::etcdserverpb::{
    AuthDisableRequest, AuthEnableRequest, AuthRoleAddRequest, AuthRoleDeleteRequest, AuthRoleGetRequest,
    AuthRoleGetResponse, AuthRoleGrantPermissionRequest, AuthRoleListRequest,
    AuthRoleRevokePermissionRequest, AuthStatusRequest, AuthUserAddRequest, AuthUserChangePasswordRequest,
    AuthUserDeleteRequest, AuthUserGetRequest, AuthUserGrantRoleRequest, AuthUserListRequest,
    AuthUserRevokeRoleRequest,
};

use super::{Ctx, prefix_end};
use crate::cli::{RoleCmd, UserCmd};
use crate::client::prompt_password;
use crate::error::CtlError;
use crate::gofmt::quote;
use crate::output::{Format, Out, Pb, fields_hdr, table};

/// Prints a response whose simple form is one sentence and whose fields form is the header.
fn show_done<M: Pb>(
    out: &Out,
    r: &M,
    header: Option<&retcd_api::etcdserverpb::ResponseHeader>,
    sentence: String,
) -> Result<(), CtlError> {
    out.show(r, || match out.format {
        Format::Fields => fields_hdr(header),
        _ => println!("{sentence}"),
    })
}

fn one_arg<'a>(args: &'a [String], what: &str) -> Result<&'a str, CtlError> {
    match args {
        [a] => Ok(a),
        _ => Err(CtlError::BadArgs(format!("{what} as its argument"))),
    }
}

/// Reads a password: prompted (twice when `confirm`) in interactive mode, else one word of stdin.
fn read_password(interactive: bool, user: &str, confirm: bool) -> Result<String, CtlError> {
    if !interactive {
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        return Ok(line.split_whitespace().next().unwrap_or_default().to_string());
    }
    let first = prompt_password(&format!("Password of {user}: "))?;
    if confirm {
        let again = prompt_password(&format!("Type password of {user} again for confirmation: "))?;
        if again != first {
            return Err(CtlError::BadArgs("given passwords are different".into()));
        }
    }
    Ok(first)
}

/// `user ...`.
pub async fn user(ctx: &Ctx, c: UserCmd) -> Result<(), CtlError> {
    let out = &ctx.out;
    match c {
        UserCmd::Add {
            interactive,
            new_user_password,
            no_password,
            args,
        } => {
            let arg = one_arg(&args, "user add command requires user name")?;
            let (name, password) = match arg.split_once(':') {
                Some((n, p)) if !no_password => (n.to_string(), p.to_string()),
                _ if no_password => (arg.to_string(), String::new()),
                _ if !new_user_password.is_empty() => (arg.to_string(), new_user_password),
                _ => (arg.to_string(), read_password(interactive, arg, true)?),
            };
            let client = ctx.client().await?;
            let req = AuthUserAddRequest {
                name: name.clone(),
                password,
                options: Some(UserAddOptions { no_password }),
                hashed_password: String::new(),
            };
            let r = client.call(client.auth().user_add(req)).await?;
            show_done(out, &r, r.header.as_ref(), format!("User {name} created"))
        }
        UserCmd::Delete(p) => {
            let name = one_arg(&p.args, "user delete command requires user name")?;
            let client = ctx.client().await?;
            let r = client
                .call(
                    client
                        .auth()
                        .user_delete(AuthUserDeleteRequest { name: name.into() }),
                )
                .await?;
            show_done(out, &r, r.header.as_ref(), format!("User {name} deleted"))
        }
        UserCmd::Get { detail, args } => {
            let name = one_arg(&args, "user get command requires user name")?;
            let client = ctx.client().await?;
            let r = client
                .call(client.auth().user_get(AuthUserGetRequest { name: name.into() }))
                .await?;
            if detail {
                println!("User: {name}");
                for role in &r.roles {
                    println!();
                    let rr = client
                        .call(client.auth().role_get(AuthRoleGetRequest { role: role.clone() }))
                        .await?;
                    show_role(out, role, &rr)?;
                }
                return Ok(());
            }
            if out.format == Format::Fields {
                return Err(out.unsupported());
            }
            out.show(&r, || {
                println!("User: {name}");
                println!(
                    "Roles:{}",
                    r.roles.iter().map(|x| format!(" {x}")).collect::<String>()
                );
            })
        }
        UserCmd::List(p) => {
            if !p.args.is_empty() {
                return Err(CtlError::BadArgs(
                    "user list command requires no arguments".into(),
                ));
            }
            let client = ctx.client().await?;
            let r = client
                .call(client.auth().user_list(AuthUserListRequest {}))
                .await?;
            if out.format == Format::Fields {
                return Err(out.unsupported());
            }
            if out.pretty {
                // on a terminal: each user with its roles
                let mut rows = Vec::new();
                for u in &r.users {
                    let req = AuthUserGetRequest { name: u.clone() };
                    let roles = client
                        .call(client.auth().user_get(req))
                        .await
                        .map_or_else(|_| "?".to_string(), |g| g.roles.join(", "));
                    rows.push(vec![u.clone(), roles]);
                }
                print!("{}", table(&["USER", "ROLES"], &rows));
                return Ok(());
            }
            out.show(&r, || r.users.iter().for_each(|u| println!("{u}")))
        }
        UserCmd::Passwd { interactive, args } => {
            let name = one_arg(&args, "user passwd command requires user name")?;
            let password = read_password(interactive, name, true)?;
            let client = ctx.client().await?;
            let req = AuthUserChangePasswordRequest {
                name: name.into(),
                password,
                hashed_password: String::new(),
            };
            let r = client.call(client.auth().user_change_password(req)).await?;
            show_done(out, &r, r.header.as_ref(), "Password updated".into())
        }
        UserCmd::GrantRole(p) => {
            let [user, role] = &p.args[..] else {
                return Err(CtlError::BadArgs(
                    "user grant command requires user name and role name as its argument".into(),
                ));
            };
            let client = ctx.client().await?;
            let req = AuthUserGrantRoleRequest {
                user: user.clone(),
                role: role.clone(),
            };
            let r = client.call(client.auth().user_grant_role(req)).await?;
            show_done(
                out,
                &r,
                r.header.as_ref(),
                format!("Role {role} is granted to user {user}"),
            )
        }
        UserCmd::RevokeRole(p) => {
            let [name, role] = &p.args[..] else {
                return Err(CtlError::BadArgs(
                    "user revoke-role requires user name and role name as its argument".into(),
                ));
            };
            let client = ctx.client().await?;
            let req = AuthUserRevokeRoleRequest {
                name: name.clone(),
                role: role.clone(),
            };
            let r = client.call(client.auth().user_revoke_role(req)).await?;
            show_done(
                out,
                &r,
                r.header.as_ref(),
                format!("Role {role} is revoked from user {name}"),
            )
        }
    }
}

/// Prints a role's permissions (`role get`, `user get --detail`).
fn show_role(out: &Out, role: &str, r: &AuthRoleGetResponse) -> Result<(), CtlError> {
    if out.format == Format::Fields {
        fields_hdr(r.header.as_ref());
        for p in &r.perm {
            let t = PermType::try_from(p.perm_type).map_or("UNKNOWN", |t| t.as_str_name());
            println!("\"PermType\" :  {t}");
            println!("\"Key\" : {}", quote(&p.key));
            println!("\"RangeEnd\" : {}", quote(&p.range_end));
        }
        return Ok(());
    }
    out.show(r, || {
        println!("Role {role}");
        let print = |p: &Permission| {
            let key = String::from_utf8_lossy(&p.key);
            if p.range_end.is_empty() {
                println!("\t{key}");
                return;
            }
            let end = String::from_utf8_lossy(&p.range_end);
            let mut line = if p.range_end == b"\0" {
                format!("\t[{key}, <open ended>")
            } else {
                format!("\t[{key}, {end})")
            };
            if prefix_end(&p.key) == p.range_end {
                line += &format!(" (prefix {key})");
            }
            println!("{line}");
        };
        let is = |p: &Permission, t: PermType| {
            p.perm_type == t as i32 || p.perm_type == PermType::Readwrite as i32
        };
        println!("KV Read:");
        r.perm.iter().filter(|p| is(p, PermType::Read)).for_each(print);
        println!("KV Write:");
        r.perm.iter().filter(|p| is(p, PermType::Write)).for_each(print);
    })
}

/// A role's permissions on one line: `read foo, readwrite [a, c), write prefix p/`.
fn perm_summary(perms: &[Permission]) -> String {
    perms
        .iter()
        .map(|p| {
            let kind = PermType::try_from(p.perm_type).map_or("?", |t| match t {
                PermType::Read => "read",
                PermType::Write => "write",
                PermType::Readwrite => "readwrite",
            });
            let key = String::from_utf8_lossy(&p.key);
            let what = if p.range_end.is_empty() {
                key.into_owned()
            } else if p.range_end == b"\0" {
                format!("[{key}, <open ended>")
            } else if prefix_end(&p.key) == p.range_end {
                format!("prefix {key}")
            } else {
                format!("[{key}, {})", String::from_utf8_lossy(&p.range_end))
            };
            format!("{kind} {what}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The range end of a permission from `KEY [END]` and `--prefix` / `--from-key`.
fn perm_range_end(args: &[String], prefix: bool, from_key: bool) -> Result<Vec<u8>, CtlError> {
    let bad = |m: &str| Err(CtlError::BadArgs(m.into()));
    match args {
        [key] if prefix && from_key => bad("--from-key and --prefix flags are mutually exclusive"),
        [key] if prefix => Ok(prefix_end(key.as_bytes())),
        [_] if from_key => Ok(vec![0]),
        [_] => Ok(Vec::new()),
        _ if prefix => bad("unexpected endkey argument with --prefix flag"),
        _ if from_key => bad("unexpected endkey argument with --from-key flag"),
        [_, end, ..] => Ok(end.as_bytes().to_vec()),
        [] => Ok(Vec::new()),
    }
}

/// `role ...`.
pub async fn role(ctx: &Ctx, c: RoleCmd) -> Result<(), CtlError> {
    let out = &ctx.out;
    match c {
        RoleCmd::Add(p) => {
            let name = one_arg(&p.args, "role add command requires role name")?;
            let client = ctx.client().await?;
            let r = client
                .call(client.auth().role_add(AuthRoleAddRequest { name: name.into() }))
                .await?;
            show_done(out, &r, r.header.as_ref(), format!("Role {name} created"))
        }
        RoleCmd::Delete(p) => {
            let role = one_arg(&p.args, "role delete command requires role name")?;
            let client = ctx.client().await?;
            let r = client
                .call(
                    client
                        .auth()
                        .role_delete(AuthRoleDeleteRequest { role: role.into() }),
                )
                .await?;
            show_done(out, &r, r.header.as_ref(), format!("Role {role} deleted"))
        }
        RoleCmd::Get(p) => {
            let role = one_arg(&p.args, "role get command requires role name")?;
            let client = ctx.client().await?;
            let r = client
                .call(client.auth().role_get(AuthRoleGetRequest { role: role.into() }))
                .await?;
            show_role(out, role, &r)
        }
        RoleCmd::List(p) => {
            if !p.args.is_empty() {
                return Err(CtlError::BadArgs(
                    "role list command requires no arguments".into(),
                ));
            }
            let client = ctx.client().await?;
            let r = client
                .call(client.auth().role_list(AuthRoleListRequest {}))
                .await?;
            if out.pretty {
                // on a terminal: each role with its permissions
                let mut rows = Vec::new();
                for role in &r.roles {
                    let req = AuthRoleGetRequest { role: role.clone() };
                    let perms = client
                        .call(client.auth().role_get(req))
                        .await
                        .map_or_else(|_| "?".to_string(), |g| perm_summary(&g.perm));
                    rows.push(vec![role.clone(), perms]);
                }
                print!("{}", table(&["ROLE", "PERMISSIONS"], &rows));
                return Ok(());
            }
            out.show(&r, || {
                if out.format == Format::Fields {
                    fields_hdr(r.header.as_ref());
                    // one line, each role quoted after it (none: the bare label)
                    let roles: String = r
                        .roles
                        .iter()
                        .map(|x| format!(" {}", quote(x.as_bytes())))
                        .collect();
                    println!("\"Roles\" :{roles}");
                } else {
                    r.roles.iter().for_each(|x| println!("{x}"));
                }
            })
        }
        RoleCmd::GrantPermission {
            prefix,
            from_key,
            args,
        } => {
            if args.len() < 3 {
                return Err(CtlError::BadArgs(
                    "role grant command requires role name, permission type, and key [endkey] as its argument".into(),
                ));
            }
            let perm_type = match args[1].to_uppercase().as_str() {
                "READ" => PermType::Read,
                "WRITE" => PermType::Write,
                "READWRITE" => PermType::Readwrite,
                _ => return Err(CtlError::BadArgs(format!("invalid permission type: {}", args[1]))),
            };
            let range_end = perm_range_end(&args[2..], prefix, from_key)?;
            let client = ctx.client().await?;
            let perm = Permission {
                perm_type: perm_type as i32,
                key: args[2].as_bytes().to_vec(),
                range_end,
            };
            let req = AuthRoleGrantPermissionRequest {
                name: args[0].clone(),
                perm: Some(perm),
            };
            let r = client.call(client.auth().role_grant_permission(req)).await?;
            show_done(out, &r, r.header.as_ref(), format!("Role {} updated", args[0]))
        }
        RoleCmd::RevokePermission {
            prefix,
            from_key,
            args,
        } => {
            if args.len() < 2 {
                return Err(CtlError::BadArgs(
                    "role revoke-permission command requires role name and key [endkey] as its argument"
                        .into(),
                ));
            }
            let range_end = perm_range_end(&args[1..], prefix, from_key)?;
            let client = ctx.client().await?;
            let req = AuthRoleRevokePermissionRequest {
                role: args[0].clone(),
                key: args[1].as_bytes().to_vec(),
                range_end: range_end.clone(),
            };
            let r = client.call(client.auth().role_revoke_permission(req)).await?;
            let sentence = if range_end.is_empty() {
                format!("Permission of key {} is revoked from role {}", args[1], args[0])
            } else {
                format!(
                    "Permission of range [{}, {}) is revoked from role {}",
                    args[1],
                    String::from_utf8_lossy(&range_end),
                    args[0]
                )
            };
            show_done(out, &r, r.header.as_ref(), sentence)
        }
    }
}

/// `auth enable` (creating the root role if needed, as etcdctl does), `auth disable`, and
/// `auth status` (etcdctl 3.5).
pub async fn auth(ctx: &Ctx, enable: bool, status: bool, args: &[String]) -> Result<(), CtlError> {
    if !args.is_empty() && !status {
        let which = if enable { "enable" } else { "disable" };
        return Err(CtlError::BadArgs(format!(
            "auth {which} command does not accept any arguments"
        )));
    }
    let client = ctx.client().await?;
    if status {
        let r = client
            .call(client.auth().auth_status(AuthStatusRequest {}))
            .await?;
        return ctx.out.show(&r, || {
            if ctx.out.format == Format::Fields {
                fields_hdr(r.header.as_ref());
                println!("\"Enabled\" : {}", r.enabled);
                println!("\"AuthRevision\" : {}", r.auth_revision);
            } else {
                println!("Authentication Status: {}", r.enabled);
                println!("AuthRevision: {}", r.auth_revision);
            }
        });
    }
    if !enable {
        client
            .call(client.auth().auth_disable(AuthDisableRequest {}))
            .await?;
        println!("Authentication Disabled");
        return Ok(());
    }
    loop {
        match client.call(client.auth().auth_enable(AuthEnableRequest {})).await {
            Ok(_) => break,
            Err(CtlError::Rpc(s)) if s.message() == "etcdserver: root user does not have root role" => {
                client
                    .call(client.auth().role_add(AuthRoleAddRequest { name: "root".into() }))
                    .await?;
                let grant = AuthUserGrantRoleRequest {
                    user: "root".into(),
                    role: "root".into(),
                };
                client.call(client.auth().user_grant_role(grant)).await?;
            }
            Err(e) => return Err(e),
        }
    }
    println!("Authentication Enabled");
    Ok(())
}

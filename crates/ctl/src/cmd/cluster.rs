//! Cluster and maintenance commands: `member ...`, `endpoint health|status|hashkv`,
//! `alarm list|disarm`, `defrag`, `snapshot save` and `move-leader` (`snapshot status` and
//! `restore` work offline: `snapshot.rs`).

use std::time::Instant;

use futures::StreamExt;
use retcd_api::etcdserverpb::{
    AlarmRequest, AlarmResponse, AlarmType, DefragmentRequest, HashKvRequest, HashKvResponse, Member,
    MemberAddRequest, MemberListRequest, MemberListResponse, MemberPromoteRequest, MemberRemoveRequest,
    MemberUpdateRequest, MoveLeaderRequest, RangeRequest, SnapshotRequest, StatusRequest, StatusResponse,
    alarm_request::AlarmAction,
};

use super::{Ctx, hex16, parse_u64};
use crate::client::{Client, within};
use crate::error::{CtlError, deadline_exceeded, grpc_string};
use crate::gofmt::{self, json_string, quote};
use crate::output::{Format, fields_hdr, json_of, table};

fn member_id(args: &[String]) -> Result<u64, CtlError> {
    let [arg] = args else {
        return Err(CtlError::BadArgs("member ID is not provided".into()));
    };
    parse_u64(arg, 16).map_err(|e| CtlError::BadArgs(format!("bad member ID arg ({e}), expecting ID in Hex")))
}

fn peer_urls(urls: &str) -> Result<Vec<String>, CtlError> {
    if urls.is_empty() {
        return Err(CtlError::BadArgs("member peer urls not provided".into()));
    }
    Ok(urls.split(',').map(str::to_string).collect())
}

/// Go's `url.Parse` of a peer URL, far enough for what etcd's `types.NewURLs` looks at:
/// (scheme, host, path), or the parse error as Go words it.
fn go_parse_url(raw: &str) -> Result<(String, String, String), String> {
    let fail = |why: String| Err(format!("parse {}: {why}", quote(raw.as_bytes())));
    if raw.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return fail("net/url: invalid control character in URL".into());
    }
    // every `%` starts two hex digits; in a host, only an escape of a non-ASCII byte or %25
    let escapes = |s: &str, host: bool| -> Result<(), String> {
        let b = s.as_bytes();
        for i in (0..b.len()).filter(|&i| b[i] == b'%') {
            let digit = |k: usize| b.get(i + k).and_then(|c| (*c as char).to_digit(16));
            let bad = match (digit(1), digit(2)) {
                (Some(d), Some(_)) => host && d < 8 && &b[i..i + 3] != b"%25",
                _ => true,
            };
            if bad {
                return Err(format!(
                    "invalid URL escape {}",
                    quote(&b[i..(i + 3).min(b.len())])
                ));
            }
        }
        Ok(())
    };
    let (rest, fragment) = raw.split_once('#').unwrap_or((raw, ""));
    // the scheme: a letter, then letters, digits, + - . up to ':'
    let mut scheme = String::new();
    let mut rest = rest;
    for (i, c) in rest.char_indices() {
        match c {
            'a'..='z' | 'A'..='Z' => {}
            '0'..='9' | '+' | '-' | '.' if i > 0 => {}
            ':' if i == 0 => return fail("missing protocol scheme".into()),
            ':' => {
                scheme = rest[..i].to_ascii_lowercase();
                rest = &rest[i + 1..];
                break;
            }
            _ => break,
        }
    }
    let rest = rest.split_once('?').map_or(rest, |(p, _)| p);
    let mut host = String::new();
    let mut path = rest;
    if !rest.starts_with('/') {
        if !scheme.is_empty() {
            // opaque (`http:x`): no host, no path
            return escapes(fragment, false).map_or_else(fail, |()| Ok((scheme, host, String::new())));
        }
        if rest.split('/').next().is_some_and(|seg| seg.contains(':')) {
            return fail("first path segment in URL cannot contain colon".into());
        }
    } else if let Some(after) = rest.strip_prefix("//")
        && (!scheme.is_empty() || !rest.starts_with("///"))
    {
        let (authority, p) = after.find('/').map_or((after, ""), |i| after.split_at(i));
        path = p;
        let h = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let port_ok = |p: &str| {
            p.is_empty()
                || p.strip_prefix(':')
                    .is_some_and(|d| d.bytes().all(|b| b.is_ascii_digit()))
        };
        let port = if h.starts_with('[') {
            let Some(i) = h.rfind(']') else {
                return fail("missing ']' in host".into());
            };
            &h[i + 1..]
        } else {
            h.rfind(':').map_or("", |i| &h[i..])
        };
        if !port_ok(port) {
            return fail(format!("invalid port {} after host", quote(port.as_bytes())));
        }
        if let Err(e) = escapes(h, true) {
            return fail(e);
        }
        let allowed =
            |b: u8| b >= 0x80 || b.is_ascii_alphanumeric() || b"-_.~$&'()*+,;=:[]<>\"%".contains(&b);
        if let Some(c) = h.bytes().find(|&b| !allowed(b)) {
            return fail(format!("invalid character {} in host name", quote(&[c])));
        }
        host = h.to_string();
    }
    if let Err(e) = escapes(path, false).and_then(|()| escapes(fragment, false)) {
        return fail(e);
    }
    Ok((scheme, host, path.to_string()))
}

/// Whether Go's `net.SplitHostPort` accepts `hp` (`host:port`, `[v6]:port`).
fn go_host_port(hp: &str) -> bool {
    let Some(colon) = hp.rfind(':') else {
        return false;
    };
    let (from_open, from_close) = if hp.starts_with('[') {
        match hp.find(']') {
            Some(end) if end + 1 == colon => (1, end + 1),
            _ => return false,
        }
    } else {
        if hp[..colon].contains(':') {
            return false;
        }
        (0, 0)
    };
    !hp[from_open..].contains('[') && !hp[from_close..].contains(']')
}

/// etcd's `types.NewURLs`, which clientv3 runs on peer URLs before a member add or update:
/// each URL (spaces trimmed) must parse, be http(s) or unix(s), have a host:port and no path.
fn check_peer_urls(urls: &[String]) -> Result<(), CtlError> {
    for raw in urls {
        let u = raw.trim();
        let (scheme, host, path) = go_parse_url(u).map_err(CtlError::Other)?;
        let bad = |m: &str| Err(CtlError::Other(format!("{m}: {u}")));
        if !matches!(scheme.as_str(), "http" | "https" | "unix" | "unixs") {
            return bad("URL scheme must be http, https, unix, or unixs");
        }
        if !go_host_port(&host) {
            return bad("URL address does not have the form \"host:port\"");
        }
        if !path.is_empty() {
            return bad("URL must not contain a path");
        }
    }
    Ok(())
}

/// Prints the response of a member change: the simple sentence, or json/protobuf.
fn show_member_change<M: crate::output::Pb>(ctx: &Ctx, r: &M, sentence: String) -> Result<(), CtlError> {
    match ctx.out.format {
        Format::Simple => println!("{sentence}"),
        Format::Fields | Format::Table => return Err(ctx.out.unsupported()),
        _ => {
            ctx.out.pb(r);
        }
    }
    Ok(())
}

/// `member add NAME --peer-urls=URLS [--learner]`.
pub async fn member_add(ctx: &Ctx, args: &[String], urls: &str, learner: bool) -> Result<(), CtlError> {
    let name = match args {
        [] => return Err(CtlError::BadArgs("member name not provided".into())),
        [name] => name.clone(),
        _ => {
            let hints: String = args
                .iter()
                .filter(|a| a.to_lowercase().starts_with("http"))
                .map(|a| format!(", did you mean --peer-urls={a}"))
                .collect();
            return Err(CtlError::BadArgs(format!("too many arguments{hints}")));
        }
    };
    let peer_ur_ls = peer_urls(urls)?;
    ctx.settings.check_deferred()?;
    check_peer_urls(&peer_ur_ls)?;
    let client = ctx.client().await?;
    let req = MemberAddRequest {
        peer_ur_ls: peer_ur_ls.clone(),
        is_learner: learner,
    };
    let r = client.call(client.cluster().member_add(req)).await?;
    let id = r.member.as_ref().map_or(0, |m| m.id);
    let cluster = r.header.as_ref().map_or(0, |h| h.cluster_id);
    show_member_change(
        ctx,
        &r,
        format!("Member {} added to cluster {}", hex16(id), hex16(cluster)),
    )?;
    if ctx.out.format != Format::Simple {
        return Ok(());
    }
    let list = client
        .call(client.cluster().member_list(MemberListRequest::default()))
        .await?;
    let conf: Vec<String> = list
        .members
        .iter()
        .flat_map(|m| {
            let n = if m.id == id { name.clone() } else { m.name.clone() };
            m.peer_ur_ls.iter().map(move |u| format!("{n}={u}"))
        })
        .collect();
    println!();
    println!("ETCD_NAME={}", quote(name.as_bytes()));
    println!("ETCD_INITIAL_CLUSTER={}", quote(conf.join(",").as_bytes()));
    println!(
        "ETCD_INITIAL_ADVERTISE_PEER_URLS={}",
        quote(peer_ur_ls.join(",").as_bytes())
    );
    println!("ETCD_INITIAL_CLUSTER_STATE=\"existing\"");
    Ok(())
}

/// `member remove ID`.
pub async fn member_remove(ctx: &Ctx, args: &[String]) -> Result<(), CtlError> {
    let id = member_id(args)?;
    let client = ctx.client().await?;
    let r = client
        .call(client.cluster().member_remove(MemberRemoveRequest { id }))
        .await?;
    let cluster = r.header.as_ref().map_or(0, |h| h.cluster_id);
    show_member_change(
        ctx,
        &r,
        format!("Member {} removed from cluster {}", hex16(id), hex16(cluster)),
    )
}

/// `member update ID --peer-urls=URLS`.
pub async fn member_update(ctx: &Ctx, args: &[String], urls: &str) -> Result<(), CtlError> {
    let id = member_id(args)?;
    let peer_ur_ls = peer_urls(urls)?;
    ctx.settings.check_deferred()?;
    check_peer_urls(&peer_ur_ls)?;
    let client = ctx.client().await?;
    let r = client
        .call(
            client
                .cluster()
                .member_update(MemberUpdateRequest { id, peer_ur_ls }),
        )
        .await?;
    let cluster = r.header.as_ref().map_or(0, |h| h.cluster_id);
    show_member_change(
        ctx,
        &r,
        format!("Member {} updated in cluster {}", hex16(id), hex16(cluster)),
    )
}

/// `member promote ID`.
pub async fn member_promote(ctx: &Ctx, args: &[String]) -> Result<(), CtlError> {
    let id = member_id(args)?;
    let client = ctx.client().await?;
    let r = client
        .call(client.cluster().member_promote(MemberPromoteRequest { id }))
        .await?;
    let cluster = r.header.as_ref().map_or(0, |h| h.cluster_id);
    show_member_change(
        ctx,
        &r,
        format!("Member {} promoted in cluster {}", hex16(id), hex16(cluster)),
    )
}

fn member_row(m: &Member) -> Vec<String> {
    let status = if m.name.is_empty() { "unstarted" } else { "started" };
    vec![
        format!("{:x}", m.id),
        status.to_string(),
        m.name.clone(),
        m.peer_ur_ls.join(","),
        m.client_ur_ls.join(","),
        m.is_learner.to_string(),
    ]
}

/// `member list`.
pub async fn member_list(ctx: &Ctx) -> Result<(), CtlError> {
    let client = ctx.client().await?;
    let r: MemberListResponse = client
        .call(client.cluster().member_list(MemberListRequest::default()))
        .await?;
    let format = if ctx.out.pretty {
        Format::Table
    } else {
        ctx.out.format
    };
    match format {
        Format::Simple => r
            .members
            .iter()
            .for_each(|m| println!("{}", member_row(m).join(", "))),
        Format::Table => {
            let headers = ["ID", "STATUS", "NAME", "PEER ADDRS", "CLIENT ADDRS", "IS LEARNER"];
            print!(
                "{}",
                table(&headers, &r.members.iter().map(member_row).collect::<Vec<_>>())
            );
        }
        Format::Fields => {
            fields_hdr(r.header.as_ref());
            for m in &r.members {
                println!("\"ID\" : {}", m.id);
                println!("\"Name\" : {}", quote(m.name.as_bytes()));
                m.peer_ur_ls
                    .iter()
                    .for_each(|u| println!("\"PeerURL\" : {}", quote(u.as_bytes())));
                m.client_ur_ls
                    .iter()
                    .for_each(|u| println!("\"ClientURL\" : {}", quote(u.as_bytes())));
                println!("\"IsLearner\" : {}", m.is_learner);
                println!();
            }
        }
        _ => {
            ctx.out.pb(&r);
        }
    }
    Ok(())
}

/// The endpoints to act on: `--endpoints` as given (untrimmed), or with `--cluster` every
/// member's client URLs. `shared_client`: etcdctl makes a client of all the endpoints first
/// (`endpoint status`, `hashkv`, `defrag`), which fails without any.
async fn target_endpoints(ctx: &Ctx, cluster: bool, shared_client: bool) -> Result<Vec<String>, CtlError> {
    // etcdctl builds its client config (checking the global flags) first
    let endpoints = ctx.settings.prepare()?;
    if shared_client && endpoints.is_empty() {
        return Err(crate::client::no_endpoints());
    }
    if !cluster {
        return Ok(ctx.settings.raw_endpoints.clone());
    }
    let mut settings = ctx.settings.clone();
    settings.user = None;
    let client = Client::connect(&settings).await?;
    let r = client
        .call(client.cluster().member_list(MemberListRequest::default()))
        .await
        .map_err(|e| {
            CtlError::Other(format!(
                "failed to fetch endpoints from etcd cluster member list: {e}"
            ))
        })?;
    Ok(r.members.into_iter().flat_map(|m| m.client_ur_ls).collect())
}

/// One endpoint's health check result (etcdctl's `epHealth`).
struct Health {
    ep: String,
    health: bool,
    took: String,
    error: String,
}

async fn check_health(ctx: &Ctx, ep: String) -> Health {
    let start = Instant::now();
    let result = async {
        let client = Client::connect_to(&ctx.settings, std::slice::from_ref(&ep), false).await?;
        let get = RangeRequest {
            key: b"health".to_vec(),
            ..Default::default()
        };
        // etcdctl 3.4 asks for nothing more (its alarm check came with 3.5)
        match client.call(client.kv().range(get)).await {
            Err(CtlError::Rpc(s)) if s.message() == "etcdserver: permission denied" => Ok(()),
            r => r.map(|_| ()),
        }
    }
    .await;
    let took = gofmt::duration(start.elapsed());
    match result {
        Ok(()) => Health {
            ep,
            health: true,
            took,
            error: String::new(),
        },
        Err(e) => Health {
            ep,
            health: false,
            took,
            error: e.to_string(),
        },
    }
}

/// `endpoint health [--cluster]`.
pub async fn endpoint_health(ctx: &Ctx, cluster: bool) -> Result<(), CtlError> {
    use futures::StreamExt;
    let eps = target_endpoints(ctx, cluster, false).await?;
    // in the order the checks end, as etcdctl collects them
    let results: Vec<Health> = eps
        .into_iter()
        .map(|ep| check_health(ctx, ep))
        .collect::<futures::stream::FuturesUnordered<_>>()
        .collect()
        .await;
    match ctx.out.format {
        Format::Simple => {
            for h in &results {
                if h.health {
                    eprintln!(
                        "{} is healthy: successfully committed proposal: took = {}",
                        h.ep, h.took
                    );
                } else {
                    eprintln!("{} is unhealthy: failed to commit proposal: {}", h.ep, h.error);
                }
            }
        }
        Format::Json => {
            let items: Vec<String> = results
                .iter()
                .map(|h| {
                    let err = if h.error.is_empty() {
                        String::new()
                    } else {
                        format!(",\"error\":{}", json_string(&h.error))
                    };
                    format!(
                        "{{\"endpoint\":{},\"health\":{},\"took\":{}{err}}}",
                        json_string(&h.ep),
                        h.health,
                        json_string(&h.took)
                    )
                })
                .collect();
            println!("[{}]", items.join(","));
        }
        Format::Fields => {
            for h in &results {
                println!("\"Endpoint\" : {}", quote(h.ep.as_bytes()));
                println!("\"Health\" : {}", h.health);
                println!("\"Took\" : {}", h.took);
                println!("\"Error\" : {}", h.error);
                println!();
            }
        }
        Format::Table => {
            let rows: Vec<Vec<String>> = results
                .iter()
                .map(|h| {
                    vec![
                        h.ep.clone(),
                        h.health.to_string(),
                        h.took.clone(),
                        h.error.clone(),
                    ]
                })
                .collect();
            print!("{}", table(&["ENDPOINT", "HEALTH", "TOOK", "ERROR"], &rows));
        }
        Format::Protobuf => return Err(ctx.out.unsupported()),
    }
    if results.iter().any(|h| !h.health) {
        return Err(CtlError::Other("unhealthy cluster".into()));
    }
    Ok(())
}

/// Runs `f` against each endpoint separately; failures are reported on stderr as
/// `Failed to <what> of endpoint EP (ERR)`; the last one is returned with the results.
async fn per_endpoint<T, F, Fut>(
    ctx: &Ctx,
    eps: &[String],
    what: &str,
    f: F,
) -> (Vec<(String, T)>, Option<CtlError>)
where
    F: Fn(Client) -> Fut,
    Fut: std::future::Future<Output = Result<T, CtlError>>,
{
    let mut ok = Vec::new();
    let mut failed = None;
    for ep in eps {
        let r = match Client::connect_to(&ctx.settings, std::slice::from_ref(ep), true).await {
            Ok(c) => f(c).await,
            Err(e) => Err(e),
        };
        match r {
            Ok(v) => ok.push((ep.clone(), v)),
            Err(e) => {
                eprintln!("Failed to {what} of endpoint {ep} ({e})");
                failed = Some(e);
            }
        }
    }
    (ok, failed)
}

fn status_row(ep: &str, s: &StatusResponse) -> Vec<String> {
    let h = s.header.unwrap_or_default();
    vec![
        ep.to_string(),
        format!("{:x}", h.member_id),
        s.version.clone(),
        gofmt::humanize_bytes(s.db_size as u64),
        (s.leader == h.member_id).to_string(),
        s.is_learner.to_string(),
        s.raft_term.to_string(),
        s.raft_index.to_string(),
        s.raft_applied_index.to_string(),
        s.errors.join(", "),
    ]
}

/// `endpoint status [--cluster]`.
pub async fn endpoint_status(ctx: &Ctx, cluster: bool) -> Result<(), CtlError> {
    let eps = target_endpoints(ctx, cluster, true).await?;
    let (list, failed) = per_endpoint(ctx, &eps, "get the status", |c| async move {
        c.call(c.maintenance().status(StatusRequest {})).await
    })
    .await;
    // etcdctl's printer refuses protobuf once the endpoints have answered
    if ctx.out.format == Format::Protobuf {
        return Err(ctx.out.unsupported());
    }
    let format = if ctx.out.pretty {
        Format::Table
    } else {
        ctx.out.format
    };
    match format {
        Format::Simple => list
            .iter()
            .for_each(|(ep, s)| println!("{}", status_row(ep, s).join(", "))),
        Format::Table => {
            let headers = [
                "ENDPOINT",
                "ID",
                "VERSION",
                "DB SIZE",
                "IS LEADER",
                "IS LEARNER",
                "RAFT TERM",
                "RAFT INDEX",
                "RAFT APPLIED INDEX",
                "ERRORS",
            ];
            let rows: Vec<Vec<String>> = list.iter().map(|(ep, s)| status_row(ep, s)).collect();
            print!("{}", table(&headers, &rows));
        }
        Format::Fields => {
            for (ep, s) in &list {
                fields_hdr(s.header.as_ref());
                println!("\"Version\" : {}", quote(s.version.as_bytes()));
                println!("\"DBSize\" : {}", s.db_size);
                println!("\"Leader\" : {}", s.leader);
                println!("\"IsLearner\" : {}", s.is_learner);
                println!("\"RaftIndex\" : {}", s.raft_index);
                println!("\"RaftTerm\" : {}", s.raft_term);
                println!("\"RaftAppliedIndex\" : {}", s.raft_applied_index);
                println!("\"Errors\" : [{}]", s.errors.join(" "));
                println!("\"Endpoint\" : {}", quote(ep.as_bytes()));
                println!();
            }
        }
        _ => {
            let items: Vec<String> = list
                .iter()
                .map(|(ep, s)| format!("{{\"Endpoint\":{},\"Status\":{}}}", json_string(ep), json_of(s)))
                .collect();
            println!("[{}]", items.join(","));
        }
    }
    // etcdctl exits 1 without a word more
    if failed.is_some() {
        std::process::exit(crate::error::exit::ERROR);
    }
    Ok(())
}

/// `endpoint hashkv [--cluster] [--rev]`.
pub async fn endpoint_hashkv(ctx: &Ctx, cluster: bool, rev: i64) -> Result<(), CtlError> {
    let eps = target_endpoints(ctx, cluster, true).await?;
    let (list, failed) = per_endpoint(ctx, &eps, "get the hash", |c| async move {
        c.call(c.maintenance().hash_kv(HashKvRequest { revision: rev }))
            .await
    })
    .await;
    let list: Vec<(String, HashKvResponse)> = list;
    if ctx.out.format == Format::Protobuf {
        return Err(ctx.out.unsupported());
    }
    match ctx.out.format {
        Format::Simple => list.iter().for_each(|(ep, h)| println!("{ep}, {}", h.hash)),
        Format::Table => {
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|(ep, h)| vec![ep.clone(), h.hash.to_string()])
                .collect();
            print!("{}", table(&["ENDPOINT", "HASH"], &rows));
        }
        Format::Fields => {
            for (ep, h) in &list {
                fields_hdr(h.header.as_ref());
                println!("\"Endpoint\" : {}", quote(ep.as_bytes()));
                println!("\"Hash\" : {}", h.hash);
                println!();
            }
        }
        _ => {
            let items: Vec<String> = list
                .iter()
                .map(|(ep, h)| format!("{{\"Endpoint\":{},\"HashKV\":{}}}", json_string(ep), json_of(h)))
                .collect();
            println!("[{}]", items.join(","));
        }
    }
    // etcdctl ends with the last failure (exit 1)
    match failed {
        Some(e) => Err(CtlError::Other(e.to_string())),
        None => Ok(()),
    }
}

/// `alarm list` and `alarm disarm` (which disarms every listed alarm, as clientv3 does).
pub async fn alarm(ctx: &Ctx, disarm: bool, args: &[String]) -> Result<(), CtlError> {
    if !args.is_empty() {
        let which = if disarm { "disarm" } else { "list" };
        return Err(CtlError::BadArgs(format!(
            "alarm {which} command accepts no arguments"
        )));
    }
    let client = ctx.client().await?;
    let get = AlarmRequest {
        action: AlarmAction::Get as i32,
        ..Default::default()
    };
    let mut r: AlarmResponse = client.call(client.maintenance().alarm(get)).await?;
    if disarm {
        let mut out = AlarmResponse::default();
        for a in r.alarms {
            let req = AlarmRequest {
                action: AlarmAction::Deactivate as i32,
                member_id: a.member_id,
                alarm: a.alarm,
            };
            out.alarms
                .extend(client.call(client.maintenance().alarm(req)).await?.alarms);
        }
        r = out;
    }
    let name = |t: i32| AlarmType::try_from(t).map_or("UNKNOWN".to_string(), |a| a.as_str_name().to_string());
    ctx.out.show(&r, || {
        if ctx.out.format == Format::Fields {
            fields_hdr(r.header.as_ref());
            for a in &r.alarms {
                println!("\"MemberID\" : {}", a.member_id);
                println!("\"AlarmType\" : {}", name(a.alarm));
            }
            return;
        }
        // Go's compact text of the message: each set field and a space
        for a in &r.alarms {
            let mut line = String::new();
            if a.member_id != 0 {
                line += &format!("memberID:{} ", a.member_id);
            }
            if a.alarm != 0 {
                line += &format!("alarm:{} ", name(a.alarm));
            }
            println!("{line}");
        }
    })
}

/// `defrag [--cluster]`.
pub async fn defrag(ctx: &Ctx, cluster: bool) -> Result<(), CtlError> {
    let eps = target_endpoints(ctx, cluster, true).await?;
    let mut failed = false;
    for ep in &eps {
        let r = match Client::connect_to(&ctx.settings, std::slice::from_ref(ep), true).await {
            Ok(c) => c
                .call(c.maintenance().defragment(DefragmentRequest {}))
                .await
                .map(|_| ()),
            Err(e) => Err(e),
        };
        match r {
            Ok(()) => println!("Finished defragmenting etcd member[{ep}]"),
            Err(e) => {
                failed = true;
                eprintln!("Failed to defragment etcd member[{ep}] ({e})");
            }
        }
    }
    if failed {
        std::process::exit(crate::error::exit::ERROR);
    }
    Ok(())
}

/// A zap info line as etcd's snapshot code logs it.
fn zap_info(iso: bool, caller: &str, msg: &str, extra: &str) {
    let ts = if iso {
        json_string(&gofmt::zap_iso_now())
    } else {
        gofmt::zap_epoch_now()
    };
    eprintln!("{{\"level\":\"info\",\"ts\":{ts},\"caller\":\"{caller}\",\"msg\":\"{msg}\"{extra}}}");
}

/// clientv3's stream interceptor when the snapshot stream could not be made before the
/// deadline (zap's error level, with the stack of etcdctl 3.4.23's call, as it logs it).
fn zap_stream_not_created(error: &str) {
    const STACK: &str = "go.etcd.io/etcd/clientv3.(*Client).streamClientInterceptor.func1\n\tgo.etcd.io/etcd/clientv3/retry_interceptor.go:129\ngoogle.golang.org/grpc.(*ClientConn).NewStream\n\tgoogle.golang.org/grpc/stream.go:148\ngoogle.golang.org/grpc.NewClientStream\n\tgoogle.golang.org/grpc/stream.go:155\ngo.etcd.io/etcd/etcdserver/etcdserverpb.(*maintenanceClient).Snapshot\n\tgo.etcd.io/etcd/etcdserver/etcdserverpb/rpc.pb.go:4296\ngo.etcd.io/etcd/clientv3.(*retryMaintenanceClient).Snapshot\n\tgo.etcd.io/etcd/clientv3/retry.go:214\ngo.etcd.io/etcd/clientv3.(*maintenance).Snapshot\n\tgo.etcd.io/etcd/clientv3/maintenance.go:195\ngo.etcd.io/etcd/clientv3/snapshot.(*v3Manager).Save\n\tgo.etcd.io/etcd/clientv3/snapshot/v3_snapshot.go:123\ngo.etcd.io/etcd/etcdctl/ctlv3/command.snapshotSaveCommandFunc\n\tgo.etcd.io/etcd/etcdctl/ctlv3/command/snapshot_command.go:113\ngithub.com/spf13/cobra.(*Command).execute\n\tgithub.com/spf13/cobra/command.go:920\ngithub.com/spf13/cobra.(*Command).ExecuteC\n\tgithub.com/spf13/cobra/command.go:1044\ngithub.com/spf13/cobra.(*Command).Execute\n\tgithub.com/spf13/cobra/command.go:968\ngo.etcd.io/etcd/etcdctl/ctlv3.Start\n\tgo.etcd.io/etcd/etcdctl/ctlv3/ctl_nocov.go:26\nmain.main\n\tgo.etcd.io/etcd/etcdctl/main.go:35\nruntime.main\n\truntime/proc.go:250";
    eprintln!(
        "{{\"level\":\"error\",\"ts\":{},\"caller\":\"clientv3/retry_interceptor.go:129\",\"msg\":\"streamer failed to create ClientStream\",\"error\":{},\"stacktrace\":{}}}",
        json_string(&gofmt::zap_iso_now()),
        json_string(error),
        json_string(STACK)
    );
}

/// clientv3's warning when the snapshot stream ends with an error.
fn zap_receive_failed(s: &tonic::Status) {
    eprintln!(
        "{{\"level\":\"warn\",\"ts\":{},\"caller\":\"clientv3/maintenance.go:210\",\"msg\":\"failed to receive from snapshot stream; closing\",\"error\":{}}}",
        json_string(&gofmt::zap_iso_now()),
        json_string(&grpc_string(s))
    );
}

/// A progress bar on stderr while a snapshot downloads, only when stderr is a terminal
/// (beyond etcdctl; piped or redirected output stays exactly etcdctl's).
struct Progress {
    on: bool,
    total: Option<u64>,
    last: Option<Instant>,
}

impl Progress {
    fn new() -> Progress {
        use std::io::IsTerminal;
        Progress {
            on: std::io::stderr().is_terminal(),
            total: None,
            last: None,
        }
    }

    /// `done` bytes received; the server says `remaining` are still to come (etcd counts
    /// the database only: the final SHA-256 message says 0).
    fn update(&mut self, done: u64, remaining: u64) {
        if !self.on {
            return;
        }
        let total = *self.total.get_or_insert(done + remaining);
        if self
            .last
            .is_some_and(|t| t.elapsed() < std::time::Duration::from_millis(100))
            && remaining > 0
        {
            return;
        }
        self.last = Some(Instant::now());
        let done = done.min(total);
        let pct = (done * 100).checked_div(total).unwrap_or(100);
        const WIDTH: u64 = 30;
        let filled = (pct * WIDTH / 100) as usize;
        eprint!(
            "\r\x1b[K[{}{}] {pct:>3}% {} / {}",
            "=".repeat(filled),
            " ".repeat(WIDTH as usize - filled),
            gofmt::humanize_bytes(done),
            gofmt::humanize_bytes(total)
        );
    }

    /// Erases the bar.
    fn clear(&mut self) {
        if self.on && self.last.is_some() {
            eprint!("\r\x1b[K");
        }
        self.last = None;
    }
}

/// `snapshot save FILE`: streams the backend from the one endpoint into FILE.part,
/// fsyncs it and renames it to FILE.
pub async fn snapshot_save(ctx: &Ctx, args: &[String]) -> Result<(), CtlError> {
    let [path] = args else {
        return Err(CtlError::BadArgs("snapshot save expects one argument".into()));
    };
    let eps = &ctx.settings.prepare()?;
    if eps.len() != 1 {
        return Err(CtlError::Interrupted(format!(
            "snapshot must be requested to one selected node, not multiple [{}]",
            eps.join(" ")
        )));
    }
    let ep = &eps[0];
    let part = format!("{path}.part");
    // as clientv3's snapshot manager: the file only its owner may read, and removed again
    // when the save fails
    let file = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&part)
    };
    let file = file.map_err(|e| {
        CtlError::Interrupted(format!(
            "could not open {part} (open {part}: {})",
            gofmt::os_error(&e)
        ))
    })?;
    zap_info(
        false,
        "snapshot/v3_snapshot.go:119",
        "created temporary db file",
        &format!(",\"path\":{}", json_string(&part)),
    );
    let saved = fetch_snapshot(ctx, ep, path, &part, file).await;
    if saved.is_err() {
        let _ = std::fs::remove_file(&part);
    }
    saved
}

/// Downloads the snapshot of `ep` into `file` (`part`), then renames it to `path`.
async fn fetch_snapshot(
    ctx: &Ctx,
    ep: &str,
    path: &str,
    part: &str,
    mut file: std::fs::File,
) -> Result<(), CtlError> {
    use std::io::Write;
    let io = |e: std::io::Error| CtlError::Interrupted(e.to_string());
    let start = Instant::now();
    // clientv3's context: a deadline only when --command-timeout was set
    let limit = ctx
        .settings
        .command_timeout_given
        .then_some(ctx.settings.command_timeout);
    let deadline = limit.and_then(|l| start.checked_add(l));
    let left = || deadline.map(|d| d.saturating_duration_since(Instant::now()));
    let timed_out = || CtlError::Interrupted("context deadline exceeded".into());
    let client = match Client::connect_within(&ctx.settings, limit).await {
        Ok(c) => c,
        Err(CtlError::Rpc(s)) if s.code() == tonic::Code::DeadlineExceeded => {
            zap_stream_not_created(&grpc_string(&s));
            return Err(timed_out());
        }
        Err(e) => return Err(e),
    };
    // gRPC's stream is open once a connection is (a server's refusal comes with the first
    // message, as gRPC's first Recv reports it)
    let opened = within(left(), client.maintenance().snapshot(SnapshotRequest {})).await;
    let Some(opened) = opened else {
        zap_stream_not_created(&grpc_string(&deadline_exceeded()));
        return Err(timed_out());
    };
    zap_info(
        true,
        "clientv3/maintenance.go:200",
        "opened snapshot stream; downloading",
        "",
    );
    zap_info(
        false,
        "snapshot/v3_snapshot.go:127",
        "fetching snapshot",
        &format!(",\"endpoint\":{}", json_string(ep)),
    );
    let mut stream = match opened {
        Ok(r) => r.into_inner(),
        Err(s) => {
            zap_receive_failed(&s);
            return Err(CtlError::Interrupted(grpc_string(&s)));
        }
    };
    let mut size = 0u64;
    let mut progress = Progress::new();
    loop {
        let chunk = match within(left(), stream.next()).await {
            Some(Some(Ok(c))) => c,
            Some(None) => break,
            Some(Some(Err(s))) => {
                progress.clear();
                zap_receive_failed(&s);
                return Err(CtlError::Interrupted(grpc_string(&s)));
            }
            None => {
                progress.clear();
                zap_receive_failed(&deadline_exceeded());
                return Err(timed_out());
            }
        };
        size += chunk.blob.len() as u64;
        progress.update(size, chunk.remaining_bytes);
        file.write_all(&chunk.blob).map_err(io)?;
    }
    progress.clear();
    zap_info(
        true,
        "clientv3/maintenance.go:208",
        "completed snapshot read; closing",
        "",
    );
    file.sync_all().map_err(io)?;
    drop(file);
    zap_info(
        false,
        "snapshot/v3_snapshot.go:142",
        "fetched snapshot",
        &format!(
            ",\"endpoint\":{},\"size\":\"{}\",\"took\":{}",
            json_string(ep),
            gofmt::humanize_bytes(size),
            start.elapsed().as_secs_f64()
        ),
    );
    std::fs::rename(part, path).map_err(io)?;
    zap_info(
        false,
        "snapshot/v3_snapshot.go:152",
        "saved",
        &format!(",\"path\":{}", json_string(path)),
    );
    println!("Snapshot saved at {path}");
    Ok(())
}

/// `move-leader TARGET_ID`: finds the leader among the endpoints and asks it to transfer.
pub async fn move_leader(ctx: &Ctx, args: &[String]) -> Result<(), CtlError> {
    let [target] = args else {
        return Err(CtlError::BadArgs("move-leader command needs 1 argument".into()));
    };
    let target_id = parse_u64(target, 16).map_err(CtlError::BadArgs)?;
    let endpoints = ctx.settings.prepare()?;
    if endpoints.is_empty() {
        return Err(crate::client::no_endpoints());
    }
    let mut leader = None;
    for ep in &endpoints {
        // etcdctl asks each endpoint for its status by name (a direct call for clientv3),
        // then asks the leader's client to move
        let c = Client::connect_to(&ctx.settings, std::slice::from_ref(ep), true).await?;
        let s = c.call(c.maintenance().status(StatusRequest {})).await?;
        if s.header.as_ref().is_some_and(|h| h.member_id == s.leader) {
            leader = Some((c.balanced(), s.leader));
            break;
        }
    }
    let Some((c, leader_id)) = leader else {
        return Err(CtlError::BadArgs(format!(
            "no leader endpoint given at [{}]",
            endpoints.join(" ")
        )));
    };
    let r = c
        .call(c.maintenance().move_leader(MoveLeaderRequest { target_id }))
        .await?;
    show_member_change(
        ctx,
        &r,
        format!("Leadership transferred from {leader_id:x} to {target_id:x}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(u: &str) -> Option<String> {
        check_peer_urls(&[u.to_string()]).err().map(|e| e.to_string())
    }

    #[test]
    fn peer_urls_checked_as_etcd_does() {
        for ok in [
            "http://127.0.0.1:2380",
            " https://a.example:1 ",
            "http://[::1]:2380",
            "unix://sock:0",
            "http://a:",
            "HTTP://a:1",
        ] {
            assert_eq!(check(ok), None, "{ok}");
        }
        let cases = [
            (
                "ftp://a:1",
                "URL scheme must be http, https, unix, or unixs: ftp://a:1",
            ),
            ("a:1", "URL scheme must be http, https, unix, or unixs: a:1"),
            (
                "http://a",
                "URL address does not have the form \"host:port\": http://a",
            ),
            (
                "http://[::1]",
                "URL address does not have the form \"host:port\": http://[::1]",
            ),
            ("http://a:1/p", "URL must not contain a path: http://a:1/p"),
            (
                "http://127.0.0.1:2s000",
                "parse \"http://127.0.0.1:2s000\": invalid port \":2s000\" after host",
            ),
            ("http://[::1:1", "parse \"http://[::1:1\": missing ']' in host"),
            (
                "http://a b:1",
                "parse \"http://a b:1\": invalid character \" \" in host name",
            ),
            (
                "http://%zz:1",
                "parse \"http://%zz:1\": invalid URL escape \"%zz\"",
            ),
            ("://a:1", "parse \"://a:1\": missing protocol scheme"),
            (
                "1a:1",
                "parse \"1a:1\": first path segment in URL cannot contain colon",
            ),
        ];
        for (u, want) in cases {
            assert_eq!(check(u).as_deref(), Some(want), "{u}");
        }
    }
}

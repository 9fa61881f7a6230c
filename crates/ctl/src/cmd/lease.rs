//! `lease grant|revoke|timetolive|list|keep-alive`. Their json and protobuf forms follow
//! clientv3's wrapper structs (header fields inline; protobuf prints only the header).

use futures::StreamExt;
use prost::Message;
use retcd_api::etcdserverpb::{
    LeaseGrantRequest, LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseLeasesRequest, LeaseRevokeRequest,
    LeaseTimeToLiveRequest, ResponseHeader,
};

use super::{Ctx, parse_i64};
use crate::error::CtlError;
use crate::output::{Format, Out, fields_hdr, json_bytes, json_flat_header, table, write_raw};

/// Prints a clientv3 lease response: `json` is the part after the inline header, `fields`
/// the lines after the header; simple and table are the caller's.
fn show(
    out: &Out,
    h: Option<&ResponseHeader>,
    json: &str,
    fields: impl FnOnce(),
    simple: impl FnOnce(),
) -> Result<(), CtlError> {
    match out.format {
        Format::Json => println!("{{{}{json}}}", json_flat_header(h)),
        Format::Protobuf => write_raw(&h.copied().unwrap_or_default().encode_to_vec()),
        Format::Fields => {
            fields_hdr(h);
            fields();
        }
        Format::Simple => simple(),
        Format::Table => return Err(out.unsupported()),
    }
    Ok(())
}

fn lease_id(args: &[String], missing: &str) -> Result<i64, CtlError> {
    let [arg] = args else {
        return Err(CtlError::BadArgs(missing.into()));
    };
    parse_i64(arg, 16).map_err(|e| CtlError::BadArgs(format!("bad lease ID arg ({e}), expecting ID in Hex")))
}

/// `lease grant TTL`.
pub async fn grant(ctx: &Ctx, args: &[String]) -> Result<(), CtlError> {
    let [ttl] = args else {
        return Err(CtlError::BadArgs("lease grant command needs TTL argument".into()));
    };
    let ttl = parse_i64(ttl, 10).map_err(|e| CtlError::BadArgs(format!("bad TTL ({e})")))?;
    let client = ctx.client().await?;
    let r = client
        .call(client.lease().lease_grant(LeaseGrantRequest { ttl, id: 0 }))
        .await
        .map_err(|e| CtlError::Other(format!("failed to grant lease ({e})")))?;
    show(
        &ctx.out,
        r.header.as_ref(),
        &format!(
            "\"ID\":{},\"TTL\":{},\"Error\":{}",
            r.id,
            r.ttl,
            crate::gofmt::json_string(&r.error)
        ),
        || {
            println!("\"ID\" : {}", r.id);
            println!("\"TTL\" : {}", r.ttl);
        },
        || println!("lease {:016x} granted with TTL({}s)", r.id, r.ttl),
    )
}

/// `lease revoke ID`.
pub async fn revoke(ctx: &Ctx, args: &[String]) -> Result<(), CtlError> {
    let id = lease_id(args, "lease revoke command needs 1 argument")?;
    let client = ctx.client().await?;
    let r = client
        .call(client.lease().lease_revoke(LeaseRevokeRequest { id }))
        .await
        .map_err(|e| CtlError::Other(format!("failed to revoke lease ({e})")))?;
    ctx.out.show(&r, || match ctx.out.format {
        Format::Fields => fields_hdr(r.header.as_ref()),
        _ => println!("lease {id:016x} revoked"),
    })
}

/// `lease timetolive [--keys] ID`.
pub async fn timetolive(ctx: &Ctx, args: &[String], keys: bool) -> Result<(), CtlError> {
    let id = lease_id(args, "lease timetolive command needs lease ID as argument")?;
    let client = ctx.client().await?;
    let r = client
        .call(
            client
                .lease()
                .lease_time_to_live(LeaseTimeToLiveRequest { id, keys }),
        )
        .await?;
    let json_keys = if r.keys.is_empty() {
        "null".to_string()
    } else {
        format!(
            "[{}]",
            r.keys.iter().map(|k| json_bytes(k)).collect::<Vec<_>>().join(",")
        )
    };
    show(
        &ctx.out,
        r.header.as_ref(),
        &format!(
            "\"id\":{},\"ttl\":{},\"granted-ttl\":{},\"keys\":{json_keys}",
            r.id, r.ttl, r.granted_ttl
        ),
        || {
            println!("\"ID\" : {}", r.id);
            println!("\"TTL\" : {}", r.ttl);
            println!("\"GrantedTTL\" : {}", r.granted_ttl);
            for k in &r.keys {
                println!("\"Key\" : {}", crate::gofmt::quote(k));
            }
        },
        || {
            if r.granted_ttl == 0 && r.ttl == -1 {
                println!("lease {:016x} already expired", r.id);
                return;
            }
            let mut txt = format!(
                "lease {:016x} granted with TTL({}s), remaining({}s)",
                r.id, r.granted_ttl, r.ttl
            );
            if keys {
                let ks: Vec<String> = r
                    .keys
                    .iter()
                    .map(|k| String::from_utf8_lossy(k).into_owned())
                    .collect();
                txt += &format!(", attached keys([{}])", ks.join(" "));
            }
            println!("{txt}");
        },
    )
}

/// `lease list`.
pub async fn list(ctx: &Ctx) -> Result<(), CtlError> {
    let client = ctx.client().await?;
    let r = client
        .call(client.lease().lease_leases(LeaseLeasesRequest {}))
        .await?;
    if ctx.out.pretty {
        // on a terminal: a table with each lease's time to live and keys
        let mut rows = Vec::new();
        for l in &r.leases {
            let req = LeaseTimeToLiveRequest { id: l.id, keys: true };
            let row = match client.call(client.lease().lease_time_to_live(req)).await {
                Ok(t) => vec![
                    format!("{:016x}", l.id),
                    t.ttl.to_string(),
                    t.granted_ttl.to_string(),
                    t.keys.len().to_string(),
                ],
                Err(_) => vec![format!("{:016x}", l.id), "?".into(), "?".into(), "?".into()],
            };
            rows.push(row);
        }
        print!("{}", table(&["ID", "TTL", "GRANTED TTL", "KEYS"], &rows));
        return Ok(());
    }
    let leases: Vec<String> = r.leases.iter().map(|l| format!("{{\"id\":{}}}", l.id)).collect();
    show(
        &ctx.out,
        r.header.as_ref(),
        &format!("\"leases\":[{}]", leases.join(",")),
        || r.leases.iter().for_each(|l| println!("\"ID\" : {}", l.id)),
        || {
            println!("found {} leases", r.leases.len());
            r.leases.iter().for_each(|l| println!("{:016x}", l.id));
        },
    )
}

fn show_keep_alive(out: &Out, r: &LeaseKeepAliveResponse) -> Result<(), CtlError> {
    show(
        out,
        r.header.as_ref(),
        &format!("\"ID\":{},\"TTL\":{}", r.id, r.ttl),
        || {
            println!("\"ID\" : {}", r.id);
            println!("\"TTL\" : {}", r.ttl);
        },
        || println!("lease {:016x} keepalived with TTL({})", r.id, r.ttl),
    )
}

/// `lease keep-alive [--once] ID`: renews until the lease is gone (or once).
pub async fn keep_alive(ctx: &Ctx, args: &[String], once: bool) -> Result<(), CtlError> {
    let id = lease_id(args, "lease keep-alive command needs lease ID as argument")?;
    let client = ctx.client().await?;
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let requests = tokio_stream::wrappers::ReceiverStream::new(rx);
    let _ = tx.send(LeaseKeepAliveRequest { id }).await;
    let mut stream = client
        .lease()
        .lease_keep_alive(requests)
        .await
        .map_err(|s| CtlError::BadConnection(crate::error::status_message(&s)))?
        .into_inner();
    loop {
        let next = if once {
            tokio::time::timeout(ctx.settings.command_timeout, stream.next())
                .await
                .map_err(|_| CtlError::BadConnection("context deadline exceeded".into()))?
        } else {
            stream.next().await
        };
        let resp = match next {
            Some(Ok(r)) if r.ttl > 0 => r,
            Some(Ok(_)) | None if once => {
                return Err(CtlError::BadConnection(
                    "etcdserver: requested lease not found".into(),
                ));
            }
            Some(Err(s)) if once => return Err(CtlError::BadConnection(crate::error::status_message(&s))),
            _ => break,
        };
        show_keep_alive(&ctx.out, &resp)?;
        if once {
            return Ok(());
        }
        let wait = std::time::Duration::from_millis((resp.ttl as u64 * 1000 / 3).max(500));
        tokio::time::sleep(wait).await;
        if tx.send(LeaseKeepAliveRequest { id }).await.is_err() {
            break;
        }
    }
    if ctx.out.format == Format::Simple {
        println!("lease {id:016x} expired or revoked.");
    }
    Ok(())
}

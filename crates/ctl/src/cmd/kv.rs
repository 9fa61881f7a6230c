//! `get`, `put`, `del` and `compaction`: building the requests from etcdctl's arguments and
//! printing their responses (the printers are shared with `txn`, `lock` and `elect`).

use std::io::Read;

use retcd_api::etcdserverpb::{
    CompactionRequest, DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse, RangeRequest,
    RangeResponse,
    range_request::{SortOrder, SortTarget},
};

use super::{Ctx, key_range, parse_i64};
use crate::cli::{CompactionArgs, DelArgs, GetArgs, PutArgs};
use crate::error::CtlError;
use crate::output::{Format, Out, fields_hdr, fields_kv};

const PREFIX_AND_FROM_KEY: &str = "`--prefix` and `--from-key` cannot be set at the same time, choose one";
const TOO_MANY_WITH_PREFIX: &str =
    "too many arguments, only accept one argument when `--prefix` or `--from-key` is set";

/// Builds the `RangeRequest` for `get` (also used inside `txn`).
pub fn get_request(a: &GetArgs) -> Result<RangeRequest, CtlError> {
    if a.args.is_empty() {
        return Err(CtlError::BadArgs(
            "get command needs one argument as key and an optional argument as range_end".into(),
        ));
    }
    if a.prefix && a.from_key {
        return Err(CtlError::BadArgs(PREFIX_AND_FROM_KEY.into()));
    }
    let serializable = match a.consistency.as_str() {
        "l" => false,
        "s" => true,
        other => {
            return Err(CtlError::BadFeature(format!(
                "unknown consistency flag {}",
                crate::gofmt::quote(other.as_bytes())
            )));
        }
    };
    let (key, mut range_end) = key_range(a.args[0].as_bytes(), a.prefix, a.from_key);
    if a.args.len() > 1 {
        if a.prefix || a.from_key {
            return Err(CtlError::BadArgs(TOO_MANY_WITH_PREFIX.into()));
        }
        range_end = a.args[1].as_bytes().to_vec();
    }
    let mut order = match a.order.to_uppercase().as_str() {
        "ASCEND" => SortOrder::Ascend,
        "DESCEND" => SortOrder::Descend,
        "" => SortOrder::None,
        _ => return Err(CtlError::BadFeature(format!("bad sort order {}", a.order))),
    };
    let target = match a.sort_by.to_uppercase().as_str() {
        "CREATE" => SortTarget::Create,
        "KEY" | "" => SortTarget::Key,
        "MODIFY" => SortTarget::Mod,
        "VALUE" => SortTarget::Value,
        "VERSION" => SortTarget::Version,
        _ => return Err(CtlError::BadFeature(format!("bad sort target {}", a.sort_by))),
    };
    // clientv3's WithSort: ascending by key is the server's default order.
    if target == SortTarget::Key && order == SortOrder::Ascend {
        order = SortOrder::None;
    }
    Ok(RangeRequest {
        key,
        range_end,
        limit: a.limit,
        revision: a.rev,
        sort_order: order as i32,
        sort_target: target as i32,
        serializable,
        keys_only: a.keys_only,
        count_only: a.count_only,
        ..Default::default()
    })
}

/// Prints a `RangeResponse` in the simple or fields format (`value_only` for
/// `--print-value-only`).
pub fn print_get(out: &Out, r: &RangeResponse, value_only: bool) {
    match out.format {
        Format::Fields => {
            fields_hdr(r.header.as_ref());
            for kv in &r.kvs {
                fields_kv("", kv);
            }
            println!("\"More\" : {}", r.more);
            println!("\"Count\" : {}", r.count);
        }
        _ => {
            for kv in &r.kvs {
                if !value_only {
                    println!("{}", out.bytes(&kv.key));
                }
                println!("{}", out.bytes(&kv.value));
            }
        }
    }
}

/// Prints a `PutResponse` in the simple or fields format.
pub fn print_put(out: &Out, r: &PutResponse) {
    if out.format == Format::Fields {
        fields_hdr(r.header.as_ref());
        if let Some(kv) = &r.prev_kv {
            fields_kv("Prev", kv);
        }
        return;
    }
    println!("OK");
    if let Some(kv) = &r.prev_kv {
        out.simple_kv(kv);
    }
}

/// Prints a `DeleteRangeResponse` in the simple or fields format.
pub fn print_del(out: &Out, r: &DeleteRangeResponse) {
    if out.format == Format::Fields {
        fields_hdr(r.header.as_ref());
        println!("\"Deleted\" : {}", r.deleted);
        for kv in &r.prev_kvs {
            fields_kv("Prev", kv);
        }
        return;
    }
    println!("{}", r.deleted);
    for kv in &r.prev_kvs {
        out.simple_kv(kv);
    }
}

/// `get`.
pub async fn get(ctx: &Ctx, a: &GetArgs) -> Result<(), CtlError> {
    let req = get_request(a)?;
    if a.print_value_only && ctx.out.format != Format::Simple {
        return Err(CtlError::BadArgs(
            "print-value-only is only for `--write-out=simple`".into(),
        ));
    }
    if a.count_only && ctx.out.format != Format::Fields {
        return Err(CtlError::BadArgs(
            "--count-only is only for `--write-out=fields`".into(),
        ));
    }
    let client = ctx.client().await?;
    let resp = client.call(client.kv().range(req)).await?;
    if ctx.out.color && ctx.out.format == Format::Simple && !a.print_value_only {
        // on a terminal: keys in colour, values plain
        for kv in &resp.kvs {
            println!("{}", ctx.out.key_style(&ctx.out.bytes(&kv.key)));
            println!("{}", ctx.out.bytes(&kv.value));
        }
        return Ok(());
    }
    ctx.out
        .show(&resp, || print_get(&ctx.out, &resp, a.print_value_only))
}

/// Builds the `PutRequest` for `put` (also used inside `txn`); reads the value from stdin
/// when only the key is given and `stdin` allows it (inside a txn etcdctl's stdin is
/// already consumed by its line reader, so it never can).
pub fn put_request(a: &PutArgs, stdin: bool) -> Result<PutRequest, CtlError> {
    const NEEDS: &str = "put command needs 1 argument and input from stdin or 2 arguments";
    let Some(key) = a.args.first() else {
        return Err(CtlError::BadArgs(NEEDS.into()));
    };
    if a.ignore_value && a.args.len() > 1 {
        return Err(CtlError::BadArgs(
            "put command needs only 1 argument when 'ignore-value' is set".into(),
        ));
    }
    let value = match a.args.get(1) {
        Some(v) => v.as_bytes().to_vec(),
        None => {
            let mut buf = Vec::new();
            if stdin {
                let _ = std::io::stdin().read_to_end(&mut buf);
            }
            if buf.is_empty() && !a.ignore_value {
                return Err(CtlError::BadArgs(NEEDS.into()));
            }
            buf
        }
    };
    let lease = parse_i64(&a.lease, 16)
        .map_err(|e| CtlError::BadArgs(format!("bad lease ID ({e}), expecting ID in Hex")))?;
    Ok(PutRequest {
        key: key.as_bytes().to_vec(),
        value: if a.ignore_value { Vec::new() } else { value },
        lease,
        prev_kv: a.prev_kv,
        ignore_value: a.ignore_value,
        ignore_lease: a.ignore_lease,
    })
}

/// `put`.
pub async fn put(ctx: &Ctx, a: &PutArgs) -> Result<(), CtlError> {
    let req = put_request(a, true)?;
    let client = ctx.client().await?;
    let resp = client.call(client.kv().put(req)).await?;
    ctx.out.show(&resp, || print_put(&ctx.out, &resp))
}

/// Builds the `DeleteRangeRequest` for `del` (also used inside `txn`).
pub fn del_request(a: &DelArgs) -> Result<DeleteRangeRequest, CtlError> {
    if a.args.is_empty() || a.args.len() > 2 {
        return Err(CtlError::BadArgs(
            "del command needs one argument as key and an optional argument as range_end".into(),
        ));
    }
    if a.prefix && a.from_key {
        return Err(CtlError::BadArgs(PREFIX_AND_FROM_KEY.into()));
    }
    let (key, mut range_end) = key_range(a.args[0].as_bytes(), a.prefix, a.from_key);
    if a.args.len() > 1 {
        if a.prefix || a.from_key {
            return Err(CtlError::BadArgs(TOO_MANY_WITH_PREFIX.into()));
        }
        range_end = a.args[1].as_bytes().to_vec();
    }
    Ok(DeleteRangeRequest {
        key,
        range_end,
        prev_kv: a.prev_kv,
    })
}

/// `del`.
pub async fn del(ctx: &Ctx, a: &DelArgs) -> Result<(), CtlError> {
    let req = del_request(a)?;
    let client = ctx.client().await?;
    let resp = client.call(client.kv().delete_range(req)).await?;
    ctx.out.show(&resp, || print_del(&ctx.out, &resp))
}

/// `compaction`.
pub async fn compaction(ctx: &Ctx, a: &CompactionArgs) -> Result<(), CtlError> {
    if a.args.len() != 1 {
        return Err(CtlError::BadArgs("compaction command needs 1 argument".into()));
    }
    let revision = parse_i64(&a.args[0], 10).map_err(CtlError::Other)?;
    let client = ctx.client().await?;
    client
        .call(client.kv().compact(CompactionRequest {
            revision,
            physical: a.physical,
        }))
        .await?;
    println!("compacted revision {revision}");
    Ok(())
}

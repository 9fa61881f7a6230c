//! `watch`: one watch from the arguments, or many from stdin lines with `-i`; each event
//! printed in the chosen format and, after `--`, a command run per event with
//! `ETCD_WATCH_REVISION/EVENT_TYPE/KEY/VALUE` in its environment.

use std::io::{BufRead, Write};
use std::sync::Arc;

use clap::Parser;
use futures::StreamExt;
use prost::Message;
use retcd_api::etcdserverpb::{WatchCreateRequest, WatchRequest, WatchResponse, watch_request};
use retcd_api::mvccpb::event::EventType;

use super::{Ctx, key_range};
use crate::cli::WatchArgs;
use crate::client::Client;
use crate::error::{CtlError, status_message};
use crate::gofmt::quote;
use crate::output::{Format, Out, fields_hdr, fields_kv, json_of, write_raw};

/// A `watch ...` line of interactive mode.
#[derive(Debug, Parser)]
#[command(no_binary_name = true)]
struct WatchLine {
    #[command(flatten)]
    args: WatchArgs,
}

/// Why a watch was cancelled, as clientv3's `WatchResponse.Err()` words it.
fn cancel_reason(r: &WatchResponse) -> String {
    if r.compact_revision != 0 {
        "etcdserver: mvcc: required revision has been compacted".into()
    } else if !r.cancel_reason.is_empty() {
        status_message(&tonic::Status::failed_precondition(r.cancel_reason.clone()))
    } else {
        "etcdserver: mvcc: required revision is a future revision".into()
    }
}

fn event_type(t: i32) -> &'static str {
    EventType::try_from(t).map_or("UNKNOWN", |t| t.as_str_name())
}

/// Prints one watch response as etcdctl does (clientv3's `WatchResponse`).
fn display(out: &Out, r: &WatchResponse) {
    match out.format {
        Format::Json => {
            let events = r.events.iter().map(json_of).collect::<Vec<_>>().join(",");
            println!(
                "{{\"Header\":{},\"Events\":[{events}],\"CompactRevision\":{},\"Canceled\":{},\"Created\":{}}}",
                json_of(&r.header.unwrap_or_default()),
                r.compact_revision,
                r.canceled,
                r.created
            );
        }
        Format::Protobuf => {
            let wr = WatchResponse {
                header: Some(r.header.unwrap_or_default()),
                events: r.events.clone(),
                compact_revision: r.compact_revision,
                canceled: r.canceled,
                created: r.created,
                ..Default::default()
            };
            write_raw(&wr.encode_to_vec());
        }
        Format::Fields => {
            fields_hdr(r.header.as_ref());
            for e in &r.events {
                println!("\"Type\" : {}", event_type(e.r#type));
                if let Some(prev) = &e.prev_kv {
                    fields_kv("Prev", prev);
                }
                fields_kv("", &e.kv.clone().unwrap_or_default());
            }
        }
        Format::Simple | Format::Table => {
            for e in &r.events {
                println!("{}", event_type(e.r#type));
                if let Some(prev) = &e.prev_kv {
                    out.simple_kv(prev);
                }
                out.simple_kv(&e.kv.clone().unwrap_or_default());
            }
        }
    }
    let _ = std::io::stdout().flush();
}

/// Runs the `-- COMMAND` once per event.
fn run_exec(exec: &[String], r: &WatchResponse) -> Result<(), CtlError> {
    let rev = r.header.as_ref().map_or(0, |h| h.revision);
    for e in &r.events {
        let kv = e.kv.clone().unwrap_or_default();
        let status = std::process::Command::new(&exec[0])
            .args(&exec[1..])
            .env("ETCD_WATCH_REVISION", rev.to_string())
            .env("ETCD_WATCH_EVENT_TYPE", quote(event_type(e.r#type).as_bytes()))
            .env("ETCD_WATCH_KEY", quote(&kv.key))
            .env("ETCD_WATCH_VALUE", quote(&kv.value))
            .status();
        let failure = match status {
            Ok(s) if s.success() => continue,
            Ok(s) => format!("exit status {}", s.code().unwrap_or(-1)),
            Err(e) => e.to_string(),
        };
        let args: Vec<String> = exec.iter().map(|a| quote(a.as_bytes())).collect();
        eprintln!("command [{}] error ({failure})", args.join(" "));
        std::process::exit(crate::error::exit::ERROR);
    }
    Ok(())
}

/// The watch request for `watch [--prefix] [--rev] [--prev-kv] KEY [RANGE_END]`.
fn create_request(a: &WatchArgs) -> Result<WatchCreateRequest, CtlError> {
    let env_key = std::env::var("ETCDCTL_WATCH_KEY").unwrap_or_default();
    let env_range = std::env::var("ETCDCTL_WATCH_RANGE_END").unwrap_or_default();
    let mut args = a.args.clone();
    if args.is_empty() && !env_key.is_empty() {
        args.push(env_key);
        if !env_range.is_empty() {
            args.push(env_range);
        }
    }
    if args.is_empty() || args.len() > 2 {
        return Err(CtlError::BadArgs("bad number of arguments".into()));
    }
    let (key, mut range_end) = key_range(args[0].as_bytes(), a.prefix, false);
    if let Some(end) = args.get(1) {
        if a.prefix {
            return Err(CtlError::BadArgs(
                "`range_end` and `--prefix` are mutually exclusive".into(),
            ));
        }
        range_end = end.as_bytes().to_vec();
    }
    Ok(WatchCreateRequest {
        key,
        range_end,
        start_revision: a.rev,
        prev_kv: a.prev_kv,
        ..Default::default()
    })
}

/// Watches until the server cancels; prints each response and runs `exec` per event.
async fn watch_loop(
    client: &Client,
    out: Out,
    req: WatchCreateRequest,
    exec: &[String],
) -> Result<(), CtlError> {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let create = WatchRequest {
        request_union: Some(watch_request::RequestUnion::CreateRequest(req)),
    };
    let _ = tx.send(create).await;
    let mut stream = client
        .watch()
        .watch(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .map_err(|s| CtlError::BadConnection(status_message(&s)))?
        .into_inner();
    while let Some(item) = stream.next().await {
        let r = match item {
            Ok(r) => r,
            Err(s) => {
                eprintln!("watch was canceled ({})", status_message(&s));
                break;
            }
        };
        if r.created && r.events.is_empty() && !r.canceled {
            continue;
        }
        if r.canceled {
            eprintln!("watch was canceled ({})", cancel_reason(&r));
        }
        // etcdctl's table printer refuses a watch response, so the first one ends it
        if out.format == Format::Table {
            return Err(out.unsupported());
        }
        display(&out, &r);
        if !exec.is_empty() {
            run_exec(exec, &r)?;
        }
        if r.canceled {
            break;
        }
    }
    drop(tx);
    Ok(())
}

/// `watch`.
pub async fn watch(ctx: &Ctx, a: &WatchArgs, exec: &[String]) -> Result<(), CtlError> {
    let env_key = std::env::var("ETCDCTL_WATCH_KEY").unwrap_or_default();
    let env_range = std::env::var("ETCDCTL_WATCH_RANGE_END").unwrap_or_default();
    if env_key.is_empty() && !env_range.is_empty() {
        return Err(CtlError::BadArgs(format!(
            "ETCDCTL_WATCH_KEY is empty but got ETCDCTL_WATCH_RANGE_END={}",
            quote(env_range.as_bytes())
        )));
    }
    if a.interactive {
        return interactive(ctx).await;
    }
    if exec.is_empty() && std::env::args().any(|x| x == "--") {
        return Err(CtlError::BadArgs(
            "bad number of arguments (found separator --, but no commands)".into(),
        ));
    }
    let req = create_request(a)?;
    let client = ctx.client().await?;
    watch_loop(&client, ctx.out, req, exec).await?;
    Err(CtlError::Interrupted("watch is canceled by the server".into()))
}

/// `watch -i`: reads `watch ...` lines from stdin and runs each watch concurrently.
async fn interactive(ctx: &Ctx) -> Result<(), CtlError> {
    let client = Arc::new(ctx.client().await?);
    let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            if lines_tx.send(line).is_err() {
                return;
            }
        }
        let _ = lines_tx.send(Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "EOF")));
    });
    while let Some(line) = lines.recv().await {
        let l = line.map_err(|e| CtlError::InvalidInput(format!("Error reading watch request line: {e}")))?;
        let words = super::txn::argify(&l);
        if words.first().map(String::as_str) != Some("watch") {
            eprintln!("Invalid command {l} (only support watch)");
            continue;
        }
        let (words, exec) = match words.iter().position(|w| w == "--") {
            Some(p) => (words[1..p].to_vec(), words[p + 1..].to_vec()),
            None => (words[1..].to_vec(), Vec::new()),
        };
        if words.is_empty() && std::env::var("ETCDCTL_WATCH_KEY").unwrap_or_default().is_empty() {
            eprintln!("Invalid command {l} (command type or key is not provided)");
            continue;
        }
        let parsed = WatchLine::try_parse_from(&words).map_err(|e| CtlError::BadArgs(e.to_string()))?;
        let req = match create_request(&parsed.args) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("Invalid command {l} ({e})");
                continue;
            }
        };
        let (client, out) = (client.clone(), ctx.out);
        tokio::spawn(async move {
            if let Err(e) = watch_loop(&client, out, req, &exec).await {
                eprintln!("Error: {e}");
            }
        });
    }
    Ok(())
}

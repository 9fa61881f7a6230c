//! `txn`: reads compares, success ops and failure ops from stdin (one per line, each
//! section ended by an empty line), with etcdctl's prompts in `--interactive` mode, its
//! comparison syntax (`value("k") = "v"`, `mod("k") > "3"`, ...) and its error messages.

use clap::Parser;
use retcd_api::etcdserverpb::{
    Compare, RequestOp, TxnRequest, TxnResponse, compare, request_op, response_op::Response,
};

use super::{Ctx, kv};
use crate::cli::{DelArgs, GetArgs, PutArgs, TxnArgs};
use crate::error::CtlError;
use crate::gofmt::{quote, unquote_prefix};
use crate::output::{Format, Out, fields_hdr};

/// An operation line of a txn: etcdctl's get, put and del with their flags.
#[derive(Debug, Parser)]
#[command(no_binary_name = true)]
enum TxnOp {
    Get(GetArgs),
    Put(PutArgs),
    Del(DelArgs),
}

/// Splits a line into words as etcdctl's `Argify` does: Go-quoted strings, single-quoted
/// strings and runs of non-space characters.
pub fn argify(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line.trim_start();
    while !rest.is_empty() {
        if rest.starts_with('"')
            && let Some((word, tail)) = unquote_prefix(rest)
        {
            out.push(String::from_utf8_lossy(&word).into_owned());
            rest = tail.trim_start();
            continue;
        }
        if let Some(body) = rest.strip_prefix('\'')
            && let Some(end) = body.find('\'')
        {
            out.push(body[..end].to_string());
            rest = body[end + 1..].trim_start();
            continue;
        }
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        out.push(rest[..end].to_string());
        rest = rest[end..].trim_start();
    }
    out
}

/// Go's `fmt.Sscanf(s, "%q) %s %q", &key, &op, &val)`: the number of items scanned and them.
fn scan_compare(s: &str) -> (usize, Vec<u8>, String, Vec<u8>) {
    let (mut key, mut op, mut val) = (Vec::new(), String::new(), Vec::new());
    let Some((k, rest)) = unquote_prefix(s.trim_start()) else {
        return (0, key, op, val);
    };
    key = k;
    let Some(rest) = rest.trim_start().strip_prefix(')') else {
        return (1, key, op, val);
    };
    let rest = rest.trim_start();
    let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    if end == 0 {
        return (1, key, op, val);
    }
    op = rest[..end].to_string();
    match unquote_prefix(rest[end..].trim_start()) {
        Some((v, _)) => {
            val = v;
            (3, key, op, val)
        }
        None => (2, key, op, val),
    }
}

/// Parses one comparison line.
pub fn parse_compare(line: &str) -> Result<Compare, CtlError> {
    let bad = |msg: String| CtlError::InvalidInput(msg);
    let Some((target, rest)) = line.split_once('(') else {
        return Err(bad(format!("malformed comparison: {line}")));
    };
    let (n, key, op, val) = scan_compare(rest);
    if n != 3 {
        return Err(bad(format!(
            "malformed comparison: {line}; got {target}({}) {op} {}",
            quote(&key),
            quote(&val)
        )));
    }
    let result = match op.as_str() {
        "=" => compare::CompareResult::Equal,
        "!=" => compare::CompareResult::NotEqual,
        "<" => compare::CompareResult::Less,
        ">" => compare::CompareResult::Greater,
        _ => return Err(bad(format!("malformed comparison: {line} (unknown op {op})"))),
    };
    let int = || -> Result<i64, CtlError> {
        String::from_utf8(val.clone())
            .ok()
            .and_then(|v| super::parse_i64(&v, 10).ok())
            .ok_or_else(|| bad(format!("invalid txn compare request: {line}")))
    };
    use compare::{CompareTarget as T, TargetUnion as U};
    let (t, u) = match target {
        "ver" | "version" => (T::Version, U::Version(int()?)),
        "c" | "create" => (T::Create, U::CreateRevision(int()?)),
        "m" | "mod" => (T::Mod, U::ModRevision(int()?)),
        "val" | "value" => (T::Value, U::Value(val.clone())),
        "lease" => (T::Lease, U::Lease(int()?)),
        _ => {
            return Err(bad(format!(
                "malformed comparison: {line} (unknown target {target})"
            )));
        }
    };
    Ok(Compare {
        result: result as i32,
        target: t as i32,
        key,
        range_end: Vec::new(),
        target_union: Some(u),
    })
}

/// Parses one operation line (`put k v`, `get --prefix k`, `del k`).
pub fn parse_op(line: &str) -> Result<RequestOp, CtlError> {
    let op = TxnOp::try_parse_from(argify(line))
        .map_err(|_| CtlError::InvalidInput(format!("invalid txn request: {line}")))?;
    let request = match op {
        TxnOp::Get(a) => request_op::Request::RequestRange(kv::get_request(&a)?),
        TxnOp::Put(a) => request_op::Request::RequestPut(kv::put_request(&a, false)?),
        TxnOp::Del(a) => request_op::Request::RequestDeleteRange(kv::del_request(&a)?),
    };
    Ok(RequestOp {
        request: Some(request),
    })
}

/// Reads lines until an empty one, parsing each; EOF is an error, as in etcdctl.
/// Lines are read through `Stdin` without holding its lock, so that a `put KEY` op can read
/// the rest of stdin as its value, as etcdctl's does.
fn read_section<T>(
    input: &std::io::Stdin,
    parse: impl Fn(&str) -> Result<T, CtlError>,
) -> Result<Vec<T>, CtlError> {
    let mut items = Vec::new();
    loop {
        let mut line = String::new();
        let n = input
            .read_line(&mut line)
            .map_err(|e| CtlError::InvalidInput(e.to_string()))?;
        if n == 0 || !line.ends_with('\n') {
            return Err(CtlError::InvalidInput("EOF".into()));
        }
        let line = line.trim();
        if line.is_empty() {
            return Ok(items);
        }
        items.push(parse(line)?);
    }
}

/// `txn`.
pub async fn txn(ctx: &Ctx, a: &TxnArgs) -> Result<(), CtlError> {
    if !a.args.is_empty() {
        return Err(CtlError::BadArgs("txn command does not accept argument".into()));
    }
    // etcdctl makes its client (checking the global flags) before it reads the txn
    ctx.settings.check_deferred()?;
    let prompt = |s: &str| {
        if a.interactive {
            println!("{s}");
        }
    };
    let input = std::io::stdin();
    prompt("compares:");
    let compare = read_section(&input, parse_compare)?;
    prompt("success requests (get, put, del):");
    let success = read_section(&input, parse_op)?;
    prompt("failure requests (get, put, del):");
    let failure = read_section(&input, parse_op)?;
    let client = ctx.client().await?;
    let resp = client
        .call(client.kv().txn(TxnRequest {
            compare,
            success,
            failure,
        }))
        .await?;
    ctx.out.show(&resp, || print_txn(&ctx.out, &resp))
}

/// Prints a `TxnResponse` in the simple or fields format.
fn print_txn(out: &Out, r: &TxnResponse) {
    match out.format {
        Format::Fields => {
            fields_hdr(r.header.as_ref());
            println!("\"Succeeded\" : {}", r.succeeded);
        }
        _ => println!("{}", if r.succeeded { "SUCCESS" } else { "FAILURE" }),
    }
    for op in &r.responses {
        if out.format == Format::Simple {
            println!();
        }
        match &op.response {
            Some(Response::ResponseRange(g)) => kv::print_get(out, g, false),
            Some(Response::ResponsePut(p)) => kv::print_put(out, p),
            Some(Response::ResponseDeleteRange(d)) => kv::print_del(out, d),
            Some(Response::ResponseTxn(_)) | None => println!("unexpected response {op:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argify_quotes() {
        assert_eq!(
            argify(r#"put k5 "hello world""#),
            vec!["put", "k5", "hello world"]
        );
        assert_eq!(argify("get --prefix k"), vec!["get", "--prefix", "k"]);
        assert_eq!(argify("put a 'x y'"), vec!["put", "a", "x y"]);
    }

    #[test]
    fn compares() {
        let c = parse_compare(r#"value("foo") = "bar""#).unwrap();
        assert_eq!(c.key, b"foo");
        assert_eq!(c.target_union, Some(compare::TargetUnion::Value(b"bar".to_vec())));
        let c = parse_compare(r#"mod("k") > "3""#).unwrap();
        assert_eq!(c.result, compare::CompareResult::Greater as i32);
        assert_eq!(
            parse_compare(r#"value("foo") ="#).unwrap_err().to_string(),
            r#"malformed comparison: value("foo") =; got value("foo") = """#
        );
        assert_eq!(
            parse_compare(r#"foo("foo") = "x""#).unwrap_err().to_string(),
            r#"malformed comparison: foo("foo") = "x" (unknown target foo)"#
        );
        assert_eq!(
            parse_compare(r#"create("foo") = "x""#).unwrap_err().to_string(),
            r#"invalid txn compare request: create("foo") = "x""#
        );
        assert_eq!(
            parse_compare("xx").unwrap_err().to_string(),
            "malformed comparison: xx"
        );
    }
}

//! etcdctl's output formats (`-w simple|json|fields|table|protobuf`) and the pieces they
//! share: Go `encoding/json` of any response message (through the descriptors, in field
//! declaration order, zero values omitted, int64 as numbers, bytes as base64, oneofs as Go's
//! wrapper structs), raw protobuf bytes, the fields printer's header and key-value lines, and
//! tablewriter's boxed tables.

use std::io::Write;
use std::sync::OnceLock;

use base64::Engine as _;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, ReflectMessage, Value};
use retcd_api::etcdserverpb::ResponseHeader;
use retcd_api::mvccpb::{Event, KeyValue};

use crate::error::CtlError;
use crate::gofmt::{hex_bytes, json_string, quote};

/// An output format of `-w/--write-out`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Simple,
    Json,
    Fields,
    Table,
    Protobuf,
}

impl Format {
    /// Parses a `--write-out` value.
    pub fn parse(s: &str) -> Result<Format, CtlError> {
        Ok(match s {
            "simple" => Format::Simple,
            "json" => Format::Json,
            "fields" => Format::Fields,
            "table" => Format::Table,
            "protobuf" => Format::Protobuf,
            _ => return Err(CtlError::BadFeature("unsupported output format".into())),
        })
    }

    /// The name etcdctl uses in "... not supported as output format".
    pub fn name(self) -> &'static str {
        match self {
            Format::Simple => "simple",
            Format::Json => "json",
            Format::Fields => "fields",
            Format::Table => "table",
            Format::Protobuf => "protobuf",
        }
    }
}

/// The chosen output format and `--hex`.
#[derive(Debug, Clone, Copy)]
pub struct Out {
    pub format: Format,
    pub hex: bool,
    /// stdout is a terminal and no `-w`/`ETCDCTL_WRITE_OUT` was given: some commands print
    /// tables (beyond etcdctl; piped or with `-w` the output stays etcdctl's)
    pub pretty: bool,
    /// `pretty`, and colour is welcome (`NO_COLOR` unset or empty, `TERM` not `dumb`)
    pub color: bool,
}

impl Out {
    /// Whether stdout is a terminal and the user left the format alone; and whether colour
    /// may be used there.
    pub fn terminal_style(write_out_given: bool) -> (bool, bool) {
        use std::io::IsTerminal;
        let pretty = !write_out_given && std::io::stdout().is_terminal();
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
            || std::env::var("TERM").is_ok_and(|t| t == "dumb");
        (pretty, pretty && !no_color)
    }

    /// A key in the key colour (bold blue) when colour is on.
    pub fn key_style(&self, s: &str) -> String {
        if self.color {
            format!("\x1b[1;34m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
}

/// A generated message together with its protobuf full name (for the JSON printer).
pub trait Pb: prost::Message + Sized {
    const NAME: &'static str;
}

macro_rules! pb_names {
    ($($ty:ident => $pkg:literal),* $(,)?) => {
        $(impl Pb for $ty { const NAME: &'static str = concat!($pkg, ".", stringify!($ty)); })*
    };
}

// prost renames `HashKVResponse` to `HashKvResponse`.
impl Pb for HashKvResponse {
    const NAME: &'static str = "etcdserverpb.HashKVResponse";
}

use retcd_api::etcdserverpb::{
    AlarmResponse, AuthDisableResponse, AuthEnableResponse, AuthRoleAddResponse, AuthRoleDeleteResponse,
    AuthRoleGetResponse, AuthRoleGrantPermissionResponse, AuthRoleListResponse,
    AuthRoleRevokePermissionResponse, AuthStatusResponse, AuthUserAddResponse,
    AuthUserChangePasswordResponse, AuthUserDeleteResponse, AuthUserGetResponse, AuthUserGrantRoleResponse,
    AuthUserListResponse, AuthUserRevokeRoleResponse, CompactionResponse, DefragmentResponse,
    DeleteRangeResponse, HashKvResponse, LeaseRevokeResponse, MemberAddResponse, MemberListResponse,
    MemberPromoteResponse, MemberRemoveResponse, MemberUpdateResponse, MoveLeaderResponse, PutResponse,
    RangeResponse, StatusResponse, TxnResponse, WatchResponse,
};
use retcd_api::v3electionpb::{CampaignResponse, LeaderResponse, ProclaimResponse, ResignResponse};
use retcd_api::v3lockpb::{LockResponse, UnlockResponse};

pb_names! {
    RangeResponse => "etcdserverpb", PutResponse => "etcdserverpb", DeleteRangeResponse => "etcdserverpb",
    TxnResponse => "etcdserverpb", CompactionResponse => "etcdserverpb", WatchResponse => "etcdserverpb",
    MemberListResponse => "etcdserverpb", MemberAddResponse => "etcdserverpb",
    MemberRemoveResponse => "etcdserverpb", MemberUpdateResponse => "etcdserverpb",
    MemberPromoteResponse => "etcdserverpb", StatusResponse => "etcdserverpb",
    AlarmResponse => "etcdserverpb", DefragmentResponse => "etcdserverpb", MoveLeaderResponse => "etcdserverpb",
    AuthEnableResponse => "etcdserverpb", AuthDisableResponse => "etcdserverpb", AuthStatusResponse => "etcdserverpb",
    AuthUserAddResponse => "etcdserverpb", AuthUserGetResponse => "etcdserverpb",
    AuthUserListResponse => "etcdserverpb", AuthUserDeleteResponse => "etcdserverpb",
    AuthUserChangePasswordResponse => "etcdserverpb", AuthUserGrantRoleResponse => "etcdserverpb",
    AuthUserRevokeRoleResponse => "etcdserverpb", AuthRoleAddResponse => "etcdserverpb",
    AuthRoleGetResponse => "etcdserverpb", AuthRoleListResponse => "etcdserverpb",
    AuthRoleDeleteResponse => "etcdserverpb", AuthRoleGrantPermissionResponse => "etcdserverpb",
    AuthRoleRevokePermissionResponse => "etcdserverpb", ResponseHeader => "etcdserverpb",
    LeaseRevokeResponse => "etcdserverpb",
    KeyValue => "mvccpb", Event => "mvccpb",
    LockResponse => "v3lockpb", UnlockResponse => "v3lockpb",
    CampaignResponse => "v3electionpb", LeaderResponse => "v3electionpb",
    ProclaimResponse => "v3electionpb", ResignResponse => "v3electionpb",
}

fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(retcd_api::FILE_DESCRIPTOR_SET).expect("retcd-api's descriptor set decodes")
    })
}

/// Go's `encoding/json` of a gogo-generated etcd message.
pub fn json_of<M: Pb>(m: &M) -> String {
    let desc = pool()
        .get_message_by_name(M::NAME)
        .expect("message is in retcd-api's descriptors");
    let dm =
        DynamicMessage::decode(desc, m.encode_to_vec().as_slice()).expect("re-decoding our own encoding");
    let mut out = String::new();
    write_message(&dm, &mut out);
    out
}

/// Go's CamelCase of a proto name (`response_put` → `ResponsePut`).
fn go_camel(name: &str) -> String {
    name.split('_')
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

fn write_message(dm: &DynamicMessage, out: &mut String) {
    let desc: MessageDescriptor = dm.descriptor();
    out.push('{');
    let mut first = true;
    let mut sep = |out: &mut String| {
        if !std::mem::take(&mut first) {
            out.push(',');
        }
    };
    let mut done_oneofs = Vec::new();
    for field in desc.fields() {
        if let Some(oneof) = field.containing_oneof().filter(|o| !o.is_synthetic()) {
            if done_oneofs.contains(&oneof.name().to_string()) {
                continue;
            }
            done_oneofs.push(oneof.name().to_string());
            sep(out);
            out.push_str(&json_string(&go_camel(oneof.name())));
            out.push(':');
            match oneof.fields().find(|f| dm.has_field(f)) {
                Some(f) => {
                    out.push_str(&format!("{{{}:", json_string(&go_camel(f.name()))));
                    write_value(&dm.get_field(&f), out);
                    out.push('}');
                }
                None => out.push_str("null"),
            }
            continue;
        }
        if !dm.has_field(&field) {
            continue;
        }
        let value = dm.get_field(&field);
        if matches!(&*value, Value::List(l) if l.is_empty()) {
            continue;
        }
        sep(out);
        out.push_str(&json_string(field.name()));
        out.push(':');
        write_value(&value, out);
    }
    out.push('}');
}

fn write_value(v: &Value, out: &mut String) {
    match v {
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::I32(n) => out.push_str(&n.to_string()),
        Value::I64(n) => out.push_str(&n.to_string()),
        Value::U32(n) => out.push_str(&n.to_string()),
        Value::U64(n) => out.push_str(&n.to_string()),
        Value::F32(n) => out.push_str(&n.to_string()),
        Value::F64(n) => out.push_str(&n.to_string()),
        Value::EnumNumber(n) => out.push_str(&n.to_string()),
        Value::String(s) => out.push_str(&json_string(s)),
        Value::Bytes(b) => out.push_str(&json_bytes(b)),
        Value::Message(m) => write_message(m, out),
        Value::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(item, out);
            }
            out.push(']');
        }
        Value::Map(_) => out.push_str("{}"),
    }
}

/// A `[]byte` as Go's JSON writes it: base64 in quotes.
pub fn json_bytes(b: &[u8]) -> String {
    format!("\"{}\"", base64::engine::general_purpose::STANDARD.encode(b))
}

/// Writes raw bytes to stdout (the protobuf format has no trailing newline).
pub fn write_raw(b: &[u8]) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(b);
    let _ = stdout.flush();
}

impl Out {
    /// The error for a format this command cannot print.
    pub fn unsupported(&self) -> CtlError {
        CtlError::unsupported(self.format.name())
    }

    /// Prints a response in the json or protobuf format; `false` for the other formats.
    pub fn pb<M: Pb>(&self, m: &M) -> bool {
        match self.format {
            Format::Json => println!("{}", json_of(m)),
            Format::Protobuf => write_raw(&m.encode_to_vec()),
            _ => return false,
        }
        true
    }

    /// Prints a response: json/protobuf generically, simple/fields with `print`; the table
    /// format is refused (after the request was made, as in etcdctl).
    pub fn show<M: Pb>(&self, m: &M, print: impl FnOnce()) -> Result<(), CtlError> {
        if self.format == Format::Table {
            return Err(self.unsupported());
        }
        if !self.pb(m) {
            print();
        }
        Ok(())
    }

    /// A byte string in the simple format: raw, or `\xNN` with `--hex`.
    pub fn bytes(&self, b: &[u8]) -> String {
        if self.hex {
            hex_bytes(b)
        } else {
            String::from_utf8_lossy(b).into_owned()
        }
    }

    /// Prints a key and its value on two lines (the simple format).
    pub fn simple_kv(&self, kv: &KeyValue) {
        println!("{}", self.bytes(&kv.key));
        println!("{}", self.bytes(&kv.value));
    }
}

/// A header embedded in a clientv3 struct (its fields inline, zero values omitted), followed
/// by a comma when not empty: the start of the JSON of clientv3's lease responses.
pub fn json_flat_header(h: Option<&ResponseHeader>) -> String {
    let h = h.copied().unwrap_or_default();
    let inner = json_of(&h);
    let inner = &inner[1..inner.len() - 1];
    if inner.is_empty() {
        String::new()
    } else {
        format!("{inner},")
    }
}

/// The fields printer's header lines.
pub fn fields_hdr(h: Option<&ResponseHeader>) {
    let h = h.copied().unwrap_or_default();
    println!("\"ClusterID\" : {}", h.cluster_id);
    println!("\"MemberID\" : {}", h.member_id);
    println!("\"Revision\" : {}", h.revision);
    println!("\"RaftTerm\" : {}", h.raft_term);
}

/// The fields printer's lines for one key-value, with a prefix such as `Prev`.
pub fn fields_kv(prefix: &str, kv: &KeyValue) {
    println!("\"{prefix}Key\" : {}", quote(&kv.key));
    println!("\"{prefix}CreateRevision\" : {}", kv.create_revision);
    println!("\"{prefix}ModRevision\" : {}", kv.mod_revision);
    println!("\"{prefix}Version\" : {}", kv.version);
    println!("\"{prefix}Value\" : {}", quote(&kv.value));
    println!("\"{prefix}Lease\" : {}", kv.lease);
}

/// How wide tablewriter lets a cell grow before it wraps its text at spaces.
const WRAP_AT: usize = 30;

fn text_width(s: &str) -> usize {
    s.chars().count()
}

/// `words` broken into lines of at most `limit` columns so that the lines come out as even
/// as possible (the least sum of squared gaps, the last line free, an over-long line
/// penalised): tablewriter's word wrap.
fn even_lines(words: &[&str], limit: usize) -> Vec<String> {
    const OVERLONG: i64 = 100_000;
    let n = words.len();
    let limit = limit as i64;
    // span(i, j): the width of words i..=j joined by spaces
    let span = |i: usize, j: usize| -> i64 {
        (words[i..=j].iter().map(|w| text_width(w)).sum::<usize>() + (j - i)) as i64
    };
    let mut cost = vec![i64::from(i32::MAX); n];
    let mut next = vec![n; n];
    for i in (0..n).rev() {
        if span(i, n - 1) <= limit {
            cost[i] = 0;
            next[i] = n;
            continue;
        }
        for j in i + 1..n {
            let gap = limit - span(i, j - 1);
            let mut c = gap * gap + cost[j];
            if span(i, j - 1) > limit {
                c += OVERLONG;
            }
            if c < cost[i] {
                cost[i] = c;
                next[i] = j;
            }
        }
    }
    let mut lines = Vec::new();
    let mut i = 0;
    while i < n {
        lines.push(words[i..next[i]].join(" "));
        i = next[i];
    }
    lines
}

/// A cell as tablewriter lays it out: its lines (each paragraph wrapped at spaces when the
/// cell is wider than 30 columns) and the width it needs.
fn cell_lines(text: &str) -> (Vec<String>, usize) {
    let paragraphs: Vec<&str> = text.split('\n').collect();
    let widest = paragraphs.iter().map(|p| text_width(p)).max().unwrap_or(0);
    let limit = widest.min(WRAP_AT);
    let mut width = limit;
    let mut lines = Vec::new();
    for (i, p) in paragraphs.iter().enumerate() {
        let words: Vec<&str> = p.split(' ').collect();
        let longest = words.iter().map(|w| text_width(w)).max().unwrap_or(0);
        let wrapped = even_lines(&words, limit.max(longest));
        width = wrapped.iter().map(|l| text_width(l)).fold(width, usize::max);
        if i > 0 {
            lines.push(" ".to_string());
        }
        lines.extend(wrapped);
    }
    (lines, width)
}

/// A tablewriter table as etcdctl configures it: headers centred, cells right-aligned, a
/// cell wider than 30 columns wrapped over several lines.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let head: Vec<(Vec<String>, usize)> = headers.iter().map(|h| cell_lines(h)).collect();
    let body: Vec<Vec<(Vec<String>, usize)>> = rows
        .iter()
        .map(|r| r.iter().map(|c| cell_lines(c)).collect())
        .collect();
    let mut widths: Vec<usize> = head.iter().map(|(_, w)| *w).collect();
    for row in &body {
        for (w, (_, cw)) in widths.iter_mut().zip(row) {
            *w = (*w).max(*cw);
        }
    }
    let border: String = widths
        .iter()
        .fold("+".to_string(), |s, w| s + &"-".repeat(w + 2) + "+")
        + "\n";
    let mut out = border.clone();
    out.push('|');
    for ((lines, _), w) in head.iter().zip(&widths) {
        let h = lines.first().map(String::as_str).unwrap_or_default();
        let gap = w - text_width(h);
        out += &format!(" {}{h}{} |", " ".repeat(gap / 2), " ".repeat(gap - gap / 2));
    }
    out.push('\n');
    out += &border;
    for row in &body {
        let height = row.iter().map(|(l, _)| l.len()).max().unwrap_or(1);
        for k in 0..height {
            out.push('|');
            for ((lines, _), w) in row.iter().zip(&widths) {
                let cell = lines.get(k).map(String::as_str).unwrap_or_default();
                out += &format!(" {}{cell} |", " ".repeat(w - text_width(cell)));
            }
            out.push('\n');
        }
    }
    // tablewriter closes the table even without rows
    out += &border;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use retcd_api::etcdserverpb::{ResponseOp, response_op};

    #[test]
    fn json_like_etcdctl() {
        let r = RangeResponse {
            header: Some(ResponseHeader {
                cluster_id: 1,
                member_id: 2,
                revision: 3,
                raft_term: 4,
            }),
            kvs: vec![KeyValue {
                key: b"foo".to_vec(),
                value: b"bar".to_vec(),
                create_revision: 2,
                mod_revision: 2,
                version: 1,
                lease: 0,
            }],
            more: false,
            count: 1,
        };
        assert_eq!(
            json_of(&r),
            r#"{"header":{"cluster_id":1,"member_id":2,"revision":3,"raft_term":4},"kvs":[{"key":"Zm9v","create_revision":2,"mod_revision":2,"version":1,"value":"YmFy"}],"count":1}"#
        );
    }

    #[test]
    fn json_oneofs_as_go_wrappers() {
        let t = TxnResponse {
            header: None,
            succeeded: false,
            responses: vec![ResponseOp {
                response: Some(response_op::Response::ResponsePut(PutResponse {
                    header: Some(ResponseHeader {
                        revision: 22,
                        ..Default::default()
                    }),
                    prev_kv: None,
                })),
            }],
        };
        assert_eq!(
            json_of(&t),
            r#"{"responses":[{"Response":{"ResponsePut":{"header":{"revision":22}}}}]}"#
        );
    }

    #[test]
    fn tables_like_tablewriter() {
        let t = table(
            &["ENDPOINT", "HASH"],
            &[vec!["127.0.0.1:23791".into(), "535685548".into()]],
        );
        assert_eq!(
            t,
            "+-----------------+-----------+\n|    ENDPOINT     |   HASH    |\n+-----------------+-----------+\n| 127.0.0.1:23791 | 535685548 |\n+-----------------+-----------+\n"
        );
        // no rows: still closed
        assert_eq!(table(&["A"], &[]), "+---+\n| A |\n+---+\n+---+\n");
        // a cell wider than 30 columns: wrapped at spaces, as evenly as it goes
        let t = table(
            &["ERRORS"],
            &[vec!["memberID:14348863076607938349 alarm:NOSPACE ".into()]],
        );
        assert_eq!(
            t,
            "+--------------------------------+\n|             ERRORS             |\n+--------------------------------+\n|  memberID:14348863076607938349 |\n|                 alarm:NOSPACE  |\n+--------------------------------+\n"
        );
        assert_eq!(
            even_lines(&["aaa", "bb", "cc", "ddddd"], 6),
            vec!["aaa", "bb cc", "ddddd"]
        );
        // a word longer than the limit stays whole
        assert_eq!(cell_lines(&"x".repeat(40)), (vec!["x".repeat(40)], 40));
    }
}

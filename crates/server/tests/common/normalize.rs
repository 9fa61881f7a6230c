//! Output normalizers and diffs shared by the etcdctl comparison tests
//! (`etcdctl_compat.rs`, `watch_compat.rs`): what legitimately differs between etcd and
//! retcd (raft term, timestamps) is masked the same way in both.

use std::fmt::Write as _;

/// Replaces the run of characters matching `keep` right after every `marker`.
pub fn replace_after(s: &str, marker: &str, matches: impl Fn(char) -> bool, replacement: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find(marker) {
        out.push_str(&rest[..pos + marker.len()]);
        rest = &rest[pos + marker.len()..];
        let end = rest.find(|c: char| !matches(c)).unwrap_or(rest.len());
        if end > 0 {
            out.push_str(replacement);
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// `"RaftTerm" : 2` (top-level header in `-w fields`) → `"RaftTerm" : <term>`; zero
/// terms (nested txn response headers) are kept, they must stay zero.
pub fn normalize_fields_raft_term(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for line in s.split_inclusive('\n') {
        if let Some(v) = line.strip_prefix("\"RaftTerm\" : ")
            && v.trim() != "0"
            && v.trim().chars().all(|c| c.is_ascii_digit())
        {
            out.push_str("\"RaftTerm\" : <term>");
            if line.ends_with('\n') {
                out.push('\n');
            }
            continue;
        }
        out.push_str(line);
    }
    out
}

pub fn read_varint(b: &[u8], i: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*i)?;
        *i += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

pub fn write_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// One field of a protobuf message.
pub struct PbField<'a> {
    number: u64,
    wire_type: u64,
    /// The whole field, tag included.
    raw: &'a [u8],
    /// The value (for length-delimited fields: without the length).
    payload: &'a [u8],
}

/// Splits a protobuf message into its fields (None if it does not parse).
pub fn pb_fields(b: &[u8]) -> Option<Vec<PbField<'_>>> {
    let mut i = 0;
    let mut fields = Vec::new();
    while i < b.len() {
        let start = i;
        let tag = read_varint(b, &mut i)?;
        let (num, wire) = (tag >> 3, tag & 7);
        if num == 0 {
            return None;
        }
        let payload_start;
        match wire {
            0 => {
                payload_start = i;
                read_varint(b, &mut i)?;
            }
            1 => {
                payload_start = i;
                i += 8;
            }
            2 => {
                let len = usize::try_from(read_varint(b, &mut i)?).ok()?;
                payload_start = i;
                i = i.checked_add(len)?;
            }
            5 => {
                payload_start = i;
                i += 4;
            }
            _ => return None,
        }
        if i > b.len() {
            return None;
        }
        fields.push(PbField {
            number: num,
            wire_type: wire,
            raw: &b[start..i],
            payload: &b[payload_start..i],
        });
    }
    Some(fields)
}

/// `-w protobuf` prints the marshaled response; every KV response has its
/// ResponseHeader as field 1, whose field 4 is raft_term: drop that field. Anything that
/// does not parse as protobuf (e.g. `compacted revision N`) is returned unchanged.
pub fn normalize_protobuf(b: &[u8]) -> Vec<u8> {
    let Some(fields) = pb_fields(b) else {
        return b.to_vec();
    };
    let mut out = Vec::with_capacity(b.len());
    for f in fields {
        if f.number == 1 && f.wire_type == 2 {
            match pb_fields(f.payload) {
                Some(header_fields) => {
                    let mut header = Vec::new();
                    for h in header_fields {
                        if !(h.number == 4 && h.wire_type == 0) {
                            header.extend_from_slice(h.raw);
                        }
                    }
                    out.push(0x0a);
                    write_varint(&mut out, header.len() as u64);
                    out.extend_from_slice(&header);
                }
                None => out.extend_from_slice(f.raw),
            }
        } else {
            out.extend_from_slice(f.raw);
        }
    }
    out
}

pub fn hex_lines(b: &[u8]) -> String {
    let mut s = String::new();
    for chunk in b.chunks(32) {
        for byte in chunk {
            let _ = write!(s, "{byte:02x}");
        }
        s.push_str("  |");
        s.extend(chunk.iter().map(|&c| {
            if c.is_ascii_graphic() || c == b' ' {
                c as char
            } else {
                '.'
            }
        }));
        s.push_str("|\n");
    }
    s
}

pub fn shorten(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}… [{} bytes in total]", &s[..cut], s.len())
}

pub fn indent(s: &str) -> String {
    s.lines().map(|l| format!("    {l}\n")).collect()
}

/// A line diff (LCS based; falls back to a positional diff for huge outputs).
pub fn line_diff(a: &str, b: &str) -> String {
    let x: Vec<&str> = a.split_inclusive('\n').collect();
    let y: Vec<&str> = b.split_inclusive('\n').collect();
    let show = |tag: char, l: &str| {
        let visible = l
            .strip_suffix('\n')
            .map_or_else(|| format!("{l}⏎̸ (no newline at end)"), str::to_string);
        format!("{tag} {}\n", shorten(&visible, 400))
    };
    let mut out = String::new();
    if x.len() * y.len() > 4_000_000 {
        for i in 0..x.len().max(y.len()) {
            match (x.get(i), y.get(i)) {
                (Some(l), Some(r)) if l == r => out.push_str(&show(' ', l)),
                (l, r) => {
                    if let Some(l) = l {
                        out.push_str(&show('-', l));
                    }
                    if let Some(r) = r {
                        out.push_str(&show('+', r));
                    }
                }
            }
        }
        return out;
    }
    let (n, m) = (x.len(), y.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if x[i] == y[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && x[i] == y[j] {
            out.push_str(&show(' ', x[i]));
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push_str(&show('-', x[i]));
            i += 1;
        } else {
            out.push_str(&show('+', y[j]));
            j += 1;
        }
    }
    out
}

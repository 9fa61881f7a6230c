//! Go's formatting rules, reproduced where etcdctl's output depends on them: `%q` quoting,
//! `time.Duration` strings and parsing, `encoding/json` strings, go-humanize byte sizes,
//! `--hex` byte strings, the timestamps of zap/capnslog/Go `log` lines, and the
//! `encoding/csv` record pflag reads a list flag's value as (and writes it back as).

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Go's `strconv.Quote(string(b))` (the `%q` verb): invalid UTF-8 bytes become `\xNN`.
pub fn quote(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len() + 2);
    out.push('"');
    for chunk in b.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\u{7}' => out.push_str("\\a"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{b}' => out.push_str("\\v"),
                c if is_print(c) => out.push(c),
                c if (c as u32) < 0x80 => {
                    let _ = write!(out, "\\x{:02x}", c as u32);
                }
                c if (c as u32) < 0x10000 => {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                }
                c => {
                    let _ = write!(out, "\\U{:08x}", c as u32);
                }
            }
        }
        for byte in chunk.invalid() {
            let _ = write!(out, "\\x{byte:02x}");
        }
    }
    out.push('"');
    out
}

/// An approximation of Go's `unicode.IsPrint`: graphic characters and the ASCII space.
fn is_print(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    !(c.is_control()
        || c.is_whitespace()
        || matches!(c as u32, 0xad | 0x200b..=0x200f | 0x2028..=0x202e | 0xfeff))
}

/// Parses Go's `%q` syntax at the start of `s` (a double-quoted string with Go escapes or a
/// back-quoted raw string); returns the bytes and the rest of the input.
pub fn unquote_prefix(s: &str) -> Option<(Vec<u8>, &str)> {
    let mut chars = s.char_indices();
    match chars.next()? {
        (_, '`') => {
            let end = s[1..].find('`')? + 1;
            Some((s.as_bytes()[1..end].to_vec(), &s[end + 1..]))
        }
        (_, '"') => {
            let mut out = Vec::new();
            let bytes = s.as_bytes();
            let mut i = 1;
            while i < bytes.len() {
                match bytes[i] {
                    b'"' => return Some((out, &s[i + 1..])),
                    b'\n' => return None,
                    b'\\' => {
                        let esc = *bytes.get(i + 1)?;
                        i += 2;
                        let simple = match esc {
                            b'a' => Some(7),
                            b'b' => Some(8),
                            b'f' => Some(12),
                            b'n' => Some(b'\n'),
                            b'r' => Some(b'\r'),
                            b't' => Some(b'\t'),
                            b'v' => Some(11),
                            b'\\' => Some(b'\\'),
                            b'"' => Some(b'"'),
                            b'\'' => Some(b'\''),
                            _ => None,
                        };
                        if let Some(b) = simple {
                            out.push(b);
                            continue;
                        }
                        let (len, radix) = match esc {
                            b'x' => (2, 16),
                            b'u' => (4, 16),
                            b'U' => (8, 16),
                            b'0'..=b'7' => {
                                i -= 1;
                                (3, 8)
                            }
                            _ => return None,
                        };
                        let digits = s.get(i..i + len)?;
                        let v = u32::from_str_radix(digits, radix).ok()?;
                        i += len;
                        if esc == b'x' || radix == 8 {
                            out.push(u8::try_from(v).ok()?);
                        } else {
                            let c = char::from_u32(v)?;
                            out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                        }
                    }
                    b => {
                        out.push(b);
                        i += 1;
                    }
                }
            }
            None
        }
        _ => None,
    }
}

/// Go's `time.Duration.String()`, e.g. `1.483703ms`, `5s`, `1m30s`.
pub fn duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_string();
    }
    if nanos < 1_000_000_000 {
        let (unit, div) = if nanos < 1_000 {
            ("ns", 1)
        } else if nanos < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{}{unit}", frac(nanos, div));
    }
    let secs = nanos / 1_000_000_000;
    let sub = nanos % 1_000_000_000;
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    let sec = frac(u128::from(s as u64) * 1_000_000_000 + sub, 1_000_000_000);
    match (h, m) {
        (0, 0) => format!("{sec}s"),
        (0, m) => format!("{m}m{sec}s"),
        (h, m) => format!("{h}h{m}m{sec}s"),
    }
}

/// `n / div` with the fraction's trailing zeros removed.
fn frac(n: u128, div: u128) -> String {
    let whole = n / div;
    let rest = n % div;
    if rest == 0 {
        return whole.to_string();
    }
    let width = div.to_string().len() - 1;
    let digits = format!("{rest:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// Go's `time.ParseDuration` (e.g. `2s`, `100ms`, `1m30s`, `1.5h`, `+1s`); a negative
/// duration is zero (a timeout already over). `None` where Go fails, also past its limit
/// (int64 nanoseconds, some 292 years).
pub fn parse_duration(s: &str) -> Option<Duration> {
    let (negative, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Some(Duration::ZERO);
    }
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_end..];
        total += num * unit;
    }
    if total > i64::MAX as f64 / 1e9 {
        return None;
    }
    if negative {
        return Some(Duration::ZERO);
    }
    Duration::try_from_secs_f64(total).ok()
}

/// Whether Go's `time.ParseDuration` accepts `s`; `Err` carries its message
/// (`time: invalid duration "x"`, `time: missing unit in duration "1"`,
/// `time: unknown unit "q" in duration "1q"`).
pub fn check_duration(s: &str) -> Result<(), String> {
    let q = |t: &str| quote(t.as_bytes());
    let invalid = || Err(format!("time: invalid duration {}", q(s)));
    let mut rest = s.strip_prefix(['-', '+']).unwrap_or(s);
    if rest == "0" {
        return Ok(());
    }
    if rest.is_empty() {
        return invalid();
    }
    while !rest.is_empty() {
        let int_end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let mut frac_len = 0;
        let mut after = &rest[int_end..];
        if let Some(f) = after.strip_prefix('.') {
            frac_len = f.find(|c: char| !c.is_ascii_digit()).unwrap_or(f.len());
            after = &f[frac_len..];
        }
        if int_end == 0 && frac_len == 0 {
            return invalid();
        }
        // the integer part must fit Go's int64 nanoseconds
        if rest[..int_end].trim_start_matches('0').len() > 19 {
            return invalid();
        }
        let unit_end = after
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(after.len());
        let unit = &after[..unit_end];
        if unit.is_empty() {
            return Err(format!("time: missing unit in duration {}", q(s)));
        }
        if !matches!(unit, "ns" | "us" | "µs" | "μs" | "ms" | "s" | "m" | "h") {
            return Err(format!("time: unknown unit {} in duration {}", q(unit), q(s)));
        }
        rest = &after[unit_end..];
    }
    // past int64 nanoseconds
    if parse_duration(s).is_none() {
        return invalid();
    }
    Ok(())
}

/// Go's `strconv.ParseInt(s, 0, 64)` (pflag's int flags): an optional sign, `0x`/`0o`/`0b`
/// or a leading `0` (octal) for the base, `_` between digits; Go's messages.
pub fn parse_int(s: &str) -> Result<i64, String> {
    let syntax = || {
        format!(
            "strconv.ParseInt: parsing {}: invalid syntax",
            quote(s.as_bytes())
        )
    };
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = body.to_ascii_lowercase();
    let (base, digits, prefixed) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d, true)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d, true)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d, true)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..], false)
    } else {
        (10, lower.as_str(), false)
    };
    // a leading 0 (octal) is a digit itself; a 0x/0o/0b prefix needs digits after it
    let leading_zero = base == 8 && !prefixed;
    if digits.is_empty() && !leading_zero {
        return Err(syntax());
    }
    // `_` only between digits (or right after a base prefix), never first or last
    let mut prev_digit = prefixed || leading_zero;
    let mut prev_underscore = false;
    let mut value: u128 = 0;
    for c in digits.chars() {
        if c == '_' {
            if !prev_digit {
                return Err(syntax());
            }
            prev_digit = false;
            prev_underscore = true;
            continue;
        }
        let d = c.to_digit(base).ok_or_else(syntax)?;
        value = (value * u128::from(base) + u128::from(d)).min(u128::from(u64::MAX) + 1);
        prev_digit = true;
        prev_underscore = false;
    }
    if prev_underscore {
        return Err(syntax());
    }
    let limit = if neg { 1u128 << 63 } else { (1u128 << 63) - 1 };
    if value > limit {
        return Err(format!(
            "strconv.ParseInt: parsing {}: value out of range",
            quote(s.as_bytes())
        ));
    }
    let v = value as i128;
    Ok((if neg { -v } else { v }) as i64)
}

/// go-humanize's `Bytes` (SI units): `25 kB`, `1.2 MB`, `7 B`.
pub fn humanize_bytes(n: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    if n < 10 {
        return format!("{n} B");
    }
    let f = n as f64;
    let e = (f.ln() / 1000f64.ln()).floor();
    let val = (f / 1000f64.powf(e) * 10.0 + 0.5).floor() / 10.0;
    let unit = UNITS[e as usize];
    if val < 10.0 {
        format!("{val:.1} {unit}")
    } else {
        format!("{val:.0} {unit}")
    }
}

/// A JSON string as Go's `encoding/json` writes it (HTML characters escaped).
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// etcdctl's `--hex` rendering of a byte string: `\x66\x6f\x6f`.
pub fn hex_bytes(b: &[u8]) -> String {
    b.iter().fold(String::with_capacity(b.len() * 4), |mut s, byte| {
        let _ = write!(s, "\\x{byte:02x}");
        s
    })
}

/// The lines of a CSV input as Go's `csv.Reader` reads them: each with its `\n` (`\r\n`
/// becomes `\n`; a last line without one loses a trailing `\r`), counting every read, the
/// one that finds the end too.
struct CsvLines<'a> {
    rest: &'a [u8],
    read: usize,
}

impl CsvLines<'_> {
    fn next_line(&mut self) -> Option<Vec<u8>> {
        self.read += 1;
        if self.rest.is_empty() {
            return None;
        }
        let mut line = match self.rest.iter().position(|&b| b == b'\n') {
            Some(i) => {
                let (l, rest) = self.rest.split_at(i + 1);
                self.rest = rest;
                l.to_vec()
            }
            None => {
                let mut l = std::mem::take(&mut self.rest).to_vec();
                if l.last() == Some(&b'\r') {
                    l.pop();
                }
                l
            }
        };
        if line.ends_with(b"\r\n") {
            line.truncate(line.len() - 2);
            line.push(b'\n');
        }
        Some(line)
    }
}

/// How many bytes of `line` are its end of line (`\n`).
fn length_nl(line: &[u8]) -> usize {
    usize::from(line.last() == Some(&b'\n'))
}

/// A list flag's value as pflag's `StringSlice` reads it (`readAsCSV`): the fields of the
/// first record of Go's `encoding/csv` (comma-separated, fields may be `"`-quoted with `""`
/// for a quote and may then span lines, blank lines before the record are skipped, nothing
/// is trimmed), none for an empty value; a malformed record fails with Go's message
/// (`parse error on line 1, column 2: bare " in non-quoted-field`).
pub fn csv_record(value: &str) -> Result<Vec<String>, String> {
    const BARE: &str = "bare \" in non-quoted-field";
    const QUOTE: &str = "extraneous or missing \" in quoted-field";
    if value.is_empty() {
        return Ok(Vec::new());
    }
    let mut lines = CsvLines {
        rest: value.as_bytes(),
        read: 0,
    };
    let mut cur = loop {
        match lines.next_line() {
            None => return Err("EOF".into()),
            Some(l) if l.len() == length_nl(&l) => continue,
            Some(l) => break l,
        }
    };
    let record_line = lines.read;
    let error = |line: usize, col: usize, what: &str| {
        if line == record_line {
            format!("parse error on line {line}, column {col}: {what}")
        } else {
            format!("record on line {record_line}; parse error on line {line}, column {col}: {what}")
        }
    };
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let mut fields = Vec::new();
    let mut p = 0;
    let mut col = 1;
    let mut pos_line = record_line;
    'field: loop {
        if cur.get(p) != Some(&b'"') {
            let rest = &cur[p..];
            let comma = rest.iter().position(|&b| b == b',');
            let field = match comma {
                Some(i) => &rest[..i],
                None => &rest[..rest.len() - length_nl(rest)],
            };
            if let Some(j) = field.iter().position(|&b| b == b'"') {
                return Err(error(lines.read, col + j, BARE));
            }
            fields.push(text(field));
            match comma {
                Some(i) => {
                    p += i + 1;
                    col += i + 1;
                }
                None => break,
            }
            continue;
        }
        // a quoted field
        p += 1;
        col += 1;
        let mut field = Vec::new();
        loop {
            let rest = &cur[p..];
            if let Some(i) = rest.iter().position(|&b| b == b'"') {
                field.extend_from_slice(&rest[..i]);
                p += i + 1;
                col += i + 1;
                let rest = &cur[p..];
                match rest.first() {
                    Some(b'"') => {
                        field.push(b'"');
                        p += 1;
                        col += 1;
                    }
                    Some(b',') => {
                        p += 1;
                        col += 1;
                        fields.push(text(&field));
                        continue 'field;
                    }
                    _ if length_nl(rest) == rest.len() => {
                        fields.push(text(&field));
                        break 'field;
                    }
                    _ => return Err(error(lines.read, col - 1, QUOTE)),
                }
            } else if !rest.is_empty() {
                // the field goes on on the next line
                field.extend_from_slice(rest);
                col += rest.len();
                match lines.next_line() {
                    Some(l) => {
                        cur = l;
                        p = 0;
                        if !cur.is_empty() {
                            pos_line += 1;
                            col = 1;
                        }
                    }
                    None => {
                        cur = Vec::new();
                        p = 0;
                    }
                }
            } else {
                return Err(error(pos_line, col, QUOTE));
            }
        }
    }
    Ok(fields)
}

/// pflag's `StringSlice` value as it prints it (`[a,b]`): the fields written as one record
/// by Go's `encoding/csv` (a field is quoted when it holds a comma, a quote, a line break or
/// starts with a space, or is `\.`), in brackets.
pub fn csv_list(fields: &[String]) -> String {
    let quoted = |f: &str| {
        !f.is_empty()
            && (f == "\\."
                || f.contains([',', '"', '\r', '\n'])
                || f.chars().next().is_some_and(char::is_whitespace))
    };
    let record: Vec<String> = fields
        .iter()
        .map(|f| {
            if quoted(f) {
                format!("\"{}\"", f.replace('"', "\"\""))
            } else {
                f.clone()
            }
        })
        .collect();
    format!("[{}]", record.join(","))
}

/// Civil UTC date-time of a Unix time: (year, month, day, hour, minute, second).
fn civil(secs: u64) -> (i64, u32, u32, u64, u64, u64) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, rem / 3600, (rem / 60) % 60, rem % 60)
}

fn now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// zap's ISO-8601 timestamp: `2026-11-21T03:33:11.460Z`.
pub fn zap_iso_now() -> String {
    let t = now();
    let (y, mo, d, h, mi, s) = civil(t.as_secs());
    format!(
        "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:03}Z",
        t.subsec_millis()
    )
}

/// zap's epoch timestamp: seconds as a float.
pub fn zap_epoch_now() -> String {
    format!("{}", now().as_secs_f64())
}

/// capnslog's timestamp: `2026-11-21 03:33:26.817290`.
pub fn capnslog_now() -> String {
    let t = now();
    let (y, mo, d, h, mi, s) = civil(t.as_secs());
    format!(
        "{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{:06}",
        t.subsec_micros()
    )
}

/// Go's text of a system call's error (`no such file or directory`): the C library's
/// message with a lower-case first letter, without Rust's `(os error N)`.
pub fn os_error(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text);
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Go's `log` timestamp (`log.LstdFlags`), as gRPC's logger prints it: `2026/11/21 03:33:26`.
pub fn golog_now() -> String {
    let (y, mo, d, h, mi, s) = civil(now().as_secs());
    format!("{y:04}/{mo:02}/{d:02} {h:02}:{mi:02}:{s:02}")
}

#[cfg(test)]
mod tests {

    #[test]
    fn list_flags_printed_as_pflag_prints_them() {
        let list = |v: &[&str]| csv_list(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(list(&[]), "[]");
        assert_eq!(list(&["a:1", "b:2"]), "[a:1,b:2]");
        assert_eq!(list(&["", "x"]), "[,x]");
        assert_eq!(
            list(&[" a b", "c d ", "e,f", "g\"h", "\\."]),
            "[\" a b\",c d ,\"e,f\",\"g\"\"h\",\"\\.\"]"
        );
    }

    #[test]
    fn list_flags_read_as_go_csv_records() {
        let ok = |v: &str, want: &[&str]| {
            assert_eq!(
                csv_record(v),
                Ok(want.iter().map(|s| s.to_string()).collect()),
                "{v:?}"
            )
        };
        ok("", &[]);
        ok("a", &["a"]);
        ok("a,b", &["a", "b"]);
        ok(",", &["", ""]);
        ok(" a , ,b", &[" a ", " ", "b"]);
        ok("\"a,b\",c", &["a,b", "c"]);
        ok("\"a\"\"b\",c", &["a\"b", "c"]);
        ok("\"\"", &[""]);
        ok("a\nb", &["a"]);
        ok("\n\r\na,b\n", &["a", "b"]);
        ok("a\r\n", &["a"]);
        ok("a\r", &["a"]);
        ok("\"a\nb\",c\nd", &["a\nb", "c"]);
        let err = |v: &str, want: &str| assert_eq!(csv_record(v), Err(want.to_string()), "{v:?}");
        err(
            "a\"b",
            "parse error on line 1, column 2: bare \" in non-quoted-field",
        );
        err(
            "x,a\"b",
            "parse error on line 1, column 4: bare \" in non-quoted-field",
        );
        err(
            "\"a",
            "parse error on line 1, column 3: extraneous or missing \" in quoted-field",
        );
        err(
            "\"a\"b",
            "parse error on line 1, column 3: extraneous or missing \" in quoted-field",
        );
        err("\n", "EOF");
        // columns count bytes
        err(
            "é\"",
            "parse error on line 1, column 3: bare \" in non-quoted-field",
        );
        err(
            "\n\r\n\"a",
            "parse error on line 3, column 3: extraneous or missing \" in quoted-field",
        );
        err(
            "\"a\n\nb",
            "record on line 1; parse error on line 3, column 2: extraneous or missing \" in quoted-field",
        );
        err(
            "\"a\nb",
            "record on line 1; parse error on line 2, column 2: extraneous or missing \" in quoted-field",
        );
    }

    #[test]
    fn go_durations_and_ints_as_pflag_reads_them() {
        for ok in ["5s", "0", "-1.5h", "1h2m3.5s", ".5s", "3us", "2µs", "+7ms"] {
            assert_eq!(check_duration(ok), Ok(()), "{ok}");
        }
        assert_eq!(check_duration("x"), Err("time: invalid duration \"x\"".into()));
        assert_eq!(
            check_duration("3000000h"),
            Err("time: invalid duration \"3000000h\"".into())
        );
        assert_eq!(parse_duration("+7ms"), Some(Duration::from_millis(7)));
        assert_eq!(parse_duration("-1s"), Some(Duration::ZERO));
        assert_eq!(parse_duration("1h2m3.5s"), Some(Duration::from_secs_f64(3723.5)));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(check_duration(""), Err("time: invalid duration \"\"".into()));
        assert_eq!(check_duration("."), Err("time: invalid duration \".\"".into()));
        assert_eq!(
            check_duration("1"),
            Err("time: missing unit in duration \"1\"".into())
        );
        assert_eq!(
            check_duration("1q"),
            Err("time: unknown unit \"q\" in duration \"1q\"".into())
        );
        assert_eq!(parse_int("12"), Ok(12));
        assert_eq!(parse_int("-0x10"), Ok(-16));
        assert_eq!(parse_int("010"), Ok(8));
        assert_eq!(parse_int("0b101"), Ok(5));
        assert_eq!(parse_int("0o17"), Ok(15));
        assert_eq!(parse_int("1_000"), Ok(1000));
        assert_eq!(parse_int("0"), Ok(0));
        assert_eq!(parse_int("-9223372036854775808"), Ok(i64::MIN));
        for bad in ["x", "", "-", "0x", "1_", "_1", "1__0", "1.5", "08"] {
            assert_eq!(
                parse_int(bad),
                Err(format!(
                    "strconv.ParseInt: parsing {}: invalid syntax",
                    quote(bad.as_bytes())
                )),
                "{bad}"
            );
        }
        assert_eq!(
            parse_int("99999999999999999999"),
            Err("strconv.ParseInt: parsing \"99999999999999999999\": value out of range".into())
        );
        assert!(parse_int("9223372036854775808").is_err());
    }

    use super::*;

    #[test]
    fn quotes_like_go() {
        assert_eq!(quote(b"a\"b\nc"), r#""a\"b\nc""#);
        assert_eq!(quote(b"\x00\xff"), r#""\x00\xff""#);
        assert_eq!(quote("é".as_bytes()), "\"é\"");
    }

    #[test]
    fn unquotes_go_strings() {
        assert_eq!(
            unquote_prefix(r#""a\x41\n" rest"#),
            Some((b"aA\n".to_vec(), " rest"))
        );
        assert_eq!(unquote_prefix("`raw` x"), Some((b"raw".to_vec(), " x")));
        assert_eq!(unquote_prefix("noquote"), None);
    }

    #[test]
    fn durations_like_go() {
        assert_eq!(duration(Duration::from_nanos(1_483_703)), "1.483703ms");
        assert_eq!(duration(Duration::from_secs(5)), "5s");
        assert_eq!(duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(duration(Duration::from_nanos(1500)), "1.5µs");
        assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("100ms"), Some(Duration::from_millis(100)));
        assert_eq!(parse_duration("x"), None);
    }

    #[test]
    fn humanizes_like_go() {
        assert_eq!(humanize_bytes(24_576), "25 kB");
        assert_eq!(humanize_bytes(7), "7 B");
        assert_eq!(humanize_bytes(1_234_567), "1.2 MB");
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(civil(1_795_232_078), (2026, 11, 21, 3, 34, 38));
    }
}

//! An endpoint as etcdctl 3.4 dials it, and Go's words when it cannot: clientv3's
//! `endpoint.ParseEndpoint` (the scheme is taken off when Go's `url.Parse` accepts the
//! endpoint and it has a `://`; else the whole endpoint is the address), then what Go's
//! `net.Dial("tcp", address)` checks and looks up before it connects: `SplitHostPort`, the
//! port (a number, or a service name from `/etc/services`), the host (an IP address, or a
//! domain name to look up; anything else is `no such host` without asking a server).
//!
//! A domain name is looked up with the system's resolver (getaddrinfo); a failure is said
//! as Go's resolver says it, naming the first name server of `/etc/resolv.conf`
//! (`lookup nosuch.example on 10.0.0.53:53: no such host`).

use std::net::{IpAddr, SocketAddr};

/// What clientv3 makes of an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// an address to dial over TCP: `https` is `Some(true)` for `https://`, `Some(false)`
    /// for `http://` and `None` without a scheme (TLS when the client has a TLS config)
    Tcp { address: String, https: Option<bool> },
    /// a unix socket (`unix://` or `unixs://`): its path is the URL's host and path (a
    /// relative path is from the working directory); `tls` is `Some(true)` for `unixs://`
    /// and `None` for `unix://` (TLS when the client has a TLS config, as without a scheme)
    Unix { path: String, tls: Option<bool> },
    /// any other scheme: clientv3's dialer gets no network (`dial: unknown network `)
    Unknown,
}

/// clientv3's `endpoint.ParseEndpoint`.
pub fn parse_endpoint(ep: &str) -> Parsed {
    let Some((scheme, host, path)) = url_parts(ep) else {
        return Parsed::Tcp {
            address: ep.to_string(),
            https: None,
        };
    };
    match scheme.as_str() {
        "http" | "https" => Parsed::Tcp {
            address: host,
            https: Some(scheme == "https"),
        },
        "unix" | "unixs" => Parsed::Unix {
            path: host + &path,
            tls: (scheme == "unixs").then_some(true),
        },
        _ => Parsed::Unknown,
    }
}

/// The scheme (lower case), host and path (unescaped) of `ep` when Go's `url.Parse` accepts
/// it and it has a `://`; `None` when clientv3 dials the endpoint as it is.
fn url_parts(ep: &str) -> Option<(String, String, String)> {
    if !ep.contains("://") || ep.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return None;
    }
    let ep = ep.split('#').next().unwrap_or_default();
    // Go's getScheme
    let mut scheme_end = None;
    for (i, b) in ep.bytes().enumerate() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' => {}
            b'0'..=b'9' | b'+' | b'-' | b'.' if i > 0 => {}
            b':' if i > 0 => {
                scheme_end = Some(i);
                break;
            }
            _ => break,
        }
    }
    let Some(end) = scheme_end else {
        // no scheme: a path, which Go accepts only when it starts with `/` (then clientv3
        // has no scheme it knows)
        return ep
            .starts_with('/')
            .then(|| (String::new(), String::new(), String::new()));
    };
    let scheme = ep[..end].to_ascii_lowercase();
    let rest = &ep[end + 1..];
    let rest = rest.split('?').next().unwrap_or_default();
    let Some(authority) = rest.strip_prefix("//") else {
        // an opaque URL (`http:x`): no host
        return Some((scheme, String::new(), String::new()));
    };
    let (authority, path) = match authority.find('/') {
        Some(i) => authority.split_at(i),
        None => (authority, ""),
    };
    let host = match authority.rfind('@') {
        Some(i) => {
            if !authority[..i].bytes().all(valid_userinfo_byte) {
                return None;
            }
            &authority[i + 1..]
        }
        None => authority,
    };
    Some((scheme, parse_host(host)?, unescape_path(path)?))
}

/// Go's `url.unescape` of a path: `%XX` escapes decoded, a bad escape fails.
fn unescape_path(path: &str) -> Option<String> {
    let b = path.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = |c: u8| (c as char).to_digit(16);
            let (h, l) = (hex(*b.get(i + 1)?)?, hex(*b.get(i + 2)?)?);
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn valid_userinfo_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._:~!$&'()*+,;=%@".contains(&b)
}

/// Go's `url.parseHost`: the port after the host must be digits; characters a host cannot
/// hold fail; `%XX` escapes of non-ASCII bytes (and `%25`) are decoded.
fn parse_host(host: &str) -> Option<String> {
    let valid_port = |p: &str| {
        p.is_empty()
            || p.strip_prefix(':')
                .is_some_and(|d| d.bytes().all(|b| b.is_ascii_digit()))
    };
    if host.starts_with('[') {
        let i = host.rfind(']')?;
        if !valid_port(&host[i + 1..]) {
            return None;
        }
    } else if let Some(i) = host.rfind(':')
        && !valid_port(&host[i..])
    {
        return None;
    }
    let b = host.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = |c: u8| (c as char).to_digit(16);
                let (h, l) = (hex(*b.get(i + 1)?)?, hex(*b.get(i + 2)?)?);
                if h < 8 && &b[i..i + 3] != b"%25" {
                    return None;
                }
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            c if c < 0x80 && !host_byte(c) => return None,
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The ASCII bytes Go's `url.Parse` lets a host hold unescaped.
fn host_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!$&'()*+,;=:[]<>\"-_.~".contains(&c)
}

/// An address Go's dialer would connect to: the URL to dial (the port as a number, the
/// host as given, for TLS names and `:authority`) and the address Go names in its dial
/// errors (the first address the host resolves to).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub host: String,
    pub port: u16,
    pub dialed: String,
}

impl Resolved {
    /// `scheme://host:port`, an IPv6 host in brackets.
    pub fn url(&self, scheme: &str) -> String {
        if self.host.contains(':') {
            format!("{scheme}://[{}]:{}", self.host, self.port)
        } else {
            format!("{scheme}://{}:{}", self.host, self.port)
        }
    }
}

/// What Go's `net.Dial("tcp", address)` finds before it connects, or its error
/// (`dial tcp: address a: missing port in address`, `dial tcp: lookup a b: no such host`).
pub async fn resolve(address: &str) -> Result<Resolved, String> {
    if address.is_empty() {
        return Err("dial tcp: missing address".into());
    }
    let (host, service) =
        split_host_port(address).map_err(|why| format!("dial tcp: address {address}: {why}"))?;
    let port = lookup_port(service)?;
    if host.is_empty() {
        // Go dials the local system
        return Ok(Resolved {
            host: "127.0.0.1".into(),
            port,
            dialed: format!(":{port}"),
        });
    }
    if let Some(ip) = ip_literal(host) {
        return Ok(Resolved {
            host: host.to_string(),
            port,
            dialed: SocketAddr::new(ip, port).to_string(),
        });
    }
    if !is_domain_name(host) {
        return Err(format!("dial tcp: lookup {host}: no such host"));
    }
    match tokio::net::lookup_host((host, port)).await {
        Ok(mut addrs) => match addrs.next() {
            Some(first) => Ok(Resolved {
                host: host.to_string(),
                port,
                dialed: first.to_string(),
            }),
            None => Err(lookup_error(host, "no such host")),
        },
        Err(e) => {
            let text = e.to_string();
            let why = if text.contains("Name or service not known")
                || text.contains("No address associated with hostname")
                || text.contains("nodename nor servname")
            {
                "no such host".to_string()
            } else if text.contains("Temporary failure in name resolution") {
                "server misbehaving".to_string()
            } else {
                text
            };
            Err(lookup_error(host, &why))
        }
    }
}

fn lookup_error(host: &str, why: &str) -> String {
    format!("dial tcp: lookup {host} on {}: {why}", name_server())
}

/// The first name server of `/etc/resolv.conf` (Go's default `127.0.0.1:53` without one).
fn name_server() -> String {
    std::fs::read_to_string("/etc/resolv.conf")
        .ok()
        .and_then(|conf| {
            conf.lines().find_map(|l| {
                let mut words = l.split_whitespace();
                (words.next() == Some("nameserver"))
                    .then(|| words.next())
                    .flatten()
                    .and_then(|ip| ip.parse::<IpAddr>().ok())
            })
        })
        .map(|ip| SocketAddr::new(ip, 53).to_string())
        .unwrap_or_else(|| "127.0.0.1:53".into())
}

/// Go's `net.SplitHostPort`, with its reasons.
pub fn split_host_port(hostport: &str) -> Result<(&str, &str), &'static str> {
    const MISSING_PORT: &str = "missing port in address";
    const TOO_MANY_COLONS: &str = "too many colons in address";
    let Some(i) = hostport.rfind(':') else {
        return Err(MISSING_PORT);
    };
    let (host, j, k);
    if hostport.starts_with('[') {
        let Some(end) = hostport.find(']') else {
            return Err("missing ']' in address");
        };
        if end + 1 == hostport.len() {
            return Err(MISSING_PORT);
        } else if end + 1 != i {
            if hostport.as_bytes()[end + 1] == b':' {
                return Err(TOO_MANY_COLONS);
            }
            return Err(MISSING_PORT);
        }
        host = &hostport[1..end];
        (j, k) = (1, end + 1);
    } else {
        host = &hostport[..i];
        if host.contains(':') {
            return Err(TOO_MANY_COLONS);
        }
        (j, k) = (0, 0);
    }
    if hostport[j..].contains('[') {
        return Err("unexpected '[' in address");
    }
    if hostport[k..].contains(']') {
        return Err("unexpected ']' in address");
    }
    Ok((host, &hostport[i + 1..]))
}

/// Go's port of a dial: a number (clamped as Go's `parsePort` does, then checked), or a
/// TCP service name (`/etc/services`, then Go's built-in table).
fn lookup_port(service: &str) -> Result<u16, String> {
    let number = match parse_port(service) {
        Some(n) => n,
        None => {
            service_port(service).ok_or_else(|| format!("dial tcp: address tcp/{service}: unknown port"))?
        }
    };
    u16::try_from(number).map_err(|_| format!("dial tcp: address {service}: invalid port"))
}

/// Go's `parsePort`: `None` when the service is a name to look up.
fn parse_port(service: &str) -> Option<i64> {
    if service.is_empty() {
        return Some(0);
    }
    const CUTOFF: u64 = 1 << 30;
    let (neg, digits) = match service.as_bytes()[0] {
        b'+' => (false, &service[1..]),
        b'-' => (true, &service[1..]),
        _ => (false, service),
    };
    let mut n: u64 = 0;
    for b in digits.bytes() {
        if !b.is_ascii_digit() {
            return None;
        }
        if n >= CUTOFF {
            n = u64::from(u32::MAX);
            continue;
        }
        n = (n * 10 + u64::from(b - b'0')).min(u64::from(u32::MAX));
    }
    let port = if !neg && n >= CUTOFF {
        CUTOFF as i64 - 1
    } else if neg && n > CUTOFF {
        CUTOFF as i64
    } else {
        n as i64
    };
    Some(if neg { -port } else { port })
}

/// A TCP service's port by name (any case): `/etc/services`, else Go's built-in entries.
fn service_port(name: &str) -> Option<i64> {
    let name = name.to_ascii_lowercase();
    if let Ok(text) = std::fs::read_to_string("/etc/services") {
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or_default();
            let mut words = line.split_whitespace();
            let (Some(service), Some(port_proto)) = (words.next(), words.next()) else {
                continue;
            };
            let Some((port, "tcp")) = port_proto.split_once('/') else {
                continue;
            };
            if std::iter::once(service)
                .chain(words)
                .any(|n| n.eq_ignore_ascii_case(&name))
            {
                return port.parse().ok();
            }
        }
    }
    let builtin: &[(&str, i64)] = &[
        ("ftp", 21),
        ("ftps", 990),
        ("gopher", 70),
        ("http", 80),
        ("https", 443),
        ("imap2", 143),
        ("imap3", 220),
        ("imaps", 993),
        ("pop3", 110),
        ("pop3s", 995),
        ("smtp", 25),
        ("ssh", 22),
        ("telnet", 23),
    ];
    builtin.iter().find(|(n, _)| *n == name).map(|&(_, p)| p)
}

/// An IP address as Go's `ParseIP` reads one (dotted IPv4, IPv6; an IPv6 zone is kept).
fn ip_literal(host: &str) -> Option<IpAddr> {
    let addr = host.split('%').next().unwrap_or_default();
    match addr.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) if !host.contains('%') => Some(IpAddr::V4(v4)),
        Ok(IpAddr::V6(v6)) => Some(IpAddr::V6(v6)),
        _ => None,
    }
}

/// Go's `isDomainName`: labels of letters, digits, `_` and `-` (not first or last), at most
/// 63 bytes each, 253 in all, not all numeric.
pub fn is_domain_name(s: &str) -> bool {
    if s == "." {
        return true;
    }
    let l = s.len();
    if l == 0 || l > 254 || (l == 254 && !s.ends_with('.')) {
        return false;
    }
    let mut last = b'.';
    let mut non_numeric = false;
    let mut part_len = 0;
    for c in s.bytes() {
        match c {
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                non_numeric = true;
                part_len += 1;
            }
            b'0'..=b'9' => part_len += 1,
            b'-' => {
                if last == b'.' {
                    return false;
                }
                part_len += 1;
                non_numeric = true;
            }
            b'.' => {
                if last == b'.' || last == b'-' || part_len > 63 || part_len == 0 {
                    return false;
                }
                part_len = 0;
            }
            _ => return false,
        }
        last = c;
    }
    last != b'-' && part_len <= 63 && non_numeric
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(address: &str, https: Option<bool>) -> Parsed {
        Parsed::Tcp {
            address: address.into(),
            https,
        }
    }

    #[test]
    fn endpoints_as_clientv3_parses_them() {
        assert_eq!(parse_endpoint("127.0.0.1:2379"), tcp("127.0.0.1:2379", None));
        assert_eq!(parse_endpoint("localhost:2379"), tcp("localhost:2379", None));
        assert_eq!(parse_endpoint("http://a:1"), tcp("a:1", Some(false)));
        assert_eq!(parse_endpoint("HTTPS://a:1/p?q#f"), tcp("a:1", Some(true)));
        assert_eq!(parse_endpoint("http://[::1]:1"), tcp("[::1]:1", Some(false)));
        assert_eq!(parse_endpoint("http://u:p@a:1"), tcp("a:1", Some(false)));
        // Go's url.Parse refuses these: the whole endpoint is the address
        assert_eq!(parse_endpoint("http://a b:1"), tcp("http://a b:1", None));
        assert_eq!(parse_endpoint("http://a:b"), tcp("http://a:b", None));
        assert_eq!(parse_endpoint("a b:1"), tcp("a b:1", None));
        assert_eq!(parse_endpoint("ftp://a:1"), Parsed::Unknown);
        let unix = |path: &str, tls| Parsed::Unix {
            path: path.into(),
            tls,
        };
        assert_eq!(parse_endpoint("unix://x"), unix("x", None));
        assert_eq!(
            parse_endpoint("unix://localhost:1234"),
            unix("localhost:1234", None)
        );
        assert_eq!(parse_endpoint("unix:///tmp/a%20b/s"), unix("/tmp/a b/s", None));
        assert_eq!(parse_endpoint("unix://h:1/p?q"), unix("h:1/p", None));
        assert_eq!(
            parse_endpoint("UNIXS://localhost:1"),
            unix("localhost:1", Some(true))
        );
        // no `://`: an address to dial over TCP
        assert_eq!(parse_endpoint("unix:x"), tcp("unix:x", None));
        assert_eq!(parse_endpoint("http:x://y"), tcp("", Some(false)));
    }

    #[test]
    fn go_split_host_port() {
        assert_eq!(split_host_port("a:1"), Ok(("a", "1")));
        assert_eq!(split_host_port("[::1]:1"), Ok(("::1", "1")));
        assert_eq!(split_host_port("a:"), Ok(("a", "")));
        assert_eq!(split_host_port("a"), Err("missing port in address"));
        assert_eq!(split_host_port("http://a:1"), Err("too many colons in address"));
        assert_eq!(split_host_port("[::1"), Err("missing ']' in address"));
        assert_eq!(split_host_port("[::1]"), Err("missing port in address"));
        assert_eq!(split_host_port("[::1]x:1"), Err("missing port in address"));
        assert_eq!(split_host_port("a[:1"), Err("unexpected '[' in address"));
        assert_eq!(split_host_port("a]:1"), Err("unexpected ']' in address"));
    }

    #[test]
    fn go_domain_names() {
        for ok in ["a", "a.b", "a-b.c", "a_b", "x1.example.com.", "1a"] {
            assert!(is_domain_name(ok), "{ok}");
        }
        for bad in [
            "",
            "a b",
            "1.2.3",
            "-a",
            "a-",
            "a..b",
            "a.-b",
            " 127.0.0.1",
            &"a".repeat(64),
        ] {
            assert!(!is_domain_name(bad), "{bad}");
        }
    }

    #[test]
    fn go_dial_errors_before_connecting() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let r = |a: &str| rt.block_on(resolve(a));
        assert_eq!(r("a b:1"), Err("dial tcp: lookup a b: no such host".into()));
        assert_eq!(r("1.2.3:1"), Err("dial tcp: lookup 1.2.3: no such host".into()));
        assert_eq!(
            r(" 127.0.0.1:1"),
            Err("dial tcp: lookup  127.0.0.1: no such host".into())
        );
        assert_eq!(r("a"), Err("dial tcp: address a: missing port in address".into()));
        assert_eq!(r("a:b"), Err("dial tcp: address tcp/b: unknown port".into()));
        assert_eq!(
            r("127.0.0.1:1 "),
            Err("dial tcp: address tcp/1 : unknown port".into())
        );
        assert_eq!(r("a:99999"), Err("dial tcp: address 99999: invalid port".into()));
        assert_eq!(r("a:-1"), Err("dial tcp: address -1: invalid port".into()));
        assert_eq!(r(""), Err("dial tcp: missing address".into()));
        let ok = r("127.0.0.1:http").expect("named port");
        assert_eq!((ok.port, ok.dialed.as_str()), (80, "127.0.0.1:80"));
        let ok = r("[::1]:7").expect("v6");
        assert_eq!(
            (ok.url("http"), ok.dialed.as_str()),
            ("http://[::1]:7".into(), "[::1]:7")
        );
        assert_eq!(r(":5").expect("local").dialed, ":5");
    }
}

//! `--discovery-srv DOMAIN [--discovery-srv-name NAME]`: the cluster's client endpoints from
//! DNS SRV records, as etcdctl 3.4 finds them (etcd's `srv.GetClient`):
//! `_etcd-client-ssl[-NAME]._tcp.DOMAIN` gives `https://TARGET:PORT` endpoints, then
//! `_etcd-client[-NAME]._tcp.DOMAIN` gives `http://` ones; either may be missing, not both.
//! Targets keep the trailing dot DNS gives them (`https://etcd1.example.com.:2379`), records
//! are ordered as Go's `LookupSRV` orders them (priority, then weight).
//!
//! The lookups go to the resolvers of `/etc/resolv.conf` over UDP (TCP when the answer is
//! truncated), as Go's own resolver does, and fail with its messages
//! (`lookup NAME on 127.0.0.1:53: no such host`).

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

/// One SRV record.
#[derive(Debug, Clone, PartialEq)]
pub struct Srv {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    /// as DNS has it, with the trailing dot
    pub target: String,
}

/// Something that answers SRV queries: the system's resolvers, or a test's.
pub trait LookupSrv {
    /// The records of `name`, in Go's order; `Err` is Go's message for the failure.
    fn lookup_srv(&self, name: &str) -> Result<Vec<Srv>, String>;
}

/// etcd's SRV service name: `etcd-client` for http, `etcd-client-ssl` for https, `-NAME`
/// after either when a service name is given.
fn service(https: bool, name: &str) -> String {
    let base = if https { "etcd-client-ssl" } else { "etcd-client" };
    if name.is_empty() {
        base.to_string()
    } else {
        format!("{base}-{name}")
    }
}

/// The client endpoints `domain`'s SRV records name (https first), or etcd's error when
/// neither lookup succeeds.
pub fn client_endpoints(dns: &impl LookupSrv, domain: &str, name: &str) -> Result<Vec<String>, String> {
    let mut endpoints = Vec::new();
    let mut errors = Vec::new();
    for (https, scheme) in [(true, "https"), (false, "http")] {
        match dns.lookup_srv(&format!("_{}._tcp.{domain}", service(https, name))) {
            Ok(records) => endpoints.extend(records.iter().map(|r| {
                let host = if r.target.contains(':') {
                    format!("[{}]", r.target)
                } else {
                    r.target.clone()
                };
                format!("{scheme}://{host}:{}", r.port)
            })),
            Err(e) => errors.push(e),
        }
    }
    match errors.as_slice() {
        [a, b] => Err(format!("dns lookup errors: {a} and {b}")),
        _ => Ok(endpoints),
    }
}

/// The resolver configuration Go reads from `/etc/resolv.conf`.
#[derive(Debug, Clone)]
pub struct System {
    servers: Vec<SocketAddr>,
    search: Vec<String>,
    ndots: usize,
    timeout: Duration,
    attempts: usize,
}

impl System {
    /// `/etc/resolv.conf` (Go's defaults where it says nothing: the local resolver, one dot,
    /// 5 s, 2 attempts).
    pub fn from_resolv_conf() -> System {
        System::parse(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default())
    }

    fn parse(text: &str) -> System {
        let mut s = System {
            servers: Vec::new(),
            search: Vec::new(),
            ndots: 1,
            timeout: Duration::from_secs(5),
            attempts: 2,
        };
        for line in text.lines() {
            let line = line.split(['#', ';']).next().unwrap_or_default();
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => {
                    if let Some(ip) = words.next().and_then(|w| w.parse::<IpAddr>().ok())
                        && s.servers.len() < 3
                    {
                        s.servers.push(SocketAddr::new(ip, 53));
                    }
                }
                Some("domain") => s.search = words.next().map(|d| vec![d.to_string()]).unwrap_or_default(),
                Some("search") => s.search = words.map(str::to_string).collect(),
                Some("options") => {
                    for o in words {
                        let num = |p: &str| o.strip_prefix(p).and_then(|v| v.parse::<usize>().ok());
                        if let Some(n) = num("ndots:") {
                            s.ndots = n.min(15);
                        } else if let Some(n) = num("timeout:") {
                            s.timeout = Duration::from_secs(n.max(1) as u64);
                        } else if let Some(n) = num("attempts:") {
                            s.attempts = n.max(1);
                        }
                    }
                }
                _ => {}
            }
        }
        if s.servers.is_empty() {
            s.servers = vec![
                "127.0.0.1:53".parse().expect("addr"),
                "[::1]:53".parse().expect("addr"),
            ];
        }
        s
    }

    /// The names Go tries for `name`: as given when it has enough dots (then with each search
    /// domain), else the search domains first.
    fn names(&self, name: &str) -> Vec<String> {
        if name.ends_with('.') {
            return vec![name.to_string()];
        }
        let with: Vec<String> = self
            .search
            .iter()
            .map(|d| format!("{name}.{}.", d.trim_end_matches('.')))
            .collect();
        let bare = format!("{name}.");
        if name.matches('.').count() >= self.ndots {
            std::iter::once(bare).chain(with).collect()
        } else {
            with.into_iter().chain(std::iter::once(bare)).collect()
        }
    }
}

/// Why a query got no records.
enum Miss {
    /// NXDOMAIN, or an answer without SRV records: try the next name
    NoSuchHost,
    /// the server failed or could not be reached: try the next server
    Failed(String),
}

impl LookupSrv for System {
    fn lookup_srv(&self, name: &str) -> Result<Vec<Srv>, String> {
        let mut last = (String::new(), "no such host".to_string());
        for fqdn in self.names(name) {
            'name: for _ in 0..self.attempts {
                for server in &self.servers {
                    match query(server, &fqdn, self.timeout) {
                        Ok(records) => return Ok(go_order(records)),
                        Err(Miss::NoSuchHost) => {
                            last = (server.to_string(), "no such host".into());
                            break 'name;
                        }
                        Err(Miss::Failed(why)) => last = (server.to_string(), why),
                    }
                }
            }
        }
        Err(format!("lookup {name} on {}: {}", last.0, last.1))
    }
}

/// Go's order: by priority, then by weight, equal priorities shuffled by weight (RFC 2782)
/// when they have any.
fn go_order(mut records: Vec<Srv>) -> Vec<Srv> {
    records.sort_by_key(|r| (r.priority, r.weight));
    let mut out = Vec::with_capacity(records.len());
    let mut rest = records.as_slice();
    while let Some(first) = rest.first() {
        let n = rest.iter().take_while(|r| r.priority == first.priority).count();
        let mut group = rest[..n].to_vec();
        rest = &rest[n..];
        while !group.is_empty() {
            let total: u32 = group.iter().map(|r| u32::from(r.weight)).sum();
            let pick = if total == 0 {
                0
            } else {
                let mut n = random_u32() % total + 1;
                group
                    .iter()
                    .position(|r| {
                        let w = u32::from(r.weight);
                        if n <= w {
                            true
                        } else {
                            n -= w;
                            false
                        }
                    })
                    .unwrap_or(0)
            };
            out.push(group.remove(pick));
        }
    }
    out
}

fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_err()
    {
        b = std::process::id().to_le_bytes();
    }
    u32::from_le_bytes(b)
}

const TYPE_SRV: u16 = 33;

/// A DNS query for the SRV records of `fqdn` (absolute), recursion desired.
fn request(id: u16, fqdn: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(64);
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&0x0100u16.to_be_bytes()); // RD
    m.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // one question
    for label in fqdn.trim_end_matches('.').split('.').filter(|l| !l.is_empty()) {
        let l = &label.as_bytes()[..label.len().min(63)];
        m.push(l.len() as u8);
        m.extend_from_slice(l);
    }
    m.push(0);
    m.extend_from_slice(&TYPE_SRV.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes()); // IN
    m
}

/// A (possibly compressed) name at `at`: the name with a trailing dot, and where it ends.
fn read_name(msg: &[u8], mut at: usize) -> Option<(String, usize)> {
    let mut name = String::new();
    let mut end = None;
    for _ in 0..128 {
        let len = *msg.get(at)?;
        match len {
            0 => {
                if name.is_empty() {
                    name.push('.');
                }
                return Some((name, end.unwrap_or(at + 1)));
            }
            l if l & 0xc0 == 0xc0 => {
                let ptr = (usize::from(l & 0x3f) << 8) | usize::from(*msg.get(at + 1)?);
                end.get_or_insert(at + 2);
                at = ptr;
            }
            l => {
                let label = msg.get(at + 1..at + 1 + usize::from(l))?;
                name.push_str(&String::from_utf8_lossy(label));
                name.push('.');
                at += 1 + usize::from(l);
            }
        }
    }
    None
}

/// The SRV records of a DNS answer for query `id`.
fn parse_answer(msg: &[u8], id: u16) -> Result<Vec<Srv>, Miss> {
    let bad = || Miss::Failed("cannot unmarshal DNS message".into());
    let word = |at: usize| -> Option<u16> { Some(u16::from_be_bytes([*msg.get(at)?, *msg.get(at + 1)?])) };
    if msg.len() < 12 || word(0) != Some(id) {
        return Err(bad());
    }
    let flags = word(2).ok_or_else(bad)?;
    match flags & 0x000f {
        0 => {}
        3 => return Err(Miss::NoSuchHost),
        _ => return Err(Miss::Failed("server misbehaving".into())),
    }
    let (questions, answers) = (word(4).ok_or_else(bad)?, word(6).ok_or_else(bad)?);
    let mut at = 12;
    for _ in 0..questions {
        at = read_name(msg, at).ok_or_else(bad)?.1 + 4;
    }
    let mut out = Vec::new();
    for _ in 0..answers {
        at = read_name(msg, at).ok_or_else(bad)?.1;
        let (kind, len) = (
            word(at).ok_or_else(bad)?,
            usize::from(word(at + 8).ok_or_else(bad)?),
        );
        let data = at + 10;
        if msg.len() < data + len {
            return Err(bad());
        }
        if kind == TYPE_SRV && len >= 7 {
            out.push(Srv {
                priority: word(data).ok_or_else(bad)?,
                weight: word(data + 2).ok_or_else(bad)?,
                port: word(data + 4).ok_or_else(bad)?,
                target: read_name(msg, data + 6).ok_or_else(bad)?.0,
            });
        }
        at = data + len;
    }
    if out.is_empty() {
        return Err(Miss::NoSuchHost);
    }
    Ok(out)
}

/// One question to one server: UDP, then TCP if the answer came truncated.
fn query(server: &SocketAddr, fqdn: &str, timeout: Duration) -> Result<Vec<Srv>, Miss> {
    let id = random_u32() as u16;
    let req = request(id, fqdn);
    let io = |e: std::io::Error| {
        if matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ) {
            Miss::Failed("i/o timeout".into())
        } else {
            Miss::Failed(e.to_string())
        }
    };
    let local: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0".parse().expect("addr")
    } else {
        "[::]:0".parse().expect("addr")
    };
    let sock = UdpSocket::bind(local).map_err(io)?;
    sock.set_read_timeout(Some(timeout)).map_err(io)?;
    sock.connect(server).map_err(io)?;
    sock.send(&req).map_err(io)?;
    let mut buf = vec![0u8; 65535];
    let n = loop {
        let n = sock.recv(&mut buf).map_err(io)?;
        // a late answer to an earlier question: keep waiting for ours
        if n >= 2 && buf[..2] == id.to_be_bytes() {
            break n;
        }
    };
    let truncated = n >= 4 && buf[2] & 0x02 != 0;
    if !truncated {
        return parse_answer(&buf[..n], id);
    }
    let mut tcp = TcpStream::connect_timeout(server, timeout).map_err(io)?;
    tcp.set_read_timeout(Some(timeout)).map_err(io)?;
    let mut framed = (req.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&req);
    tcp.write_all(&framed).map_err(io)?;
    let mut len = [0u8; 2];
    tcp.read_exact(&mut len).map_err(io)?;
    let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
    tcp.read_exact(&mut msg).map_err(io)?;
    parse_answer(&msg, id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A resolver answering from a table; unknown names are missing.
    struct Table(HashMap<String, Vec<Srv>>);

    impl LookupSrv for Table {
        fn lookup_srv(&self, name: &str) -> Result<Vec<Srv>, String> {
            self.0
                .get(name)
                .cloned()
                .ok_or_else(|| format!("lookup {name} on 127.0.0.1:53: no such host"))
        }
    }

    fn srv(priority: u16, port: u16, target: &str) -> Srv {
        Srv {
            priority,
            weight: 0,
            port,
            target: target.into(),
        }
    }

    #[test]
    fn endpoints_from_both_services_https_first() {
        let dns = Table(HashMap::from([
            (
                "_etcd-client-ssl._tcp.example.com".to_string(),
                vec![srv(0, 2379, "a.example.com.")],
            ),
            (
                "_etcd-client._tcp.example.com".to_string(),
                vec![srv(0, 2379, "b.example.com."), srv(1, 2380, "c.example.com.")],
            ),
            (
                "_etcd-client-blue._tcp.example.com".to_string(),
                vec![srv(0, 1, "d.example.com.")],
            ),
        ]));
        assert_eq!(
            client_endpoints(&dns, "example.com", ""),
            Ok(vec![
                "https://a.example.com.:2379".to_string(),
                "http://b.example.com.:2379".to_string(),
                "http://c.example.com.:2380".to_string(),
            ])
        );
        // a service name: `_etcd-client-ssl-blue` is missing, `_etcd-client-blue` is there
        assert_eq!(
            client_endpoints(&dns, "example.com", "blue"),
            Ok(vec!["http://d.example.com.:1".to_string()])
        );
        assert_eq!(
            client_endpoints(&dns, "none.com", ""),
            Err("dns lookup errors: lookup _etcd-client-ssl._tcp.none.com on 127.0.0.1:53: no such host and lookup _etcd-client._tcp.none.com on 127.0.0.1:53: no such host".into())
        );
    }

    #[test]
    fn records_in_priority_order() {
        let got = go_order(vec![srv(20, 1, "x."), srv(10, 2, "y."), srv(10, 3, "z.")]);
        let ports: Vec<u16> = got.iter().map(|r| r.port).collect();
        assert_eq!(ports, vec![2, 3, 1]);
    }

    #[test]
    fn resolv_conf_as_go_reads_it() {
        let s = System::parse(
            "# comment\nnameserver 10.0.0.1\nnameserver ::1\nsearch a.test b.test\noptions ndots:2 timeout:1 attempts:3\n",
        );
        assert_eq!(
            s.servers,
            vec!["10.0.0.1:53".parse().unwrap(), "[::1]:53".parse().unwrap()]
        );
        assert_eq!((s.ndots, s.timeout, s.attempts), (2, Duration::from_secs(1), 3));
        // one dot, ndots 2: the search domains first
        assert_eq!(s.names("x.y"), vec!["x.y.a.test.", "x.y.b.test.", "x.y."]);
        assert_eq!(
            s.names("_s._tcp.x.y"),
            vec!["_s._tcp.x.y.", "_s._tcp.x.y.a.test.", "_s._tcp.x.y.b.test."]
        );
        assert_eq!(System::parse("").servers.len(), 2);
    }

    #[test]
    fn dns_messages() {
        let q = request(0x1234, "_s._tcp.ex.");
        assert_eq!(&q[..2], &[0x12, 0x34]);
        assert_eq!(&q[12..], b"\x02_s\x04_tcp\x02ex\x00\x00\x21\x00\x01");
        // an answer: the question, then one SRV record whose target points back into it
        let mut a = q.clone();
        a[2] = 0x81;
        a[3] = 0x80;
        a[7] = 1; // one answer
        a.extend_from_slice(&[0xc0, 12, 0, 33, 0, 1, 0, 0, 0, 60, 0, 8]);
        a.extend_from_slice(&[0, 5, 0, 0, 0x09, 0x4b, 0xc0, 20]);
        let got = parse_answer(&a, 0x1234).ok().expect("records");
        assert_eq!(
            got,
            vec![Srv {
                priority: 5,
                weight: 0,
                port: 2379,
                target: "ex.".into()
            }]
        );
        // NXDOMAIN
        let mut nx = q.clone();
        nx[3] = 0x83;
        assert!(matches!(parse_answer(&nx, 0x1234), Err(Miss::NoSuchHost)));
        assert!(matches!(parse_answer(&nx, 0x9999), Err(Miss::Failed(_))));
    }
}

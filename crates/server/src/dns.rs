//! Name lookups for etcd's check of a peer certificate's DNS names against the address the
//! peer connects from (`tls::check_client_san`), made as etcd's Go resolver makes them:
//!
//! - the addresses of a name: the system's resolver (`/etc/hosts`, then DNS, with the
//!   search domains of `/etc/resolv.conf`);
//! - the names of an address (Go's `LookupAddr`, pure-Go resolver, which etcd's release
//!   binaries use): the names `/etc/hosts` gives the address, else a DNS PTR query for
//!   `<reversed address>.in-addr.arpa.` / `.ip6.arpa.` to the nameservers of
//!   `/etc/resolv.conf` (none: 127.0.0.1 and ::1), over UDP (TCP when the answer is
//!   truncated), each tried `attempts` times with `timeout` (resolv.conf's `options`; Go's
//!   defaults 5 s and 2). A name-error answer (NXDOMAIN) ends the lookup: "no such host".
//!
//! The C library's reverse lookup (`getnameinfo`) has no safe binding here, hence the small
//! PTR client.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TYPE_PTR: u16 = 12;
const CLASS_IN: u16 = 1;

/// Where names come from.
#[derive(Debug, Clone)]
pub struct Resolver {
    hosts: PathBuf,
    servers: Vec<SocketAddr>,
    timeout: Duration,
    attempts: u32,
}

impl Resolver {
    /// The system's: `/etc/hosts` and the nameservers and options of `/etc/resolv.conf`.
    pub fn system() -> Resolver {
        let conf = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let mut r = Resolver::parse_resolv_conf(&conf);
        r.hosts = PathBuf::from("/etc/hosts");
        r
    }

    /// A resolver with the given hosts file and nameservers (tests).
    #[cfg(test)]
    pub fn with(hosts: PathBuf, servers: Vec<SocketAddr>, timeout: Duration, attempts: u32) -> Resolver {
        Resolver {
            hosts,
            servers,
            timeout,
            attempts,
        }
    }

    /// Nameservers and `options timeout:n attempts:n` of a resolv.conf, with Go's defaults
    /// and bounds.
    fn parse_resolv_conf(text: &str) -> Resolver {
        let mut servers = Vec::new();
        let mut timeout = 5u64;
        let mut attempts = 2u32;
        for line in text.lines() {
            let line = line.split(['#', ';']).next().unwrap_or_default();
            let mut fields = line.split_whitespace();
            match fields.next() {
                Some("nameserver") => {
                    // an IPv6 server may carry a zone ("fe80::1%eth0"): not usable here
                    if let Some(ip) = fields.next().and_then(|a| a.parse::<IpAddr>().ok()) {
                        servers.push(SocketAddr::new(ip, 53));
                    }
                }
                Some("options") => {
                    for opt in fields {
                        if let Some(n) = opt.strip_prefix("timeout:").and_then(|n| n.parse::<u64>().ok()) {
                            timeout = n.clamp(1, 30);
                        } else if let Some(n) =
                            opt.strip_prefix("attempts:").and_then(|n| n.parse::<u32>().ok())
                        {
                            attempts = n.clamp(1, 5);
                        }
                    }
                }
                _ => {}
            }
        }
        if servers.is_empty() {
            servers = vec![
                SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 53),
                SocketAddr::new(Ipv6Addr::LOCALHOST.into(), 53),
            ];
        }
        Resolver {
            hosts: PathBuf::new(),
            servers,
            timeout: Duration::from_secs(timeout),
            attempts,
        }
    }

    /// The names of `ip`, each ending in '.' (as Go returns them).
    pub async fn lookup_addr(&self, ip: IpAddr) -> Result<Vec<String>, String> {
        let hosts = tokio::fs::read_to_string(&self.hosts).await.unwrap_or_default();
        let names = names_in_hosts(&hosts, ip);
        if !names.is_empty() {
            return Ok(names);
        }
        let qname = reverse_name(ip);
        let mut last = format!("lookup {qname}: no nameserver answered");
        for _ in 0..self.attempts {
            for &server in &self.servers {
                match self.query_ptr(server, &qname).await {
                    Ok(Reply::Names(names)) if !names.is_empty() => return Ok(names),
                    Ok(Reply::Names(_)) | Ok(Reply::NoSuchHost) => {
                        return Err(format!("lookup {qname} on {server}: no such host"));
                    }
                    Ok(Reply::Failure(rcode)) => {
                        last = format!("lookup {qname} on {server}: server misbehaving (rcode {rcode})");
                    }
                    Ok(Reply::Truncated) => {
                        last = format!("lookup {qname} on {server}: truncated answer");
                    }
                    Err(e) => last = format!("lookup {qname} on {server}: {e}"),
                }
            }
        }
        Err(last)
    }

    /// The addresses of `name` (the system's resolver).
    pub async fn lookup_host(&self, name: &str) -> Result<Vec<IpAddr>, String> {
        match tokio::net::lookup_host((name, 0)).await {
            Ok(addrs) => Ok(addrs.map(|a| a.ip().to_canonical()).collect()),
            Err(e) => Err(format!("lookup {name}: {e}")),
        }
    }

    /// One PTR query to `server`: over UDP, again over TCP if the answer is truncated.
    async fn query_ptr(&self, server: SocketAddr, qname: &str) -> Result<Reply, String> {
        let id = query_id();
        let query = encode_ptr_query(id, qname)?;
        let answer = tokio::time::timeout(self.timeout, udp_exchange(server, &query, id))
            .await
            .map_err(|_| "i/o timeout".to_string())??;
        match parse_ptr_reply(&answer, id)? {
            Reply::Truncated => {
                let answer = tokio::time::timeout(self.timeout, tcp_exchange(server, &query))
                    .await
                    .map_err(|_| "i/o timeout".to_string())??;
                parse_ptr_reply(&answer, id)
            }
            reply => Ok(reply),
        }
    }
}

/// What a nameserver said.
#[derive(Debug, PartialEq, Eq)]
enum Reply {
    /// The PTR records of the answer (each name ending in '.').
    Names(Vec<String>),
    /// NXDOMAIN.
    NoSuchHost,
    /// Another error code (SERVFAIL, REFUSED, ...).
    Failure(u8),
    /// The answer did not fit in a UDP message.
    Truncated,
}

/// The names `/etc/hosts` gives `ip` (each ending in '.').
fn names_in_hosts(hosts: &str, ip: IpAddr) -> Vec<String> {
    let mut names = Vec::new();
    for line in hosts.lines() {
        let line = line.split('#').next().unwrap_or_default();
        let mut fields = line.split_whitespace();
        let Some(addr) = fields.next() else { continue };
        let addr = addr.split('%').next().unwrap_or_default();
        if addr.parse::<IpAddr>().ok().map(|a| a.to_canonical()) != Some(ip.to_canonical()) {
            continue;
        }
        for name in fields {
            let name = if name.ends_with('.') {
                name.to_string()
            } else {
                format!("{name}.")
            };
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names
}

/// `4.3.2.1.in-addr.arpa.` for 1.2.3.4; the 32 nibbles, last first, under `ip6.arpa.` for
/// IPv6.
fn reverse_name(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.in-addr.arpa.", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut s = String::with_capacity(73);
            for b in v6.octets().iter().rev() {
                s.push_str(&format!("{:x}.{:x}.", b & 0xf, b >> 4));
            }
            s.push_str("ip6.arpa.");
            s
        }
    }
}

fn query_id() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.finish() as u16
}

/// A recursive query (RD) for the PTR records of `qname` (ending in '.').
fn encode_ptr_query(id: u16, qname: &str) -> Result<Vec<u8>, String> {
    let mut q = Vec::with_capacity(12 + qname.len() + 6);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&0x0100u16.to_be_bytes()); // RD
    q.extend_from_slice(&1u16.to_be_bytes()); // one question
    q.extend_from_slice(&[0; 6]);
    for label in qname.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!("bad name {qname:?}"));
        }
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&TYPE_PTR.to_be_bytes());
    q.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(q)
}

/// Sends `query` to `server` over UDP and returns the first answer carrying `id` (others
/// are ignored, as Go does, until the caller's timeout).
async fn udp_exchange(server: SocketAddr, query: &[u8], id: u16) -> Result<Vec<u8>, String> {
    let local: SocketAddr = if server.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = tokio::net::UdpSocket::bind(local)
        .await
        .map_err(|e| e.to_string())?;
    sock.connect(server).await.map_err(|e| e.to_string())?;
    sock.send(query).await.map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 1232];
    loop {
        let n = sock.recv(&mut buf).await.map_err(|e| e.to_string())?;
        if n >= 2 && buf[..2] == id.to_be_bytes() {
            return Ok(buf[..n].to_vec());
        }
    }
}

/// Sends `query` to `server` over TCP (length-prefixed) and returns the answer.
async fn tcp_exchange(server: SocketAddr, query: &[u8]) -> Result<Vec<u8>, String> {
    let mut tcp = tokio::net::TcpStream::connect(server)
        .await
        .map_err(|e| e.to_string())?;
    let mut msg = (query.len() as u16).to_be_bytes().to_vec();
    msg.extend_from_slice(query);
    tcp.write_all(&msg).await.map_err(|e| e.to_string())?;
    let len = tcp.read_u16().await.map_err(|e| e.to_string())?;
    let mut answer = vec![0u8; usize::from(len)];
    tcp.read_exact(&mut answer).await.map_err(|e| e.to_string())?;
    Ok(answer)
}

/// The PTR records of a DNS answer to the query `id`.
fn parse_ptr_reply(msg: &[u8], id: u16) -> Result<Reply, String> {
    let bad = || "malformed DNS answer".to_string();
    let u16_at = |at: usize| -> Result<u16, String> {
        msg.get(at..at + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(bad)
    };
    if u16_at(0)? != id {
        return Err(bad());
    }
    let flags = u16_at(2)?;
    if flags & 0x8000 == 0 {
        return Err(bad());
    }
    if flags & 0x0200 != 0 {
        return Ok(Reply::Truncated);
    }
    match (flags & 0xf) as u8 {
        0 => {}
        3 => return Ok(Reply::NoSuchHost),
        rcode => return Ok(Reply::Failure(rcode)),
    }
    let questions = u16_at(4)?;
    let answers = u16_at(6)?;
    let mut at = 12;
    for _ in 0..questions {
        at = skip_name(msg, at).ok_or_else(bad)? + 4;
    }
    let mut names = Vec::new();
    for _ in 0..answers {
        at = skip_name(msg, at).ok_or_else(bad)?;
        let rtype = u16_at(at)?;
        let class = u16_at(at + 2)?;
        let len = usize::from(u16_at(at + 8)?);
        let rdata = at + 10;
        if msg.len() < rdata + len {
            return Err(bad());
        }
        if rtype == TYPE_PTR && class == CLASS_IN {
            names.push(read_name(msg, rdata).ok_or_else(bad)?);
        }
        at = rdata + len;
    }
    Ok(Reply::Names(names))
}

/// The offset just past the (possibly compressed) name at `at`.
fn skip_name(msg: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *msg.get(at)?;
        match len {
            0 => return Some(at + 1),
            l if l & 0xc0 == 0xc0 => return Some(at + 2),
            l => at += 1 + usize::from(l),
        }
    }
}

/// The name at `at`, following compression pointers, as `a.b.c.`.
fn read_name(msg: &[u8], mut at: usize) -> Option<String> {
    let mut name = String::new();
    for _ in 0..128 {
        let len = *msg.get(at)?;
        if len == 0 {
            if name.is_empty() {
                name.push('.');
            }
            return Some(name);
        }
        if len & 0xc0 == 0xc0 {
            let low = *msg.get(at + 1)?;
            at = (usize::from(len & 0x3f) << 8) | usize::from(low);
            continue;
        }
        let label = msg.get(at + 1..at + 1 + usize::from(len))?;
        name.push_str(&String::from_utf8_lossy(label));
        name.push('.');
        at += 1 + usize::from(len);
    }
    None // a pointer loop
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_servers_and_options() {
        let r = Resolver::parse_resolv_conf(
            "# comment\nnameserver 10.0.0.2\nnameserver fe80::1%eth0\nnameserver ::1 # local\n\
             search example.com\noptions ndots:2 timeout:3 attempts:9\n",
        );
        assert_eq!(
            r.servers,
            vec![
                "10.0.0.2:53".parse::<SocketAddr>().unwrap(),
                "[::1]:53".parse().unwrap()
            ]
        );
        assert_eq!(r.timeout, Duration::from_secs(3));
        assert_eq!(r.attempts, 5);
        let r = Resolver::parse_resolv_conf("");
        assert_eq!(r.servers.len(), 2);
        assert_eq!((r.timeout, r.attempts), (Duration::from_secs(5), 2));
    }

    #[test]
    fn hosts_file_names() {
        let hosts = "127.0.0.1 localhost\n127.0.0.1\tvm   vm.local # alias\n#10.0.0.1 gone\n\
                     10.0.0.1 node1.example.com. node1\n::1 ip6-localhost\nfe80::1%lo0 linklocal\n";
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            names_in_hosts(hosts, ip("127.0.0.1")),
            ["localhost.", "vm.", "vm.local."]
        );
        assert_eq!(
            names_in_hosts(hosts, ip("10.0.0.1")),
            ["node1.example.com.", "node1."]
        );
        assert_eq!(names_in_hosts(hosts, ip("::ffff:10.0.0.1")).len(), 2);
        assert_eq!(names_in_hosts(hosts, ip("::1")), ["ip6-localhost."]);
        assert_eq!(names_in_hosts(hosts, ip("fe80::1")), ["linklocal."]);
        assert!(names_in_hosts(hosts, ip("10.0.0.2")).is_empty());
    }

    #[test]
    fn reverse_names() {
        assert_eq!(
            reverse_name("10.1.2.3".parse().unwrap()),
            "3.2.1.10.in-addr.arpa."
        );
        assert_eq!(
            reverse_name("2001:db8::567:89ab".parse().unwrap()),
            "b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa."
        );
    }

    /// An answer to `query` with `ptrs` as PTR records (the first name written out, the
    /// others compressed against the question), flags `flags`.
    fn answer(query: &[u8], flags: u16, ptrs: &[&str]) -> Vec<u8> {
        let mut a = query[..2].to_vec();
        a.extend_from_slice(&flags.to_be_bytes());
        a.extend_from_slice(&1u16.to_be_bytes());
        a.extend_from_slice(&(ptrs.len() as u16).to_be_bytes());
        a.extend_from_slice(&[0; 4]);
        a.extend_from_slice(&query[12..]);
        for (i, p) in ptrs.iter().enumerate() {
            a.extend_from_slice(&[0xc0, 12]); // owner: the question's name
            a.extend_from_slice(&TYPE_PTR.to_be_bytes());
            a.extend_from_slice(&CLASS_IN.to_be_bytes());
            a.extend_from_slice(&60u32.to_be_bytes());
            let mut rdata = Vec::new();
            if i == 0 {
                for label in p.trim_end_matches('.').split('.') {
                    rdata.push(label.len() as u8);
                    rdata.extend_from_slice(label.as_bytes());
                }
                rdata.push(0);
            } else {
                // "<first label>" then a pointer to the question's "in-addr.arpa."
                let (first, _) = p.split_once('.').unwrap();
                rdata.push(first.len() as u8);
                rdata.extend_from_slice(first.as_bytes());
                let q = &query[12..];
                let mut off = 0;
                for _ in 0..4 {
                    off += 1 + usize::from(q[off]);
                }
                rdata.extend_from_slice(&[0xc0, (12 + off) as u8]);
            }
            a.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            a.extend_from_slice(&rdata);
        }
        a
    }

    #[test]
    fn ptr_answers_are_parsed() {
        let q = encode_ptr_query(7, "2.0.0.10.in-addr.arpa.").unwrap();
        assert_eq!(&q[..2], &7u16.to_be_bytes());
        let a = answer(&q, 0x8180, &["node2.example.com.", "alias.in-addr.arpa."]);
        assert_eq!(
            parse_ptr_reply(&a, 7),
            Ok(Reply::Names(vec![
                "node2.example.com.".into(),
                "alias.in-addr.arpa.".into()
            ]))
        );
        assert_eq!(
            parse_ptr_reply(&answer(&q, 0x8183, &[]), 7),
            Ok(Reply::NoSuchHost)
        );
        assert_eq!(
            parse_ptr_reply(&answer(&q, 0x8182, &[]), 7),
            Ok(Reply::Failure(2))
        );
        assert_eq!(parse_ptr_reply(&answer(&q, 0x8380, &[]), 7), Ok(Reply::Truncated));
        assert!(parse_ptr_reply(&a, 8).is_err(), "another query's answer");
        assert!(parse_ptr_reply(&a[..a.len() - 3], 7).is_err(), "cut short");
        assert!(parse_ptr_reply(&q, 7).is_err(), "a query, not an answer");
        // a pointer loop does not hang
        let mut looped = a.clone();
        let at = looped.len() - 2;
        looped[at..].copy_from_slice(&[0xc0, at as u8]);
        assert!(parse_ptr_reply(&looped, 7).is_err());
    }

    /// A nameserver on a loopback UDP port answering every PTR query with `ptrs` (flags
    /// `flags`); returns its address.
    async fn fake_nameserver(flags: u16, ptrs: &'static [&'static str]) -> SocketAddr {
        let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = sock.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            while let Ok((n, from)) = sock.recv_from(&mut buf).await {
                let _ = sock.send_to(&answer(&buf[..n], flags, ptrs), from).await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn reverse_lookups_use_hosts_then_dns() {
        let dir = tempfile::tempdir().unwrap();
        let hosts = dir.path().join("hosts");
        std::fs::write(&hosts, "10.0.0.1 from-hosts\n").unwrap();
        let ns = fake_nameserver(0x8180, &["node2.example.com."]).await;
        let r = Resolver::with(hosts.clone(), vec![ns], Duration::from_secs(2), 1);
        assert_eq!(
            r.lookup_addr("10.0.0.1".parse().unwrap()).await.unwrap(),
            ["from-hosts."]
        );
        assert_eq!(
            r.lookup_addr("10.0.0.2".parse().unwrap()).await.unwrap(),
            ["node2.example.com."]
        );
        let nx = fake_nameserver(0x8183, &[]).await;
        let r = Resolver::with(hosts.clone(), vec![nx], Duration::from_secs(2), 1);
        assert_eq!(
            r.lookup_addr("10.0.0.2".parse().unwrap()).await.unwrap_err(),
            format!("lookup 2.0.0.10.in-addr.arpa. on {nx}: no such host")
        );
        // a server that never answers: the next one is asked
        let silent = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let r = Resolver::with(
            hosts,
            vec![silent.local_addr().unwrap(), ns],
            Duration::from_millis(200),
            1,
        );
        assert_eq!(
            r.lookup_addr("10.0.0.2".parse().unwrap()).await.unwrap(),
            ["node2.example.com."]
        );
    }

    #[tokio::test]
    async fn forward_lookups_use_the_system_resolver() {
        let r = Resolver::system();
        let addrs = r.lookup_host("localhost").await.unwrap();
        assert!(
            addrs.contains(&"127.0.0.1".parse().unwrap()) || addrs.contains(&"::1".parse().unwrap()),
            "{addrs:?}"
        );
    }
}

//! Name lookups for etcd's check of a peer certificate's DNS names against the address the
//! peer connects from (`tls::check_client_san`):
//!
//! - the names of an address (Go's `LookupAddr`): the C library's `getnameinfo` through the
//!   `dns-lookup` crate, so `/etc/hosts` and then a DNS PTR query, as the system is
//!   configured (`/etc/nsswitch.conf`, `/etc/resolv.conf`);
//! - the addresses of a name: the system's resolver.
//!
//! Both block in the C library, so they run on the blocking pool, never on the runtime.

use std::net::IpAddr;

/// Where names come from.
#[derive(Debug, Clone)]
pub enum Resolver {
    /// The system's resolver.
    System,
    /// Fixed answers (tests): names by address, addresses by name.
    #[cfg(test)]
    Fixed {
        names: Vec<(IpAddr, Vec<String>)>,
        addrs: Vec<(String, Vec<IpAddr>)>,
    },
}

impl Resolver {
    pub fn system() -> Resolver {
        Resolver::System
    }

    /// The names of `ip` (an error, as Go's, when it has none).
    pub async fn lookup_addr(&self, ip: IpAddr) -> Result<Vec<String>, String> {
        let ip = ip.to_canonical();
        let found = match self {
            Resolver::System => tokio::task::spawn_blocking(move || dns_lookup::lookup_addr(&ip))
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r.map(|name| vec![name]).map_err(|e| e.to_string())),
            #[cfg(test)]
            Resolver::Fixed { names, .. } => names
                .iter()
                .find(|(a, _)| *a == ip)
                .map(|(_, n)| n.clone())
                .ok_or_else(|| "no such host".to_string()),
        };
        // getnameinfo answers with the address itself when it has no name
        match found {
            Ok(names) if !names.is_empty() && names.iter().all(|n| n.parse::<IpAddr>().is_err()) => Ok(names),
            Ok(_) => Err(format!("lookup {}: no such host", reverse_name(ip))),
            Err(e) => Err(format!("lookup {}: {e}", reverse_name(ip))),
        }
    }

    /// The addresses of `name`.
    pub async fn lookup_host(&self, name: &str) -> Result<Vec<IpAddr>, String> {
        match self {
            Resolver::System => match tokio::net::lookup_host((name, 0)).await {
                Ok(addrs) => Ok(addrs.map(|a| a.ip().to_canonical()).collect()),
                Err(e) => Err(format!("lookup {name}: {e}")),
            },
            #[cfg(test)]
            Resolver::Fixed { addrs, .. } => addrs
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, a)| a.clone())
                .ok_or_else(|| format!("lookup {name}: no such host")),
        }
    }
}

/// `4.3.2.1.in-addr.arpa.` for 1.2.3.4; the 32 nibbles, last first, under `ip6.arpa.` for
/// IPv6 (the name Go's resolver reports in a failed reverse lookup).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_names() {
        assert_eq!(reverse_name("1.2.3.4".parse().unwrap()), "4.3.2.1.in-addr.arpa.");
        assert_eq!(
            reverse_name("::ffff:1.2.3.4".parse().unwrap()),
            "4.3.2.1.in-addr.arpa."
        );
        assert_eq!(
            reverse_name("2001:db8::567:89ab".parse().unwrap()),
            "b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa."
        );
    }

    /// The system's resolver: 127.0.0.1 has a name in every hosts file (localhost), an
    /// address from TEST-NET-3 has none; localhost resolves to a loopback address.
    #[tokio::test]
    async fn system_lookups() {
        let r = Resolver::system();
        let names = r.lookup_addr("127.0.0.1".parse().unwrap()).await.unwrap();
        assert!(names.iter().any(|n| n.starts_with("localhost")), "{names:?}");
        let err = r.lookup_addr("203.0.113.77".parse().unwrap()).await.unwrap_err();
        assert!(err.starts_with("lookup 77.113.0.203.in-addr.arpa.: "), "{err}");
        let addrs = r.lookup_host("localhost").await.unwrap();
        assert!(addrs.iter().any(|a| a.is_loopback()), "{addrs:?}");
        assert!(r.lookup_host("no-such-host.invalid").await.is_err());
    }
}

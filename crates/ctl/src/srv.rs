//! `--discovery-srv DOMAIN [--discovery-srv-name NAME]`: the cluster's client endpoints from
//! DNS SRV records, as etcdctl 3.4 finds them (etcd's `srv.GetClient`):
//! `_etcd-client-ssl[-NAME]._tcp.DOMAIN` gives `https://TARGET:PORT` endpoints, then
//! `_etcd-client[-NAME]._tcp.DOMAIN` gives `http://` ones; either may be missing, not both.
//! Targets keep the trailing dot DNS gives them (`https://etcd1.example.com.:2379`), records
//! are ordered as Go's `LookupSRV` orders them (priority, then weight).
//!
//! The lookups are made by `hickory-resolver` with the system's configuration
//! (`/etc/resolv.conf`: nameservers, search domains, ndots, timeout, attempts), as Go's own
//! resolver reads it, and fail with Go's messages where etcdctl's users see them
//! (`lookup NAME on 127.0.0.1:53: no such host`, `... server misbehaving`).

use std::io::Read;
use std::net::SocketAddr;

use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::op::ResponseCode;

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

/// The system's resolver.
#[derive(Debug, Clone, Default)]
pub struct System;

impl System {
    pub fn from_resolv_conf() -> System {
        System
    }
}

impl LookupSrv for System {
    fn lookup_srv(&self, name: &str) -> Result<Vec<Srv>, String> {
        // A runtime of its own on a thread of its own: callers may or may not be inside one.
        std::thread::scope(|s| {
            s.spawn(|| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| format!("lookup {name}: {e}"))?;
                rt.block_on(lookup_srv(name))
            })
            .join()
            .unwrap_or_else(|_| Err(format!("lookup {name}: resolver failed")))
        })
    }
}

async fn lookup_srv(name: &str) -> Result<Vec<Srv>, String> {
    let (config, options) =
        hickory_resolver::system_conf::read_system_conf().map_err(|e| format!("lookup {name}: {e}"))?;
    // Go names the server in its message; the first one is the one asked first.
    let server = config
        .name_servers()
        .first()
        .map(|ns| SocketAddr::new(ns.ip, 53).to_string())
        .unwrap_or_else(|| "127.0.0.1:53".into());
    let resolver = hickory_resolver::Resolver::builder_with_config(config, TokioRuntimeProvider::default())
        .with_options(options)
        .build()
        .map_err(|e| format!("lookup {name} on {server}: {e}"))?;
    match resolver.srv_lookup(name).await {
        Ok(found) => {
            let records: Vec<Srv> = found
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    hickory_resolver::proto::rr::RData::SRV(srv) => Some(Srv {
                        priority: srv.priority,
                        weight: srv.weight,
                        port: srv.port,
                        target: srv.target.to_string(),
                    }),
                    _ => None,
                })
                .collect();
            if records.is_empty() {
                Err(format!("lookup {name} on {server}: no such host"))
            } else {
                Ok(go_order(records))
            }
        }
        Err(e) => Err(format!("lookup {name} on {server}: {}", go_reason(&e))),
    }
}

/// Go's words for why a lookup failed.
fn go_reason(e: &NetError) -> String {
    use hickory_resolver::net::DnsError;
    match e {
        NetError::Dns(DnsError::NoRecordsFound(nr))
            if matches!(nr.response_code, ResponseCode::NXDomain | ResponseCode::NoError) =>
        {
            "no such host".into()
        }
        NetError::Dns(DnsError::NoRecordsFound(_)) | NetError::Dns(DnsError::ResponseCode(_)) => {
            "server misbehaving".into()
        }
        NetError::Timeout => "i/o timeout".into(),
        other => other.to_string(),
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
}

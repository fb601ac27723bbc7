//! Reading a pod's network configuration from `ip -j` (iproute2's JSON).
//!
//! Field names as iproute2 6.1 prints them: links carry `ifname`, `flags`
//! (`UP`, `LOOPBACK`...), `mtu`, `link_type` (`ether`, `loopback`, `none`),
//! `address` (the MAC), `addr_info` (`family` inet/inet6, `local`,
//! `prefixlen`, `scope`) and, with `-d`, `linkinfo.info_kind`. Routes carry
//! `dst` (`default`, `a.b.c.d/len`, or a bare address for a host route),
//! `gateway`, `dev`, `protocol` (absent when `boot`), `scope` (absent when
//! `global`), `prefsrc`, `metric`, `flags` (`onlink`, `linkdown`) and `type`
//! (absent when `unicast`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::str::FromStr;

use serde::Deserialize;

use super::{Interface, NetError, Netns, PodNetwork, Route, RouteScope};

const ADDR_SHOW: &[&str] = &["-j", "-d", "addr", "show"];
const ROUTE4_SHOW: &[&str] = &["-j", "-4", "route", "show"];
const ROUTE6_SHOW: &[&str] = &["-j", "-6", "route", "show"];

impl PodNetwork {
    /// Reads the interfaces and routes of the network namespace at `netns`.
    /// Fails if it holds no Ethernet interface (besides loopback) that is up
    /// or has an IPv4 address.
    pub fn inspect(netns: &Path) -> Result<PodNetwork, NetError> {
        Self::inspect_in(&Netns::open(netns)?)
    }

    /// [`PodNetwork::inspect`] of a namespace already open.
    pub fn inspect_in(ns: &Netns) -> Result<PodNetwork, NetError> {
        let links = links(ns)?;
        let interfaces = interfaces(&links).map_err(|e| ns.parse_error("ip -j -d addr show", e))?;
        if interfaces.is_empty() {
            let found: Vec<String> = links
                .iter()
                .filter_map(|l| l.ifname.as_ref().map(|n| format!("{n} ({})", l.describe())))
                .collect();
            return Err(NetError::NoInterface {
                netns: ns.path().to_path_buf(),
                found: found.join(", "),
            });
        }

        let routes = ns.ip(ROUTE4_SHOW)?;
        let routes = parse_routes::<Ipv4Addr>(&routes).map_err(|e| ns.parse_error("ip -j -4 route show", e))?;
        // IPv6 is a bonus: a host booted with ipv6.disable=1 refuses the query.
        let routes6 = match ns.ip(ROUTE6_SHOW) {
            Ok(out) => parse_routes::<Ipv6Addr>(&out).map_err(|e| ns.parse_error("ip -j -6 route show", e))?,
            Err(e) => {
                tracing::warn!("pod network: no IPv6 routes: {e}");
                Vec::new()
            }
        };
        let routes6 = routes6
            .into_iter()
            .filter(|r| !r.dst.is_some_and(|(a, _)| is_link_local6(a) || a.is_multicast()))
            .collect();
        Ok(PodNetwork {
            interfaces,
            routes,
            routes6,
        })
    }
}

/// Every link of the namespace, with its addresses and kind.
pub(super) fn links(ns: &Netns) -> Result<Vec<IpLink>, NetError> {
    let out = ns.ip(ADDR_SHOW)?;
    serde_json::from_str(&out).map_err(|e| ns.parse_error("ip -j -d addr show", e.to_string()))
}

#[derive(Debug, Deserialize)]
pub(super) struct IpLink {
    pub(super) ifname: Option<String>,
    #[serde(default)]
    flags: Vec<String>,
    mtu: Option<u32>,
    link_type: Option<String>,
    address: Option<String>,
    #[serde(default)]
    addr_info: Vec<IpAddrInfo>,
    linkinfo: Option<LinkInfo>,
}

impl IpLink {
    fn flag(&self, name: &str) -> bool {
        self.flags.iter().any(|f| f == name)
    }

    pub(super) fn kind(&self) -> Option<&str> {
        self.linkinfo.as_ref().and_then(|l| l.info_kind.as_deref())
    }

    /// Why an interface was passed over, for the error that lists them.
    fn describe(&self) -> String {
        let mut parts = vec![self.link_type.clone().unwrap_or_else(|| "no link type".into())];
        if let Some(kind) = self.kind() {
            parts.push(kind.to_string());
        }
        parts.push(if self.flag("UP") { "up" } else { "down" }.to_string());
        parts.join(", ")
    }
}

#[derive(Debug, Deserialize)]
struct IpAddrInfo {
    family: Option<String>,
    local: Option<String>,
    prefixlen: Option<u8>,
    scope: Option<String>,
}

#[derive(Debug, Deserialize)]
struct LinkInfo {
    info_kind: Option<String>,
}

/// The interfaces a VM can take over: Ethernet, not loopback, not a tun/tap
/// (our own tap included), up or with an IPv4 address.
fn interfaces(links: &[IpLink]) -> Result<Vec<Interface>, String> {
    let mut out = Vec::new();
    for link in links {
        let Some(name) = &link.ifname else { continue };
        if link.flag("LOOPBACK") || link.link_type.as_deref() != Some("ether") || link.kind() == Some("tun") {
            continue;
        }
        let mut ipv4 = Vec::new();
        let mut ipv6 = Vec::new();
        for info in &link.addr_info {
            let (Some(family), Some(local), Some(len)) = (&info.family, &info.local, info.prefixlen) else {
                continue;
            };
            match family.as_str() {
                "inet" => ipv4.push((parse_addr::<Ipv4Addr>(local)?, len)),
                "inet6" if info.scope.as_deref() == Some("global") => ipv6.push((parse_addr::<Ipv6Addr>(local)?, len)),
                _ => {}
            }
        }
        let up = link.flag("UP");
        if !up && ipv4.is_empty() {
            continue;
        }
        let mac = link
            .address
            .as_deref()
            .ok_or_else(|| format!("{name}: no MAC address"))?
            .parse()
            .map_err(|e| format!("{name}: {e}"))?;
        let mtu = link.mtu.ok_or_else(|| format!("{name}: no MTU"))?;
        out.push(Interface {
            name: name.clone(),
            mac,
            mtu,
            up,
            kind: link.kind().map(str::to_string),
            ipv4,
            ipv6,
        });
    }
    Ok(out)
}

#[derive(Debug, Deserialize)]
struct IpRoute {
    #[serde(rename = "type")]
    kind: Option<String>,
    dst: Option<String>,
    gateway: Option<String>,
    dev: Option<String>,
    protocol: Option<String>,
    scope: Option<String>,
    prefsrc: Option<String>,
    metric: Option<u32>,
    #[serde(default)]
    flags: Vec<String>,
}

/// Unicast routes through one device; multipath routes (no `dev`, a
/// `nexthops` list) and unreachable/blackhole/prohibit ones are left out.
fn parse_routes<A: FromStr + Copy + Into<IpAddr>>(json: &str) -> Result<Vec<Route<A>>, String> {
    let raw: Vec<IpRoute> = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let mut routes = Vec::new();
    for r in raw {
        if r.kind.as_deref().is_some_and(|k| k != "unicast") {
            continue;
        }
        let Some(device) = r.dev else {
            tracing::debug!("pod network: skipping a route without a device: {:?}", r.dst);
            continue;
        };
        let dst = match r.dst.as_deref() {
            None => return Err("a route without dst".into()),
            Some("default") => None,
            Some(dst) => Some(parse_prefix::<A>(dst)?),
        };
        routes.push(Route {
            dst,
            gateway: r.gateway.as_deref().map(parse_addr::<A>).transpose()?,
            device,
            scope: RouteScope::parse(r.scope.as_deref()),
            onlink: r.flags.iter().any(|f| f == "onlink"),
            protocol: r.protocol.unwrap_or_else(|| "boot".into()),
            source: r.prefsrc.as_deref().map(parse_addr::<A>).transpose()?,
            metric: r.metric,
        });
    }
    Ok(routes)
}

fn parse_addr<A: FromStr>(s: &str) -> Result<A, String> {
    s.parse().map_err(|_| format!("bad address {s:?}"))
}

/// `a.b.c.d/len`, or a bare address: a host route (/32, /128).
fn parse_prefix<A: FromStr + Copy + Into<IpAddr>>(s: &str) -> Result<(A, u8), String> {
    let (addr, len) = match s.split_once('/') {
        Some((addr, len)) => (
            parse_addr::<A>(addr)?,
            Some(len.parse::<u8>().map_err(|_| format!("bad prefix {s:?}"))?),
        ),
        None => (parse_addr::<A>(s)?, None),
    };
    let max = if addr.into().is_ipv4() { 32 } else { 128 };
    let len = len.unwrap_or(max);
    if len > max {
        return Err(format!("bad prefix {s:?}"));
    }
    Ok((addr, len))
}

fn is_link_local6(a: Ipv6Addr) -> bool {
    a.segments()[0] & 0xffc0 == 0xfe80
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::MacAddr;

    // Captured from iproute2 6.1.
    const ADDRS: &str = r#"[{"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP","LOWER_UP"],"mtu":65536,"qdisc":"noqueue","operstate":"UNKNOWN","group":"default","txqlen":1000,"link_type":"loopback","address":"00:00:00:00:00:00","broadcast":"00:00:00:00:00:00","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8,"scope":"host","label":"lo"}]},
        {"ifindex":5,"link_index":6,"ifname":"eth0","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1400,"qdisc":"noqueue","operstate":"UP","group":"default","txqlen":1000,"link_type":"ether","address":"02:11:22:33:44:55","broadcast":"ff:ff:ff:ff:ff:ff","link_netnsid":0,"linkinfo":{"info_kind":"veth"},"addr_info":[{"family":"inet","local":"10.88.0.5","prefixlen":24,"scope":"global","label":"eth0","valid_life_time":4294967295,"preferred_life_time":4294967295},{"family":"inet6","local":"fd00::5","prefixlen":64,"scope":"global"},{"family":"inet6","local":"fe80::11:22ff:fe33:4455","prefixlen":64,"scope":"link","tentative":true}]},
        {"ifindex":2,"ifname":"vbtap0","flags":["BROADCAST","MULTICAST","UP"],"mtu":1400,"link_type":"ether","address":"9e:ea:ba:7c:bb:13","linkinfo":{"info_kind":"tun","info_data":{"type":"tap"}},"addr_info":[]},
        {"ifindex":3,"ifname":"eth1","flags":["BROADCAST","MULTICAST"],"mtu":1500,"link_type":"ether","address":"02:00:00:00:00:01","addr_info":[]},
        {"ifindex":4,"ifname":"wg0","flags":["POINTOPOINT","NOARP","UP"],"mtu":1420,"link_type":"none","addr_info":[{"family":"inet","local":"10.9.0.1","prefixlen":24}]},
        {"addr_info":[{}]}]"#;

    #[test]
    fn takes_ethernet_interfaces_only() {
        let links: Vec<IpLink> = serde_json::from_str(ADDRS).unwrap();
        let got = interfaces(&links).unwrap();
        assert_eq!(
            got,
            vec![Interface {
                name: "eth0".into(),
                mac: MacAddr([0x02, 0x11, 0x22, 0x33, 0x44, 0x55]),
                mtu: 1400,
                up: true,
                kind: Some("veth".into()),
                ipv4: vec![(Ipv4Addr::new(10, 88, 0, 5), 24)],
                ipv6: vec![("fd00::5".parse().unwrap(), 64)],
            }]
        );
    }

    #[test]
    fn parses_routes() {
        let json = r#"[{"dst":"default","gateway":"169.254.1.1","dev":"eth0","flags":["onlink"]},
            {"dst":"10.88.0.0/24","dev":"eth0","protocol":"kernel","scope":"link","prefsrc":"10.88.0.5","flags":["linkdown"]},
            {"dst":"169.254.1.1","dev":"eth0","scope":"link","flags":[]},
            {"dst":"10.1.0.0/16","gateway":"10.88.0.254","dev":"eth0","protocol":"static","metric":100,"flags":[]},
            {"type":"blackhole","dst":"10.2.0.0/16","flags":[]},
            {"dst":"10.3.0.0/16","flags":[],"nexthops":[{"gateway":"10.88.0.2","dev":"eth0","weight":1,"flags":[]}]}]"#;
        let routes = parse_routes::<Ipv4Addr>(json).unwrap();
        let route = |dst: Option<(Ipv4Addr, u8)>, gateway: Option<Ipv4Addr>| Route {
            dst,
            gateway,
            device: "eth0".into(),
            scope: RouteScope::Global,
            onlink: false,
            protocol: "boot".into(),
            source: None,
            metric: None,
        };
        assert_eq!(
            routes,
            vec![
                Route {
                    onlink: true,
                    ..route(None, Some(Ipv4Addr::new(169, 254, 1, 1)))
                },
                Route {
                    scope: RouteScope::Link,
                    protocol: "kernel".into(),
                    source: Some(Ipv4Addr::new(10, 88, 0, 5)),
                    ..route(Some((Ipv4Addr::new(10, 88, 0, 0), 24)), None)
                },
                Route {
                    scope: RouteScope::Link,
                    ..route(Some((Ipv4Addr::new(169, 254, 1, 1), 32)), None)
                },
                Route {
                    protocol: "static".into(),
                    metric: Some(100),
                    ..route(
                        Some((Ipv4Addr::new(10, 1, 0, 0), 16)),
                        Some(Ipv4Addr::new(10, 88, 0, 254))
                    )
                },
            ]
        );
    }

    #[test]
    fn parses_ipv6_routes() {
        let json = r#"[{"dst":"fd00::/64","dev":"eth0","protocol":"kernel","metric":256,"flags":[],"pref":"medium"},
            {"dst":"default","gateway":"fe80::1","dev":"eth0","metric":1024,"flags":[],"pref":"medium"}]"#;
        let routes = parse_routes::<Ipv6Addr>(json).unwrap();
        assert_eq!(routes[0].dst, Some(("fd00::".parse().unwrap(), 64)));
        assert_eq!(routes[1].gateway, Some("fe80::1".parse().unwrap()));
        assert!(parse_routes::<Ipv4Addr>(r#"[{"dst":"10.0.0.0/33","dev":"eth0"}]"#).is_err());
        assert!(parse_routes::<Ipv4Addr>("not json").is_err());
    }
}

//! A VM on a pod's network, the way Kata Containers does it ("tcfilter").
//!
//! CNI leaves a pod network namespace holding an interface (a veth, usually
//! `eth0`) with the pod's addresses and routes. voidbox:
//! 1. reads that configuration ([`PodNetwork::inspect`]), for the guest to
//!    take over: the VM's NIC gets the veth's MAC, addresses and routes;
//! 2. creates a tap in the namespace and redirects every frame arriving on
//!    the veth to the tap and back with tc ([`Redirect::setup`]): the
//!    namespace's own stack sees none of them any more;
//! 3. starts the VMM inside the namespace ([`netns::enter_in_child`]), where
//!    libkrun opens the tap by name (`krun_add_net_tap`); QEMU, which runs
//!    unprivileged, is handed the tap already open ([`tapfd::open_in_child`],
//!    `-netdev tap,fd=`);
//! 4. removes the redirect and the tap when the pod ends ([`Redirect::teardown`]).
//!
//! The work is done by iproute2's `ip` and `tc`, run in a child that enters
//! the namespace (never through a shell, always with a time limit). Every
//! call blocks for a few milliseconds: async code runs them in
//! `spawn_blocking`.

mod error;
mod inspect;
pub mod loopback;
pub mod netns;
mod tap;
pub mod tapfd;

#[cfg(test)]
mod tests;

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

pub use error::NetError;
pub use loopback::LoopbackCapture;
pub use netns::Netns;
pub use tap::Redirect;

/// What a pod's network namespace holds, as CNI left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodNetwork {
    /// Ethernet interfaces but loopback that are up or have an IPv4 address.
    pub interfaces: Vec<Interface>,
    /// IPv4 unicast routes of the main table.
    pub routes: Vec<Route>,
    /// IPv6 unicast routes of the main table, link-local ones left out.
    pub routes6: Vec<Route<Ipv6Addr>>,
}

impl PodNetwork {
    /// The interface the default route leaves by, else the first one.
    /// Panics on a `PodNetwork` without interfaces, which
    /// [`PodNetwork::inspect`] never returns.
    pub fn primary(&self) -> &Interface {
        self.routes
            .iter()
            .find(|r| r.dst.is_none())
            .and_then(|r| self.interfaces.iter().find(|i| i.name == r.device))
            .unwrap_or(&self.interfaces[0])
    }

    /// The interface named `name`.
    pub fn interface(&self, name: &str) -> Option<&Interface> {
        self.interfaces.iter().find(|i| i.name == name)
    }
}

/// One network interface of the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub mac: MacAddr,
    pub mtu: u32,
    /// Whether the interface is administratively up.
    pub up: bool,
    /// The link kind (`veth`, `macvlan`, `ipvlan`...), when the kernel tells.
    pub kind: Option<String>,
    /// IPv4 addresses with their prefix length.
    pub ipv4: Vec<(Ipv4Addr, u8)>,
    /// Global IPv6 addresses with their prefix length (link-local ones,
    /// derived from the MAC, the guest makes itself).
    pub ipv6: Vec<(Ipv6Addr, u8)>,
}

/// A route of the main table; `A` is [`Ipv4Addr`] or [`Ipv6Addr`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route<A = Ipv4Addr> {
    /// The destination and its prefix length; `None` for the default route.
    pub dst: Option<(A, u8)>,
    pub gateway: Option<A>,
    pub device: String,
    pub scope: RouteScope,
    /// The gateway is reachable on the device whatever the prefixes say
    /// (Calico's `default via 169.254.1.1 dev eth0 onlink`).
    pub onlink: bool,
    /// Who installed it: `kernel` for the prefix route of an address (which
    /// the guest gets by itself), `boot` for `ip route add` without a
    /// `proto`, `static`, `dhcp`...
    pub protocol: String,
    /// The preferred source address (`src`).
    pub source: Option<A>,
    pub metric: Option<u32>,
}

/// How far a route's destination is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteScope {
    /// Reached through a gateway (`scope global`, iproute2's default).
    Global,
    Site,
    /// Directly on the link.
    Link,
    /// On this host.
    Host,
    /// A scope iproute2 only knows by number or a custom name.
    Other(String),
}

impl RouteScope {
    fn parse(s: Option<&str>) -> RouteScope {
        match s {
            None | Some("global") | Some("universe") => RouteScope::Global,
            Some("site") => RouteScope::Site,
            Some("link") => RouteScope::Link,
            Some("host") => RouteScope::Host,
            Some(other) => RouteScope::Other(other.to_string()),
        }
    }
}

impl fmt::Display for RouteScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteScope::Global => f.write_str("global"),
            RouteScope::Site => f.write_str("site"),
            RouteScope::Link => f.write_str("link"),
            RouteScope::Host => f.write_str("host"),
            RouteScope::Other(s) => f.write_str(s),
        }
    }
}

/// An Ethernet address; displays as `02:11:22:33:44:55`, the form QEMU's
/// `mac=` and iproute2 take.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MacAddr({self})")
    }
}

impl FromStr for MacAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut mac = [0u8; 6];
        let mut parts = s.split(':');
        for byte in mac.iter_mut() {
            let part = parts.next().ok_or_else(|| format!("MAC address {s:?}: too short"))?;
            if part.is_empty() || part.len() > 2 {
                return Err(format!("MAC address {s:?}: bad byte {part:?}"));
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| format!("MAC address {s:?}: bad byte {part:?}"))?;
        }
        if parts.next().is_some() {
            return Err(format!("MAC address {s:?}: too long"));
        }
        Ok(MacAddr(mac))
    }
}

#[cfg(test)]
mod mac_tests {
    use super::*;

    #[test]
    fn mac_round_trips() {
        let mac: MacAddr = "02:1A:22:33:44:5f".parse().unwrap();
        assert_eq!(mac.0, [0x02, 0x1a, 0x22, 0x33, 0x44, 0x5f]);
        assert_eq!(mac.to_string(), "02:1a:22:33:44:5f");
        for bad in [
            "",
            "02:11:22:33:44",
            "02:11:22:33:44:55:66",
            "02:11:22:33:44:5g",
            "002:11:22:33:44:55",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
    }
}

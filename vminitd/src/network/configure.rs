//! A pod's network, taken over from the host: each guest NIC, found by the
//! MAC of the host veth it stands for, gets that veth's name, MTU and IPv4
//! addresses, then the routes are added, then the pod's network sysctls set
//! (the pod's network namespace is the guest's own).

use std::net::Ipv4Addr;

use tracing::info;
use voidbox_api::system::{ConfigureNetworkRequest, Interface, Route};

use super::ioctl::Socket;
use crate::error::Error;

const SYS_NET: &str = "/sys/class/net";

fn mac_string(mac: &[u8]) -> Result<String, Error> {
    if mac.len() != 6 {
        return Err(Error::Invalid(format!("a MAC has 6 bytes, not {}", mac.len())));
    }
    Ok(mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":"))
}

/// The guest interface with this MAC.
fn by_mac(mac: &str) -> Result<String, Error> {
    let dir = std::fs::read_dir(SYS_NET).map_err(|e| Error::io("list", SYS_NET, e))?;
    for entry in dir.flatten() {
        let address = std::fs::read_to_string(entry.path().join("address")).unwrap_or_default();
        if address.trim().eq_ignore_ascii_case(mac) {
            return Ok(entry.file_name().to_string_lossy().into_owned());
        }
    }
    Err(Error::Invalid(format!("no guest network interface has MAC {mac}")))
}

fn ipv4(s: &str, what: &str) -> Result<Ipv4Addr, Error> {
    s.parse()
        .map_err(|_| Error::Invalid(format!("{what} {s:?} is not an IPv4 address")))
}

fn interface(sock: &Socket, iface: &Interface) -> Result<(), Error> {
    let mac = mac_string(&iface.mac)?;
    let current = by_mac(&mac)?;
    let name = if iface.name.is_empty() {
        current.clone()
    } else {
        iface.name.clone()
    };
    if name != current {
        sock.set_down(&current)?;
        sock.rename(&current, &name)?;
    }
    if iface.mtu > 0 {
        sock.set_mtu(&name, iface.mtu)?;
    }
    for (i, a) in iface.addresses.iter().enumerate() {
        // Extra addresses go on aliases: the ioctls give one per label.
        let label = if i == 0 { name.clone() } else { format!("{name}:{i}") };
        sock.set_address(&label, ipv4(&a.address, "address")?, a.prefix_len)?;
    }
    sock.set_up(&name)?;
    info!(interface = %name, mac = %mac, addresses = iface.addresses.len(), "network interface configured");
    Ok(())
}

fn route(sock: &Socket, r: &Route) -> Result<(), Error> {
    let dst = if r.destination.is_empty() {
        Ipv4Addr::UNSPECIFIED
    } else {
        ipv4(&r.destination, "route destination")?
    };
    let prefix = if r.destination.is_empty() { 0 } else { r.prefix_len };
    let gateway = (!r.gateway.is_empty())
        .then(|| ipv4(&r.gateway, "gateway"))
        .transpose()?;
    sock.add_route(dst, prefix, gateway, &r.device)
}

/// Interfaces first, then routes: a gateway must be reachable when its
/// route is added, which the interface's connected subnet provides.
pub fn configure(req: &ConfigureNetworkRequest) -> Result<(), Error> {
    let sock = Socket::open()?;
    for iface in &req.interfaces {
        interface(&sock, iface)?;
    }
    // Directly connected routes first, then the ones through gateways.
    let (direct, via): (Vec<&Route>, Vec<&Route>) = req.routes.iter().partition(|r| r.gateway.is_empty());
    for r in direct.into_iter().chain(via) {
        route(&sock, r)?;
    }
    for (key, value) in &req.sysctls {
        sysctl(key, value)?;
    }
    Ok(())
}

/// `/proc/sys` path of a network sysctl: `net.` and plain dotted names only.
fn sysctl_path(key: &str) -> Result<String, Error> {
    let valid = key.starts_with("net.")
        && key
            .split('.')
            .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'));
    if !valid {
        return Err(Error::Invalid(format!("{key:?} is not a network sysctl")));
    }
    Ok(format!("/proc/sys/{}", key.replace('.', "/")))
}

fn sysctl(key: &str, value: &str) -> Result<(), Error> {
    let path = sysctl_path(key)?;
    std::fs::write(&path, value).map_err(|e| Error::io("write", &path, e))?;
    info!(%key, %value, "pod sysctl set");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_network_sysctls_have_a_path() {
        assert_eq!(
            sysctl_path("net.ipv4.ip_unprivileged_port_start").unwrap(),
            "/proc/sys/net/ipv4/ip_unprivileged_port_start"
        );
        assert_eq!(
            sysctl_path("net.ipv4.conf.eth-0.forwarding").unwrap(),
            "/proc/sys/net/ipv4/conf/eth-0/forwarding"
        );
        for bad in ["kernel.shmmax", "net..x", "net.ipv4/../../kernel/x", "net.", ""] {
            assert!(sysctl_path(bad).is_err(), "{bad}");
        }
    }
}

//! The interface and route ioctls of an AF_INET datagram socket: enough to
//! give an interface its IPv4 addresses, MTU and name, and to add routes,
//! without a netlink library.

use std::ffi::CString;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};

use crate::error::Error;

pub struct Socket(OwnedFd);

fn sockaddr_in(addr: Ipv4Addr) -> libc::sockaddr {
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(addr).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in and sockaddr have the same size on Linux, and a
    // sockaddr_in is the sockaddr the AF_INET ioctls read.
    unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
}

pub fn netmask(prefix: u32) -> Ipv4Addr {
    Ipv4Addr::from(if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix.min(32))
    })
}

fn ifreq(name: &str) -> Result<libc::ifreq, Error> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return Err(Error::Invalid(format!("interface name {name:?}: 1 to 15 bytes")));
    }
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.as_bytes()) {
        *dst = *src as libc::c_char;
    }
    Ok(req)
}

impl Socket {
    pub fn open() -> Result<Socket, Error> {
        socket(AddressFamily::Inet, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None)
            .map(Socket)
            .map_err(|source| Error::Sys {
                what: "socket for interface ioctls",
                source,
            })
    }

    /// One ioctl on `req`, which the request reads or writes in place.
    fn ioctl<T>(&self, request: libc::c_ulong, req: &mut T, what: impl FnOnce() -> String) -> Result<(), Error> {
        // SAFETY: every request used here takes a pointer to the struct its
        // caller built for it (ifreq or rtentry), which outlives the call.
        if unsafe { libc::ioctl(self.0.as_raw_fd(), request, req as *mut T) } < 0 {
            return Err(Error::Net {
                what: what(),
                source: nix::Error::last(),
            });
        }
        Ok(())
    }

    fn flags(&self, name: &str) -> Result<libc::ifreq, Error> {
        let mut req = ifreq(name)?;
        self.ioctl(libc::SIOCGIFFLAGS, &mut req, || format!("read the flags of {name}"))?;
        Ok(req)
    }

    pub fn set_up(&self, name: &str) -> Result<(), Error> {
        let mut req = self.flags(name)?;
        // SAFETY: SIOCGIFFLAGS filled ifru_flags, the member SIOCSIFFLAGS reads.
        unsafe { req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short };
        self.ioctl(libc::SIOCSIFFLAGS, &mut req, || format!("bring {name} up"))
    }

    pub fn set_down(&self, name: &str) -> Result<(), Error> {
        let mut req = self.flags(name)?;
        // SAFETY: as in set_up.
        unsafe { req.ifr_ifru.ifru_flags &= !(libc::IFF_UP as libc::c_short) };
        self.ioctl(libc::SIOCSIFFLAGS, &mut req, || format!("bring {name} down"))
    }

    pub fn rename(&self, name: &str, new: &str) -> Result<(), Error> {
        let mut req = ifreq(name)?;
        let target = ifreq(new)?;
        req.ifr_ifru.ifru_newname = target.ifr_name;
        self.ioctl(libc::SIOCSIFNAME, &mut req, || format!("rename {name} to {new}"))
    }

    pub fn set_mtu(&self, name: &str, mtu: u32) -> Result<(), Error> {
        let mut req = ifreq(name)?;
        req.ifr_ifru.ifru_mtu = mtu as libc::c_int;
        self.ioctl(libc::SIOCSIFMTU, &mut req, || format!("set the MTU of {name} to {mtu}"))
    }

    /// Sets `label`'s address (an interface, or an alias such as eth0:1).
    pub fn set_address(&self, label: &str, addr: Ipv4Addr, prefix: u32) -> Result<(), Error> {
        let what = || format!("set address {addr}/{prefix} on {label}");
        let mut req = ifreq(label)?;
        req.ifr_ifru.ifru_addr = sockaddr_in(addr);
        self.ioctl(libc::SIOCSIFADDR, &mut req, what)?;
        let mut req = ifreq(label)?;
        req.ifr_ifru.ifru_netmask = sockaddr_in(netmask(prefix));
        self.ioctl(libc::SIOCSIFNETMASK, &mut req, what)
    }

    /// Adds a route; one that exists already (the kernel adds the
    /// connected subnet's itself) is fine.
    pub fn add_route(&self, dst: Ipv4Addr, prefix: u32, gateway: Option<Ipv4Addr>, device: &str) -> Result<(), Error> {
        let dev = CString::new(device).map_err(|_| Error::Invalid(format!("device name {device:?}")))?;
        // SAFETY: rtentry is plain old data; all-zero is a valid value.
        let mut rt: libc::rtentry = unsafe { std::mem::zeroed() };
        rt.rt_dst = sockaddr_in(dst);
        rt.rt_genmask = sockaddr_in(netmask(prefix));
        rt.rt_flags = libc::RTF_UP;
        if let Some(gw) = gateway {
            rt.rt_gateway = sockaddr_in(gw);
            rt.rt_flags |= libc::RTF_GATEWAY;
        }
        if prefix == 32 {
            rt.rt_flags |= libc::RTF_HOST;
        }
        // The kernel reads the name during the call; dev outlives it.
        rt.rt_dev = dev.as_ptr() as *mut libc::c_char;
        let via = gateway.map(|g| format!(" via {g}")).unwrap_or_default();
        match self.ioctl(libc::SIOCADDRT, &mut rt, || {
            format!("add route {dst}/{prefix}{via} dev {device}")
        }) {
            Err(Error::Net {
                source: nix::Error::EEXIST,
                ..
            }) => Ok(()),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netmasks_from_prefixes() {
        assert_eq!(netmask(24), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(netmask(0), Ipv4Addr::new(0, 0, 0, 0));
        assert_eq!(netmask(32), Ipv4Addr::new(255, 255, 255, 255));
        assert_eq!(netmask(20), Ipv4Addr::new(255, 255, 240, 0));
        assert!(ifreq("a-name-that-is-too-long").is_err());
    }
}

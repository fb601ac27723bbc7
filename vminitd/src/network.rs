//! Guest networking that exists before any container: the loopback interface.

use std::os::fd::AsRawFd;

use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};

use crate::error::Error;

/// Brings `lo` up; the kernel then gives it 127.0.0.1/8 by itself.
pub fn loopback_up() -> Result<(), Error> {
    let sock =
        socket(AddressFamily::Inet, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None).map_err(|source| Error::Sys {
            what: "socket for interface ioctls",
            source,
        })?;
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write only the ifreq we own,
    // and ifru_flags is the union member these two requests use.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(Error::Sys {
                what: "SIOCGIFFLAGS lo",
                source: nix::Error::last(),
            });
        }
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(Error::Sys {
                what: "SIOCSIFFLAGS lo",
                source: nix::Error::last(),
            });
        }
    }
    Ok(())
}

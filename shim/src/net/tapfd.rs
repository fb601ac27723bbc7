//! A pod's tap handed to a VMM as an open descriptor.
//!
//! QEMU runs unprivileged under a seccomp filter that denies set*id, so it
//! can neither open a root-owned persistent tap by name itself nor drop root
//! after doing so. Its child opens the tap instead, inside the pod's
//! namespace and still as root, between fork and exec; the VMM inherits the
//! descriptor (`-netdev tap,fd=N`) and never needs /dev/net/tun.

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use nix::sched::CloneFlags;

use super::tap::validate_name;
use super::{NetError, Netns};

const TUN_DEVICE: &[u8] = b"/dev/net/tun\0";
/// `struct ifreq`: the name, then `ifr_flags` in the union; 40 bytes on x86_64.
const IFREQ_LEN: usize = 40;
const IFR_FLAGS_OFFSET: usize = libc::IFNAMSIZ;
/// What QEMU asks for when it opens a tap by name: a tap without packet
/// info, with virtio-net headers (the guest's offloads).
const TAP_FLAGS: libc::c_short = (libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR) as libc::c_short;

/// The descriptor number a child will find the tap at. Holds that number
/// (on /dev/null) in the parent until the child has been spawned, so that
/// nothing else takes it meanwhile; drop it after the spawn.
#[derive(Debug)]
pub struct TapSlot {
    reserved: OwnedFd,
}

impl TapSlot {
    /// The number to name on the VMM's command line.
    pub fn fd(&self) -> RawFd {
        self.reserved.as_raw_fd()
    }
}

/// Makes `cmd`'s child enter the namespace at `netns` and open the tap
/// `tap` there as the descriptor the returned slot names, before any hook
/// added later (a privilege drop) runs.
pub fn open_in_child(cmd: &mut Command, netns: &Path, tap: &str) -> Result<TapSlot, NetError> {
    let ns = Netns::open(netns)?;
    validate_name(tap)?;
    let name = tap.as_bytes();
    let mut ifreq = [0u8; IFREQ_LEN];
    ifreq[..name.len()].copy_from_slice(name);
    ifreq[IFR_FLAGS_OFFSET..IFR_FLAGS_OFFSET + 2].copy_from_slice(&TAP_FLAGS.to_ne_bytes());

    let reserve_err = |source| NetError::TapDescriptor {
        tap: tap.to_string(),
        source,
    };
    let reserved: OwnedFd = File::open("/dev/null").map_err(reserve_err)?.into();
    let target = reserved.as_raw_fd();
    let ns_fd = ns.fd().try_clone().map_err(reserve_err)?;
    // SAFETY: the closure runs in the child between fork and exec and makes
    // only async-signal-safe system calls (setns, open, ioctl, dup2, close)
    // on memory prepared in the parent; it allocates nothing. `ifreq` is a
    // struct ifreq-sized buffer that outlives the ioctl.
    unsafe {
        cmd.pre_exec(move || {
            let errno = std::io::Error::last_os_error;
            nix::sched::setns(&ns_fd, CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
            let tun = libc::open(TUN_DEVICE.as_ptr().cast(), libc::O_RDWR | libc::O_CLOEXEC);
            if tun < 0 {
                return Err(errno());
            }
            let mut req = ifreq;
            if libc::ioctl(tun, libc::TUNSETIFF, req.as_mut_ptr()) < 0 {
                let e = errno();
                libc::close(tun);
                return Err(e);
            }
            // dup2 leaves the copy without FD_CLOEXEC: the VMM inherits it.
            if libc::dup2(tun, target) < 0 {
                let e = errno();
                libc::close(tun);
                return Err(e);
            }
            libc::close(tun);
            Ok(())
        });
    }
    Ok(TapSlot { reserved })
}

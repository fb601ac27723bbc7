//! Guest networking: the loopback interface at boot, and a pod's interface
//! and routes when the host hands them over; port-forward connections.

mod configure;
mod ioctl;
pub mod ports;

pub use configure::configure;

use crate::error::Error;

/// Brings `lo` up; the kernel then gives it 127.0.0.1/8 by itself.
pub fn loopback_up() -> Result<(), Error> {
    let sock = ioctl::Socket::open()?;
    sock.set_up("lo")
}

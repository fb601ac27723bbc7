//! A pod's port-forward, host end. containerd's CRI plugin serves
//! PortForward by dialing `localhost:PORT` inside the pod's network
//! namespace; the pod's containers listen inside the VM. So, in the
//! namespace, every TCP connection to 127.0.0.1 is redirected (iptables'
//! nat OUTPUT chain) to one listener of the shim's, which learns the port
//! the connection was for from conntrack (`SO_ORIGINAL_DST`) and relays it
//! to the guest's loopback.

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::os::fd::AsRawFd;

use nix::sched::CloneFlags;

use super::netns::Netns;
use super::NetError;
use crate::assets::Tool;

/// netfilter's `iptables`.
pub const IPTABLES: Tool = Tool {
    name: "iptables",
    env: "VOIDBOX_IPTABLES",
    dirs: &["/usr/sbin", "/sbin"],
    fix: "install iptables (apt-get install iptables) or set VOIDBOX_IPTABLES",
};

/// The redirect of a namespace's loopback TCP connections to a listener.
pub struct LoopbackCapture {
    listener: TcpListener,
    port: u16,
}

/// The rule, for adding (`-A`) or deleting (`-D`).
fn rule(op: &str, port: u16) -> Vec<String> {
    let port = port.to_string();
    [
        "-w",
        "-t",
        "nat",
        op,
        "OUTPUT",
        "-p",
        "tcp",
        "-d",
        "127.0.0.1",
        "!",
        "--dport",
        &port,
        "-j",
        "REDIRECT",
        "--to-ports",
        &port,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn run_rule(netns: &Netns, op: &str, port: u16) -> Result<(), NetError> {
    let iptables = IPTABLES.locate()?;
    let args = rule(op, port);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    netns.run(&iptables, &args).map(drop)
}

/// A listener on 127.0.0.1 in `netns`. A socket belongs to the namespace
/// of the thread that made it: a thread of its own enters the namespace,
/// makes it, and ends, so no thread doing the shim's work ever changes
/// namespace.
fn listen_in(netns: &Netns) -> Result<TcpListener, NetError> {
    let fd = netns.fd().try_clone().map_err(|source| NetError::OpenNetns {
        path: netns.path().to_path_buf(),
        source,
    })?;
    let path = netns.path().to_path_buf();
    std::thread::spawn(move || {
        nix::sched::setns(&fd, CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
        TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
    })
    .join()
    .map_err(|_| std::io::Error::other("the listener's thread panicked"))
    .and_then(|r| r)
    .map_err(|source| NetError::OpenNetns { path, source })
}

impl LoopbackCapture {
    /// In `netns`: a listener on 127.0.0.1, and every other TCP connection
    /// to 127.0.0.1 redirected to it.
    pub fn setup(netns: &Netns) -> Result<LoopbackCapture, NetError> {
        let listener = listen_in(netns)?;
        let port = listener
            .local_addr()
            .map_err(|source| NetError::OpenNetns {
                path: netns.path().to_path_buf(),
                source,
            })?
            .port();
        run_rule(netns, "-A", port)?;
        Ok(LoopbackCapture { listener, port })
    }

    /// The listener, for the relay; the rule stays until `remove`.
    pub fn listener(&self) -> std::io::Result<TcpListener> {
        self.listener.try_clone()
    }

    /// Removes the rule (the namespace may be gone already, and it with it).
    pub fn remove(&self, netns: &Netns) -> Result<(), NetError> {
        run_rule(netns, "-D", self.port)
    }
}

/// The port a redirected connection was made to.
pub fn original_port(stream: &impl AsRawFd) -> std::io::Result<u16> {
    // SAFETY: an all-zero sockaddr_in is a valid value to be overwritten.
    let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: SO_ORIGINAL_DST writes at most `len` bytes of a sockaddr_in
    // into `addr`, which lives across the call; the descriptor is open.
    let r = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_IP,
            libc::SO_ORIGINAL_DST,
            (&mut addr as *mut libc::sockaddr_in).cast(),
            &mut len,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(u16::from_be(addr.sin_port))
}

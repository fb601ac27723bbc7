//! A pod network namespace set up by hand the way CNI's bridge plugin
//! would (a veth pair, the pod end named eth0 with an address, MAC, MTU and
//! a default route): for tests of the shim alone, without containerd.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;

/// A namespace with a veth into it, removed on drop.
pub struct FakeCni {
    pub netns: String,
    host_if: String,
    pub subnet: u8,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl FakeCni {
    #[allow(clippy::new_without_default)]
    pub fn new() -> FakeCni {
        let pid = std::process::id();
        let subnet = (pid % 200 + 20) as u8;
        let f = FakeCni {
            netns: format!("vbt-pod-{pid}"),
            host_if: format!("vbth{}", pid % 100000),
            subnet,
        };
        ip(&["netns", "add", &f.netns]);
        ip(&[
            "link", "add", &f.host_if, "type", "veth", "peer", "name", "eth0", "netns", &f.netns,
        ]);
        ip(&["addr", "add", &format!("10.213.{subnet}.1/24"), "dev", &f.host_if]);
        ip(&["link", "set", &f.host_if, "up"]);
        let inside = |args: &[&str]| {
            let mut a = vec!["-n", f.netns.as_str()];
            a.extend_from_slice(args);
            ip(&a);
        };
        inside(&["link", "set", "eth0", "address", "02:42:0a:d5:00:02", "mtu", "1400"]);
        inside(&["addr", "add", &format!("10.213.{subnet}.2/24"), "dev", "eth0"]);
        inside(&["link", "set", "eth0", "up"]);
        inside(&["link", "set", "lo", "up"]);
        inside(&["route", "add", "default", "via", &format!("10.213.{subnet}.1")]);
        f
    }

    pub fn path(&self) -> PathBuf {
        format!("/var/run/netns/{}", self.netns).into()
    }

    pub fn pod_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 213, self.subnet, 2)
    }

    pub fn links_in_netns(&self) -> String {
        let out = Command::new("ip")
            .args(["-n", &self.netns, "-o", "link"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for FakeCni {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.host_if]).output();
        let _ = Command::new("ip").args(["netns", "del", &self.netns]).output();
    }
}

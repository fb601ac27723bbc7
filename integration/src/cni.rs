//! The CNI network of one test's CRI containerd: a bridge and a /24 of its
//! own, with the IPAM state under the test's directory. The /24 is taken under
//! a lock so parallel tests, in this process or another, never share one.

use std::fs::File;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::fcntl::{Flock, FlockArg};
use serde_json::json;

/// The plugins Debian's containernetworking-plugins installs.
pub const CNI_BIN_DIR: &str = "/usr/lib/cni";
/// Test networks are /24s of this /16.
const PREFIX: [u8; 2] = [10, 233];
/// One lock file per /24, held for the network's life (flock dies with us).
const LOCK_DIR: &str = "/run/vbt-cni-locks";
/// Where libcni caches ADD results; containerd 1.6 has no setting for it.
const RESULT_CACHE: &str = "/var/lib/cni/results";

pub struct Network {
    /// The CNI network name, also in libcni's cache file names.
    pub name: String,
    pub bridge: String,
    /// The third octet of 10.233.N.0/24.
    octet: u8,
    pub conf_dir: PathBuf,
    /// host-local's allocations (its `dataDir`).
    pub ipam_dir: PathBuf,
    _lock: Flock<File>,
}

impl Network {
    /// Takes a free /24 and writes the conflist into `dir/cni/net.d`.
    pub fn create(name: &str, dir: &Path) -> Network {
        let (octet, lock) = take_subnet();
        let bridge = format!("vbtcri{octet}");
        // Ours now: a bridge of that name is a crashed test's.
        delete_link(&bridge);
        let conf_dir = dir.join("cni/net.d");
        let ipam_dir = dir.join("cni/ipam");
        std::fs::create_dir_all(&conf_dir).unwrap();
        let net = Network {
            name: name.to_string(),
            bridge,
            octet,
            conf_dir,
            ipam_dir,
            _lock: lock,
        };
        // CRI adds the loopback network itself (go-cni's WithLoNetwork, from
        // bin_dir): only the pod network is ours to write.
        let conflist = json!({
            "cniVersion": "1.0.0",
            "name": net.name,
            "plugins": [{
                "type": "bridge",
                "bridge": net.bridge,
                "isGateway": true,
                "ipMasq": false,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": net.subnet(), "gateway": net.gateway().to_string()}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": net.ipam_dir,
                },
            }],
        });
        std::fs::write(
            net.conf_dir.join("10-vbt.conflist"),
            serde_json::to_string_pretty(&conflist).unwrap(),
        )
        .unwrap();
        net
    }

    /// "10.233.N.0/24".
    pub fn subnet(&self) -> String {
        format!("{}.{}.{}.0/24", PREFIX[0], PREFIX[1], self.octet)
    }

    /// The bridge's address, the pods' default gateway.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::new(PREFIX[0], PREFIX[1], self.octet, 1)
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        ip.octets()[..3] == [PREFIX[0], PREFIX[1], self.octet]
    }

    /// IPs host-local still holds for pods.
    pub fn leftovers(&self) -> Vec<String> {
        // One file per allocated IP, besides last_reserved_ip.0 and lock.
        std::fs::read_dir(self.ipam_dir.join(&self.name))
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|f| f.parse::<Ipv4Addr>().is_ok())
                    .map(|f| format!("IP {f} still allocated by host-local"))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        delete_link(&self.bridge);
    }
}

/// libcni's cached ADD results (kept until DEL) that mention `needle`: a pod's
/// netns path is in each, the loopback network's included.
pub fn cached_results_mentioning(needle: &Path) -> Vec<PathBuf> {
    let needle = needle.to_string_lossy().into_owned();
    std::fs::read_dir(RESULT_CACHE)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| std::fs::read_to_string(p).is_ok_and(|text| text.contains(&needle)))
                .collect()
        })
        .unwrap_or_default()
}

fn delete_link(name: &str) {
    if Path::new("/sys/class/net").join(name).exists() {
        let _ = Command::new("ip").args(["link", "del", name]).status();
    }
}

/// A /24 of 10.233.0.0/16 nobody holds and no host address is in, locked.
fn take_subnet() -> (u8, Flock<File>) {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    std::fs::create_dir_all(LOCK_DIR).unwrap();
    let addrs = Command::new("ip")
        .args(["-4", "-o", "addr", "show"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    // Start where the pid points, so parallel processes rarely contend.
    let start = std::process::id().wrapping_mul(7) + NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    for i in 0..256 {
        let octet = ((start + i) % 256) as u8;
        if addrs.contains(&format!(" {}.{}.{octet}.", PREFIX[0], PREFIX[1])) {
            continue;
        }
        let file = File::create(Path::new(LOCK_DIR).join(octet.to_string())).unwrap();
        if let Ok(lock) = Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            return (octet, lock);
        }
    }
    panic!("no free /24 in 10.233.0.0/16 for a test network");
}

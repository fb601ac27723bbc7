//! A private containerd with its CRI plugin on, as a kubelet would drive it:
//! runtimes runc (the default) and voidbox, the busybox and pause images in
//! CRI's namespace, a CNI bridge network of the test's own, and every pod's
//! cgroups under one parent. Everything a pod creates on the host (netns and
//! shm mounts, rootfs, cgroups, IPAM state) is findable, so a test can assert
//! none of it is left.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::clients::ContainerdVersion;
use crate::cni::{self, Network, CNI_BIN_DIR};
use crate::containerd::Containerd;
use crate::cri::{Cri, PodBuilder};
use crate::image::{busybox_tarball, pause_tarball};

/// containerd's namespace for everything CRI does.
pub const CRI_NAMESPACE: &str = "k8s.io";
pub const PAUSE_IMAGE: &str = "localhost/pause:latest";
/// The handler names the config registers (runc is also the default, "").
pub const RUNC_HANDLER: &str = "runc";
/// Runs `containerd-shim-voidbox-v2` from the cargo target dir: build the bins first.
pub const VOIDBOX_HANDLER: &str = "voidbox";
const CRI_PLUGIN: &str = "io.containerd.grpc.v1.cri";

pub struct CriContainerd {
    /// Declared first: containerd stops before its network goes.
    pub containerd: Containerd,
    pub network: Network,
    /// cgroupfs parent of every pod of this test (as kubelet's pod cgroup).
    pub cgroup_parent: String,
}

impl std::ops::Deref for CriContainerd {
    type Target = Containerd;
    fn deref(&self) -> &Containerd {
        &self.containerd
    }
}

impl Containerd {
    /// A containerd 1.6 with CRI on; see `CriContainerd`.
    pub fn start_cri(name: &str, env: &[(&str, &str)]) -> CriContainerd {
        CriContainerd::start(ContainerdVersion::V1_6, name, env)
    }

    /// A containerd `version` with CRI on.
    pub fn start_cri_on(version: ContainerdVersion, name: &str, env: &[(&str, &str)]) -> CriContainerd {
        CriContainerd::start(version, name, env)
    }
}

impl CriContainerd {
    pub fn start(version: ContainerdVersion, name: &str, env: &[(&str, &str)]) -> CriContainerd {
        let mut network = None;
        let containerd = Containerd::launch(version, name, env, |dir, state| {
            let net = Network::create(&format!("vbt-{name}-{}-{}", version.tag(), std::process::id()), dir);
            let config = config_toml(state, &net);
            network = Some(net);
            config
        });
        let network = network.expect("network created with the config");
        let cgroup_parent = format!("/{}", containerd.state.file_name().unwrap().to_string_lossy());
        for (base, tarball) in [
            ("localhost/busybox", busybox_tarball(&containerd.dir)),
            ("localhost/pause", pause_tarball(&containerd.dir)),
        ] {
            containerd.import_image(CRI_NAMESPACE, base, &tarball);
        }
        CriContainerd {
            containerd,
            network,
            cgroup_parent,
        }
    }

    /// A CRI client on this containerd's socket.
    pub async fn connect(&self) -> Cri {
        Cri::connect(&self.socket).await.expect("connect to CRI")
    }

    /// Where pod `name` logs (created): under the test's directory.
    pub fn log_dir(&self, pod: &str) -> PathBuf {
        let dir = self.dir.join("pods").join(pod);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A minimal pod config for this containerd: logs under the test's
    /// directory, cgroups under the test's parent.
    pub fn pod(&self, name: &str) -> PodBuilder {
        PodBuilder::new(name, &self.log_dir(name)).cgroup_parent(&self.cgroup_parent)
    }

    /// containerd's state (`state` in its config).
    pub fn containerd_state(&self) -> PathBuf {
        self.state.join("ctd")
    }

    /// containerd's root (`root` in its config).
    pub fn containerd_root(&self) -> PathBuf {
        self.dir.join("root")
    }

    /// The bundle of task `id` (sandbox or container): config.json, rootfs.
    pub fn bundle(&self, id: &str) -> PathBuf {
        self.containerd_state()
            .join("io.containerd.runtime.v2.task")
            .join(CRI_NAMESPACE)
            .join(id)
    }

    /// Where CRI mounts pod network namespaces (netns_mounts_under_state_dir).
    pub fn netns_dir(&self) -> PathBuf {
        self.containerd_state().join(CRI_PLUGIN).join("netns")
    }

    /// The test's cgroup parent in each hierarchy where it exists.
    pub fn cgroup_parent_dirs(&self) -> Vec<PathBuf> {
        cgroup_mounts()
            .into_iter()
            .map(|m| m.join(self.cgroup_parent.trim_start_matches('/')))
            .filter(|d| d.exists())
            .collect()
    }

    pub fn in_subnet(&self, ip: &str) -> bool {
        ip.parse::<Ipv4Addr>().is_ok_and(|ip| self.network.contains(ip))
    }

    /// What pods left on the host: processes, mounts (rootfs, shm, netns),
    /// cgroups, CRI's and the runtime's per-pod state, IPs, CNI cache.
    pub fn leftovers(&self) -> Vec<String> {
        let mut left = Vec::new();
        let containerd = self.containerd.pid() as i32;
        for dir in [&self.dir, &self.state] {
            left.extend(
                crate::processes(dir)
                    .into_iter()
                    .filter(|(pid, _)| *pid != containerd)
                    .map(|(pid, cmd)| format!("process {pid}: {cmd}")),
            );
        }
        // Rootfs, shm and netns mounts are all under state; snapshots under root.
        left.extend(crate::mounts_mentioning(&self.state));
        left.extend(
            crate::mounts_mentioning(&self.dir)
                .into_iter()
                .filter(|m| !m.contains(&*self.state.to_string_lossy())),
        );
        for (cgroup, pids) in pod_cgroups(&self.cgroup_parent) {
            left.push(format!("cgroup {} with processes {pids:?}", cgroup.display()));
        }
        let root = self.containerd_root().join(CRI_PLUGIN);
        let state = self.containerd_state().join(CRI_PLUGIN);
        for dir in [
            root.join("sandboxes"),
            root.join("containers"),
            state.join("sandboxes"),
            state.join("containers"),
            self.netns_dir(),
            self.bundle(""),
            self.vm_state_root(),
            self.state.join("s"),
        ] {
            left.extend(entries(&dir).into_iter().map(|e| format!("{}", e.display())));
        }
        left.extend(self.network.leftovers());
        left.extend(
            cni::cached_results_mentioning(&self.state)
                .into_iter()
                .map(|p| format!("CNI result cache {}", p.display())),
        );
        left
    }

    /// Asserts, waiting a little for asynchronous teardown, that nothing is left.
    pub fn assert_clean(&self) {
        crate::assert_nothing_left(|| self.leftovers());
    }
}

impl Drop for CriContainerd {
    /// After a failed test pods may still run: kill them and their shims so
    /// the mounts and cgroups they hold can go (the fields' drops do the rest).
    fn drop(&mut self) {
        let containerd = self.containerd.pid() as i32;
        let survivors = || -> Vec<i32> {
            let mut pids: Vec<i32> = pod_cgroups(&self.cgroup_parent).into_values().flatten().collect();
            pids.extend(
                crate::pids_mentioning(&self.state)
                    .into_iter()
                    .filter(|p| *p != containerd),
            );
            pids
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let pids = survivors();
            if pids.is_empty() || Instant::now() > deadline {
                break;
            }
            for pid in pids {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Pods killed, not torn down: CNI DEL never ran for them.
        for cached in cni::cached_results_mentioning(&self.state) {
            let _ = std::fs::remove_file(cached);
        }
        let cgroups = pod_cgroups(&self.cgroup_parent);
        // Children before parents, the test's parent last.
        let mut paths: Vec<PathBuf> = cgroups.into_keys().collect();
        paths.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        paths.push(PathBuf::from(self.cgroup_parent.trim_start_matches('/')));
        for mount in cgroup_mounts() {
            for path in &paths {
                let _ = std::fs::remove_dir(mount.join(path));
            }
        }
    }
}

/// The containerd config with CRI on (the part after root and state).
fn config_toml(state: &Path, net: &Network) -> String {
    let cri = format!("plugins.\"{CRI_PLUGIN}\"");
    format!(
        r#"[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  disable_apparmor = true
  enable_selinux = false
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  # netns mounts under the test's state instead of /var/run/netns: a pod that
  # leaks one shows up as a mount under the test's directories.
  netns_mounts_under_state_dir = true
  [{cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "{RUNC_HANDLER}"
    [{cri}.containerd.runtimes.{RUNC_HANDLER}]
      runtime_type = "io.containerd.runc.v2"
      [{cri}.containerd.runtimes.{RUNC_HANDLER}.options]
        # runc's state with the test's, not in the host's /run/containerd/runc.
        Root = "{runc_root}"
        SystemdCgroup = false
    [{cri}.containerd.runtimes.{VOIDBOX_HANDLER}]
      runtime_type = "{voidbox}"
  [{cri}.cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{conf_dir}"
    max_conf_num = 1
"#,
        runc_root = state.join("runc").display(),
        voidbox = crate::containerd::RUNTIME,
        conf_dir = net.conf_dir.display(),
    )
}

/// Mount points of the cgroup hierarchies (v1 controllers and v2).
fn cgroup_mounts() -> Vec<PathBuf> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let fstype = right.split_whitespace().next()?;
            let target = left.split_whitespace().nth(4)?;
            (fstype == "cgroup" || fstype == "cgroup2").then(|| PathBuf::from(target))
        })
        .collect()
}

/// The cgroups below `parent` (relative to the hierarchy roots) in any
/// hierarchy, with the processes in them.
fn pod_cgroups(parent: &str) -> BTreeMap<PathBuf, BTreeSet<i32>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, BTreeSet<i32>>) {
        for sub in entries(dir).into_iter().filter(|p| p.is_dir()) {
            let procs = std::fs::read_to_string(sub.join("cgroup.procs")).unwrap_or_default();
            out.entry(sub.strip_prefix(root).unwrap().to_path_buf())
                .or_default()
                .extend(procs.lines().filter_map(|l| l.parse::<i32>().ok()));
            walk(root, &sub, out);
        }
    }
    let mut out = BTreeMap::new();
    for mount in cgroup_mounts() {
        walk(&mount, &mount.join(parent.trim_start_matches('/')), &mut out);
    }
    out
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default()
}

//! Reading a container's bundle and checking that its spec can run in a VM.

use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;
use serde_json::Value;

use super::error::{Result, ShimError};
use super::pod::Role;

/// A loaded bundle: the parsed spec, and the raw JSON the guest's copy is
/// made from (unknown fields kept).
pub struct Bundle {
    pub path: PathBuf,
    pub spec: Spec,
    raw: Value,
}

impl Bundle {
    pub fn load(path: &Path) -> Result<Bundle> {
        let config = path.join("config.json");
        let bytes = std::fs::read(&config)
            .map_err(|e| ShimError::InvalidArgument(format!("cannot read {}: {e}", config.display())))?;
        let spec: Spec = serde_json::from_slice(&bytes)
            .map_err(|e| ShimError::InvalidArgument(format!("invalid config.json in {}: {e}", path.display())))?;
        if spec.process().is_none() {
            return Err(ShimError::InvalidArgument("config.json has no process to run".into()));
        }
        let raw = serde_json::from_slice(&bytes).map_err(|e| ShimError::InvalidArgument(e.to_string()))?;
        Ok(Bundle {
            path: path.to_path_buf(),
            spec,
            raw,
        })
    }

    /// The host directory holding the container's root filesystem.
    pub fn rootfs(&self) -> PathBuf {
        let root = self
            .spec
            .root()
            .as_ref()
            .map(|r| r.path().clone())
            .unwrap_or_else(|| "rootfs".into());
        if root.is_absolute() {
            root
        } else {
            self.path.join(root)
        }
    }

    pub fn annotations(&self) -> std::collections::HashMap<String, String> {
        self.spec.annotations().clone().unwrap_or_default()
    }

    /// Checks that the guest can give the container what its spec asks,
    /// before anything is started for it.
    pub fn check(&self, role: &Role) -> Result<()> {
        super::spec_fields::check(&self.raw).map_err(|e| ShimError::InvalidArgument(e.to_string()))?;
        self.namespaces(role).map(|_| ())
    }

    /// The spec as the guest gets it:
    /// - host bind mounts (volumes, and CRI's /etc/hosts, resolv.conf,
    ///   hostname, /dev/shm) come through the shared directory: `share`
    ///   binds each source there and says where the guest sees it;
    /// - a pod's containers use the VM's network namespace (where its
    ///   interface is), and join the sandbox's other namespaces by the
    ///   guest paths CRI gave (/proc/<sandbox pid>/ns/...);
    /// - the host's LSM labels go: the guest kernel has no LSM;
    /// - OCI hooks go: they are host programs, and the namespaces and pids
    ///   they would be handed are the guest's;
    /// - a pod's network sysctls (net.*) go: they are the pod's, set in the
    ///   guest's own network namespace when the sandbox's VM boots (see
    ///   `pod_net_sysctls`), and a pod's containers have no namespace of
    ///   their own to set them in;
    /// - the container gets a cgroup namespace and cgroup2 on
    ///   /sys/fs/cgroup: the guest is pure cgroup v2 whatever the host's
    ///   mode (which shaped the spec the client wrote), and runtimes such
    ///   as the JVM's or Go's read the container's limits there.
    pub fn guest_spec(&self, role: &Role, mut share: impl FnMut(&Path) -> Result<String>) -> Result<Vec<u8>> {
        let mut v = self.raw.clone();
        let namespaces = self.namespaces(role)?;
        if let Some(hooks) = v.as_object_mut().and_then(|o| o.remove("hooks")) {
            let kinds: Vec<&String> = hooks.as_object().map(|h| h.keys().collect()).unwrap_or_default();
            if !kinds.is_empty() {
                tracing::warn!(
                    ?kinds,
                    "OCI hooks are host programs: voidbox does not run them for a container in a VM"
                );
            }
        }
        if let Some(process) = v.get_mut("process").and_then(Value::as_object_mut) {
            process.remove("apparmorProfile");
            process.remove("selinuxLabel");
        }
        if let Some(linux) = v.get_mut("linux").and_then(Value::as_object_mut) {
            linux.remove("mountLabel");
            if role.in_pod() {
                if let Some(sysctl) = linux.get_mut("sysctl").and_then(Value::as_object_mut) {
                    sysctl.retain(|k, _| !is_net_sysctl(k));
                }
            }
            if linux.contains_key("namespaces") {
                linux.insert("namespaces".into(), Value::Array(with_cgroup_ns(namespaces)));
            }
        }
        if let Some(obj) = v.as_object_mut() {
            let mounts = obj.entry("mounts").or_insert_with(|| Value::Array(Vec::new()));
            if let Some(mounts) = mounts.as_array_mut() {
                mount_cgroup2(mounts);
            }
        }
        if let Some(mounts) = v.get_mut("mounts").and_then(Value::as_array_mut) {
            for m in mounts.iter_mut() {
                let bind = m.get("type").and_then(Value::as_str) == Some("bind")
                    || m.get("options")
                        .and_then(Value::as_array)
                        .is_some_and(|o| o.iter().any(|o| o == "bind" || o == "rbind"));
                let source = m.get("source").and_then(Value::as_str).map(PathBuf::from);
                if let (true, Some(source)) = (bind, source) {
                    let guest = share(&source)?;
                    m["source"] = Value::String(guest);
                }
            }
        }
        Ok(serde_json::to_vec(&v).expect("a Value serializes"))
    }

    /// The namespaces the guest's container gets (see guest_spec).
    fn namespaces(&self, role: &Role) -> Result<Vec<Value>> {
        let list = self
            .raw
            .pointer("/linux/namespaces")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut out = Vec::new();
        for ns in list {
            let typ = ns.get("type").and_then(Value::as_str).unwrap_or_default().to_string();
            let path = ns.get("path").and_then(Value::as_str).filter(|p| !p.is_empty());
            match (path, role.in_pod()) {
                (None, _) => out.push(ns),
                // The pod's network is the VM's own: CNI's namespace is on the host.
                (Some(_), true) if typ == "network" => {}
                (Some(p), true) if is_guest_ns_path(p) => out.push(ns),
                (Some(p), _) => {
                    return Err(ShimError::InvalidArgument(format!(
                        "{typ} namespace {p}: joining a host namespace is impossible in a VM"
                    )))
                }
            }
        }
        if matches!(role, Role::Sandbox) && !out.iter().any(|ns| ns["type"] == "network") && !self.has_netns_path() {
            return Err(ShimError::InvalidArgument(
                "a pod on the host's network (hostNetwork) cannot run in a VM: it gets the pod's own network".into(),
            ));
        }
        Ok(out)
    }

    /// The pod's network sysctls, which its sandbox's spec carries.
    pub fn pod_net_sysctls(&self) -> std::collections::BTreeMap<String, String> {
        self.raw
            .pointer("/linux/sysctl")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| is_net_sysctl(k))
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The host network namespace CNI set up for a pod, if the spec names one.
    pub fn netns_path(&self) -> Option<PathBuf> {
        self.raw
            .pointer("/linux/namespaces")
            .and_then(Value::as_array)?
            .iter()
            .find(|ns| ns["type"] == "network")
            .and_then(|ns| ns.get("path")?.as_str())
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
    }

    fn has_netns_path(&self) -> bool {
        self.netns_path().is_some()
    }
}

fn is_net_sysctl(key: &str) -> bool {
    key.starts_with("net.")
}

/// Adds a new cgroup namespace unless the spec has one (its own, or a pod
/// sandbox's to join).
fn with_cgroup_ns(mut namespaces: Vec<Value>) -> Vec<Value> {
    if !namespaces.iter().any(|ns| ns["type"] == "cgroup") {
        namespaces.push(serde_json::json!({"type": "cgroup"}));
    }
    namespaces
}

const CGROUP_DIR: &str = "/sys/fs/cgroup";

/// Makes /sys/fs/cgroup a cgroup mount (crun mounts the guest's cgroup2
/// there, seen from the container's cgroup namespace), keeping the options
/// the client chose (read-only unless privileged); adds one if the spec
/// has none (containerd leaves it out when the host has no cgroup2 root).
fn mount_cgroup2(mounts: &mut Vec<Value>) {
    let at_cgroup = |m: &Value| {
        m.get("destination")
            .and_then(Value::as_str)
            .map(|d| d.trim_end_matches('/'))
            == Some(CGROUP_DIR)
    };
    match mounts.iter_mut().find(|m| at_cgroup(m)) {
        Some(m) => {
            m["type"] = "cgroup".into();
            m["source"] = "cgroup".into();
        }
        None => mounts.push(serde_json::json!({
            "destination": CGROUP_DIR,
            "type": "cgroup",
            "source": "cgroup",
            "options": ["nosuid", "noexec", "nodev", "relatime", "ro"],
        })),
    }
}

/// `/proc/<pid>/ns/<type>`: a namespace of a process in the same VM (CRI
/// gives the sandbox's pid, which the shim reported from the guest).
fn is_guest_ns_path(path: &str) -> bool {
    let mut parts = path.strip_prefix("/proc/").unwrap_or("").split('/');
    matches!(
        (parts.next(), parts.next(), parts.next(), parts.next()),
        (Some(pid), Some("ns"), Some(t), None) if !pid.is_empty() && pid.chars().all(|c| c.is_ascii_digit()) && !t.is_empty()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle_with(config: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("voidbox-bundle-{}-{}", std::process::id(), config.len()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("config.json"), config).unwrap();
        dir
    }

    fn spec_with(extra: &str) -> String {
        format!(
            r#"{{"ociVersion":"1.0.2","process":{{"user":{{"uid":0,"gid":0}},"cwd":"/","args":["sh"],"apparmorProfile":"p"}},"root":{{"path":"rootfs"}}{extra}}}"#
        )
    }

    #[test]
    fn invalid_json_is_named() {
        let dir = bundle_with("{\"ociVersion\": ");
        let msg = Bundle::load(&dir).err().unwrap().to_string();
        assert!(msg.starts_with("invalid config.json in"), "{msg}");
    }

    #[test]
    fn labels_go_and_binds_come_through_the_share() {
        let b = Bundle::load(&bundle_with(&spec_with(
            r#","hooks":{"createRuntime":[{"path":"/usr/local/bin/nerdctl"}]},"linux":{"mountLabel":"x"},"mounts":[{"destination":"/proc","type":"proc","source":"proc"},{"destination":"/data","type":"bind","source":"/srv","options":["rbind","ro"]}]"#,
        )))
        .unwrap();
        let mut seen = Vec::new();
        let g: Value = serde_json::from_slice(
            &b.guest_spec(&Role::Standalone, |p| {
                seen.push(p.to_path_buf());
                Ok("/run/voidbox/shares/shared/c/volumes/0".into())
            })
            .unwrap(),
        )
        .unwrap();
        assert!(g["process"].get("apparmorProfile").is_none());
        assert!(g["linux"].get("mountLabel").is_none());
        assert!(g.get("hooks").is_none(), "host hooks do not reach the guest");
        assert_eq!(seen, vec![PathBuf::from("/srv")]);
        assert_eq!(g["mounts"][1]["source"], "/run/voidbox/shares/shared/c/volumes/0");
        assert_eq!(g["mounts"][1]["options"][1], "ro");
        assert_eq!(g["mounts"][0]["source"], "proc");
        assert!(b.rootfs().ends_with("rootfs"));
    }

    #[test]
    fn the_guest_spec_has_its_own_cgroup2() {
        // As ctr writes it on a cgroup v1 host: a v1-style mount, no cgroup namespace.
        let b = Bundle::load(&bundle_with(&spec_with(
            r#","linux":{"namespaces":[{"type":"pid"},{"type":"mount"}]},"mounts":[{"destination":"/sys","type":"sysfs","source":"sysfs"},{"destination":"/sys/fs/cgroup","type":"cgroup","source":"cgroup","options":["ro","nosuid"]}]"#,
        )))
        .unwrap();
        let g: Value = serde_json::from_slice(&b.guest_spec(&Role::Standalone, |_| unreachable!()).unwrap()).unwrap();
        assert_eq!(g["linux"]["namespaces"][2], serde_json::json!({"type": "cgroup"}));
        let cgroup: Vec<&Value> = g["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["destination"] == "/sys/fs/cgroup")
            .collect();
        assert_eq!(cgroup.len(), 1);
        assert_eq!(
            cgroup[0]["options"],
            serde_json::json!(["ro", "nosuid"]),
            "the client's options stay"
        );

        // No cgroup mount at all: one is added, read-only, after /sys.
        let b = Bundle::load(&bundle_with(&spec_with(
            r#","linux":{"namespaces":[{"type":"cgroup"}]},"mounts":[{"destination":"/sys","type":"sysfs","source":"sysfs"}]"#,
        )))
        .unwrap();
        let g: Value = serde_json::from_slice(&b.guest_spec(&Role::Standalone, |_| unreachable!()).unwrap()).unwrap();
        assert_eq!(
            g["linux"]["namespaces"],
            serde_json::json!([{"type": "cgroup"}]),
            "one cgroup namespace"
        );
        assert_eq!(g["mounts"][1]["destination"], "/sys/fs/cgroup");
        assert_eq!(g["mounts"][1]["type"], "cgroup");
        assert!(g["mounts"][1]["options"].as_array().unwrap().contains(&"ro".into()));
    }

    #[test]
    fn a_pods_network_sysctls_are_the_pods_not_its_containers() {
        let b = Bundle::load(&bundle_with(&spec_with(
            r#","linux":{"namespaces":[{"type":"network","path":"/var/run/netns/cni-1"}],"sysctl":{"net.ipv4.ip_unprivileged_port_start":"0","kernel.shm_rmid_forced":"1"}}"#,
        )))
        .unwrap();
        assert_eq!(
            b.pod_net_sysctls().into_iter().collect::<Vec<_>>(),
            [("net.ipv4.ip_unprivileged_port_start".to_string(), "0".to_string())]
        );
        let g: Value = serde_json::from_slice(&b.guest_spec(&Role::Sandbox, |_| unreachable!()).unwrap()).unwrap();
        assert_eq!(g["linux"]["sysctl"], serde_json::json!({"kernel.shm_rmid_forced": "1"}));
        // A container on its own keeps its network namespace, and its sysctls.
        let g: Value = serde_json::from_slice(
            &Bundle::load(&bundle_with(&spec_with(
                r#","linux":{"namespaces":[{"type":"network"}],"sysctl":{"net.ipv4.ip_forward":"1"}}"#,
            )))
            .unwrap()
            .guest_spec(&Role::Standalone, |_| unreachable!())
            .unwrap(),
        )
        .unwrap();
        assert_eq!(g["linux"]["sysctl"], serde_json::json!({"net.ipv4.ip_forward": "1"}));
    }

    #[test]
    fn fields_the_guest_cannot_honour_are_refused_by_name() {
        let b = Bundle::load(&bundle_with(&spec_with(r#","linux":{"intelRdt":{"closID":"gold"}}"#))).unwrap();
        let msg = b.check(&Role::Standalone).unwrap_err().to_string();
        assert!(msg.contains("linux.intelRdt cannot be honoured in a VM"), "{msg}");
    }

    #[test]
    fn pods_use_the_vm_network_and_the_sandbox_namespaces() {
        let sandbox = Bundle::load(&bundle_with(&spec_with(
            r#","linux":{"namespaces":[{"type":"pid"},{"type":"network","path":"/var/run/netns/cni-1"},{"type":"ipc"}]}"#,
        )))
        .unwrap();
        assert_eq!(sandbox.netns_path(), Some(PathBuf::from("/var/run/netns/cni-1")));
        let g: Value =
            serde_json::from_slice(&sandbox.guest_spec(&Role::Sandbox, |_| unreachable!()).unwrap()).unwrap();
        assert_eq!(
            g["linux"]["namespaces"],
            serde_json::json!([{"type":"pid"},{"type":"ipc"},{"type":"cgroup"}])
        );
        let msg = sandbox.check(&Role::Standalone).unwrap_err().to_string();
        assert!(msg.contains("joining a host namespace is impossible"), "{msg}");

        let member = Bundle::load(&bundle_with(&spec_with(
            r#","linux":{"namespaces":[{"type":"network","path":"/proc/7/ns/net"},{"type":"ipc","path":"/proc/7/ns/ipc"},{"type":"mount"}]}"#,
        )))
        .unwrap();
        let role = Role::Member { sandbox_id: "p".into() };
        let g: Value = serde_json::from_slice(&member.guest_spec(&role, |_| unreachable!()).unwrap()).unwrap();
        assert_eq!(
            g["linux"]["namespaces"],
            serde_json::json!([{"type":"ipc","path":"/proc/7/ns/ipc"},{"type":"mount"},{"type":"cgroup"}])
        );
        let host = Bundle::load(&bundle_with(&spec_with(
            r#","linux":{"namespaces":[{"type":"ipc","path":"/var/run/ipc/x"}]}"#,
        )))
        .unwrap();
        assert!(host.check(&role).is_err());

        let host_network =
            Bundle::load(&bundle_with(&spec_with(r#","linux":{"namespaces":[{"type":"pid"}]}"#))).unwrap();
        let msg = host_network.check(&Role::Sandbox).unwrap_err().to_string();
        assert!(msg.contains("hostNetwork"), "{msg}");
    }
}

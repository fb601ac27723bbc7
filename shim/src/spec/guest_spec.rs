//! The spec as the guest runs it, made from the bundle's on the host:
//! vminitd only fills in where the container's root is mounted.

use std::path::Path;

use serde_json::Value;

use super::bundle::{is_net_sysctl, Bundle};
use super::volumes::{self, Propagation};
use crate::error::Result;

impl Bundle {
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
    ///   as the JVM's or Go's read the container's limits there;
    /// - its cgroup is the guest's `/containers/<id>`, where vminitd reads
    ///   its stats, pids and OOM kills (and refuses any other).
    pub fn guest_spec(&self, id: &str, share: impl FnMut(&Path, Propagation) -> Result<String>) -> Result<Vec<u8>> {
        let role = &self.role;
        let mut v = self.raw.clone();
        let namespaces = self.namespaces()?;
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
        if let Some(obj) = v.as_object_mut() {
            obj.entry("linux").or_insert_with(|| Value::Object(Default::default()));
        }
        if let Some(linux) = v.get_mut("linux").and_then(Value::as_object_mut) {
            linux.insert(
                "cgroupsPath".into(),
                Value::String(voidbox_api::ids::guest_cgroup_path(id)),
            );
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
            volumes::share_binds(mounts, share, crate::mounts::submounts)?;
        }
        Ok(serde_json::to_vec(&v).expect("a Value serializes"))
    }
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

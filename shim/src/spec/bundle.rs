//! A container's bundle, read once: the parsed spec, its pod role, and the
//! checks that the spec can run in a VM.

use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;
use serde_json::Value;

use super::options::{self, VmSettings};
use super::pod::Role;
use crate::error::{Result, ShimError};
use protobuf::well_known_types::any::Any;

/// A loaded bundle: the parsed spec, and the raw JSON the guest's copy is
/// made from (unknown fields kept).
pub struct Bundle {
    pub path: PathBuf,
    pub spec: Spec,
    /// Where the container stands in a pod, from its annotations.
    pub role: Role,
    pub(super) raw: Value,
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
        let role = Role::of(&spec.annotations().clone().unwrap_or_default())?;
        Ok(Bundle {
            path: path.to_path_buf(),
            spec,
            role,
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
    pub fn check(&self) -> Result<()> {
        super::fields::check(&self.raw).map_err(|e| ShimError::InvalidArgument(e.to_string()))?;
        self.namespaces().map(|_| ())
    }

    /// The memory limit the container's spec sets, in bytes.
    pub fn memory_limit(&self) -> Option<i64> {
        self.spec
            .linux()
            .as_ref()
            .and_then(|l| l.resources().as_ref()?.memory().as_ref()?.limit())
    }

    /// The VM a container on its own, or a pod's sandbox, asks for: its
    /// annotations, then the runtime options, then `backend_env`.
    pub fn vm_settings(&self, options: Option<&Any>, backend_env: Option<&str>) -> Result<VmSettings> {
        options::resolve(&self.annotations(), options, backend_env)
    }

    /// The namespaces the guest's container gets (see guest_spec).
    pub(super) fn namespaces(&self) -> Result<Vec<Value>> {
        let role = &self.role;
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
        if matches!(role, Role::Sandbox) {
            let has = |t: &str| out.iter().any(|ns| ns["type"] == t);
            if !has("network") && !self.has_netns_path() {
                return Err(ShimError::InvalidArgument(
                    "a pod on the host's network (hostNetwork) cannot run in a VM: it gets the pod's own network"
                        .into(),
                ));
            }
            // Without its own namespace the pod would share the VM's, which
            // is not what hostPID or hostIPC promise.
            for (t, field, what) in [("pid", "hostPID", "processes"), ("ipc", "hostIPC", "IPC objects")] {
                if !has(t) {
                    return Err(ShimError::InvalidArgument(format!(
                        "a pod with {field} cannot run in a VM: the host's {what} are not in the VM; \
                         leave {field} unset (false)"
                    )));
                }
            }
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

pub(super) fn is_net_sysctl(key: &str) -> bool {
    key.starts_with("net.")
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
#[path = "bundle_tests.rs"]
mod tests;

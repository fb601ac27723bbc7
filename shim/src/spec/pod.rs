//! Kubernetes pods, as containerd's CRI plugin describes them in annotations:
//! which sandbox a container belongs to, and how big the sandbox's VM is.
//!
//! One VM per pod: the sandbox (pause) container boots it; the pod's other
//! containers join it. Without CRI annotations a container is on its own.

use std::collections::HashMap;
use std::path::Path;

use crate::error::{Result, ShimError};

pub const CONTAINER_TYPE: &str = "io.kubernetes.cri.container-type";
pub const SANDBOX_ID: &str = "io.kubernetes.cri.sandbox-id";
pub const SANDBOX_NAME: &str = "io.kubernetes.cri.sandbox-name";
pub const SANDBOX_NAMESPACE: &str = "io.kubernetes.cri.sandbox-namespace";
/// The sum of the pod's containers' memory limits, in bytes (kubelet ≥ 1.23).
pub const SANDBOX_MEMORY: &str = "io.kubernetes.cri.sandbox-memory";
/// The sum of the containers' CPU quotas, over one period, in µs.
pub const SANDBOX_CPU_QUOTA: &str = "io.kubernetes.cri.sandbox-cpu-quota";
pub const SANDBOX_CPU_PERIOD: &str = "io.kubernetes.cri.sandbox-cpu-period";

/// What a pod's VM needs beyond its containers' limits: the guest kernel,
/// vminitd, crun and page cache. The RuntimeClass in deploy/ declares the
/// same overhead to the scheduler.
pub const OVERHEAD_MIB: u32 = 160;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Not in a pod: a VM of its own.
    Standalone,
    /// A pod's sandbox (pause) container: it boots the pod's VM.
    Sandbox,
    /// One of a pod's containers: it joins the sandbox's VM.
    Member { sandbox_id: String },
}

impl Role {
    pub fn of(annotations: &HashMap<String, String>) -> Result<Role> {
        match annotations.get(CONTAINER_TYPE).map(String::as_str) {
            None => Ok(Role::Standalone),
            Some("sandbox") => Ok(Role::Sandbox),
            Some("container") => match annotations.get(SANDBOX_ID).filter(|s| !s.is_empty()) {
                Some(id) => Ok(Role::Member { sandbox_id: id.clone() }),
                None => Err(ShimError::InvalidArgument(format!(
                    "annotation {CONTAINER_TYPE}=container without {SANDBOX_ID}: which pod is it in?"
                ))),
            },
            Some(other) => Err(ShimError::InvalidArgument(format!(
                "annotation {CONTAINER_TYPE}={other:?}: expected sandbox or container"
            ))),
        }
    }

    /// The sandbox whose VM runs container `id`.
    pub fn sandbox_of<'a>(&'a self, id: &'a str) -> &'a str {
        match self {
            Role::Member { sandbox_id } => sandbox_id,
            Role::Standalone | Role::Sandbox => id,
        }
    }

    pub fn in_pod(&self) -> bool {
        !matches!(self, Role::Standalone)
    }
}

/// A bundle's annotations, or none if its config cannot be read (Create
/// then says why).
pub fn annotations(bundle: &Path) -> HashMap<String, String> {
    std::fs::read(bundle.join("config.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| serde_json::from_value(v.get("annotations")?.clone()).ok())
        .unwrap_or_default()
}

/// The shim a container belongs to: its sandbox's, for a pod's containers.
pub fn group(id: &str, annotations: &HashMap<String, String>) -> String {
    match Role::of(annotations) {
        Ok(Role::Member { sandbox_id }) => sandbox_id,
        _ => id.to_string(),
    }
}

/// The VM size the pod's limits ask for, when kubelet passed them: memory is
/// the limits plus OVERHEAD_MIB, vCPUs the quotas rounded up.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PodSize {
    pub memory_mib: Option<u32>,
    pub cpus: Option<u32>,
}

fn number(annotations: &HashMap<String, String>, key: &str) -> Result<Option<i64>> {
    match annotations.get(key) {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse::<i64>()
            .map(Some)
            .map_err(|_| ShimError::InvalidArgument(format!("annotation {key}={v:?}: not a number"))),
    }
}

impl PodSize {
    pub fn of(annotations: &HashMap<String, String>) -> Result<PodSize> {
        const MIB: i64 = 1 << 20;
        let memory_mib = number(annotations, SANDBOX_MEMORY)?.filter(|&b| b > 0).map(|b| {
            u32::try_from((b + MIB - 1) / MIB)
                .unwrap_or(u32::MAX)
                .saturating_add(OVERHEAD_MIB)
        });
        let quota = number(annotations, SANDBOX_CPU_QUOTA)?.filter(|&q| q > 0);
        let period = number(annotations, SANDBOX_CPU_PERIOD)?.filter(|&p| p > 0);
        let cpus = match (quota, period) {
            (Some(q), Some(p)) => Some(u32::try_from((q + p - 1) / p).unwrap_or(u32::MAX)),
            _ => None,
        };
        Ok(PodSize { memory_mib, cpus })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn roles_come_from_cri_annotations() {
        assert_eq!(Role::of(&map(&[])).unwrap(), Role::Standalone);
        assert_eq!(
            Role::of(&map(&[(CONTAINER_TYPE, "sandbox"), (SANDBOX_ID, "p")])).unwrap(),
            Role::Sandbox
        );
        let member = Role::of(&map(&[(CONTAINER_TYPE, "container"), (SANDBOX_ID, "p")])).unwrap();
        assert_eq!(member.sandbox_of("c"), "p");
        assert_eq!(Role::Sandbox.sandbox_of("p"), "p");
        assert!(Role::of(&map(&[(CONTAINER_TYPE, "container")])).is_err());
        assert!(Role::of(&map(&[(CONTAINER_TYPE, "vm")])).is_err());
        assert_eq!(
            group("c", &map(&[(CONTAINER_TYPE, "container"), (SANDBOX_ID, "p")])),
            "p"
        );
        assert_eq!(group("c", &map(&[])), "c");
    }

    #[test]
    fn size_is_the_limits_plus_overhead() {
        let size = PodSize::of(&map(&[
            (SANDBOX_MEMORY, "268435456"),
            (SANDBOX_CPU_QUOTA, "150000"),
            (SANDBOX_CPU_PERIOD, "100000"),
        ]))
        .unwrap();
        assert_eq!(
            size,
            PodSize {
                memory_mib: Some(256 + OVERHEAD_MIB),
                cpus: Some(2)
            }
        );
        // No limits: nothing to say.
        let none = PodSize::of(&map(&[
            (SANDBOX_MEMORY, "0"),
            (SANDBOX_CPU_QUOTA, "0"),
            (SANDBOX_CPU_PERIOD, "100000"),
        ]));
        assert_eq!(none.unwrap(), PodSize::default());
        assert!(PodSize::of(&map(&[(SANDBOX_MEMORY, "lots")])).is_err());
    }
}

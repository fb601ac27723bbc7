//! Reading a container's bundle and checking that its spec can run in a VM.

use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;
use serde_json::Value;

use super::error::{Result, ShimError};

/// A loaded bundle: the parsed spec, and the spec to send to the guest.
pub struct Bundle {
    pub path: PathBuf,
    pub spec: Spec,
    pub guest_spec: Vec<u8>,
}

impl Bundle {
    pub fn load(path: &Path) -> Result<Bundle> {
        let config = path.join("config.json");
        let raw = std::fs::read(&config)
            .map_err(|e| ShimError::InvalidArgument(format!("cannot read {}: {e}", config.display())))?;
        let spec: Spec = serde_json::from_slice(&raw)
            .map_err(|e| ShimError::InvalidArgument(format!("invalid config.json in {}: {e}", path.display())))?;
        check(&spec)?;
        Ok(Bundle {
            path: path.to_path_buf(),
            guest_spec: guest_spec(&raw)?,
            spec,
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
}

/// Refuses what a VM cannot give: host paths inside the container.
fn check(spec: &Spec) -> Result<()> {
    if spec.process().is_none() {
        return Err(ShimError::InvalidArgument("config.json has no process to run".into()));
    }
    for m in spec.mounts().iter().flatten() {
        let bind =
            m.typ().as_deref() == Some("bind") || m.options().iter().flatten().any(|o| o == "bind" || o == "rbind");
        if bind {
            return Err(ShimError::InvalidArgument(format!(
                "mount {}: bind mounts of host paths ({}) cannot reach a container in a VM",
                m.destination().display(),
                m.source().as_ref().map(|s| s.display().to_string()).unwrap_or_default()
            )));
        }
    }
    if let Some(linux) = spec.linux() {
        for ns in linux.namespaces().iter().flatten() {
            if let Some(path) = ns.path() {
                return Err(ShimError::InvalidArgument(format!(
                    "{:?} namespace {}: joining a host namespace is impossible in a VM",
                    ns.typ(),
                    path.display()
                )));
            }
        }
    }
    Ok(())
}

/// The spec as the guest gets it: without the host's LSM labels, which mean
/// nothing in a guest kernel that has no LSM.
fn guest_spec(raw: &[u8]) -> Result<Vec<u8>> {
    let mut v: Value = serde_json::from_slice(raw).map_err(|e| ShimError::InvalidArgument(e.to_string()))?;
    if let Some(process) = v.get_mut("process").and_then(Value::as_object_mut) {
        process.remove("apparmorProfile");
        process.remove("selinuxLabel");
    }
    if let Some(linux) = v.get_mut("linux").and_then(Value::as_object_mut) {
        linux.remove("mountLabel");
    }
    Ok(serde_json::to_vec(&v).expect("a Value serializes"))
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

    #[test]
    fn invalid_json_is_named() {
        let dir = bundle_with("{\"ociVersion\": ");
        let msg = Bundle::load(&dir).err().unwrap().to_string();
        assert!(msg.starts_with("invalid config.json in"), "{msg}");
    }

    #[test]
    fn labels_are_dropped_and_binds_refused() {
        let ok = r#"{"ociVersion":"1.0.2","process":{"user":{"uid":0,"gid":0},"cwd":"/","args":["sh"],"apparmorProfile":"p"},"root":{"path":"rootfs"},"linux":{"mountLabel":"x"}}"#;
        let b = Bundle::load(&bundle_with(ok)).unwrap();
        let g: Value = serde_json::from_slice(&b.guest_spec).unwrap();
        assert!(g["process"].get("apparmorProfile").is_none());
        assert!(g["linux"].get("mountLabel").is_none());
        assert!(b.rootfs().ends_with("rootfs"));

        let bind = r#"{"ociVersion":"1.0.2","process":{"user":{"uid":0,"gid":0},"cwd":"/","args":["sh"]},"root":{"path":"rootfs"},"mounts":[{"destination":"/data","type":"bind","source":"/srv","options":["rbind"]}]}"#;
        let msg = Bundle::load(&bundle_with(bind)).err().unwrap().to_string();
        assert!(msg.contains("bind mounts of host paths (/srv)"), "{msg}");
    }
}

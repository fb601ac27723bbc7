//! The guest's edits to a container's OCI spec: where its root and its cgroup
//! are in this VM. Everything else is the host's business and stays as sent.

use serde_json::Value;

use crate::tasks::error::TaskError;

/// The parent of every container's cgroup in the guest.
pub const CGROUP_PARENT: &str = "/containers";

pub fn cgroup_path(id: &str) -> String {
    format!("{CGROUP_PARENT}/{id}")
}

/// Points the spec at `rootfs` and at the container's guest cgroup.
pub fn for_guest(spec: &[u8], id: &str, rootfs: &str) -> Result<Vec<u8>, TaskError> {
    let mut v: Value =
        serde_json::from_slice(spec).map_err(|e| TaskError::Invalid(format!("config.json is not valid JSON: {e}")))?;
    let obj = v
        .as_object_mut()
        .ok_or_else(|| TaskError::Invalid("config.json is not a JSON object".into()))?;
    let root = obj.entry("root").or_insert_with(|| Value::Object(Default::default()));
    root.as_object_mut()
        .ok_or_else(|| TaskError::Invalid("config.json: root is not an object".into()))?
        .insert("path".into(), Value::String(rootfs.into()));
    let linux = obj.entry("linux").or_insert_with(|| Value::Object(Default::default()));
    linux
        .as_object_mut()
        .ok_or_else(|| TaskError::Invalid("config.json: linux is not an object".into()))?
        .insert("cgroupsPath".into(), Value::String(cgroup_path(id)));
    Ok(serde_json::to_vec_pretty(&v).expect("a Value serializes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_root_and_cgroup_and_keeps_the_rest() {
        let spec = br#"{"ociVersion":"1.0.2","root":{"path":"rootfs","readonly":true},"process":{"args":["sh"]},"linux":{"cgroupsPath":"/default/c1"}}"#;
        let out: Value = serde_json::from_slice(&for_guest(spec, "c1", "/run/c1/rootfs").unwrap()).unwrap();
        assert_eq!(out["root"]["path"], "/run/c1/rootfs");
        assert_eq!(out["root"]["readonly"], true);
        assert_eq!(out["linux"]["cgroupsPath"], "/containers/c1");
        assert_eq!(out["process"]["args"][0], "sh");
        assert!(for_guest(b"[1]", "c1", "/r").is_err());
        assert!(for_guest(b"{", "c1", "/r")
            .unwrap_err()
            .to_string()
            .contains("not valid JSON"));
    }
}

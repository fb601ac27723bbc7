//! The guest's one edit to a container's OCI spec: where its root is in this
//! VM. Everything else, `linux.cgroupsPath` included, is the host's business
//! and stays as sent; the cgroup path is checked, not rewritten.

use serde_json::Value;
use voidbox_api::ids::guest_cgroup_path;

use crate::tasks::error::TaskError;

/// A container's spec as crun gets it, and what its start needs.
#[derive(Debug)]
pub struct GuestSpec {
    pub json: Vec<u8>,
    /// Whether it has poststart hooks, which only `crun start` runs. (The
    /// shim drops every host hook, so none reach an honest guest today.)
    pub poststart_hooks: bool,
}

/// Points the spec at `rootfs`, after checking that its cgroup is the one
/// the guest reads stats, pids and OOM kills from.
pub fn for_guest(spec: &[u8], id: &str, rootfs: &str) -> Result<GuestSpec, TaskError> {
    let mut v: Value =
        serde_json::from_slice(spec).map_err(|e| TaskError::Invalid(format!("config.json is not valid JSON: {e}")))?;
    let obj = v
        .as_object_mut()
        .ok_or_else(|| TaskError::Invalid("config.json is not a JSON object".into()))?;
    check_cgroup(obj, id)?;
    let root = obj.entry("root").or_insert_with(|| Value::Object(Default::default()));
    root.as_object_mut()
        .ok_or_else(|| TaskError::Invalid("config.json: root is not an object".into()))?
        .insert("path".into(), Value::String(rootfs.into()));
    let poststart_hooks = v
        .pointer("/hooks/poststart")
        .and_then(Value::as_array)
        .is_some_and(|hooks| !hooks.is_empty());
    Ok(GuestSpec {
        json: serde_json::to_vec_pretty(&v).expect("a Value serializes"),
        poststart_hooks,
    })
}

/// `linux.cgroupsPath` must be exactly `guest_cgroup_path(id)`.
fn check_cgroup(spec: &serde_json::Map<String, Value>, id: &str) -> Result<(), TaskError> {
    let expected = guest_cgroup_path(id);
    let sent = spec.get("linux").and_then(|l| l.get("cgroupsPath"));
    if sent.and_then(Value::as_str) == Some(expected.as_str()) {
        return Ok(());
    }
    let sent = match sent {
        None => "missing".to_string(),
        Some(v) => v.to_string(),
    };
    Err(TaskError::Invalid(format!(
        "config.json: linux.cgroupsPath must be {expected:?}, the guest cgroup its stats and OOM kills are read \
         from; it is {sent}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_root_and_keeps_the_rest() {
        let spec = br#"{"ociVersion":"1.0.2","root":{"path":"rootfs","readonly":true},"process":{"args":["sh"]},"linux":{"cgroupsPath":"/containers/c1"}}"#;
        let guest = for_guest(spec, "c1", "/run/c1/rootfs").unwrap();
        assert!(!guest.poststart_hooks);
        let out: Value = serde_json::from_slice(&guest.json).unwrap();
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

    #[test]
    fn says_whether_a_start_runs_hooks() {
        let with = |hooks: &str| {
            let spec = format!(r#"{{{hooks}"linux":{{"cgroupsPath":"/containers/c1"}}}}"#);
            for_guest(spec.as_bytes(), "c1", "/r").unwrap().poststart_hooks
        };
        assert!(with(r#""hooks":{"poststart":[{"path":"/usr/bin/crun"}]},"#));
        assert!(!with(r#""hooks":{"poststart":[]},"#));
        assert!(!with(r#""hooks":{"prestart":[{"path":"/usr/bin/crun"}]},"#));
        assert!(!with(""));
    }

    #[test]
    fn refuses_any_other_cgroup() {
        for (spec, sent) in [
            (&br#"{"linux":{"cgroupsPath":"/default/c1"}}"#[..], r#""/default/c1""#),
            (br#"{"linux":{"cgroupsPath":"/containers/c2"}}"#, r#""/containers/c2""#),
            (br#"{"linux":{"cgroupsPath":7}}"#, "7"),
            (br#"{"linux":{}}"#, "missing"),
            (br#"{}"#, "missing"),
        ] {
            let err = for_guest(spec, "c1", "/r").unwrap_err();
            assert!(matches!(err, TaskError::Invalid(_)), "{err}");
            let msg = err.to_string();
            assert!(msg.contains(r#"linux.cgroupsPath must be "/containers/c1""#), "{msg}");
            assert!(msg.ends_with(&format!("it is {sent}")), "{msg}");
        }
    }
}

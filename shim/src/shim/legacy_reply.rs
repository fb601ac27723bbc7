//! How a containerd older than 2.3 wants `start`'s answer. It reads stdout
//! as bootstrap JSON (`{"version":3,"address":...,"protocol":"ttrpc"}`)
//! from 2.0 on, choosing task API v3 by it, and takes anything else as a
//! plain address meaning v2; 1.6 only takes the plain address, and 1.7
//! refuses version 3. The start environment does not tell 1.7 from 2.x
//! (both set MAX_SHIM_VERSION=2), so the containerd binary that started the
//! shim is asked its version, once per shim start (about 10 ms); 1.6 sets
//! no GRPC_ADDRESS and is known without asking.

use std::process::Command;

/// The answer to write: a plain address, or bootstrap JSON for task API v3.
#[derive(Debug, PartialEq, Eq)]
pub enum LegacyReply {
    Address,
    TaskV3Json,
}

/// Go module path of containerd 2.x, as `containerd --version` prints it.
const V2_MODULE: &str = "github.com/containerd/containerd/v2 ";

pub fn choose(grpc_address_set: bool, publish_binary: &str) -> LegacyReply {
    if !grpc_address_set || publish_binary.is_empty() {
        return LegacyReply::Address;
    }
    match Command::new(publish_binary).arg("--version").output() {
        Ok(out) if String::from_utf8_lossy(&out.stdout).contains(V2_MODULE) => LegacyReply::TaskV3Json,
        // Unknown or older: v2 works with every containerd.
        _ => LegacyReply::Address,
    }
}

/// The bootstrap JSON containerd 2.0–2.2 parse (their `BootstrapParams`).
pub fn task_v3_json(address: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({"version": 3, "address": address, "protocol": "ttrpc"}))
        .expect("JSON of strings")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory with a `containerd` that prints `version_line`; it
    /// goes when dropped.
    fn fake_containerd(version_line: &str) -> tempfile::TempDir {
        let dir = tempfile::Builder::new().prefix("voidbox-fake-ctd-").tempdir().unwrap();
        let bin = dir.path().join("containerd");
        std::fs::write(&bin, format!("#!/bin/sh\necho '{version_line}'\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        dir
    }

    #[test]
    fn containerd_2_gets_json_for_task_v3_and_older_ones_an_address() {
        let v2 = fake_containerd("containerd github.com/containerd/containerd/v2 2.1.9+unknown ");
        let v17 = fake_containerd(
            "containerd github.com/containerd/containerd v1.7.27 05044ec0a9a75232cad458027ca83437aae3f4da",
        );
        let (v2, v17) = (v2.path().join("containerd"), v17.path().join("containerd"));
        let v2 = v2.to_str().unwrap();
        assert_eq!(choose(true, v2), LegacyReply::TaskV3Json);
        assert_eq!(choose(true, v17.to_str().unwrap()), LegacyReply::Address);
        assert_eq!(choose(false, v2), LegacyReply::Address, "1.6 sets no GRPC_ADDRESS");
        assert_eq!(choose(true, "/no/such/containerd"), LegacyReply::Address);
        let json: serde_json::Value = serde_json::from_slice(&task_v3_json("unix:///run/s")).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"version": 3, "address": "unix:///run/s", "protocol": "ttrpc"})
        );
    }
}

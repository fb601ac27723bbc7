//! Where a VM's things are named: its id, its state directory and the
//! directory shared into it, all derived from (namespace, container id).

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// A short, stable name for a container's VM.
pub fn vm_id(namespace: &str, id: &str) -> String {
    let digest = Sha256::digest(format!("{namespace}/{id}").as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// The VM's state directory: socket paths must stay under the unix limit
/// whatever the namespace and id.
pub fn state_dir(root: &Path, namespace: &str, id: &str) -> PathBuf {
    root.join(vm_id(namespace, id))
}

/// The directory shared into a sandbox's VM; beside its state directory,
/// which the VM removes when it ends, while this is still mounted.
pub fn shared_dir(root: &Path, namespace: &str, id: &str) -> PathBuf {
    root.join(format!("{}.shared", vm_id(namespace, id)))
}

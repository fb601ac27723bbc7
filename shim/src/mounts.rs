//! Mount helpers shared by the rooms that bind things into a VM's share.

use std::path::Path;

use tracing::warn;

/// Unmounts everything at or under `path`, innermost first.
pub fn unmount_all(path: &Path) {
    let target = path.to_string_lossy().into_owned();
    if let Err(e) = containerd_shim::mount::umount_recursive(Some(&target), libc::MNT_DETACH) {
        warn!("unmount {target}: {e}");
    }
}

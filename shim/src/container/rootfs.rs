//! The container's root filesystem on the host: containerd's mounts (an
//! overlay from the snapshotter), mounted where the spec's root points, and
//! shared into the guest from there.

use std::path::{Path, PathBuf};

use containerd_shim_protos::api::Mount;

use crate::mounts::unmount_all;

use crate::error::{Result, ShimError};

/// A mounted (or given) rootfs; unmounts what it mounted when dropped.
pub struct Rootfs {
    path: PathBuf,
    mounted: bool,
}

impl Rootfs {
    pub fn mount(target: &Path, mounts: &[Mount]) -> Result<Rootfs> {
        if mounts.is_empty() {
            if !target.is_dir() {
                return Err(ShimError::InvalidArgument(format!(
                    "rootfs {} does not exist, and containerd passed no rootfs mounts",
                    target.display()
                )));
            }
            return Ok(Rootfs {
                path: target.to_path_buf(),
                mounted: false,
            });
        }
        std::fs::create_dir_all(target)
            .map_err(|e| ShimError::Internal(format!("create rootfs {}: {e}", target.display())))?;
        let mut rootfs = Rootfs {
            path: target.to_path_buf(),
            mounted: false,
        };
        for m in mounts {
            containerd_shim::mount::mount_rootfs(Some(&m.type_), Some(&m.source), &m.options, target).map_err(|e| {
                ShimError::InvalidArgument(format!(
                    "mount rootfs ({} {}) on {}: {e}",
                    m.type_,
                    m.source,
                    target.display()
                ))
            })?;
            rootfs.mounted = true;
        }
        Ok(rootfs)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The rootfs's path if this mounted it (its unmount is then ours).
    pub fn mounted(&self) -> Option<&Path> {
        self.mounted.then_some(self.path.as_path())
    }

    pub fn unmount(&mut self) {
        if self.mounted {
            unmount_all(&self.path);
            self.mounted = false;
        }
    }
}

impl Drop for Rootfs {
    fn drop(&mut self) {
        self.unmount();
    }
}

//! The one host directory a VM sees over virtio-fs (tag `shared`). Each
//! container's root filesystem and volumes are bind-mounted under it, so a
//! container created after boot (a pod's) reaches the guest with no new
//! device: the directory is a shared mount, and virtiofsd's copy of it (in
//! its own mount namespace, a slave of ours) receives every new bind.

use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};
use voidbox_api::SHARES_DIR;

use crate::error::{Result, ShimError};
use crate::mounts::unmount_all;
use crate::spec::Propagation;

/// The virtio-fs tag of the shared directory.
pub const SHARED_TAG: &str = "shared";

pub struct SharedDir {
    host: PathBuf,
    mounted: bool,
}

fn io_err(what: &str, path: &Path, e: impl std::fmt::Display) -> ShimError {
    ShimError::Internal(format!("{what} {}: {e}", path.display()))
}

fn bind(source: &Path, target: &Path, flags: MsFlags) -> Result<()> {
    mount(
        Some(source),
        target,
        None::<&str>,
        MsFlags::MS_BIND | flags,
        None::<&str>,
    )
    .map_err(|e| io_err(&format!("bind-mount {} on", source.display()), target, e))
}

fn set_propagation(target: &Path, flags: MsFlags, what: &str) -> Result<()> {
    mount(None::<&str>, target, None::<&str>, flags, None::<&str>)
        .map_err(|e| io_err(&format!("make a {what} mount of"), target, e))
}

/// `<vm>.staging` beside `<vm>.shared`: where a private volume is cut from
/// its source's peer group before it enters the share.
pub fn staging_of(host: &Path) -> PathBuf {
    host.with_extension("staging")
}

impl SharedDir {
    /// `host`, bound onto itself and made a shared mount, and its private
    /// staging directory beside it.
    pub fn create(host: &Path) -> Result<SharedDir> {
        let host = host.to_path_buf();
        std::fs::create_dir_all(&host).map_err(|e| io_err("create", &host, e))?;
        bind(&host, &host, MsFlags::empty())?;
        // Unmounted on drop if what follows fails.
        let dir = SharedDir { host, mounted: true };
        set_propagation(&dir.host, MsFlags::MS_SHARED, "shared")?;
        let staging = staging_of(&dir.host);
        std::fs::create_dir_all(&staging).map_err(|e| io_err("create", &staging, e))?;
        bind(&staging, &staging, MsFlags::empty())?;
        set_propagation(&staging, MsFlags::MS_PRIVATE, "private")?;
        Ok(dir)
    }

    pub fn host_path(&self) -> &Path {
        &self.host
    }

    /// A container's corner of the share: `<shared>/<id>`.
    pub fn container(&self, id: &str) -> Result<ContainerShare> {
        let host = self.host.join(id);
        std::fs::create_dir_all(&host).map_err(|e| io_err("create", &host, e))?;
        Ok(ContainerShare {
            host,
            staging: staging_of(&self.host).join(id),
            rel: id.to_string(),
            binds: 0,
        })
    }

    /// Unmounts everything under the share, then the share.
    pub fn unmount(&mut self) {
        let staging = staging_of(&self.host);
        if self.mounted {
            unmount_all(&self.host);
            unmount_all(&staging);
            self.mounted = false;
        }
        let _ = std::fs::remove_dir_all(&self.host);
        let _ = std::fs::remove_dir_all(&staging);
    }
}

impl Drop for SharedDir {
    fn drop(&mut self) {
        self.unmount();
    }
}

/// What one container put in the share; removed with it.
pub struct ContainerShare {
    host: PathBuf,
    /// The container's corner of the private staging directory.
    staging: PathBuf,
    /// `<id>`, relative to the share.
    rel: String,
    binds: usize,
}

impl ContainerShare {
    /// Binds the container's root filesystem; returns its path in the share.
    pub fn bind_rootfs(&mut self, rootfs: &Path) -> Result<String> {
        let target = self.host.join("rootfs");
        std::fs::create_dir_all(&target).map_err(|e| io_err("create", &target, e))?;
        bind(rootfs, &target, MsFlags::MS_REC)?;
        Ok(format!("{}/rootfs", self.rel))
    }

    /// Binds a host file or directory (a volume), and what is mounted under
    /// it; returns where the guest sees it. With `Private`, what the host
    /// mounts under it later stays out of the guest.
    pub fn bind_volume(&mut self, source: &Path, propagation: Propagation) -> Result<String> {
        let meta = std::fs::metadata(source)
            .map_err(|e| ShimError::InvalidArgument(format!("volume {}: {e}", source.display())))?;
        let dir = self.host.join("volumes");
        std::fs::create_dir_all(&dir).map_err(|e| io_err("create", &dir, e))?;
        let name = self.binds.to_string();
        self.binds += 1;
        let target = dir.join(&name);
        create_like(&target, meta.is_dir())?;
        match propagation {
            // A bind of a shared source joins its peer group, and so does
            // the copy virtiofsd's namespace gets: the host's later mounts
            // reach both.
            Propagation::HostToGuest => bind(source, &target, MsFlags::MS_REC)?,
            // Cut from the source's peer group first, where nothing copies
            // it; then into the share, in a peer group of its own.
            Propagation::Private => {
                let staged = self.staging.join(&name);
                create_like(&staged, meta.is_dir())?;
                bind(source, &staged, MsFlags::MS_REC)?;
                let moved = set_propagation(&staged, MsFlags::MS_PRIVATE | MsFlags::MS_REC, "private")
                    .and_then(|()| bind(&staged, &target, MsFlags::MS_REC));
                unmount_all(&staged);
                let _ = if meta.is_dir() {
                    std::fs::remove_dir(&staged)
                } else {
                    std::fs::remove_file(&staged)
                };
                moved?;
            }
        }
        Ok(format!("{SHARES_DIR}/{SHARED_TAG}/{}/volumes/{name}", self.rel))
    }

    /// Unmounts and removes what the container put in the share.
    pub fn remove(&self) {
        unmount_all(&self.host);
        let _ = std::fs::remove_dir_all(&self.host);
        unmount_all(&self.staging);
        let _ = std::fs::remove_dir_all(&self.staging);
    }
}

/// A mount point for a directory or a file.
fn create_like(target: &Path, dir: bool) -> Result<()> {
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io_err("create", parent, e))?;
    }
    if dir {
        std::fs::create_dir_all(target).map_err(|e| io_err("create", target, e))
    } else {
        std::fs::write(target, b"").map_err(|e| io_err("create", target, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mounted_under(path: &Path) -> usize {
        let p = path.to_string_lossy().into_owned();
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.split_whitespace().nth(4).is_some_and(|m| m.starts_with(&p)))
            .count()
    }

    #[test]
    fn binds_roots_and_volumes_and_leaves_nothing() {
        let state = std::env::temp_dir().join(format!("voidbox-shared-{}", std::process::id()));
        let src = state.join("src");
        std::fs::create_dir_all(src.join("rootfs")).unwrap();
        std::fs::write(src.join("rootfs/hello"), b"hi").unwrap();
        std::fs::write(src.join("hosts"), b"127.0.0.1 localhost\n").unwrap();
        let mut shared = SharedDir::create(&state.join("vm.shared")).unwrap();
        let mut c = shared.container("c1").unwrap();
        assert_eq!(c.bind_rootfs(&src.join("rootfs")).unwrap(), "c1/rootfs");
        let hosts = c.bind_volume(&src.join("hosts"), Propagation::Private).unwrap();
        assert_eq!(hosts, "/run/voidbox/shares/shared/c1/volumes/0");
        let dir = c.bind_volume(&src, Propagation::Private).unwrap();
        assert!(dir.ends_with("/c1/volumes/1"));
        let host = shared.host_path().to_path_buf();
        assert_eq!(std::fs::read(host.join("c1/rootfs/hello")).unwrap(), b"hi");
        assert_eq!(
            std::fs::read(host.join("c1/volumes/0")).unwrap(),
            b"127.0.0.1 localhost\n"
        );
        assert!(c
            .bind_volume(&src.join("missing"), Propagation::Private)
            .unwrap_err()
            .to_string()
            .contains("missing"));
        c.remove();
        assert!(!host.join("c1").exists());
        assert_eq!(mounted_under(&host), 1, "only the share itself");
        assert_eq!(
            mounted_under(&staging_of(&host)),
            1,
            "only the staging directory itself"
        );
        shared.unmount();
        assert_eq!(mounted_under(&host), 0);
        assert_eq!(mounted_under(&staging_of(&host)), 0);
        let _ = std::fs::remove_dir_all(&state);
    }
}

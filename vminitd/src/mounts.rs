//! The guest's filesystems: the early ones PID 1 needs, and mounts the host requests.

use std::path::Path;

use nix::mount::{mount, MsFlags};

use crate::error::Error;

struct EarlyMount {
    fstype: &'static str,
    target: &'static str,
    flags: MsFlags,
    data: Option<&'static str>,
}

const NOSUID_NODEV: MsFlags = MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV);
const NOSUID_NODEV_NOEXEC: MsFlags = NOSUID_NODEV.union(MsFlags::MS_NOEXEC);

/// In mount order: each target's parent is mounted before it.
const EARLY: &[EarlyMount] = &[
    EarlyMount {
        fstype: "proc",
        target: "/proc",
        flags: NOSUID_NODEV_NOEXEC,
        data: None,
    },
    EarlyMount {
        fstype: "sysfs",
        target: "/sys",
        flags: NOSUID_NODEV_NOEXEC,
        data: None,
    },
    EarlyMount {
        fstype: "devtmpfs",
        target: "/dev",
        flags: MsFlags::MS_NOSUID,
        data: Some("mode=0755"),
    },
    EarlyMount {
        fstype: "devpts",
        target: "/dev/pts",
        flags: MsFlags::MS_NOSUID.union(MsFlags::MS_NOEXEC),
        data: Some("newinstance,ptmxmode=0666,mode=0620,gid=5"),
    },
    EarlyMount {
        fstype: "tmpfs",
        target: "/dev/shm",
        flags: NOSUID_NODEV,
        data: Some("mode=1777"),
    },
    EarlyMount {
        fstype: "mqueue",
        target: "/dev/mqueue",
        flags: NOSUID_NODEV_NOEXEC,
        data: None,
    },
    EarlyMount {
        fstype: "tmpfs",
        target: "/run",
        flags: NOSUID_NODEV,
        data: Some("mode=0755"),
    },
    EarlyMount {
        fstype: "tmpfs",
        target: "/tmp",
        flags: NOSUID_NODEV,
        data: Some("mode=1777"),
    },
    // The root is read-only erofs: host-requested mounts go under /mnt or /run.
    EarlyMount {
        fstype: "tmpfs",
        target: "/mnt",
        flags: NOSUID_NODEV,
        data: Some("mode=0755"),
    },
];

/// Mounts proc, sysfs, devtmpfs (with pts, shm, mqueue), /run, /tmp and /mnt.
pub fn mount_early() -> Result<(), Error> {
    for m in EARLY {
        ensure_dir(m.target)?;
        mount(Some(m.fstype), m.target, Some(m.fstype), m.flags, m.data).map_err(|source| Error::Mount {
            fstype: m.fstype.into(),
            target: m.target.into(),
            source,
        })?;
    }
    Ok(())
}

/// Creates a mount point. On a read-only root it must already exist.
pub fn ensure_dir(path: impl AsRef<Path>) -> Result<(), Error> {
    let path = path.as_ref();
    if path.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(path).map_err(|e| Error::io("create mount point", path, e))
}

/// Splits fstab-style options into mount flags and the filesystem's data string.
pub fn parse_options(options: &[String]) -> (MsFlags, String) {
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for opt in options {
        match opt.as_str() {
            "ro" => flags |= MsFlags::MS_RDONLY,
            "rw" => flags &= !MsFlags::MS_RDONLY,
            "nosuid" => flags |= MsFlags::MS_NOSUID,
            "nodev" => flags |= MsFlags::MS_NODEV,
            "noexec" => flags |= MsFlags::MS_NOEXEC,
            "noatime" => flags |= MsFlags::MS_NOATIME,
            "relatime" => flags |= MsFlags::MS_RELATIME,
            "sync" => flags |= MsFlags::MS_SYNCHRONOUS,
            "bind" => flags |= MsFlags::MS_BIND,
            "rbind" => flags |= MsFlags::MS_BIND | MsFlags::MS_REC,
            "defaults" => {}
            other => data.push(other),
        }
    }
    (flags, data.join(","))
}

/// Mounts what the host asked for, creating the target directory.
pub fn mount_requested(fstype: &str, source: &str, target: &str, options: &[String]) -> Result<(), Error> {
    if !target.starts_with('/') {
        return Err(Error::Invalid(format!("mount target {target:?} is not absolute")));
    }
    if fstype.is_empty() {
        return Err(Error::Invalid("mount without a filesystem type".into()));
    }
    ensure_dir(target)?;
    let (flags, data) = parse_options(options);
    let data = (!data.is_empty()).then_some(data.as_str());
    mount(Some(source), target, Some(fstype), flags, data).map_err(|source| Error::Mount {
        fstype: fstype.into(),
        target: target.into(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_split_into_flags_and_data() {
        let opts: Vec<String> = ["ro", "nosuid", "lowerdir=/a", "upperdir=/b"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (flags, data) = parse_options(&opts);
        assert_eq!(flags, MsFlags::MS_RDONLY | MsFlags::MS_NOSUID);
        assert_eq!(data, "lowerdir=/a,upperdir=/b");
    }
}

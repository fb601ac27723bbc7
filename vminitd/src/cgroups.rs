//! A pure cgroup v2 hierarchy with every available controller enabled for children.

use crate::error::Error;
use crate::mounts::ensure_dir;
use nix::mount::{mount, MsFlags};
use tracing::info;

pub const ROOT: &str = "/sys/fs/cgroup";

pub fn setup() -> Result<(), Error> {
    ensure_dir(ROOT)?;
    mount(
        Some("cgroup2"),
        ROOT,
        Some("cgroup2"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("nsdelegate"),
    )
    .map_err(|source| Error::Mount {
        fstype: "cgroup2".into(),
        target: ROOT.into(),
        source,
    })?;

    let controllers_path = format!("{ROOT}/cgroup.controllers");
    let controllers =
        std::fs::read_to_string(&controllers_path).map_err(|e| Error::io("read", &controllers_path, e))?;
    let enable: Vec<String> = controllers.split_whitespace().map(|c| format!("+{c}")).collect();
    let control = format!("{ROOT}/cgroup.subtree_control");
    std::fs::write(&control, enable.join(" ")).map_err(|e| Error::io("write", &control, e))?;
    info!("cgroup2 controllers enabled: {}", controllers.trim());
    Ok(())
}

/// The parent cgroup of every container's (`/containers` in the guest).
pub fn containers_parent() -> std::path::PathBuf {
    std::path::Path::new(ROOT).join(voidbox_api::ids::GUEST_CGROUP_PARENT.trim_start_matches('/'))
}

/// Whether any container's process still runs: one read of the containers'
/// parent cgroup (`populated`), where every container and exec process
/// lives. No such cgroup yet means no container ever ran. When it cannot be
/// told, the answer is yes, the side that costs time rather than data.
pub fn containers_populated() -> bool {
    match std::fs::read_to_string(containers_parent().join("cgroup.events")) {
        Ok(text) => !text.lines().any(|l| l == "populated 0"),
        Err(e) => e.kind() != std::io::ErrorKind::NotFound,
    }
}

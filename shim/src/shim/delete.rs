//! `delete`: containerd cleans up after a shim that is gone (or never came
//! up). Whatever the shim ran died with it; what can remain is the rootfs
//! mount and the VM's state directory.

use std::path::PathBuf;

use containerd_shim::Flags;
use containerd_shim_protos::api::DeleteResponse;
use containerd_shim_protos::protobuf::Message;

use crate::config::HostConfig;
use crate::mounts::unmount_all;
use crate::sandbox::{shared_dir, staging_of, state_dir};
use crate::spec::pod;

pub fn delete(flags: &Flags, host: &HostConfig) -> Result<(), String> {
    let bundle = if flags.bundle.is_empty() {
        std::env::current_dir().map_err(|e| e.to_string())?
    } else {
        PathBuf::from(&flags.bundle)
    };
    let rootfs = bundle.join("rootfs");
    if is_mountpoint(&rootfs) {
        unmount_all(&rootfs);
    }
    let group = pod::group(&flags.id, &pod::annotations(&bundle));
    let shared = shared_dir(&host.state_root, &flags.namespace, &group);
    if group == flags.id {
        // The VM's: its shared directory and state.
        unmount_all(&shared);
        let _ = std::fs::remove_dir_all(&shared);
        unmount_all(&staging_of(&shared));
        let _ = std::fs::remove_dir_all(staging_of(&shared));
        let _ = std::fs::remove_dir_all(state_dir(&host.state_root, &flags.namespace, &flags.id));
    } else {
        // A pod container's corner of the pod's shared directory.
        unmount_all(&shared.join(&flags.id));
        let _ = std::fs::remove_dir_all(shared.join(&flags.id));
    }
    // A server that died (or never served) leaves its socket behind; a
    // pod's shim that still serves keeps it.
    let socket = super::bootstrap::default_socket(flags, host, &group);
    if super::liveness::serves(&socket) {
        // containerd logs what `delete` writes to stderr as a warning.
        eprintln!("{} still answers: kept", socket.display());
    } else {
        let _ = std::fs::remove_file(&socket);
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let resp = DeleteResponse {
        pid: 0,
        // As runc's shim reports a task it had to kill.
        exit_status: 128 + libc::SIGKILL as u32,
        exited_at: Some(
            containerd_shim_protos::protobuf::well_known_types::timestamp::Timestamp {
                seconds: now.as_secs() as i64,
                nanos: now.subsec_nanos() as i32,
                ..Default::default()
            },
        )
        .into(),
        ..Default::default()
    };
    let bytes = resp.write_to_bytes().map_err(|e| e.to_string())?;
    std::io::Write::write_all(&mut std::io::stdout(), &bytes).map_err(|e| e.to_string())
}

fn is_mountpoint(path: &std::path::Path) -> bool {
    let target = path.to_string_lossy();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split_whitespace().nth(4) == Some(&target))
}

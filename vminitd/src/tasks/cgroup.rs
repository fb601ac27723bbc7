//! A container's cgroup in the guest: its files for stats, its pids, and
//! OOM kills as they happen.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::PathBuf;

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::broadcast;
use tracing::{debug, warn};
use voidbox_api::ids::guest_cgroup_path;
use voidbox_api::task::{event, Event, Oom};

/// Files the host turns into containerd's cgroup v2 metrics.
const STAT_FILES: &[&str] = &[
    "cpu.stat",
    "memory.stat",
    "memory.current",
    "memory.max",
    "memory.events",
    "memory.swap.current",
    "memory.swap.max",
    "pids.current",
    "pids.max",
    "io.stat",
];

pub fn dir(id: &str) -> PathBuf {
    PathBuf::from(crate::cgroups::ROOT).join(guest_cgroup_path(id).trim_start_matches('/'))
}

/// The stat files that exist, by name.
pub fn stat_files(id: &str) -> HashMap<String, String> {
    let dir = dir(id);
    STAT_FILES
        .iter()
        .filter_map(|f| Some((f.to_string(), std::fs::read_to_string(dir.join(f)).ok()?)))
        .collect()
}

/// Every pid in the container's cgroup.
pub fn pids(id: &str) -> Vec<u32> {
    std::fs::read_to_string(dir(id).join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// The `oom_kill` count of memory.events.
pub fn oom_kills(id: &str) -> u64 {
    std::fs::read_to_string(dir(id).join("memory.events"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill ")?.trim().parse().ok())
        .unwrap_or(0)
}

/// An Inotify as tokio's AsyncFd wants it.
struct Watch(Inotify);

impl AsRawFd for Watch {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// Publishes an OOM event each time the container's oom_kill count rises.
/// memory.events raises inotify IN_MODIFY when it changes.
pub async fn watch_oom(id: String, events: broadcast::Sender<Event>) {
    let path = dir(&id).join("memory.events");
    let inotify = match Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC) {
        Ok(i) => i,
        Err(e) => return warn!("OOM watch for {id}: inotify: {e}"),
    };
    if let Err(e) = inotify.add_watch(&path, AddWatchFlags::IN_MODIFY) {
        return warn!("OOM watch for {id}: {}: {e}", path.display());
    }
    // SAFETY: Inotify owns its descriptor and keeps it open until dropped,
    // and the AsyncFd owns the Inotify.
    let fd = match unsafe { AsyncFd::register_with_interest(Watch(inotify), Interest::READABLE) } {
        Ok(fd) => fd,
        Err(e) => return warn!("OOM watch for {id}: {e}"),
    };
    let mut seen = oom_kills(&id);
    loop {
        let Ok(mut ready) = fd.readable().await else { return };
        match ready.get_inner().0.read_events() {
            Ok(_) => {}
            Err(nix::Error::EAGAIN) => {
                ready.clear_ready();
                continue;
            }
            Err(e) => return debug!("OOM watch for {id} ends: {e}"),
        }
        let now = oom_kills(&id);
        if now > seen {
            debug!("container {id}: OOM kill ({now} so far)");
            seen = now;
            let _ = events.send(Event {
                id: id.clone(),
                kind: Some(event::Kind::Oom(Oom::default())),
                ..Default::default()
            });
        }
        if !dir(&id).exists() {
            return;
        }
    }
}

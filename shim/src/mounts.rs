//! Mount helpers shared by the rooms that bind things into a VM's share.

use std::path::{Path, PathBuf};

use tracing::warn;

/// Unmounts everything at or under `path`, innermost first.
pub fn unmount_all(path: &Path) {
    let target = path.to_string_lossy().into_owned();
    if let Err(e) = containerd_shim::mount::umount_recursive(Some(&target), libc::MNT_DETACH) {
        warn!("unmount {target}: {e}");
    }
}

/// Writes back the filesystem `path` is on (an overlay: its upper layer's).
/// Best effort: an unmount syncs again anyway.
pub fn sync_filesystem(path: &Path) {
    let synced = std::fs::File::open(path).and_then(|f| nix::unistd::syncfs(&f).map_err(std::io::Error::from));
    if let Err(e) = synced {
        tracing::debug!("syncfs {}: {e}", path.display());
    }
}

/// The mount points strictly under `path`, parents first, as this mount
/// namespace sees them.
pub fn submounts(path: &Path) -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    submounts_in(&info, path)
}

fn submounts_in(mountinfo: &str, path: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape(p)))
        .filter(|p| p != path && p.starts_with(path))
        .collect();
    out.sort_by_key(|p| p.components().count());
    out.dedup();
    out
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .and_then(|o| u8::from_str_radix(std::str::from_utf8(o).ok()?, 8).ok());
        match (bytes[i], octal) {
            (b'\\', Some(b)) => {
                out.push(b);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn submounts_are_those_strictly_under_parents_first() {
        let info = "\
22 1 0:21 / / rw shared:1 - ext4 /dev/vda rw
30 22 0:30 / /data/vol rw shared:5 - tmpfs tmpfs rw
31 30 0:31 / /data/vol/a\\040b/c rw - tmpfs tmpfs rw
32 30 0:32 / /data/vol/a\\040b rw - tmpfs tmpfs rw
33 22 0:33 / /data/volume2 rw - tmpfs tmpfs rw
";
        assert_eq!(
            submounts_in(info, Path::new("/data/vol")),
            [PathBuf::from("/data/vol/a b"), PathBuf::from("/data/vol/a b/c")]
        );
        assert!(submounts_in(info, Path::new("/data/volume2")).is_empty());
    }
}

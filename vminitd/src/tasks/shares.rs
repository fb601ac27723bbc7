//! virtio-fs shares, each mounted once at SHARES_DIR/<tag> the first time a
//! container needs it: a VM's containers all come through one share, their
//! roots and volumes bind-mounted under it on the host.

use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

use tracing::info_span;
use voidbox_api::SHARES_DIR;

use crate::mounts;
use crate::tasks::error::TaskError;

static MOUNTED: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// The guest path of `rel` inside share `tag`, mounting the share if this is
/// its first use.
pub fn resolve(tag: &str, rel: &str) -> Result<PathBuf, TaskError> {
    let plain = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if !plain(tag) || tag == "." || tag == ".." {
        return Err(TaskError::Invalid(format!("share tag {tag:?} is not a plain name")));
    }
    let rel_path = Path::new(rel);
    if !rel_path.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(TaskError::Invalid(format!(
            "path {rel:?} in share {tag} must be relative, without .."
        )));
    }
    let top = Path::new(SHARES_DIR).join(tag);
    let mut mounted = MOUNTED.lock().expect("shares lock");
    let mounted = mounted.get_or_insert_with(HashSet::new);
    if !mounted.contains(tag) {
        let target = top.to_string_lossy().into_owned();
        info_span!("mount.share", tag = %tag, target = %target)
            .in_scope(|| mounts::mount_requested("virtiofs", tag, &target, &[]))?;
        mounted.insert(tag.to_string());
    }
    let path = top.join(rel_path);
    if !path.exists() {
        return Err(TaskError::Invalid(format!("{} is not in share {tag}", rel)));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_paths_that_leave_the_share() {
        for (tag, rel) in [
            ("shared", "../etc"),
            ("shared", "/etc"),
            ("a/b", "x"),
            ("..", "x"),
            ("shared", "a/../../b"),
        ] {
            assert!(resolve(tag, rel).is_err(), "{tag} {rel}");
        }
    }
}

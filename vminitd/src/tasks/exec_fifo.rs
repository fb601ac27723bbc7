//! Starting a created container as `crun start` does, without a crun process.
//!
//! `crun create` leaves the container's init blocked reading a FIFO in
//! crun's state directory (`<root>/<id>/exec.fifo`). `crun start` opens it,
//! unlinks it and writes one byte, and the init goes on to exec the
//! container's process; beside that it only runs the spec's poststart hooks
//! (and waits on a notify socket, which vminitd never gives crun). Under TCG
//! a crun process costs the guest about 15 ms (its exec, and the first
//! translation of its code), so a container whose spec has no poststart
//! hooks is released here, and one with hooks still gets `crun start`
//! (`crun.rs`).

use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The FIFO the created container `id` waits on, under crun's state `root`.
pub fn path(root: &Path, id: &str) -> PathBuf {
    root.join(id).join("exec.fifo")
}

/// Releases the created container `id`: its process starts.
pub fn release(root: &Path, id: &str) -> io::Result<()> {
    let fifo = path(root, id);
    // Non-blocking: with no reader left (the init has exited) the open
    // fails at once (ENXIO), where a blocking one would wait for ever; crun
    // checks the init's pid first instead.
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(&fifo)?;
    // Gone once started: crun's `state` says "created" while it exists.
    std::fs::remove_file(&fifo)?;
    f.write_all(&[0])
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;

    use super::*;

    fn root(name: &str) -> PathBuf {
        let root = std::env::temp_dir().join(format!("vminitd-fifo-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("c1")).unwrap();
        nix::unistd::mkfifo(&path(&root, "c1"), nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        root
    }

    #[test]
    fn releases_the_waiting_init_once() {
        let root = root("once");
        // The init's end, opened as crun create opens it.
        let mut init = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path(&root, "c1"))
            .unwrap();
        release(&root, "c1").unwrap();
        let mut byte = [9u8];
        assert_eq!(init.read(&mut byte).unwrap(), 1);
        assert_eq!(byte, [0]);
        assert!(!path(&root, "c1").exists(), "the FIFO is gone once started");
        let again = release(&root, "c1").unwrap_err();
        assert_eq!(again.raw_os_error(), Some(libc::ENOENT));
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn an_init_that_exited_fails_at_once() {
        let root = root("exited");
        // No reader: the open must fail, not wait for one.
        let err = release(&root, "c1").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENXIO));
        assert!(path(&root, "c1").exists(), "nothing removed");
        std::fs::remove_dir_all(&root).unwrap();
    }
}

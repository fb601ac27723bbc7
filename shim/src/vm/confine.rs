//! Who a VM's processes run as. The guest is untrusted: a VMM it breaks
//! into should hold nothing but its own VM. Processes that need no root run
//! as the unprivileged user `voidbox`, which owns only the VM's state
//! directory; the rest say why they keep root (docs/security.md).

use std::ffi::CString;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use nix::unistd::{Gid, Uid, User};

use super::VmError;

/// The unprivileged user VMMs and their helpers run as.
pub const VMM_USER: &str = "voidbox";

/// How to create [`VMM_USER`], for the error when it is missing.
pub const VMM_USER_FIX: &str =
    "run `make deps` (hack/install-deps.sh), or `useradd --system --no-create-home --shell /usr/sbin/nologin voidbox`";

/// Whose privileges a VM process runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunsAs {
    /// [`VMM_USER`], with no capabilities.
    VmmUser,
    /// root: the process needs it, and confines itself (say how in docs/security.md).
    Root,
}

/// What one process of a running VM is held to: what the confinement test
/// checks in `/proc/<pid>/status`, asked of the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Confinement {
    /// The program, as its command line names it.
    pub program: &'static str,
    pub runs_as: RunsAs,
    /// Whether it runs under a seccomp filter (`Seccomp: 2`).
    pub seccomp: bool,
    /// Whether it runs with fewer capabilities than root's full set.
    pub reduced_caps: bool,
}

/// The resolved [`VMM_USER`]: ids and supplementary groups (the `kvm`
/// group, where an administrator added it for /dev/kvm).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmmUser {
    pub uid: Uid,
    pub gid: Gid,
    groups: Vec<Gid>,
}

impl VmmUser {
    /// The user to drop to, or `None` when the shim does not run as root
    /// (its children then have no privileges to drop). A root shim without
    /// the user refuses to start VMs rather than run them as root.
    pub fn resolve() -> Result<Option<VmmUser>, VmError> {
        if !Uid::effective().is_root() {
            return Ok(None);
        }
        let missing = |reason: String| VmError::VmmUser {
            user: VMM_USER,
            reason,
            fix: VMM_USER_FIX,
        };
        let user = User::from_name(VMM_USER)
            .map_err(|e| missing(format!("looking it up: {e}")))?
            .ok_or_else(|| missing("no such user".into()))?;
        if user.uid.is_root() {
            return Err(missing("it is root".into()));
        }
        let name = CString::new(VMM_USER).expect("no NUL in the user name");
        let groups =
            nix::unistd::getgrouplist(&name, user.gid).map_err(|e| missing(format!("reading its groups: {e}")))?;
        Ok(Some(VmmUser {
            uid: user.uid,
            gid: user.gid,
            groups,
        }))
    }

    /// Makes `cmd`'s child take on this user, with no capabilities and no
    /// way to gain privileges again (no_new_privs), after the hooks added
    /// before (entering a namespace, opening a tap) and before those added
    /// after (PDEATHSIG, which a credential change would clear).
    pub fn drop_in_child(&self, cmd: &mut Command) {
        let (uid, gid) = (self.uid.as_raw(), self.gid.as_raw());
        let groups: Vec<libc::gid_t> = self.groups.iter().map(|g| g.as_raw()).collect();
        // SAFETY: the closure runs in the child between fork and exec and
        // makes only async-signal-safe system calls (setgroups, setresgid,
        // setresuid, prctl) on memory prepared in the parent. The gid is set
        // before the uid, while the child may still change it.
        unsafe {
            cmd.pre_exec(move || {
                let check = |rc: libc::c_int| {
                    if rc == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                };
                check(libc::setgroups(groups.len(), groups.as_ptr()))?;
                check(libc::setresgid(gid, gid, gid))?;
                check(libc::setresuid(uid, uid, uid))?;
                check(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
            });
        }
    }
}

/// Makes `dir` 0700 and, when VMM processes run as `user`, theirs: they
/// create their sockets and the console log there.
pub fn own_dir(dir: &Path, user: Option<&VmmUser>) -> Result<(), VmError> {
    own(dir, 0o700, user, "secure the state directory")
}

/// Makes the unix socket `path` 0600 and, when VMM processes run as `user`,
/// theirs: connecting to a socket takes write permission on it.
pub fn own_socket(path: &Path, user: Option<&VmmUser>) -> Result<(), VmError> {
    own(path, 0o600, user, "secure the socket")
}

fn own(path: &Path, mode: u32, user: Option<&VmmUser>, what: &'static str) -> Result<(), VmError> {
    if let Some(user) = user {
        nix::unistd::chown(path, Some(user.uid), Some(user.gid))
            .map_err(|e| VmError::io(what, path, std::io::Error::from(e)))?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|e| VmError::io(what, path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn a_missing_user_names_the_fix() {
        let err = VmError::VmmUser {
            user: VMM_USER,
            reason: "no such user".into(),
            fix: VMM_USER_FIX,
        };
        let msg = err.to_string();
        assert!(
            msg.contains("voidbox") && msg.contains("make deps") && msg.contains("useradd"),
            "{msg}"
        );
    }

    #[test]
    fn state_directories_and_sockets_are_private() {
        let dir = std::env::temp_dir().join(format!("voidbox-confine-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("s.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let user = VmmUser::resolve().ok().flatten();
        own_dir(&dir, user.as_ref()).unwrap();
        own_socket(&sock, user.as_ref()).unwrap();
        let (d, s) = (std::fs::metadata(&dir).unwrap(), std::fs::metadata(&sock).unwrap());
        assert_eq!(d.mode() & 0o777, 0o700);
        assert_eq!(s.mode() & 0o777, 0o600);
        if let Some(user) = user {
            assert_eq!((d.uid(), s.uid()), (user.uid.as_raw(), user.uid.as_raw()));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! Network namespaces: open one by path, start a child inside it, run a
//! command in it with a time limit.
//!
//! A namespace is entered only by children, between fork and exec, with
//! setns(2) on a descriptor opened beforehand, and by one short-lived thread
//! that makes the port-forward listener (`loopback.rs`): no thread doing the
//! shim's work ever changes namespace.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sched::CloneFlags;
use nix::sys::statfs::{fstatfs, NSFS_MAGIC};

use super::NetError;
use crate::assets::Tool;

/// iproute2's `ip`.
pub const IP: Tool = Tool {
    name: "ip",
    env: "VOIDBOX_IP",
    dirs: &["/usr/sbin", "/sbin", "/usr/bin", "/bin"],
    fix: "install iproute2 (apt-get install iproute2) or set VOIDBOX_IP",
};

/// iproute2's `tc`.
pub const TC: Tool = Tool {
    name: "tc",
    env: "VOIDBOX_TC",
    dirs: &["/usr/sbin", "/sbin", "/usr/bin", "/bin"],
    fix: "install iproute2 (apt-get install iproute2) or set VOIDBOX_TC",
};

/// How long one `ip` or `tc` may take before it is killed. They answer in
/// milliseconds; only a wedged kernel (rtnl lock) makes them wait.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// An open network namespace: its path (for messages) and a descriptor that
/// keeps it alive and lets children enter it.
#[derive(Debug)]
pub struct Netns {
    path: PathBuf,
    fd: OwnedFd,
}

impl Netns {
    /// Opens the namespace at `path`, a bind mount such as
    /// `/var/run/netns/cni-...` or `/proc/<pid>/ns/net`, and checks that it
    /// is one: a file left behind by an unmounted namespace is refused.
    pub fn open(path: &Path) -> Result<Netns, NetError> {
        let file = File::open(path).map_err(|source| NetError::OpenNetns {
            path: path.to_path_buf(),
            source,
        })?;
        let not_netns = |reason: String| NetError::NotNetns {
            path: path.to_path_buf(),
            reason,
        };
        let fs = fstatfs(&file).map_err(|e| not_netns(format!("fstatfs: {e}")))?;
        if fs.filesystem_type() != NSFS_MAGIC {
            return Err(not_netns(format!(
                "a file on a filesystem of type {:#x}, not nsfs",
                fs.filesystem_type().0
            )));
        }
        // SAFETY: NS_GET_NSTYPE takes no argument and only returns the
        // namespace's CLONE_NEW* type; the descriptor is open for the call.
        let kind = unsafe { libc::ioctl(file.as_raw_fd(), libc::NS_GET_NSTYPE) };
        if kind < 0 {
            return Err(not_netns(format!("NS_GET_NSTYPE: {}", std::io::Error::last_os_error())));
        }
        if kind != libc::CLONE_NEWNET {
            return Err(not_netns(format!("a namespace of another type ({kind:#x})")));
        }
        Ok(Netns {
            path: path.to_path_buf(),
            fd: file.into(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The descriptor that keeps the namespace open.
    pub(crate) fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// Makes `cmd`'s child enter this namespace before it execs. The child
    /// holds its own duplicate of the descriptor, closed at exec; other
    /// `pre_exec` hooks (PDEATHSIG) run before or after as they were added.
    pub fn enter_in_child(&self, cmd: &mut Command) -> Result<(), NetError> {
        let fd = self.fd.try_clone().map_err(|source| NetError::OpenNetns {
            path: self.path.clone(),
            source,
        })?;
        // SAFETY: the closure runs in the child between fork and exec. It
        // only makes the setns system call, which is async-signal-safe, and
        // turns an errno into an io::Error, which does not allocate.
        unsafe {
            cmd.pre_exec(move || nix::sched::setns(&fd, CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from));
        }
        Ok(())
    }

    /// Runs `program args...` in this namespace, not through a shell, with
    /// [`COMMAND_TIMEOUT`]; returns its standard output.
    pub fn run(&self, program: &Path, args: &[&str]) -> Result<String, NetError> {
        self.run_with_timeout(program, args, COMMAND_TIMEOUT)
    }

    /// [`Netns::run`] with another limit.
    pub fn run_with_timeout(&self, program: &Path, args: &[&str], timeout: Duration) -> Result<String, NetError> {
        let command = describe(program, args);
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        self.enter_in_child(&mut cmd)?;
        let mut child = cmd.spawn().map_err(|source| NetError::Spawn {
            command: command.clone(),
            netns: self.path.clone(),
            source,
        })?;
        let stdout = drain(child.stdout.take());
        let stderr = drain(child.stderr.take());
        let status = wait_timeout(&mut child, timeout);
        let stdout = join(stdout);
        let stderr = join(stderr);
        match status {
            None => Err(NetError::Timeout {
                command,
                netns: self.path.clone(),
                timeout,
            }),
            Some(status) if status.success() => Ok(stdout),
            Some(status) => Err(NetError::Command {
                command,
                netns: self.path.clone(),
                status: status.to_string(),
                stderr: if stderr.trim().is_empty() { stdout } else { stderr },
            }),
        }
    }

    /// Runs `ip args...` in this namespace.
    pub(crate) fn ip(&self, args: &[&str]) -> Result<String, NetError> {
        self.run(&IP.locate().map_err(NetError::ToolMissing)?, args)
    }

    /// Runs `tc args...` in this namespace.
    pub(crate) fn tc(&self, args: &[&str]) -> Result<String, NetError> {
        self.run(&TC.locate().map_err(NetError::ToolMissing)?, args)
    }

    /// A parse failure of `what`'s output.
    pub(crate) fn parse_error(&self, what: &str, reason: impl Into<String>) -> NetError {
        NetError::Parse {
            command: what.to_string(),
            netns: self.path.clone(),
            reason: reason.into(),
        }
    }
}

/// Makes `cmd`'s child enter the network namespace at `netns` before it
/// execs: for a VMM that opens the pod's tap by name. The namespace is
/// opened and checked now, in the parent.
pub fn enter_in_child(cmd: &mut Command, netns: &Path) -> Result<(), NetError> {
    Netns::open(netns)?.enter_in_child(cmd)
}

/// `ip -j addr show`, as messages quote it.
fn describe(program: &Path, args: &[&str]) -> String {
    let name = program
        .file_name()
        .map_or_else(|| program.display().to_string(), |n| n.to_string_lossy().into());
    std::iter::once(name.as_str())
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Reads a pipe to its end on a thread of its own, so that neither pipe can
/// fill up and block the child while the caller waits with a time limit.
fn drain(pipe: Option<impl Read + Send + 'static>) -> Option<JoinHandle<Vec<u8>>> {
    pipe.map(|mut pipe| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            buf
        })
    })
}

fn join(reader: Option<JoinHandle<Vec<u8>>>) -> String {
    let bytes = reader.and_then(|r| r.join().ok()).unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Waits for `child` up to `timeout`; past it, kills and reaps it and
/// returns `None`.
fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_micros(500);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
            }
            // Out of time, or the child cannot be waited for: make sure it is gone.
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_commands_by_program_name() {
        assert_eq!(
            describe(Path::new("/usr/sbin/tc"), &["qdisc", "add", "dev", "eth0", "ingress"]),
            "tc qdisc add dev eth0 ingress"
        );
    }

    #[test]
    fn a_missing_namespace_is_named() {
        let path = Path::new("/var/run/netns/voidbox-no-such-netns");
        let err = Netns::open(path).unwrap_err();
        assert!(matches!(err, NetError::OpenNetns { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("/var/run/netns/voidbox-no-such-netns"), "{msg}");
        assert!(msg.contains("No such file"), "{msg}");

        let mut cmd = Command::new("true");
        let err = enter_in_child(&mut cmd, path).unwrap_err();
        assert!(err.to_string().contains("voidbox-no-such-netns"), "{err}");
    }

    #[test]
    fn a_plain_file_is_not_a_namespace() {
        // What an unmounted /var/run/netns/<name> looks like: an empty file.
        let path = std::env::temp_dir().join(format!("voidbox-not-netns-{}", std::process::id()));
        std::fs::write(&path, b"").unwrap();
        let err = Netns::open(&path).unwrap_err();
        let _ = std::fs::remove_file(&path);
        assert!(matches!(err, NetError::NotNetns { .. }), "{err:?}");
        assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
    }

    #[test]
    fn another_kind_of_namespace_is_refused() {
        let err = Netns::open(Path::new("/proc/self/ns/mnt")).unwrap_err();
        assert!(err.to_string().contains("another type"), "{err}");
    }

    #[test]
    fn runs_in_the_namespace_and_reports_failures() {
        let ns = Netns::open(Path::new("/proc/self/ns/net")).unwrap();
        let out = ns.run(Path::new("/bin/echo"), &["hello"]).unwrap();
        assert_eq!(out, "hello\n");

        let err = ns
            .run(Path::new("/bin/sh"), &["-c", "echo oops >&2; exit 3"])
            .unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, NetError::Command { .. }), "{err:?}");
        assert!(
            msg.contains("`sh -c echo oops >&2; exit 3`")
                && msg.contains("/proc/self/ns/net")
                && msg.contains("exit status: 3")
                && msg.contains("oops"),
            "{msg}"
        );

        let err = ns.run(Path::new("/nonexistent/voidbox-tool"), &[]).unwrap_err();
        assert!(matches!(err, NetError::Spawn { .. }), "{err:?}");
    }

    #[test]
    fn a_hanging_command_is_killed() {
        let ns = Netns::open(Path::new("/proc/self/ns/net")).unwrap();
        let start = Instant::now();
        let err = ns
            .run_with_timeout(Path::new("/bin/sleep"), &["30"], Duration::from_millis(200))
            .unwrap_err();
        assert!(matches!(err, NetError::Timeout { .. }), "{err:?}");
        assert!(start.elapsed() < Duration::from_secs(5), "{:?}", start.elapsed());
    }
}

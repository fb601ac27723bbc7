//! A `binary://` logging program, started as containerd's runc shim starts
//! it: stdout's pipe on fd 3, stderr's on fd 4, and a readiness pipe on
//! fd 5 that it closes (or writes to) once it is ready; its environment is
//! only `CONTAINER_ID` and `CONTAINER_NAMESPACE`. The shim waits for that
//! signal before the container may start, so no early output is lost.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::process::{Child, Command};
use tracing::{debug, warn};

use super::uri::LoggerCommand;

/// How long a logger may take to say it is ready.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a logger may take to exit after its input closed (containerd
/// gives it 12 s after SIGTERM).
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(12);

#[derive(Debug, thiserror::Error)]
pub enum LoggerError {
    #[error("logging binary {path}: {op}: {source}")]
    Io {
        path: String,
        op: &'static str,
        source: std::io::Error,
    },
    #[error("logging binary {path} did not signal ready within {READY_TIMEOUT:?}")]
    NotReady { path: String },
}

/// A started logging binary.
pub struct Logger {
    pub child: Child,
    pub path: String,
}

/// A pipe whose ends are close-on-exec, as OwnedFds.
fn pipe_pair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(std::io::Error::from)
}

/// A close-on-exec copy of `fd` numbered 10 or above, so that placing the
/// copies on fds 3–5 in the child can never overwrite one not yet placed.
fn high_copy(fd: &OwnedFd) -> std::io::Result<OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: fcntl only reads `fd`, which `OwnedFd` keeps open; the new
    // descriptor it returns is owned by nothing else.
    let new = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 10) };
    if new < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `new` is a fresh descriptor this function owns.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// Starts the logger and waits until it is ready; returns it with the write
/// ends of its stdout and stderr pipes.
pub async fn start(
    cmd: &LoggerCommand,
    container: &str,
    namespace: &str,
) -> Result<(Logger, pipe::Sender, pipe::Sender), LoggerError> {
    let path = cmd.path.display().to_string();
    let io = |op: &'static str| {
        let path = path.clone();
        move |source| LoggerError::Io { path, op, source }
    };
    let (out_r, out_w) = pipe_pair().map_err(io("pipe"))?;
    let (err_r, err_w) = pipe_pair().map_err(io("pipe"))?;
    let (ready_r, ready_w) = pipe_pair().map_err(io("pipe"))?;
    let fds = [
        high_copy(&out_r).map_err(io("dup"))?,
        high_copy(&err_r).map_err(io("dup"))?,
        high_copy(&ready_w).map_err(io("dup"))?,
    ];
    drop((out_r, err_r, ready_w));
    let raw: [RawFd; 3] = [fds[0].as_raw_fd(), fds[1].as_raw_fd(), fds[2].as_raw_fd()];

    let mut command = Command::new(&cmd.path);
    command
        .args(&cmd.args)
        .env_clear()
        .env("CONTAINER_ID", container)
        .env("CONTAINER_NAMESPACE", namespace)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        // A logger whose container never runs (its relays aborted) is killed.
        .kill_on_drop(true);
    // SAFETY: between fork and exec only dup2, which is async-signal-safe;
    // it places the pipes on fds 3, 4 and 5 without close-on-exec. The
    // sources are all ≥ 10, so no placement overwrites another's source.
    unsafe {
        command.pre_exec(move || {
            for (target, fd) in (3..).zip(raw) {
                if libc::dup2(fd, target) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let child = command.spawn().map_err(io("start"))?;
    // Only the child holds the read ends and the readiness writer now.
    drop(fds);

    let mut ready = pipe::Receiver::from_owned_fd(ready_r).map_err(io("readiness pipe"))?;
    let mut byte = [0u8; 1];
    match tokio::time::timeout(READY_TIMEOUT, ready.read(&mut byte)).await {
        // A byte or EOF: ready (or dead, which the relays will find out).
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(io("read readiness")(e)),
        Err(_) => return Err(LoggerError::NotReady { path }),
    }
    let stdout = pipe::Sender::from_owned_fd(out_w).map_err(io("stdout pipe"))?;
    let stderr = pipe::Sender::from_owned_fd(err_w).map_err(io("stderr pipe"))?;
    Ok((Logger { child, path }, stdout, stderr))
}

/// Waits for a logger whose input has closed to exit; one that lingers
/// past EXIT_TIMEOUT is killed.
pub async fn reap(Logger { mut child, path }: Logger) {
    match tokio::time::timeout(EXIT_TIMEOUT, child.wait()).await {
        Ok(Ok(status)) => debug!("logging binary {path} exited: {status}"),
        Ok(Err(e)) => warn!("waiting for logging binary {path}: {e}"),
        Err(_) => {
            warn!("logging binary {path} still running {EXIT_TIMEOUT:?} after its input closed: killing it");
            let _ = child.kill().await;
        }
    }
}

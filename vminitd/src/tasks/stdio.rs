//! A process's stdio, relayed over vsock streams the guest dials to the host.
//!
//! Without a terminal each stream is a pipe: the process writes stdout and
//! stderr, vminitd copies them to their streams, and closes a stream when its
//! pipe reaches EOF (every writer gone), so the host sees EOF after the last
//! byte. stdin runs the other way. With a terminal, crun hands vminitd the
//! pty master over a unix socket, and the master carries both directions.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener as StdUnixListener;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use nix::unistd::pipe2;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::unix::pipe;
use tokio::task::JoinHandle;
use tokio_vsock::{VsockAddr, VsockStream, VMADDR_CID_HOST};
use tracing::debug;
use voidbox_api::task::Stdio as StdioIds;

use crate::tasks::crun::ChildStdio;
use crate::tasks::error::TaskError;

const CONSOLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Dials the host's stdio port and names the stream.
async fn dial(id: u64) -> Result<VsockStream, TaskError> {
    let mut stream = VsockStream::connect(VsockAddr::new(VMADDR_CID_HOST, voidbox_api::STDIO_PORT))
        .await
        .map_err(|e| TaskError::Stdio(format!("dialing the host for stream {id}: {e}")))?;
    stream
        .write_all(&id.to_le_bytes())
        .await
        .map_err(|e| TaskError::Stdio(format!("naming stream {id}: {e}")))?;
    Ok(stream)
}

async fn dial_opt(id: u64) -> Result<Option<VsockStream>, TaskError> {
    if id == 0 {
        Ok(None)
    } else {
        dial(id).await.map(Some)
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd), TaskError> {
    pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| TaskError::Stdio(format!("pipe: {e}")))
}

/// The streams of one process, connected, before crun runs.
pub struct Streams {
    stdin: Option<VsockStream>,
    stdout: Option<VsockStream>,
    stderr: Option<VsockStream>,
    pub terminal: bool,
}

impl Streams {
    pub async fn connect(ids: &StdioIds) -> Result<Self, TaskError> {
        Ok(Streams {
            stdin: dial_opt(ids.stdin).await?,
            stdout: dial_opt(ids.stdout).await?,
            stderr: dial_opt(ids.stderr).await?,
            terminal: ids.terminal,
        })
    }

    /// Without a terminal: pipes for crun to hand to the process, with the
    /// relays between them and the streams already running.
    pub fn into_pipes(self) -> Result<(ChildStdio, Vec<JoinHandle<()>>), TaskError> {
        let mut relays = Vec::new();
        let stdin = match self.stdin {
            Some(mut stream) => {
                let (r, w) = pipe()?;
                let mut w = pipe::Sender::from_owned_fd(w).map_err(|e| TaskError::Stdio(format!("stdin pipe: {e}")))?;
                relays.push(tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut stream, &mut w).await;
                    // Dropping w closes the pipe: the process reads EOF.
                }));
                Stdio::from(r)
            }
            None => Stdio::null(),
        };
        let mut output = |stream: Option<VsockStream>| -> Result<Stdio, TaskError> {
            let Some(mut stream) = stream else {
                return Ok(Stdio::null());
            };
            let (r, w) = pipe()?;
            let mut r = pipe::Receiver::from_owned_fd(r).map_err(|e| TaskError::Stdio(format!("output pipe: {e}")))?;
            relays.push(tokio::spawn(async move {
                if let Err(e) = tokio::io::copy(&mut r, &mut stream).await {
                    debug!("output relay ended: {e}");
                }
                let _ = stream.shutdown(std::net::Shutdown::Both);
            }));
            Ok(Stdio::from(w))
        };
        let stdout = output(self.stdout)?;
        let stderr = output(self.stderr)?;
        Ok((ChildStdio { stdin, stdout, stderr }, relays))
    }

    /// With a terminal: relays between the pty master and the streams.
    /// Returns a descriptor of the master, kept for resizing.
    pub fn attach_pty(self, master: OwnedFd) -> Result<(OwnedFd, Vec<JoinHandle<()>>), TaskError> {
        let dup = |fd: &OwnedFd| {
            fd.try_clone()
                .map_err(|e| TaskError::Stdio(format!("dup pty master: {e}")))
        };
        let keep = dup(&master)?;
        let mut relays = Vec::new();
        if let Some(mut stream) = self.stdin {
            let mut w = tokio::fs::File::from_std(std::fs::File::from(dup(&master)?));
            relays.push(tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 || w.write_all(&buf[..n]).await.is_err() || w.flush().await.is_err() {
                        break;
                    }
                }
            }));
        }
        if let Some(mut stream) = self.stdout {
            let mut r = tokio::fs::File::from_std(std::fs::File::from(master));
            relays.push(tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                // A pty master reads EIO once every slave descriptor is closed.
                while let Ok(n) = r.read(&mut buf).await {
                    if n == 0 || stream.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                let _ = stream.shutdown(std::net::Shutdown::Both);
            }));
        }
        Ok((keep, relays))
    }
}

/// The unix socket crun sends a pty master to (`--console-socket`).
pub struct ConsoleSocket {
    listener: StdUnixListener,
}

impl ConsoleSocket {
    pub fn bind(path: &Path) -> Result<Self, TaskError> {
        let _ = std::fs::remove_file(path);
        let listener = StdUnixListener::bind(path).map_err(|e| TaskError::io("bind console socket", path, e))?;
        Ok(ConsoleSocket { listener })
    }

    /// Receives the master crun sent. Dropping the future gives up on it.
    pub async fn receive(self) -> Result<OwnedFd, TaskError> {
        let fail = |e: io::Error| TaskError::Stdio(format!("receiving the pty master: {e}"));
        self.listener.set_nonblocking(true).map_err(fail)?;
        let listener = tokio::net::UnixListener::from_std(self.listener).map_err(fail)?;
        let receive = async {
            let (conn, _) = listener.accept().await?;
            loop {
                conn.readable().await?;
                match conn.try_io(Interest::READABLE, || recv_fd(conn.as_raw_fd())) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    other => return other,
                }
            }
        };
        match tokio::time::timeout(CONSOLE_TIMEOUT, receive).await {
            Ok(result) => result.map_err(fail),
            Err(_) => Err(TaskError::Stdio("crun sent no pty master".into())),
        }
    }
}

/// One descriptor passed with SCM_RIGHTS.
fn recv_fd(sock: RawFd) -> io::Result<OwnedFd> {
    let mut buf = [0u8; 256];
    let mut iov = [io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(sock, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)?;
    for cmsg in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            if let Some(&fd) = fds.first() {
                // SAFETY: SCM_RIGHTS just installed this descriptor in our
                // table; nothing else owns it.
                return Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) });
            }
        }
    }
    Err(io::Error::other("no descriptor in crun's console message"))
}

/// Sets the window size of a pty.
pub fn resize(master: &OwnedFd, width: u32, height: u32) -> Result<(), TaskError> {
    let ws = libc::winsize {
        ws_row: height as u16,
        ws_col: width as u16,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize, which lives on our stack.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) } < 0 {
        return Err(TaskError::Stdio(format!("resize pty: {}", io::Error::last_os_error())));
    }
    Ok(())
}

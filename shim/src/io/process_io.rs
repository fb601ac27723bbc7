//! Relays between the stdio containerd asked for and the guest's streams.
//!
//! Output goes to a FIFO, a file (appended) or a logging binary's pipes
//! (see `uri`); stdin comes from a FIFO. Bytes are copied as they come,
//! with no buffering beyond one read, so a slow reader on either side slows
//! the writer on the other (backpressure). EOF travels with the data: the
//! guest closes an output stream after its last byte, and the relay closes
//! its destination after writing everything. `drained` resolves once every
//! output relay has finished, which is what Wait waits for before it
//! answers.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::net::UnixStream;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tracing::debug;
use voidbox_api::task::Stdio as StdioIds;

use super::logger::{self, Logger};
use super::uri::{self, Destination, UriError};
use super::StreamMux;

/// The stdio containerd asked for: destinations (empty: none, see `uri`)
/// and a terminal flag.
#[derive(Debug, Clone, Default)]
pub struct IoPaths {
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub terminal: bool,
}

/// Whose output it is: a logging binary is told.
pub struct Owner<'a> {
    pub container: &'a str,
    pub namespace: &'a str,
}

#[derive(Debug, thiserror::Error)]
pub enum IoError {
    #[error(transparent)]
    Uri(#[from] UriError),
    #[error(transparent)]
    Logger(#[from] logger::LoggerError),
    #[error("log file {path}: {source}")]
    File { path: PathBuf, source: std::io::Error },
}

/// Where one output stream's bytes go.
enum Sink {
    /// Opened when the stream arrives: opening blocks until a reader opens it.
    Fifo(PathBuf),
    File(std::fs::File),
    Pipe(pipe::Sender),
}

pub struct ProcessIo {
    close_stdin: Mutex<Option<oneshot::Sender<()>>>,
    /// How many output relays have finished, and how many there are.
    done: watch::Receiver<usize>,
    outputs: usize,
    relays: Vec<JoinHandle<()>>,
    ids: Vec<u64>,
}

/// Opens a FIFO in a blocking thread: opening blocks until the other side
/// opens. Dropped before that (stdin closed, the process gone, the runtime
/// shutting down), it releases the thread: otherwise the thread stays in
/// open() for a peer that never comes (ctr opens stdin only to write to it),
/// and the shim's exit waits a second for it.
async fn open_fifo(path: PathBuf, write: bool) -> std::io::Result<std::fs::File> {
    let opened = Arc::new(AtomicBool::new(false));
    let mut release = ReleaseOpen(Some((path.clone(), write, opened.clone())));
    let file = tokio::task::spawn_blocking(move || {
        let file = std::fs::OpenOptions::new().read(!write).write(write).open(&path);
        opened.store(true, Ordering::SeqCst);
        file
    })
    .await
    .map_err(std::io::Error::other)?;
    release.0 = None;
    file
}

/// Completes a blocked open of a FIFO by opening, without blocking, the
/// other end and closing it at once: a writer's open succeeds while a
/// reader waits, and a reader's always. The waiting side then finds EOF or
/// a closed pipe, and its thread ends. The thread may not have reached
/// open() yet, so this tries until it has, for a while, on a thread of its
/// own (one the runtime's shutdown does not wait for).
struct ReleaseOpen(Option<(PathBuf, bool, Arc<AtomicBool>)>);

impl Drop for ReleaseOpen {
    fn drop(&mut self) {
        use std::os::unix::fs::OpenOptionsExt;
        let Some((path, write, opened)) = self.0.take() else {
            return;
        };
        std::thread::spawn(move || {
            for _ in 0..100 {
                if opened.load(Ordering::SeqCst) {
                    return;
                }
                let _ = std::fs::OpenOptions::new()
                    .read(write)
                    .write(!write)
                    .custom_flags(libc::O_NONBLOCK)
                    .open(&path);
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        });
    }
}

/// Opens a log file for appending, creating it and its directory, as
/// containerd's runc shim does.
fn open_log_file(path: &Path) -> Result<std::fs::File, IoError> {
    let file = |source| IoError::File {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(file)?;
    }
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .map_err(file)
}

/// The sinks for stdout and stderr (`None`: not wanted), and the logging
/// binary if one takes them.
async fn output_sinks(
    paths: &IoPaths,
    owner: &Owner<'_>,
) -> Result<(Option<Sink>, Option<Sink>, Option<Logger>), IoError> {
    // A terminal has one output stream: stderr is merged into it.
    let stderr = if paths.terminal { "" } else { paths.stderr.as_str() };
    let (out, err) = (uri::output(&paths.stdout)?, uri::output(stderr)?);
    let logger_cmd = match (&out, &err) {
        (Some(Destination::Binary(a)), Some(Destination::Binary(b))) if a == b => Some(a.clone()),
        (Some(Destination::Binary(a)), None) | (None, Some(Destination::Binary(a))) => Some(a.clone()),
        (Some(Destination::Binary(_)), _) | (_, Some(Destination::Binary(_))) => {
            return Err(UriError::SplitBinary {
                stdout: paths.stdout.clone(),
                stderr: paths.stderr.clone(),
            }
            .into())
        }
        _ => None,
    };
    if let Some(cmd) = logger_cmd {
        let (logger, stdout, stderr) = logger::start(&cmd, owner.container, owner.namespace).await?;
        // A pipe the container does not write to closes here: the logger
        // sees its EOF at once.
        let stdout = out.is_some().then_some(Sink::Pipe(stdout));
        let stderr = err.is_some().then_some(Sink::Pipe(stderr));
        return Ok((stdout, stderr, Some(logger)));
    }
    let sink = |d: Option<Destination>| -> Result<Option<Sink>, IoError> {
        Ok(match d {
            None => None,
            Some(Destination::Fifo(p)) => Some(Sink::Fifo(p)),
            Some(Destination::File(p)) => Some(Sink::File(open_log_file(&p)?)),
            Some(Destination::Binary(_)) => unreachable!("handled above"),
        })
    };
    Ok((sink(out)?, sink(err)?, None))
}

impl ProcessIo {
    /// Opens the destinations (starting a logging binary if asked), then
    /// allocates a stream per wanted one and starts the relays; the
    /// returned ids go to the guest, which connects the streams.
    pub async fn start(mux: &StreamMux, paths: &IoPaths, owner: Owner<'_>) -> Result<(StdioIds, ProcessIo), IoError> {
        let stdin = uri::input(&paths.stdin)?;
        let (stdout, stderr, logger) = output_sinks(paths, &owner).await?;
        let (done_tx, done) = watch::channel(0usize);
        let mut io = ProcessIo {
            close_stdin: Mutex::new(None),
            done,
            outputs: 0,
            relays: Vec::new(),
            ids: Vec::new(),
        };
        let mut ids = StdioIds {
            terminal: paths.terminal,
            ..Default::default()
        };

        if let Some(fifo) = stdin {
            let (id, stream) = mux.allocate();
            let (close_tx, close_rx) = oneshot::channel();
            *io.close_stdin.lock().expect("stdin lock") = Some(close_tx);
            io.relays.push(tokio::spawn(relay_stdin(fifo, stream, close_rx)));
            io.ids.push(id);
            ids.stdin = id;
        }
        for (sink, slot) in [(stdout, &mut ids.stdout), (stderr, &mut ids.stderr)] {
            let Some(sink) = sink else { continue };
            let (id, stream) = mux.allocate();
            let tx = done_tx.clone();
            io.relays.push(tokio::spawn(async move {
                relay_output(sink, stream).await;
                tx.send_modify(|n| *n += 1);
            }));
            io.ids.push(id);
            io.outputs += 1;
            *slot = id;
        }
        if let Some(logger) = logger {
            // Once the output is in, the logger sees EOF and should exit;
            // aborting this task kills it (kill_on_drop).
            let (mut done, outputs) = (io.done.clone(), io.outputs);
            io.relays.push(tokio::spawn(async move {
                let _ = done.wait_for(|n| *n >= outputs).await;
                logger::reap(logger).await;
            }));
        }
        Ok((ids, io))
    }

    /// Closes the process's stdin after what is already readable from the FIFO.
    pub fn close_stdin(&self) {
        if let Some(tx) = self.close_stdin.lock().expect("stdin lock").take() {
            let _ = tx.send(());
        }
    }

    /// Resolves when every output relay has written its last byte and closed
    /// its destination (or was aborted).
    pub async fn drained(&self) {
        let mut rx = self.done.clone();
        let _ = rx.wait_for(|n| *n >= self.outputs).await;
    }

    /// Stops every relay (the process will never run) and forgets its streams.
    pub fn abort(&self, mux: &StreamMux) {
        for r in &self.relays {
            r.abort();
        }
        for id in &self.ids {
            mux.cancel(*id);
        }
    }
}

async fn relay_output(sink: Sink, stream: oneshot::Receiver<UnixStream>) {
    let Ok(mut stream) = stream.await else { return };
    let (mut out, name): (Box<dyn AsyncWrite + Send + Unpin>, String) = match sink {
        Sink::Fifo(path) => {
            let name = path.display().to_string();
            match open_fifo(path, true).await.and_then(pipe::Sender::from_file) {
                Ok(p) => (Box::new(p), name),
                Err(e) => return debug!("open {name}: {e}"),
            }
        }
        Sink::File(f) => (Box::new(tokio::fs::File::from_std(f)), "log file".into()),
        Sink::Pipe(p) => (Box::new(p), "logging binary".into()),
    };
    // A file's writes finish in the background: flush before closing it.
    if let Err(e) = tokio::io::copy(&mut stream, &mut out).await.and(out.flush().await) {
        debug!("relay to {name}: {e}");
    }
}

async fn relay_stdin(fifo: PathBuf, stream: oneshot::Receiver<UnixStream>, mut close: oneshot::Receiver<()>) {
    let Ok(mut stream) = stream.await else { return };
    let file = tokio::select! {
        f = open_fifo(fifo.clone(), false) => f,
        _ = &mut close => return,
    };
    let mut input = match file.and_then(pipe::Receiver::from_file) {
        Ok(p) => p,
        Err(e) => return debug!("open {}: {e}", fifo.display()),
    };
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        tokio::select! {
            read = input.read(&mut buf) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => if stream.write_all(&buf[..n]).await.is_err() { return },
            },
            _ = &mut close => {
                // Forward what the writer already put in the FIFO, then stop.
                while let Ok(n) = input.try_read(&mut buf) {
                    if n == 0 || stream.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                break;
            }
        }
    }
    let _ = stream.shutdown().await;
}

#[cfg(test)]
#[path = "process_io_tests.rs"]
mod tests;

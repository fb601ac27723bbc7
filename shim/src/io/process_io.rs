//! Relays between containerd's stdio FIFOs and the guest's streams.
//!
//! Bytes are copied as they come, with no buffering beyond one read, so a
//! slow reader on either side slows the writer on the other (backpressure).
//! EOF travels with the data: the guest closes an output stream after its
//! last byte, and the relay closes the FIFO after writing everything.
//! `drained` resolves once every output relay has finished, which is what
//! Wait waits for before it answers.

use std::path::PathBuf;
use std::sync::Mutex;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::net::UnixStream;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tracing::debug;
use voidbox_api::task::Stdio as StdioIds;

use super::StreamMux;

/// The stdio containerd asked for: FIFO paths (empty: none) and a terminal flag.
#[derive(Debug, Clone, Default)]
pub struct IoPaths {
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub terminal: bool,
}

pub struct ProcessIo {
    close_stdin: Mutex<Option<oneshot::Sender<()>>>,
    /// How many output relays have finished, and how many there are.
    done: watch::Receiver<usize>,
    outputs: usize,
    relays: Vec<JoinHandle<()>>,
    ids: Vec<u64>,
}

/// Opens a FIFO in a blocking thread: opening blocks until the other side opens.
async fn open_fifo(path: PathBuf, write: bool) -> std::io::Result<std::fs::File> {
    tokio::task::spawn_blocking(move || std::fs::OpenOptions::new().read(!write).write(write).open(&path))
        .await
        .map_err(std::io::Error::other)?
}

impl ProcessIo {
    /// Allocates a stream per non-empty path and starts the relays; the
    /// returned ids go to the guest, which connects the streams.
    pub fn start(mux: &StreamMux, paths: &IoPaths) -> Result<(StdioIds, ProcessIo), String> {
        for p in [&paths.stdin, &paths.stdout, &paths.stderr] {
            if p.contains("://") && !p.starts_with("fifo://") {
                return Err(format!("stdio {p}: only FIFO paths are supported"));
            }
        }
        let path = |p: &str| PathBuf::from(p.trim_start_matches("fifo://"));
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

        if !paths.stdin.is_empty() {
            let (id, stream) = mux.allocate();
            let (close_tx, close_rx) = oneshot::channel();
            *io.close_stdin.lock().expect("stdin lock") = Some(close_tx);
            io.relays
                .push(tokio::spawn(relay_stdin(path(&paths.stdin), stream, close_rx)));
            io.ids.push(id);
            ids.stdin = id;
        }
        // A terminal has one output stream: stderr is merged into it.
        let stderr = if paths.terminal { "" } else { paths.stderr.as_str() };
        for (p, slot) in [(paths.stdout.as_str(), &mut ids.stdout), (stderr, &mut ids.stderr)] {
            if p.is_empty() {
                continue;
            }
            let (id, stream) = mux.allocate();
            let tx = done_tx.clone();
            let fifo = path(p);
            io.relays.push(tokio::spawn(async move {
                relay_output(fifo, stream).await;
                tx.send_modify(|n| *n += 1);
            }));
            io.ids.push(id);
            io.outputs += 1;
            *slot = id;
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
    /// its FIFO (or was aborted).
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

async fn relay_output(fifo: PathBuf, stream: oneshot::Receiver<UnixStream>) {
    let Ok(mut stream) = stream.await else { return };
    let file = match open_fifo(fifo.clone(), true).await {
        Ok(f) => f,
        Err(e) => return debug!("open {}: {e}", fifo.display()),
    };
    let mut out = match pipe::Sender::from_file(file) {
        Ok(p) => p,
        Err(e) => return debug!("{}: {e}", fifo.display()),
    };
    if let Err(e) = tokio::io::copy(&mut stream, &mut out).await {
        debug!("relay to {}: {e}", fifo.display());
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

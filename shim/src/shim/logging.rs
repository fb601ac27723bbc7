//! The shim server logs to the `log` FIFO in its bundle, which containerd
//! reads and copies into its own log.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Mutex;

/// Where log lines go: the bundle's `log` FIFO, or stderr without one.
pub enum LogSink {
    Fifo(Mutex<File>),
    Stderr,
}

/// The bundle's `log` FIFO (in the working directory), opened for writing.
pub fn open_fifo() -> Option<File> {
    // O_NONBLOCK so that a FIFO with no reader fails instead of hanging;
    // the writes themselves then block as usual.
    let file = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open("log")
        .ok()?;
    let _ = nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty()));
    Some(file)
}

pub fn open() -> LogSink {
    match open_fifo() {
        Some(file) => LogSink::Fifo(Mutex::new(file)),
        None => LogSink::Stderr,
    }
}

impl std::io::Write for &LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            LogSink::Fifo(f) => f.lock().expect("log lock").write(buf),
            LogSink::Stderr => std::io::stderr().write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            LogSink::Fifo(f) => f.lock().expect("log lock").flush(),
            LogSink::Stderr => std::io::stderr().flush(),
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogSink {
    type Writer = &'a LogSink;
    fn make_writer(&'a self) -> Self::Writer {
        self
    }
}

//! Stdio between what containerd asked for (FIFOs, log files, logging
//! binaries) and the guest's vsock streams.

mod logger;
mod process_io;
mod streams;
mod uri;

pub use process_io::{IoError, IoPaths, Owner, ProcessIo};
pub use streams::StreamMux;

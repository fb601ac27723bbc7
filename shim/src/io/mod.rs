//! Stdio between containerd's FIFOs and the guest's vsock streams.

mod fifo;
mod streams;

pub use fifo::{IoPaths, ProcessIo};
pub use streams::StreamMux;

//! The shim server logs to the `log` FIFO in its bundle, which containerd
//! reads and copies into its own log.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Mutex;

use tracing_subscriber::EnvFilter;

pub fn init(debug: bool) {
    let level = if debug { "debug" } else { "info" };
    let filter = EnvFilter::try_from_env("VOIDBOX_LOG").unwrap_or_else(|_| EnvFilter::new(level));
    // O_NONBLOCK so that a FIFO with no reader fails instead of hanging;
    // the writes themselves then block as usual.
    let fifo = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open("log");
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(false);
    match fifo {
        Ok(file) => {
            let _ = nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty()));
            builder.with_writer(Mutex::new(file)).init();
        }
        Err(_) => builder.with_writer(std::io::stderr).init(),
    }
}

//! Logging to the guest console, which the host captures to a file.

use std::fs::OpenOptions;
use std::os::fd::AsRawFd;

use tracing_subscriber::fmt::time::FormatTime;

/// Timestamps log lines with guest uptime, like the kernel's own messages.
struct Uptime;

impl FormatTime for Uptime {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        let ns = crate::boot::since_kernel_start_ns();
        write!(w, "[{:5}.{:06}]", ns / 1_000_000_000, (ns % 1_000_000_000) / 1000)
    }
}

/// Log lines on the console, at `level` and above.
pub fn layer<S>(level: tracing::Level) -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    use tracing_subscriber::Layer;
    tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_timer(Uptime)
        .with_ansi(false)
        .with_target(false)
        .with_filter(tracing_subscriber::filter::LevelFilter::from_level(level))
}

/// The kernel opens /dev/console as fd 0-2 for init when it can. If it could
/// not (no /dev/console at that moment), do it now that devtmpfs is mounted.
pub fn reopen_stdio() {
    if nix::fcntl::fcntl(std::io::stderr(), nix::fcntl::FcntlArg::F_GETFD).is_ok() {
        return;
    }
    if let Ok(console) = OpenOptions::new().read(true).write(true).open("/dev/console") {
        for fd in 0..3 {
            // SAFETY: dup2 onto the standard descriptors, which are unused here.
            unsafe { libc::dup2(console.as_raw_fd(), fd) };
        }
    }
}

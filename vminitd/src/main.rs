//! vminitd: PID 1 of a voidbox micro-VM.
//!
//! It prepares the guest (filesystems, cgroup2, loopback, console logging,
//! child reaping), then dials the host over vsock and serves TTRPC on that
//! connection until the host asks it to power off.

mod boot;
mod cgroups;
mod cmdline;
mod console;
mod error;
mod mounts;
mod network;
mod page_reporting;
mod power;
mod reaper;
mod services;
mod tasks;
mod telemetry;
#[cfg(feature = "debug-rpcs")]
mod test_clock;
#[cfg(feature = "debug-rpcs")]
mod test_delay;
mod trace;
mod vsock;

use std::sync::Arc;

use boot::BootClock;
use tracing::{error, info};

fn main() {
    // First thing: when did userspace start, on the kernel's clock.
    let clock = Arc::new(BootClock::at_init_start());
    if std::process::id() != 1 {
        eprintln!("vminitd must run as PID 1 (it is {})", std::process::id());
        std::process::exit(1);
    }
    // The command line is in /proc: mount first, log after.
    if let Err(e) = clock.step("guest.mounts", mounts::mount_early) {
        eprintln!("vminitd: {e}");
        power::halt_now();
    }
    console::reopen_stdio();
    let cmdline = cmdline::Cmdline::read();
    // A test image's deliberately wrong clock, before any span is timed.
    #[cfg(feature = "debug-rpcs")]
    test_clock::apply(&cmdline);
    let spans = clock.step("guest.tracing", || trace::init(&cmdline));
    page_reporting::apply(&cmdline);

    if let Err(e) = setup(&clock) {
        error!("guest setup failed: {e}");
        power::halt_now();
    }

    let runtime = match clock.step("guest.runtime", || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
    }) {
        Ok(rt) => rt,
        Err(e) => {
            error!("cannot start the async runtime: {e}");
            power::halt_now();
        }
    };
    runtime.block_on(serve(clock, cmdline, spans));
    // serve only returns when the guest is powering off.
    power::halt_now();
}

/// Synchronous PID 1 duties that must finish before anything else runs.
fn setup(clock: &BootClock) -> Result<(), error::Error> {
    clock.step("guest.cgroups", cgroups::setup)?;
    clock.step("guest.network", network::loopback_up)?;
    Ok(())
}

async fn serve(clock: Arc<BootClock>, cmdline: cmdline::Cmdline, spans: Option<Arc<trace::SpanBuffer>>) {
    let begun = boot::since_kernel_start_ns();
    let reaper = reaper::Reaper::start();
    let port = cmdline.ttrpc_port();
    let (power_tx, mut power_rx) = tokio::sync::mpsc::channel::<()>(1);
    let (closing_tx, closing) = tokio::sync::watch::channel(false);

    let ready_clock = clock.clone();
    let on_connect = Arc::new(move || ready_clock.mark_ready());
    let boot_spans = trace::BootSpans::new(clock.clone());
    let telemetry_streams = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let system = services::system::SystemService::new(clock.clone(), cmdline, power_tx, telemetry_streams.clone());
    let telemetry = telemetry::TelemetryService {
        streams: telemetry_streams,
    };
    let tasks = tasks::TaskService::new(reaper);
    let traces = trace::TraceService::new(spans, boot_spans, closing);
    let server = ttrpc::r#async::Server::new()
        .add_listener(vsock::dial_listener(port, on_connect))
        .register_service(voidbox_api::system_ttrpc::create_system(Arc::new(system)))
        .register_service(voidbox_api::task_ttrpc::create_tasks(Arc::new(tasks)))
        .register_service(voidbox_api::traces_ttrpc::create_traces(Arc::new(traces)))
        .register_service(voidbox_api::telemetry_ttrpc::create_telemetry(Arc::new(telemetry)));
    let mut server = services::with_debug(server);
    if let Err(e) = server.start().await {
        error!("cannot start the TTRPC server: {e}");
        return;
    }
    clock.step_since("guest.services", begun);
    clock.mark_serving();
    info!(
        "vminitd {} serving TTRPC to host port {port}",
        env!("CARGO_PKG_VERSION")
    );

    // Wait for a power-off request; let span streams drain, stop serving, power off.
    let _ = power_rx.recv().await;
    let _ = closing_tx.send(true);
    let _ = tokio::time::timeout(power::RPC_DRAIN, server.shutdown()).await;
    power::poweroff().await;
}

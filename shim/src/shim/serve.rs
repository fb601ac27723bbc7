//! The shim server: containerd's task API, v2 and v3, on the socket `start`
//! bound, until containerd shuts the shim down.

use std::collections::HashMap;
use std::sync::Arc;

use containerd_shim::Flags;
use containerd_shim_protos::shim_async::create_task;
use tokio::signal::unix::{signal, SignalKind};
use tracing::{error, info};
use ttrpc::r#async::{Server, Service};

use super::bootstrap::LISTENER_FD;
use super::logging;
use crate::config::HostConfig;
use crate::otel::Identity;
use crate::otel::Telemetry;
use crate::sandbox::{vm_id, Observability};
use crate::task::events::Containerd;
use crate::task::TaskService;

const TASK_V3: &str = "containerd.task.v3.Task";
const TASK_V2: &str = "containerd.task.v2.Task";

/// The same handlers under both service names: v3 is a renamed copy of v2,
/// message for message, so one implementation serves containerd 1.6 to 2.x.
pub fn task_services(service: Arc<TaskService>) -> HashMap<String, Service> {
    let mut services = create_task(service.clone());
    let mut v2 = create_task(service);
    let handlers = v2.remove(TASK_V3).expect("create_task registers the v3 service");
    services.insert(TASK_V2.to_string(), handlers);
    services
}

pub fn serve(flags: &Flags, host: HostConfig) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("start the async runtime: {e}"))?;
    let identity = Identity {
        container_id: flags.id.clone(),
        namespace: flags.namespace.clone(),
        vm_id: vm_id(&flags.namespace, &flags.id),
    };
    // The batch exporters run on the runtime: install inside it.
    let telemetry =
        runtime.block_on(async { Telemetry::install(logging::open(), flags.debug, &identity, host.otel.clone()) })?;
    let telemetry = Arc::new(telemetry);
    let result = runtime.block_on(run(flags, host, telemetry.clone()));
    if let Err(e) = &result {
        error!("shim server: {e}");
    }
    // Flush what is queued, within a bound, before leaving.
    tracing::debug!("flushing telemetry");
    let t = telemetry.clone();
    let _ = runtime.block_on(runtime.spawn_blocking(move || t.shutdown()));
    // Leave rather than wait for blocked stdio threads (FIFOs nobody opens).
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    result
}

async fn run(flags: &Flags, host: HostConfig, telemetry: Arc<Telemetry>) -> Result<(), String> {
    let ttrpc_address = host.ttrpc_address.clone().ok_or("TTRPC_ADDRESS is not set")?;
    let events = Containerd::connect(&ttrpc_address, &flags.namespace).await?;
    let cfg = &telemetry.config;
    let obs = Observability {
        spans: telemetry.guest_sink(),
        guest_buffer: cfg.guest_buffer,
        telemetry: telemetry.metrics().then_some(cfg.sample_interval),
        relay: Default::default(),
        export: telemetry.stats.clone(),
    };
    let shown = |e: &Option<crate::otel::endpoint::Endpoint>| e.as_ref().map_or("off".to_string(), |e| e.to_string());
    info!(
        traces = %shown(&cfg.traces),
        metrics = %shown(&cfg.metrics),
        logs = %shown(&cfg.logs),
        service = %cfg.service_name,
        "OpenTelemetry export"
    );
    let service = Arc::new(TaskService::new(
        &flags.namespace,
        Arc::new(events),
        obs,
        Arc::new(host),
    ));
    let mut exit = service.exit_requested();

    // The VMM and its helpers must not inherit the listener: one that
    // outlived a killed shim would keep its socket taking connections, and
    // `delete` would take the shim for alive and leave the socket behind.
    // SAFETY: F_SETFD on a descriptor this process owns; no pointers.
    if unsafe { libc::fcntl(LISTENER_FD, libc::F_SETFD, libc::FD_CLOEXEC) } != 0 {
        return Err(format!("the listener from start: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: `start` put a listening unix socket on this descriptor for us
    // alone, and nothing else in this process uses it.
    let server = unsafe { Server::new().add_unix_listener(LISTENER_FD) }
        .map_err(|e| format!("listen on the socket from start: {e}"))?;
    let mut server = server.register_service(task_services(service.clone()));
    server
        .start()
        .await
        .map_err(|e| format!("start the TTRPC server: {e}"))?;
    info!(id = %flags.id, namespace = %flags.namespace, socket = %flags.socket, "shim serving task API v2 and v3");

    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    tokio::select! {
        _ = exit.wait_for(|e| *e) => info!("containerd shut the shim down"),
        _ = term.recv() => info!("SIGTERM"),
    }
    service.end_traces();
    let _ = server.shutdown().await;
    if let Some(path) = flags.socket.strip_prefix("unix://") {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

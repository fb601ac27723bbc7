//! Create, phase by phase, each phase a span under the Create span:
//! BundleLoad, MountSetup, VMBoot (VMSpawn, WaitForReady, ClockSync),
//! BundleTransfer, IOSetup, TaskCreate.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use containerd_shim_protos::api::CreateTaskRequest;
use opentelemetry::KeyValue;
use sha2::{Digest, Sha256};
use tracing::{info, info_span, warn, Instrument, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use voidbox_api::system::InfoRequest;
use voidbox_api::task::{CreateRequest, PutBundleRequest};

use super::bundle::Bundle;
use super::container::Container;
use super::error::{Result, ShimError};
use super::options;
use super::process::Process;
use super::rootfs::Rootfs;
use crate::assets;
use crate::guest::{rpc_context, GuestClient};
use crate::io::{IoPaths, ProcessIo, StreamMux};
use crate::otel::clock::{Clock, Sample};
use crate::otel::guest_metrics;
use crate::otel::metrics::{self, vm_attrs};
use crate::otel::relay::{self, GuestSink, RelayStats};
use crate::otel::spans::traced;
use crate::vm::{select, Backend, MicroVm, Share, VmConfig, VmError};

/// The virtio-fs tag of the container's root filesystem.
pub const ROOTFS_TAG: &str = "rootfs";
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How long teardown waits for the guest's last spans.
const RELAY_DRAIN: Duration = Duration::from_secs(2);
/// How often the clock offset is measured again while a container runs.
const CLOCK_RESYNC: Duration = Duration::from_secs(10);

/// A short, stable name for a container's VM.
pub fn vm_id(namespace: &str, id: &str) -> String {
    let digest = Sha256::digest(format!("{namespace}/{id}").as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// The VM's state directory: socket paths must stay under the unix limit
/// whatever the namespace and id.
pub fn state_dir(namespace: &str, id: &str) -> std::path::PathBuf {
    assets::state_root().join(vm_id(namespace, id))
}

/// What observability adds to a container: the guest's spans when tracing
/// is on, the guest's telemetry when metrics are on.
#[derive(Clone, Default)]
pub struct Observability {
    /// Where the guest's spans go.
    pub spans: Option<GuestSink>,
    /// The guest span buffer's capacity, if not the default.
    pub guest_buffer: Option<usize>,
    /// How often the guest samples its telemetry.
    pub telemetry: Option<Duration>,
}

fn rpc_err(method: &'static str) -> impl Fn(ttrpc::Error) -> ShimError {
    move |source| VmError::Rpc { method, source }.into()
}

pub async fn create(namespace: &str, req: &CreateTaskRequest, obs: &Observability) -> Result<Arc<Container>> {
    let received = Instant::now();
    if !req.checkpoint.is_empty() {
        return Err(ShimError::Unimplemented(
            "restore from a checkpoint is not implemented by voidbox".into(),
        ));
    }
    let bundle = traced(info_span!("BundleLoad", bundle = %req.bundle), async {
        Bundle::load(std::path::Path::new(&req.bundle))
    })
    .await?;
    let settings = options::resolve(&bundle.annotations(), req.options.as_ref())?;
    let (backend, why) = select::choose(settings.backend);
    info!(id = %req.id, backend = backend.name(), "VMM backend: {why}");
    let backend = backend.as_ref();
    let rootfs = traced(info_span!("MountSetup", mounts = req.rootfs.len()), async {
        Rootfs::mount(&bundle.rootfs(), &req.rootfs)
    })
    .await?;

    let vm_id = vm_id(namespace, &req.id);
    let attrs = vm_attrs(&req.id, &vm_id);
    let mut config = VmConfig::new(
        &vm_id,
        assets::kernel(),
        assets::guest_root(),
        state_dir(namespace, &req.id),
    );
    config.vcpus = settings.cpus;
    config.memory_mib = settings.memory_mib;
    config.vsock_ports = vec![voidbox_api::TTRPC_PORT, voidbox_api::STDIO_PORT];
    config.shares.push(Share {
        tag: ROOTFS_TAG.into(),
        host_path: rootfs.path().to_path_buf(),
    });
    // Extra kernel arguments for debugging (voidbox.log=debug, for instance).
    if let Ok(extra) = std::env::var("VOIDBOX_GUEST_CMDLINE") {
        config
            .extra_cmdline
            .extend(extra.split_whitespace().map(str::to_string));
    }
    if obs.spans.is_some() {
        config.extra_cmdline.push("voidbox.trace=1".into());
        if let Some(n) = obs.guest_buffer {
            config.extra_cmdline.push(format!("voidbox.trace_buffer={n}"));
        }
    }
    let boot_span = info_span!(
        "VMBoot",
        vm.id = %vm_id,
        vm.backend = backend.name(),
        vm.vcpus = config.vcpus,
        vm.memory_mib = config.memory_mib,
        vm.kernel = %config.kernel.display(),
        vm.image = %config.root.path().display(),
    );
    let clock = Arc::new(Clock::default());
    let mut boot_attrs = attrs.clone();
    boot_attrs.push(KeyValue::new("vm.backend", backend.name()));
    let (vm, guest) = traced(
        boot_span.clone(),
        boot(backend, config, clock.clone(), boot_span, boot_attrs),
    )
    .await?;
    metrics::get().live_vms.add(1, &attrs);

    let relay_stats = Arc::new(RelayStats::default());
    let mux = StreamMux::new();
    let paths = IoPaths {
        stdin: req.stdin.clone(),
        stdout: req.stdout.clone(),
        stderr: req.stderr.clone(),
        terminal: req.terminal,
    };
    let init = Process::new("", paths.clone(), Vec::new());
    let container = Arc::new(Container {
        id: req.id.clone(),
        vm_id: vm_id.clone(),
        received,
        live: AtomicBool::new(true),
        bundle: bundle.path.clone(),
        vm: vm.clone(),
        guest: guest.clone(),
        mux: mux.clone(),
        rootfs: Mutex::new(rootfs),
        init: init.clone(),
        execs: Mutex::new(Default::default()),
        paused: AtomicBool::new(false),
        deleting: AtomicBool::new(false),
        ooms: AtomicU64::new(0),
        clock: clock.clone(),
        relay: Mutex::new(None),
        relay_stats: relay_stats.clone(),
        tasks: Mutex::new(vec![tokio::spawn(mux.clone().serve(vm.clone()))]),
    });
    if let Some(sink) = &obs.spans {
        // Spans the guest made before this point wait in its buffer.
        *container.relay.lock().expect("relay lock") = Some(relay::start(
            guest.clone(),
            clock.clone(),
            sink.clone(),
            relay_stats,
            attrs.clone(),
        ));
    }
    {
        let mut tasks = container.tasks.lock().expect("tasks lock");
        if obs.spans.is_some() || obs.telemetry.is_some() {
            tasks.push(tokio::spawn(resync_clock(
                guest.clone(),
                clock,
                vm.clone(),
                attrs.clone(),
            )));
        }
        // The guest samples only while this stream is open.
        if let Some(interval) = obs.telemetry {
            tasks.push(guest_metrics::start(guest.clone(), interval, attrs.clone()));
        }
    }

    let created = async {
        let files = HashMap::from([("config.json".to_string(), bundle.guest_spec.clone())]);
        let put = PutBundleRequest {
            id: req.id.clone(),
            files,
            ..Default::default()
        };
        traced(info_span!("BundleTransfer", bytes = bundle.guest_spec.len()), async {
            guest
                .tasks()
                .put_bundle(rpc_context(false), &put)
                .await
                .map_err(rpc_err("Tasks.PutBundle"))
        })
        .await?;
        let (ids, io) = traced(info_span!("IOSetup", terminal = req.terminal), async {
            ProcessIo::start(&mux, &paths).map_err(ShimError::InvalidArgument)
        })
        .await?;
        let io = Arc::new(io);
        let request = CreateRequest {
            id: req.id.clone(),
            rootfs_tag: ROOTFS_TAG.into(),
            stdio: Some(ids).into(),
            ..Default::default()
        };
        let resp = traced(info_span!("TaskCreate"), async {
            guest
                .tasks()
                .create(rpc_context(false), &request)
                .await
                .map_err(rpc_err("Tasks.Create"))
        })
        .await;
        match resp {
            Ok(resp) => {
                init.set_pid(resp.pid);
                init.set_io(io);
                Ok(())
            }
            Err(e) => {
                io.abort(&mux);
                Err(e)
            }
        }
    };
    match created.await {
        Ok(()) => Ok(container),
        Err(e) => {
            teardown(&container).await;
            Err(e)
        }
    }
}

/// VMSpawn, WaitForReady, then the guest clock set from the host's.
async fn boot(
    backend: &dyn Backend,
    config: VmConfig,
    clock: Arc<Clock>,
    span: Span,
    attrs: Vec<KeyValue>,
) -> Result<(Arc<MicroVm>, GuestClient)> {
    let m = metrics::get();
    let phase = |name: &'static str, since: Instant| {
        let mut a = attrs.clone();
        a.push(KeyValue::new("phase", name));
        m.boot.record(since.elapsed().as_secs_f64(), &a);
    };
    let begun = Instant::now();
    let vm = Arc::new(
        MicroVm::start(backend, config)
            .instrument(info_span!("VMSpawn"))
            .await?,
    );
    phase("spawn", begun);
    let t = Instant::now();
    let guest = match vm.connect_guest().instrument(info_span!("WaitForReady")).await {
        Ok(g) => g,
        Err(e) => {
            vm.kill().await;
            return Err(e.into());
        }
    };
    phase("ready", t);
    let t = Instant::now();
    let synced = clock.sync_at_boot(&guest).instrument(info_span!("ClockSync")).await;
    let (before, after) = match synced {
        Ok(s) => s,
        Err(e) => {
            vm.kill().await;
            return Err(e.into());
        }
    };
    phase("clock_sync", t);
    phase("total", begun);
    record_clock(&after, &attrs);
    span.set_attribute("clock.offset_before_sync_ns", before.offset_ns);
    span.set_attribute("clock.offset_ns", after.offset_ns);
    span.set_attribute("clock.uncertainty_ns", after.uncertainty_ns);
    // Info under the boot span: the guest answers with its boot as spans.
    if let Err(e) = guest.system().info(rpc_context(false), &InfoRequest::new()).await {
        warn!("guest info: {e}");
    }
    info!(
        offset_ns = after.offset_ns,
        uncertainty_ns = after.uncertainty_ns,
        skew_before_ns = before.offset_ns,
        "guest clock set"
    );
    Ok((vm, guest))
}

fn record_clock(s: &Sample, attrs: &[KeyValue]) {
    let m = metrics::get();
    m.clock_offset.record(s.offset_ns as f64 / 1e9, attrs);
    m.clock_uncertainty.record(s.uncertainty_ns as f64 / 1e9, attrs);
}

/// Keeps measuring the guest clock: an emulated clock drifts.
async fn resync_clock(guest: GuestClient, clock: Arc<Clock>, vm: Arc<MicroVm>, attrs: Vec<KeyValue>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(CLOCK_RESYNC) => {}
            _ = vm.wait() => return,
        }
        match clock.remeasure(&guest).await {
            Ok(s) => record_clock(&s, &attrs),
            Err(_) => return,
        }
    }
}

/// Powers the VM off (killing it if it will not), collects the guest's last
/// spans, and unmounts the rootfs.
pub async fn teardown(container: &Container) {
    if container.vm.try_exit().is_none() {
        // A last sample for the spans of the container's end.
        let _ = container.clock.remeasure(&container.guest).await;
        match container
            .guest
            .system()
            .info(rpc_context(false), &InfoRequest::new())
            .await
        {
            Ok(info) => info!(
                id = %container.id,
                telemetry_streams = info.telemetry_streams,
                "guest telemetry streams opened: {}",
                info.telemetry_streams
            ),
            Err(e) => warn!(id = %container.id, "guest info: {e}"),
        }
        let exit = container.vm.shutdown(&container.guest, SHUTDOWN_GRACE).await;
        if !exit.is_clean() {
            warn!(id = %container.id, "VM of container did not power off cleanly: {exit}");
        }
    }
    let relay = container.relay.lock().expect("relay lock").take();
    if let Some(relay) = relay {
        if tokio::time::timeout(RELAY_DRAIN, relay).await.is_err() {
            warn!(id = %container.id, "the guest's span stream did not end in time");
        }
    }
    if container.live.swap(false, Ordering::Relaxed) {
        metrics::get()
            .live_vms
            .add(-1, &vm_attrs(&container.id, &container.vm_id));
    }
    container.rootfs.lock().expect("rootfs lock").unmount();
}

//! A sandbox: one VM and what lives as long as it does (the guest client,
//! the stdio stream mux, the clock, the span relay, the telemetry stream,
//! the shared directory). A container on its own has a sandbox of its own;
//! a pod's containers share their sandbox container's.

mod boot;
pub mod clock;
mod naming;
pub mod podnet;
mod portfwd;
pub mod relay;
mod release;
mod shared;
mod teardown;
mod telemetry;

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::KeyValue;
use tokio::sync::RwLock;
use tokio::task::JoinHandle;
use tracing::{info_span, warn};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use self::clock::Clock;
use self::podnet::{PodNet, PodNetSpec};
use self::relay::RelayStats;
use crate::config::HostConfig;
use crate::error::{traced, Result};
use crate::guest::GuestClient;
use crate::io::StreamMux;
use crate::otel::metrics::{self, vm_attrs};
use crate::otel::GuestSink;
use crate::spec::VmSettings;
use crate::vm::{Backend, GuestRoot, MicroVm, Share, VmConfig};

pub use naming::{shared_dir, state_dir, vm_id};
pub use shared::{staging_of, ContainerShare, SharedDir, SHARED_TAG};

/// The sandboxes this shim runs, by sandbox id.
pub type Sandboxes = Mutex<HashMap<String, Arc<Sandbox>>>;

/// What observability adds to a VM: the guest's spans when tracing is on,
/// the guest's telemetry when metrics are on.
#[derive(Clone, Default)]
pub struct Observability {
    /// Where the guest's spans go.
    pub spans: Option<GuestSink>,
    /// The guest span buffer's capacity, if not the default.
    pub guest_buffer: Option<usize>,
    /// How often the guest samples its telemetry.
    pub telemetry: Option<Duration>,
    /// What the guest span relays saw, the shim's VMs together.
    pub relay: Arc<RelayStats>,
    /// The export pipelines' outcomes and the spans the host lost.
    pub export: Arc<crate::otel::ExportStats>,
}

pub struct Sandbox {
    /// The sandbox container's id (a pod's), or the lone container's.
    pub id: String,
    pub vm_id: String,
    pub vm: Arc<MicroVm>,
    pub guest: GuestClient,
    pub mux: Arc<StreamMux>,
    /// The guest clock against the host's, for rebasing guest spans.
    pub clock: Arc<Clock>,
    /// The guest span relay, when tracing is on; teardown waits for its end.
    relay: Mutex<Option<JoinHandle<relay::RelayEnd>>>,
    pub relay_stats: Arc<RelayStats>,
    pub shared: Mutex<SharedDir>,
    /// The pod's network, for a pod's sandbox.
    network: Option<PodNet>,
    /// Counted in the live-VM gauge until teardown.
    live: AtomicBool,
    /// Held shared by each Kill until the guest answers it, and taken
    /// whole by teardown, which so does not end the VM under an answer.
    pub kills: RwLock<()>,
    pub tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Sandbox {
    /// Boots the VM of sandbox `id` and starts what runs beside it.
    pub async fn boot(
        host: &HostConfig,
        namespace: &str,
        id: &str,
        settings: &VmSettings,
        backend: &dyn Backend,
        obs: &Observability,
        pod_net: Option<PodNetSpec>,
    ) -> Result<Arc<Sandbox>> {
        let vm_id = vm_id(namespace, id);
        let attrs = vm_attrs(id, &vm_id);
        let state = state_dir(&host.state_root, namespace, id);
        let shared = SharedDir::create(&shared_dir(&host.state_root, namespace, id))?;
        let root = GuestRoot::from_image(host.image.clone());
        let mut config = VmConfig::new(&vm_id, host.kernel.clone(), root, state);
        config.vcpus = settings.cpus;
        config.memory_mib = settings.memory_mib;
        if let Some(t) = host.ready_timeout {
            config.ready_timeout = t;
        }
        config.tcg_cache_mib = host.tcg_cache_mib;
        config.vsock_ports = vec![voidbox_api::TTRPC_PORT, voidbox_api::STDIO_PORT];
        config.shares.push(Share {
            tag: SHARED_TAG.into(),
            host_path: shared.host_path().to_path_buf(),
        });
        config.extra_cmdline.extend(host.guest_cmdline.iter().cloned());
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
        // Before the VM exists: no guest timestamp may be older.
        let clock = Arc::new(Clock::new(clock::now_ns()));
        // Guest spans are rebased by the measured offset, and metrics report
        // it; without either it is measured for nothing, at boot or after.
        let measure_clock = obs.spans.is_some() || obs.telemetry.is_some();
        let mut boot_attrs = attrs.clone();
        boot_attrs.push(KeyValue::new("vm.backend", backend.name()));
        let (vm, guest, network) = traced(boot_span.clone(), async {
            // The pod's network first: the VMM starts inside its namespace.
            let network = match pod_net {
                Some(spec) => Some(
                    traced(
                        info_span!("NetworkAttach", netns = %spec.netns.display()),
                        PodNet::attach(spec),
                    )
                    .await?,
                ),
                None => None,
            };
            config.network = network.as_ref().map(PodNet::vm_network);
            let booted = boot::boot(
                backend,
                config,
                clock.clone(),
                measure_clock,
                host.rpc_timeout,
                boot_span.clone(),
                boot_attrs,
            )
            .await;
            let configured = match (&booted, &network) {
                (Ok((_, guest)), Some(net)) => traced(info_span!("NetworkConfigure"), net.configure_guest(guest)).await,
                _ => Ok(()),
            };
            match (booted, configured) {
                (Ok((vm, guest)), Ok(())) => Ok((vm, guest, network)),
                (booted, configured) => {
                    if let Ok((vm, _)) = &booted {
                        vm.kill().await;
                    }
                    if let Some(net) = &network {
                        net.detach().await;
                    }
                    Err(booted.err().or(configured.err()).expect("one failed"))
                }
            }
        })
        .await?;
        metrics::get().live_vms.add(1, &attrs);

        // The mux stands below otel: it reports, the sandbox counts.
        let reject_attrs = attrs.clone();
        let mux = StreamMux::new(Box::new(move |why| {
            metrics::get().reject(why.reason(), 1, &reject_attrs)
        }));
        let sandbox = Arc::new(Sandbox {
            id: id.to_string(),
            vm_id,
            vm: vm.clone(),
            guest: guest.clone(),
            mux: mux.clone(),
            clock: clock.clone(),
            relay: Mutex::new(None),
            relay_stats: obs.relay.clone(),
            shared: Mutex::new(shared),
            network,
            live: AtomicBool::new(true),
            kills: Default::default(),
            tasks: Mutex::new(vec![tokio::spawn(mux.clone().serve(vm.clone()))]),
        });
        if let Some(sink) = &obs.spans {
            // Spans the guest made before this point wait in its buffer. The
            // stream opens under the boot span: the guest's boot goes there.
            *sandbox.relay.lock().expect("relay lock") = Some(relay::start(
                guest.clone(),
                clock.clone(),
                sink.clone(),
                sandbox.relay_stats.clone(),
                attrs.clone(),
                boot_span.context(),
            ));
        }
        let mut tasks = sandbox.tasks.lock().expect("tasks lock");
        if let Some(listener) = sandbox.network.as_ref().and_then(PodNet::port_forward_listener) {
            match portfwd::start(listener, guest.clone(), mux.clone()) {
                Ok(task) => tasks.push(task),
                Err(e) => warn!(sandbox = %id, "port-forward: {e}"),
            }
        }
        // What the VM translated and will not run again goes back to the host.
        tasks.extend(release::watch(vm.clone(), id, host.tcg_release_after));
        if measure_clock {
            tasks.push(tokio::spawn(boot::resync_clock(
                guest.clone(),
                clock,
                vm,
                attrs.clone(),
            )));
        }
        // The guest samples only while this stream is open.
        if let Some(interval) = obs.telemetry {
            let memory = u64::from(settings.memory_mib).saturating_mul(1 << 20);
            tasks.push(telemetry::start(guest, interval, memory, attrs));
        }
        drop(tasks);
        Ok(sandbox)
    }

    /// Ends the VM once the guest's last spans are in, and cleans up
    /// (`teardown.rs`).
    pub async fn teardown(&self) {
        teardown::teardown(self).await
    }

    /// Kills the VM of a sandbox that failed to come up, and cleans up.
    pub async fn abort(&self) {
        self.vm.kill().await;
        self.teardown().await;
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        for t in self.tasks.lock().expect("tasks lock").drain(..) {
            t.abort();
        }
    }
}

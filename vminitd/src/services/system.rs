//! `voidbox.system.v1.System`: identity, boot times, clock, network and power.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::mpsc;
use tracing::{info, info_span, Span};
use ttrpc::r#async::TtrpcContext;
use voidbox_api::system::*;
use voidbox_api::system_ttrpc::System;

use crate::boot::{self, BootClock};
use crate::cmdline::Cmdline;
use crate::error::Error;
use crate::services::handler::handle;

pub struct SystemService {
    clock: Arc<BootClock>,
    cmdline: Cmdline,
    power: mpsc::Sender<()>,
    telemetry_streams: Arc<AtomicU64>,
}

impl SystemService {
    pub fn new(
        clock: Arc<BootClock>,
        cmdline: Cmdline,
        power: mpsc::Sender<()>,
        telemetry_streams: Arc<AtomicU64>,
    ) -> Self {
        SystemService {
            clock,
            cmdline,
            power,
            telemetry_streams,
        }
    }
}

/// A failed system call, named.
fn sys(what: &'static str) -> impl FnOnce(nix::Error) -> Error {
    move |source| Error::Sys { what, source }
}

#[async_trait]
impl System for SystemService {
    async fn info(&self, ctx: &TtrpcContext, _req: InfoRequest) -> ttrpc::Result<InfoResponse> {
        handle(ctx, Span::none(), async {
            let uts = nix::sys::utsname::uname().map_err(sys("uname"))?;
            let sysinfo = nix::sys::sysinfo::sysinfo().map_err(sys("sysinfo"))?;
            let boot = BootTimes {
                kernel_start_unix_nano: boot::kernel_start_unix_ns(),
                init_start_ns: self.clock.init_start_ns(),
                ready_ns: self.clock.ready_ns(),
                ..Default::default()
            };
            Ok::<_, Error>(InfoResponse {
                vminitd_version: env!("CARGO_PKG_VERSION").into(),
                kernel_release: uts.release().to_string_lossy().into_owned(),
                kernel_version: uts.version().to_string_lossy().into_owned(),
                boot: Some(boot).into(),
                cmdline: self.cmdline.raw().into(),
                cpus: std::thread::available_parallelism()
                    .map(|n| n.get() as u32)
                    .unwrap_or(1),
                memory_total_bytes: sysinfo.ram_total(),
                telemetry_streams: self.telemetry_streams.load(Ordering::SeqCst),
                vminitd_cpu_ns: crate::telemetry::sample::own_cpu_ns(),
                ..Default::default()
            })
        })
        .await
    }

    async fn shutdown(&self, ctx: &TtrpcContext, _req: ShutdownRequest) -> ttrpc::Result<ShutdownResponse> {
        handle(ctx, Span::none(), async {
            info!("shutdown requested by the host");
            // Once this answers, the host may end the VM as soon as the span
            // streams end: what containers wrote to their shares must be on
            // the host by then. Once their processes are gone it is: virtiofs
            // runs without a writeback cache (a write goes through to the
            // host), and a shared mapping's dirty pages are written back
            // when it is unmapped, at the latest when its process exits. A
            // sync then adds only the host's own disk writeback (virtiofsd
            // answers it with syncfs(2)), which runc gives no container
            // either. So it syncs only while a container's process still runs.
            // Reading cgroup.events does not block; a sync does, so only it
            // goes to the blocking pool (whose first use spawns a thread).
            if crate::cgroups::containers_populated() {
                let _ = tokio::task::spawn_blocking(nix::unistd::sync).await;
            }
            // A full channel means a shutdown is already under way.
            let _ = self.power.try_send(());
            Ok::<_, Error>(ShutdownResponse::default())
        })
        .await
    }

    async fn clock(&self, ctx: &TtrpcContext, _req: ClockRequest) -> ttrpc::Result<ClockResponse> {
        handle(ctx, Span::none(), async {
            Ok::<_, Error>(ClockResponse {
                realtime_unix_nano: boot::realtime_ns(),
                boottime_ns: boot::since_kernel_start_ns(),
                ..Default::default()
            })
        })
        .await
    }

    async fn set_time(&self, ctx: &TtrpcContext, req: SetTimeRequest) -> ttrpc::Result<SetTimeResponse> {
        handle(ctx, Span::none(), async {
            let ns = req.realtime_unix_nano;
            let ts = nix::sys::time::TimeSpec::new(ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000));
            nix::time::clock_settime(nix::time::ClockId::CLOCK_REALTIME, ts).map_err(sys("clock_settime"))?;
            Ok::<_, Error>(SetTimeResponse {
                realtime_unix_nano: boot::realtime_ns(),
                ..Default::default()
            })
        })
        .await
    }

    async fn configure_network(
        &self,
        ctx: &TtrpcContext,
        req: ConfigureNetworkRequest,
    ) -> ttrpc::Result<ConfigureNetworkResponse> {
        let span = info_span!(
            "network.configure",
            interfaces = req.interfaces.len(),
            routes = req.routes.len()
        );
        handle(ctx, span, async move {
            crate::network::configure(&req)?;
            Ok::<_, Error>(ConfigureNetworkResponse::default())
        })
        .await
    }

    async fn connect_port(&self, ctx: &TtrpcContext, req: ConnectPortRequest) -> ttrpc::Result<ConnectPortResponse> {
        let span = info_span!("port.connect", port = req.port);
        handle(ctx, span, async move {
            crate::network::ports::connect(req.port, req.stream).await?;
            Ok::<_, Error>(ConnectPortResponse::default())
        })
        .await
    }
}

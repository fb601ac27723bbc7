//! `voidbox.system.v1.System`: identity, boot times, mounts and power.

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::mpsc;
use tracing::{info, info_span};
use ttrpc::r#async::TtrpcContext;
use voidbox_api::system::*;
use voidbox_api::system_ttrpc::System;

use crate::boot::{self, BootClock};
use crate::cmdline::Cmdline;
use crate::error::Error;
use crate::mounts;
use crate::trace::{self, BootSpans};

const DEFAULT_READ_LIMIT: u64 = 1 << 20;
/// TTRPC messages are capped at 4 MiB; stay well under it.
const MAX_READ_LIMIT: u64 = 3 << 20;

pub struct SystemService {
    clock: Arc<BootClock>,
    cmdline: Cmdline,
    power: mpsc::Sender<()>,
    boot_spans: Arc<BootSpans>,
    telemetry_streams: Arc<AtomicU64>,
}

impl SystemService {
    pub fn new(
        clock: Arc<BootClock>,
        cmdline: Cmdline,
        power: mpsc::Sender<()>,
        boot_spans: Arc<BootSpans>,
        telemetry_streams: Arc<AtomicU64>,
    ) -> Self {
        SystemService {
            clock,
            cmdline,
            power,
            boot_spans,
            telemetry_streams,
        }
    }
}

#[async_trait]
impl System for SystemService {
    async fn info(&self, ctx: &TtrpcContext, _req: InfoRequest) -> ttrpc::Result<InfoResponse> {
        // The first traced Info makes the boot spans, children of the host's.
        self.boot_spans.emit_once(&trace::parent(ctx));
        let uts = nix::sys::utsname::uname().map_err(|source| Error::Sys { what: "uname", source }.into_ttrpc())?;
        let sysinfo = nix::sys::sysinfo::sysinfo().map_err(|source| {
            Error::Sys {
                what: "sysinfo",
                source,
            }
            .into_ttrpc()
        })?;
        let boot = BootTimes {
            kernel_start_unix_nano: boot::kernel_start_unix_ns(),
            init_start_ns: self.clock.init_start_ns(),
            ready_ns: self.clock.ready_ns(),
            ..Default::default()
        };
        Ok(InfoResponse {
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
    }

    async fn shutdown(&self, _ctx: &TtrpcContext, _req: ShutdownRequest) -> ttrpc::Result<ShutdownResponse> {
        info!("shutdown requested by the host");
        // A full channel means a shutdown is already under way.
        let _ = self.power.try_send(());
        Ok(ShutdownResponse::default())
    }

    async fn mount(&self, ctx: &TtrpcContext, req: MountRequest) -> ttrpc::Result<MountResponse> {
        let span = info_span!("mount", fstype = %req.fstype, source = %req.source, target = %req.target);
        trace::handle(ctx, span, async {
            mounts::mount_requested(&req.fstype, &req.source, &req.target, &req.options).map_err(Error::into_ttrpc)?;
            info!("mounted {} ({}) on {}", req.source, req.fstype, req.target);
            Ok(MountResponse::default())
        })
        .await
    }

    async fn clock(&self, _ctx: &TtrpcContext, _req: ClockRequest) -> ttrpc::Result<ClockResponse> {
        Ok(ClockResponse {
            realtime_unix_nano: boot::realtime_ns(),
            boottime_ns: boot::since_kernel_start_ns(),
            ..Default::default()
        })
    }

    async fn set_time(&self, _ctx: &TtrpcContext, req: SetTimeRequest) -> ttrpc::Result<SetTimeResponse> {
        let ns = req.realtime_unix_nano;
        let ts = nix::sys::time::TimeSpec::new(ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000));
        nix::time::clock_settime(nix::time::ClockId::CLOCK_REALTIME, ts).map_err(|source| {
            Error::Sys {
                what: "clock_settime",
                source,
            }
            .into_ttrpc()
        })?;
        Ok(SetTimeResponse::default())
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
        trace::handle(ctx, span, async move {
            crate::network::configure(&req).map_err(Error::into_ttrpc)?;
            Ok(ConfigureNetworkResponse::default())
        })
        .await
    }

    async fn read_file(&self, _ctx: &TtrpcContext, req: ReadFileRequest) -> ttrpc::Result<ReadFileResponse> {
        let limit = match req.max_bytes {
            0 => DEFAULT_READ_LIMIT,
            n => n.min(MAX_READ_LIMIT),
        };
        let file = std::fs::File::open(&req.path).map_err(|e| Error::io("open", &req.path, e).into_ttrpc())?;
        let mut data = Vec::new();
        // Read one byte past the limit to learn whether the file is longer.
        file.take(limit + 1)
            .read_to_end(&mut data)
            .map_err(|e| Error::io("read", &req.path, e).into_ttrpc())?;
        let truncated = data.len() as u64 > limit;
        data.truncate(limit as usize);
        Ok(ReadFileResponse {
            data,
            truncated,
            ..Default::default()
        })
    }
}

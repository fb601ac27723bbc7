//! `voidbox.system.v1.System`: identity, boot times, clock, network and power.

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
use crate::trace::{self, BootSpans};

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
}

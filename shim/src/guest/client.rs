//! A TTRPC client of vminitd over a connection the guest dialed.
//!
//! Every RPC the shim makes goes through one method here. Each is bounded
//! by its own timeout, except those that wait on the guest by design (a
//! process's exit, and the event, span and telemetry streams).

use std::future::Future;
use std::time::Duration;

use tokio::net::UnixStream;
use ttrpc::context;
use ttrpc::r#async::transport::Socket;
use ttrpc::r#async::ClientStreamReceiver;
use voidbox_api::system::*;
use voidbox_api::system_ttrpc::SystemClient;
use voidbox_api::task::{self, *};
use voidbox_api::task_ttrpc::TasksClient;
use voidbox_api::telemetry::{self, Sample};
use voidbox_api::telemetry_ttrpc::TelemetryClient;
use voidbox_api::traces::{self, SpanBatch};
use voidbox_api::traces_ttrpc::TracesClient;

use super::error::GuestError;
use crate::vm::{MicroVm, VmError, VmExit};

/// The bound on a quick question or small state change, unless the host's
/// configuration sets another (`VOIDBOX_RPC_TIMEOUT`).
const DEFAULT_RPC_TIMEOUT: Duration = Duration::from_secs(10);
/// What runs crun in the guest, or configures its network, gets this many
/// times as long.
const LONG_FACTOR: u32 = 3;

#[derive(Clone)]
pub struct GuestClient {
    #[cfg_attr(not(feature = "debug-rpcs"), allow(dead_code))]
    pub(super) client: ttrpc::r#async::Client,
    system: SystemClient,
    tasks: TasksClient,
    traces: TracesClient,
    telemetry: TelemetryClient,
    /// The bound on quick RPCs; the long ones get `LONG_FACTOR` times it.
    timeout: Duration,
}

/// A context carrying the current span, so the guest's spans are its
/// children. The bound is the host's (`call`), so the guest gets none.
pub(super) fn ctx() -> context::Context {
    ctx_under(&tracing_opentelemetry::OpenTelemetrySpanExt::context(
        &tracing::Span::current(),
    ))
}

/// A context carrying `parent` instead of the current span.
fn ctx_under(parent: &opentelemetry::Context) -> context::Context {
    let mut ctx = context::with_duration(Duration::ZERO);
    voidbox_api::otel::propagation::inject(parent, &mut ctx.metadata);
    ctx
}

/// Runs one RPC within `bound` (none for `None`), naming it in any error.
pub(super) async fn call<T>(
    method: &'static str,
    bound: Option<Duration>,
    rpc: impl Future<Output = ttrpc::Result<T>>,
) -> Result<T, GuestError> {
    let answered = match bound {
        Some(after) => tokio::time::timeout(after, rpc)
            .await
            .map_err(|_| GuestError::Timeout { method, after })?,
        None => rpc.await,
    };
    answered.map_err(|source| GuestError::Rpc { method, source })
}

impl GuestClient {
    /// Waits, within the VM's ready timeout, for vminitd to dial in.
    pub async fn connect(vm: &MicroVm) -> Result<GuestClient, VmError> {
        Ok(GuestClient::new(vm.accept_ready(voidbox_api::TTRPC_PORT).await?))
    }

    pub fn new(stream: UnixStream) -> Self {
        let client = ttrpc::r#async::Client::new(Socket::new(stream));
        GuestClient {
            system: SystemClient::new(client.clone()),
            tasks: TasksClient::new(client.clone()),
            traces: TracesClient::new(client.clone()),
            telemetry: TelemetryClient::new(client.clone()),
            client,
            timeout: DEFAULT_RPC_TIMEOUT,
        }
    }

    /// Quick RPCs bounded by `timeout` instead, the long ones by
    /// `LONG_FACTOR` times it.
    pub fn with_rpc_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn short(&self) -> Option<Duration> {
        Some(self.timeout)
    }

    fn long(&self) -> Option<Duration> {
        Some(self.timeout * LONG_FACTOR)
    }

    /// Asks the guest to power off and waits up to `grace` for the VM to
    /// end; kills it after that.
    pub async fn power_off(&self, vm: &MicroVm, grace: Duration) -> VmExit {
        vm.expect_shutdown();
        if let Err(e) = self.shutdown(grace).await {
            tracing::debug!("{e}");
        }
        vm.wait_or_kill(grace).await
    }

    // System.

    pub async fn info(&self) -> Result<InfoResponse, GuestError> {
        call(
            "System.Info",
            self.short(),
            self.system.info(ctx(), &InfoRequest::new()),
        )
        .await
    }

    pub async fn shutdown(&self, grace: Duration) -> Result<(), GuestError> {
        let req = ShutdownRequest::new();
        call("System.Shutdown", Some(grace), self.system.shutdown(ctx(), &req))
            .await
            .map(drop)
    }

    pub async fn clock(&self) -> Result<ClockResponse, GuestError> {
        call(
            "System.Clock",
            self.short(),
            self.system.clock(ctx(), &ClockRequest::new()),
        )
        .await
    }

    /// Sets the guest's wall clock; answers the guest's clock just after
    /// (0 from a guest that does not say).
    pub async fn set_time(&self, req: &SetTimeRequest) -> Result<i64, GuestError> {
        call("System.SetTime", self.short(), self.system.set_time(ctx(), req))
            .await
            .map(|r| r.realtime_unix_nano)
    }

    pub async fn configure_network(&self, req: &ConfigureNetworkRequest) -> Result<(), GuestError> {
        let rpc = self.system.configure_network(ctx(), req);
        call("System.ConfigureNetwork", self.long(), rpc).await.map(drop)
    }

    /// Connects the guest's loopback port `req.port` to stream `req.stream`.
    pub async fn connect_port(&self, req: &ConnectPortRequest) -> Result<(), GuestError> {
        call("System.ConnectPort", self.short(), self.system.connect_port(ctx(), req))
            .await
            .map(drop)
    }

    // Tasks.

    pub async fn put_bundle(&self, req: &PutBundleRequest) -> Result<(), GuestError> {
        call("Tasks.PutBundle", self.short(), self.tasks.put_bundle(ctx(), req))
            .await
            .map(drop)
    }

    pub async fn create(&self, req: &CreateRequest) -> Result<CreateResponse, GuestError> {
        call("Tasks.Create", self.long(), self.tasks.create(ctx(), req)).await
    }

    pub async fn start(&self, req: &task::StartRequest) -> Result<StartResponse, GuestError> {
        call("Tasks.Start", self.long(), self.tasks.start(ctx(), req)).await
    }

    pub async fn exec(&self, req: &ExecRequest) -> Result<(), GuestError> {
        call("Tasks.Exec", self.long(), self.tasks.exec(ctx(), req))
            .await
            .map(drop)
    }

    pub async fn kill(&self, req: &KillRequest) -> Result<(), GuestError> {
        call("Tasks.Kill", self.short(), self.tasks.kill(ctx(), req))
            .await
            .map(drop)
    }

    /// Waits, unbounded, for a process to exit.
    pub async fn wait(&self, req: &WaitRequest) -> Result<WaitResponse, GuestError> {
        call("Tasks.Wait", None, self.tasks.wait(ctx(), req)).await
    }

    pub async fn delete(&self, req: &task::DeleteRequest) -> Result<(), GuestError> {
        call("Tasks.Delete", self.long(), self.tasks.delete(ctx(), req))
            .await
            .map(drop)
    }

    pub async fn pids(&self, req: &PidsRequest) -> Result<PidsResponse, GuestError> {
        call("Tasks.Pids", self.short(), self.tasks.pids(ctx(), req)).await
    }

    pub async fn pause(&self, req: &PauseRequest) -> Result<(), GuestError> {
        call("Tasks.Pause", self.short(), self.tasks.pause(ctx(), req))
            .await
            .map(drop)
    }

    pub async fn resume(&self, req: &ResumeRequest) -> Result<(), GuestError> {
        call("Tasks.Resume", self.short(), self.tasks.resume(ctx(), req))
            .await
            .map(drop)
    }

    pub async fn stats(&self, req: &task::StatsRequest) -> Result<task::StatsResponse, GuestError> {
        call("Tasks.Stats", self.short(), self.tasks.stats(ctx(), req)).await
    }

    pub async fn update(&self, req: &UpdateRequest) -> Result<(), GuestError> {
        call("Tasks.Update", self.short(), self.tasks.update(ctx(), req))
            .await
            .map(drop)
    }

    pub async fn resize_pty(&self, req: &ResizePtyRequest) -> Result<(), GuestError> {
        call("Tasks.ResizePty", self.short(), self.tasks.resize_pty(ctx(), req))
            .await
            .map(drop)
    }

    /// The guest's container events (OOM kills), for as long as it runs.
    pub async fn events(&self) -> Result<ClientStreamReceiver<Event>, GuestError> {
        let req = EventsRequest::new();
        call("Tasks.Events", self.short(), self.tasks.events(ctx(), &req)).await
    }

    // Traces and Telemetry: streams that last as long as the VM.

    /// The guest's spans, batch by batch; it makes its boot spans children
    /// of `parent`.
    pub async fn span_stream(
        &self,
        parent: &opentelemetry::Context,
    ) -> Result<ClientStreamReceiver<SpanBatch>, GuestError> {
        let req = traces::StreamRequest::new();
        call(
            "Traces.Stream",
            self.short(),
            self.traces.stream(ctx_under(parent), &req),
        )
        .await
    }

    /// The guest's telemetry samples, one per `req.interval_ms`.
    pub async fn telemetry_stream(
        &self,
        req: &telemetry::StreamRequest,
    ) -> Result<ClientStreamReceiver<Sample>, GuestError> {
        call("Telemetry.Stream", self.short(), self.telemetry.stream(ctx(), req)).await
    }
}

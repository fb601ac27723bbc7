//! A TTRPC client of vminitd over a connection the guest dialed.

use std::time::Duration;

use tokio::net::UnixStream;
use ttrpc::context;
use ttrpc::r#async::transport::Socket;
use voidbox_api::system::*;
use voidbox_api::system_ttrpc::SystemClient;
use voidbox_api::task_ttrpc::TasksClient;
use voidbox_api::telemetry_ttrpc::TelemetryClient;
use voidbox_api::traces_ttrpc::TracesClient;

use crate::vm::{MicroVm, VmError, VmExit};

const RPC_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct GuestClient {
    system: SystemClient,
    tasks: TasksClient,
    traces: TracesClient,
    telemetry: TelemetryClient,
}

/// A context carrying the current span, so the guest's spans are its children.
fn ctx(timeout: Duration) -> context::Context {
    let mut ctx = context::with_duration(timeout);
    let current = tracing_opentelemetry::OpenTelemetrySpanExt::context(&tracing::Span::current());
    voidbox_api::otel::propagation::inject(&current, &mut ctx.metadata);
    ctx
}

/// A context for guest RPCs: bounded, except for those that wait on a process.
pub fn rpc_context(wait: bool) -> context::Context {
    let mut ctx = ctx(RPC_TIMEOUT);
    if wait {
        ctx.timeout_nano = 0;
    }
    ctx
}

impl GuestClient {
    /// Waits, within the VM's ready timeout, for vminitd to dial in.
    pub async fn connect(vm: &MicroVm) -> Result<GuestClient, VmError> {
        Ok(GuestClient::new(vm.accept_ready(voidbox_api::TTRPC_PORT).await?))
    }

    /// Asks the guest to power off and waits up to `grace` for the VM to
    /// end; kills it after that.
    pub async fn power_off(&self, vm: &MicroVm, grace: Duration) -> VmExit {
        vm.expect_shutdown();
        if let Err(e) = self.shutdown(grace).await {
            tracing::debug!("shutdown RPC: {e}");
        }
        vm.wait_or_kill(grace).await
    }

    pub fn new(stream: UnixStream) -> Self {
        let client = ttrpc::r#async::Client::new(Socket::new(stream));
        GuestClient {
            system: SystemClient::new(client.clone()),
            tasks: TasksClient::new(client.clone()),
            traces: TracesClient::new(client.clone()),
            telemetry: TelemetryClient::new(client),
        }
    }

    pub fn system(&self) -> &SystemClient {
        &self.system
    }

    /// The guest's container service.
    pub fn tasks(&self) -> &TasksClient {
        &self.tasks
    }

    /// The guest's span stream.
    pub fn traces(&self) -> &TracesClient {
        &self.traces
    }

    /// The guest's telemetry stream.
    pub fn telemetry(&self) -> &TelemetryClient {
        &self.telemetry
    }

    pub async fn info(&self) -> Result<InfoResponse, VmError> {
        self.system
            .info(ctx(RPC_TIMEOUT), &InfoRequest::new())
            .await
            .map_err(|source| VmError::Rpc {
                method: "System.Info",
                source,
            })
    }

    pub async fn shutdown(&self, timeout: Duration) -> Result<(), VmError> {
        self.system
            .shutdown(ctx(timeout), &ShutdownRequest::new())
            .await
            .map(drop)
            .map_err(|source| VmError::Rpc {
                method: "System.Shutdown",
                source,
            })
    }

    pub async fn mount(&self, fstype: &str, source: &str, target: &str, options: &[&str]) -> Result<(), VmError> {
        let req = MountRequest {
            fstype: fstype.into(),
            source: source.into(),
            target: target.into(),
            options: options.iter().map(|o| o.to_string()).collect(),
            ..Default::default()
        };
        self.system
            .mount(ctx(RPC_TIMEOUT), &req)
            .await
            .map(drop)
            .map_err(|source| VmError::Rpc {
                method: "System.Mount",
                source,
            })
    }

    /// Reads up to `max_bytes` of a guest file; the flag says whether it was longer.
    pub async fn read_file(&self, path: &str, max_bytes: u64) -> Result<(Vec<u8>, bool), VmError> {
        let req = ReadFileRequest {
            path: path.into(),
            max_bytes,
            ..Default::default()
        };
        self.system
            .read_file(ctx(RPC_TIMEOUT), &req)
            .await
            .map(|r| (r.data, r.truncated))
            .map_err(|source| VmError::Rpc {
                method: "System.ReadFile",
                source,
            })
    }
}

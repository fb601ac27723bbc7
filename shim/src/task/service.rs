//! containerd's task API (v2 and v3 share it), served by the shim. Each
//! handler opens the RPC's span and runs the operation (`lifecycle`,
//! `control`) in it; errors become TTRPC statuses once, here.

use std::sync::Arc;

use async_trait::async_trait;
use containerd_shim_protos::api::*;
use containerd_shim_protos::shim_async::Task;
use tokio::sync::watch;
use tracing::Span;
use ttrpc::r#async::TtrpcContext;

use super::events::Publisher;
use super::registry::Registry;
use super::roots;
use crate::config::HostConfig;
use crate::container::Container;
use crate::error::{traced, ttrpc, Result, ShimError};
use crate::otel::spans;
use crate::sandbox::Observability;
use crate::spec::Bundle;

pub struct TaskService {
    pub(super) namespace: String,
    pub(super) events: Arc<dyn Publisher>,
    pub(super) obs: Observability,
    pub(super) registry: Registry,
    pub(super) host: Arc<HostConfig>,
    /// Set to true when the shim should exit.
    exit: watch::Sender<bool>,
}

impl TaskService {
    pub fn new(namespace: &str, events: Arc<dyn Publisher>, obs: Observability, host: Arc<HostConfig>) -> Self {
        TaskService {
            namespace: namespace.to_string(),
            events,
            obs,
            registry: Registry::default(),
            host,
            exit: watch::channel(false).0,
        }
    }

    /// The span of one RPC: a child of the context the caller propagated
    /// (containerd ≥ 2.0: one trace per request, linked to the container's
    /// root span), or else of the container's root span, which Create
    /// opens, so that one container (or pod) is one trace.
    fn span(&self, name: &'static str, ctx: &TtrpcContext, id: &str) -> Span {
        spans::rpc(name, id, &ctx.metadata, self.registry.root(id))
    }

    /// Ends the root spans (the shim is about to exit).
    pub fn end_traces(&self) {
        self.registry.end_traces(&roots::span_losses(&self.obs));
    }

    /// Resolves when containerd has shut the shim down.
    pub fn exit_requested(&self) -> watch::Receiver<bool> {
        self.exit.subscribe()
    }

    pub(super) fn container(&self, id: &str) -> Result<Arc<Container>> {
        self.registry.get(id)
    }

    pub(super) async fn publish(&self, topic: &'static str, event: Box<dyn protobuf::MessageDyn>) {
        self.events.publish(topic, event).await;
    }
}

#[async_trait]
impl Task for TaskService {
    async fn create(&self, ctx: &TtrpcContext, req: CreateTaskRequest) -> ttrpc::Result<CreateTaskResponse> {
        // The one read of config.json: the root spans need the pod role.
        let bundle = Bundle::load(std::path::Path::new(&req.bundle));
        roots::open(&self.registry, ctx, &req.id, bundle.as_ref().ok());
        let span = self.span("Create", ctx, &req.id);
        ttrpc(traced(span, self.do_create(req, bundle)).await)
    }

    async fn start(&self, ctx: &TtrpcContext, req: StartRequest) -> ttrpc::Result<StartResponse> {
        let span = self.span(if req.exec_id.is_empty() { "Start" } else { "StartExec" }, ctx, &req.id);
        ttrpc(traced(span, self.do_start(req)).await)
    }

    async fn delete(&self, ctx: &TtrpcContext, req: DeleteRequest) -> ttrpc::Result<DeleteResponse> {
        let span = self.span("Delete", ctx, &req.id);
        ttrpc(traced(span, self.do_delete(req)).await)
    }

    async fn state(&self, ctx: &TtrpcContext, req: StateRequest) -> ttrpc::Result<StateResponse> {
        let span = self.span("State", ctx, &req.id);
        ttrpc(traced(span, self.do_state(req)).await)
    }

    async fn wait(&self, ctx: &TtrpcContext, req: WaitRequest) -> ttrpc::Result<WaitResponse> {
        let span = self.span("Wait", ctx, &req.id);
        ttrpc(traced(span, self.do_wait(req)).await)
    }

    async fn kill(&self, ctx: &TtrpcContext, req: KillRequest) -> ttrpc::Result<Empty> {
        let span = self.span("Kill", ctx, &req.id);
        ttrpc(traced(span, self.do_kill(req)).await)
    }

    async fn exec(&self, ctx: &TtrpcContext, req: ExecProcessRequest) -> ttrpc::Result<Empty> {
        let span = self.span("Exec", ctx, &req.id);
        ttrpc(traced(span, self.do_exec(req)).await)
    }

    async fn resize_pty(&self, ctx: &TtrpcContext, req: ResizePtyRequest) -> ttrpc::Result<Empty> {
        let span = self.span("ResizePty", ctx, &req.id);
        ttrpc(traced(span, self.do_resize_pty(req)).await)
    }

    async fn close_io(&self, ctx: &TtrpcContext, req: CloseIORequest) -> ttrpc::Result<Empty> {
        let span = self.span("CloseIO", ctx, &req.id);
        ttrpc(traced(span, self.do_close_io(req)).await)
    }

    async fn pids(&self, ctx: &TtrpcContext, req: PidsRequest) -> ttrpc::Result<PidsResponse> {
        let span = self.span("Pids", ctx, &req.id);
        ttrpc(traced(span, self.do_pids(req)).await)
    }

    async fn pause(&self, ctx: &TtrpcContext, req: PauseRequest) -> ttrpc::Result<Empty> {
        let span = self.span("Pause", ctx, &req.id);
        ttrpc(traced(span, self.do_pause(req)).await)
    }

    async fn resume(&self, ctx: &TtrpcContext, req: ResumeRequest) -> ttrpc::Result<Empty> {
        let span = self.span("Resume", ctx, &req.id);
        ttrpc(traced(span, self.do_resume(req)).await)
    }

    async fn checkpoint(&self, ctx: &TtrpcContext, req: CheckpointTaskRequest) -> ttrpc::Result<Empty> {
        let span = self.span("Checkpoint", ctx, &req.id);
        let refused = async {
            Err(ShimError::Unimplemented(
                "checkpoint is not implemented by voidbox".into(),
            ))
        };
        ttrpc(traced(span, refused).await)
    }

    async fn update(&self, ctx: &TtrpcContext, req: UpdateTaskRequest) -> ttrpc::Result<Empty> {
        let span = self.span("Update", ctx, &req.id);
        ttrpc(traced(span, self.do_update(req)).await)
    }

    async fn stats(&self, ctx: &TtrpcContext, req: StatsRequest) -> ttrpc::Result<StatsResponse> {
        let span = self.span("Stats", ctx, &req.id);
        ttrpc(traced(span, self.do_stats(req)).await)
    }

    async fn connect(&self, ctx: &TtrpcContext, req: ConnectRequest) -> ttrpc::Result<ConnectResponse> {
        let span = self.span("Connect", ctx, &req.id);
        let _g = span.enter();
        let task_pid = self.container(&req.id).map(|c| c.init.pid()).unwrap_or(0);
        Ok(ConnectResponse {
            shim_pid: std::process::id(),
            task_pid,
            version: env!("CARGO_PKG_VERSION").into(),
            ..Default::default()
        })
    }

    async fn shutdown(&self, ctx: &TtrpcContext, req: ShutdownRequest) -> ttrpc::Result<Empty> {
        let span = self.span("Shutdown", ctx, &req.id);
        self.registry.forget(&req.id);
        // Like runc's shim: stay while containers remain.
        if span.in_scope(|| self.registry.is_empty()) {
            drop(span);
            self.end_traces();
            let _ = self.exit.send(true);
        }
        Ok(Empty::new())
    }
}

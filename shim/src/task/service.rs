//! containerd's task API (v2 and v3 share it), served by the shim.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use async_trait::async_trait;
use containerd_shim_protos::api::*;
use containerd_shim_protos::events::task::{
    TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskIO, TaskPaused, TaskResumed, TaskStart,
};
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::{Message, MessageField};
use containerd_shim_protos::shim::oci::ProcessDetails;
use containerd_shim_protos::shim_async::Task;
use containerd_shim_protos::topics;
use opentelemetry::trace::TraceContextExt;
use tokio::sync::watch;
use tracing::{info, warn, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use ttrpc::r#async::TtrpcContext;
use voidbox_api::otel::propagation::extract;
use voidbox_api::task as guest;

use super::container::Container;
use super::create;
use super::error::{traced, ttrpc, Result, ShimError};
use super::events::Publisher;
use super::exits::{self, timestamp};
use super::metrics;
use super::pod::{self, Role};
use super::process::{Process, Status as ProcStatus};
use super::registry::Registry;
use super::sandbox::Observability;
use crate::guest::rpc_context;
use crate::io::{IoPaths, Owner, ProcessIo};
use crate::otel::spans;
use crate::vm::VmError;

pub struct TaskService {
    namespace: String,
    events: Arc<dyn Publisher>,
    obs: Observability,
    registry: Registry,
    /// Set to true when the shim should exit.
    exit: watch::Sender<bool>,
}

fn rpc<T>(method: &'static str, r: ttrpc::Result<T>) -> Result<T> {
    r.map_err(|source| VmError::Rpc { method, source }.into())
}

impl TaskService {
    pub fn new(namespace: &str, events: Arc<dyn Publisher>, obs: Observability) -> Self {
        TaskService {
            namespace: namespace.to_string(),
            events,
            obs,
            registry: Registry::default(),
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

    /// Opens the root span of a container that is being created: the
    /// container's lifetime. With a propagated context it belongs to the
    /// Create request's trace; without one it is a root, or a child of its
    /// pod's root span (which the sandbox's Create opens).
    fn open_roots(&self, ctx: &TtrpcContext, req: &CreateTaskRequest) {
        if self.registry.has_root(&req.id) {
            return;
        }
        let incoming = extract(&ctx.metadata);
        let incoming = incoming.span().span_context().is_valid().then_some(incoming);
        let annotations = pod::annotations(std::path::Path::new(&req.bundle));
        let (root, pod) = match Role::of(&annotations) {
            Ok(Role::Sandbox) => {
                let get = |k: &str| annotations.get(k).map(String::as_str).unwrap_or_default();
                let pod = spans::pod_root(&req.id, get(pod::SANDBOX_NAME), get(pod::SANDBOX_NAMESPACE), incoming);
                (
                    spans::container_root(&req.id, Some(pod.context()), "sandbox"),
                    Some(pod),
                )
            }
            Ok(Role::Member { sandbox_id }) => {
                let parent = incoming.or_else(|| self.registry.pod(&sandbox_id));
                (spans::container_root(&req.id, parent, "container"), None)
            }
            _ => (spans::container_root(&req.id, incoming, "standalone"), None),
        };
        self.registry.open_root(&req.id, root, pod);
    }

    /// Ends the root spans (the shim is about to exit).
    pub fn end_traces(&self) {
        self.registry.end_traces();
    }

    /// Resolves when containerd has shut the shim down.
    pub fn exit_requested(&self) -> watch::Receiver<bool> {
        self.exit.subscribe()
    }

    fn container(&self, id: &str) -> Result<Arc<Container>> {
        self.registry.get(id)
    }

    async fn publish(&self, topic: &'static str, event: Box<dyn protobuf::MessageDyn>) {
        self.events.publish(topic, event).await;
    }

    async fn do_create(&self, req: CreateTaskRequest) -> Result<CreateTaskResponse> {
        // Before any VM boots for it.
        voidbox_api::ids::check_container_id(&req.id).map_err(ShimError::InvalidArgument)?;
        let reservation = self.registry.reserve(&req.id)?;
        let container = create::create(&self.namespace, &req, &self.obs, self.registry.sandboxes()).await?;
        if container.owns_vm() {
            exits::relay_guest_events(&container.sandbox, self.registry.containers(), self.events.clone());
        }
        let pid = container.init.pid();
        self.registry.insert(reservation, container);
        info!(id = %req.id, pid, "container created");
        let event = TaskCreate {
            container_id: req.id.clone(),
            bundle: req.bundle.clone(),
            rootfs: req.rootfs.clone(),
            io: MessageField::some(TaskIO {
                stdin: req.stdin.clone(),
                stdout: req.stdout.clone(),
                stderr: req.stderr.clone(),
                terminal: req.terminal,
                ..Default::default()
            }),
            checkpoint: req.checkpoint.clone(),
            pid,
            ..Default::default()
        };
        self.publish(topics::TASK_CREATE_EVENT_TOPIC, Box::new(event)).await;
        Ok(CreateTaskResponse {
            pid,
            ..Default::default()
        })
    }

    async fn do_start(&self, req: StartRequest) -> Result<StartResponse> {
        let c = self.container(&req.id)?;
        let p = c.process(&req.exec_id)?;
        if p.status() != ProcStatus::Created {
            return Err(ShimError::FailedPrecondition(format!(
                "process {} already started",
                display_exec(&req.exec_id)
            )));
        }
        if !req.exec_id.is_empty() {
            // The exec's stdio is relayed from now on; the guest dials its streams.
            let owner = Owner {
                container: &c.id,
                namespace: &self.namespace,
            };
            let (ids, io) = ProcessIo::start(&c.sandbox.mux, &p.paths, owner).await?;
            let exec = guest::ExecRequest {
                id: c.id.clone(),
                exec_id: req.exec_id.clone(),
                process: p.spec.clone(),
                stdio: Some(ids).into(),
                ..Default::default()
            };
            if let Err(e) = rpc("Tasks.Exec", c.guest().tasks().exec(rpc_context(false), &exec).await) {
                io.abort(&c.sandbox.mux);
                return Err(e);
            }
            p.set_io(Arc::new(io));
        }
        let start = guest::StartRequest {
            id: c.id.clone(),
            exec_id: req.exec_id.clone(),
            ..Default::default()
        };
        let started = rpc("Tasks.Start", c.guest().tasks().start(rpc_context(false), &start).await);
        let resp = match started {
            Ok(r) => r,
            Err(e) => {
                if let Some(io) = p.io().filter(|_| !req.exec_id.is_empty()) {
                    io.abort(&c.sandbox.mux);
                }
                return Err(e);
            }
        };
        p.set_pid(resp.pid);
        p.set_running();
        exits::watch(&c, &p, self.events.clone());
        if req.exec_id.is_empty() {
            crate::otel::metrics::get().start.record(
                c.received.elapsed().as_secs_f64(),
                &crate::otel::metrics::vm_attrs(&c.id, &c.sandbox.vm_id),
            );
            let event = TaskStart {
                container_id: c.id.clone(),
                pid: resp.pid,
                ..Default::default()
            };
            self.publish(topics::TASK_START_EVENT_TOPIC, Box::new(event)).await;
        } else {
            let event = TaskExecStarted {
                container_id: c.id.clone(),
                exec_id: req.exec_id.clone(),
                pid: resp.pid,
                ..Default::default()
            };
            self.publish(topics::TASK_EXEC_STARTED_EVENT_TOPIC, Box::new(event))
                .await;
        }
        Ok(StartResponse {
            pid: resp.pid,
            ..Default::default()
        })
    }

    async fn do_delete(&self, req: DeleteRequest) -> Result<DeleteResponse> {
        let c = self.container(&req.id)?;
        let p = c.process(&req.exec_id)?;
        if matches!(p.status(), ProcStatus::Running) && c.vm().try_exit().is_none() {
            return Err(ShimError::FailedPrecondition(format!(
                "process {} of container {} is running; kill it first",
                display_exec(&req.exec_id),
                req.id
            )));
        }
        let (status, at) = p.exit().unwrap_or((0, std::time::SystemTime::now()));
        if req.exec_id.is_empty() {
            c.deleting.store(true, Ordering::SeqCst);
            if c.vm().try_exit().is_none() {
                let del = guest::DeleteRequest {
                    id: c.id.clone(),
                    ..Default::default()
                };
                if let Err(e) = c.guest().tasks().delete(rpc_context(false), &del).await {
                    warn!(id = %c.id, "guest delete: {e:?}");
                }
            }
            if c.owns_vm() {
                // A pod's VM ends with its sandbox container.
                self.registry
                    .sandboxes()
                    .lock()
                    .expect("sandboxes lock")
                    .remove(&c.sandbox.id);
                c.sandbox.teardown().await;
                let stats = &c.sandbox.relay_stats;
                let span = Span::current();
                span.set_attribute(
                    "voidbox.guest.spans_relayed",
                    stats.relayed.load(Ordering::Relaxed) as i64,
                );
                span.set_attribute(
                    "voidbox.guest.spans_dropped",
                    stats.dropped.load(Ordering::Relaxed) as i64,
                );
            }
            c.release_files();
            self.registry.remove(&req.id);
            info!(id = %req.id, "container deleted");
            let event = TaskDelete {
                container_id: c.id.clone(),
                pid: p.pid(),
                exit_status: status,
                exited_at: Some(timestamp(at)).into(),
                id: c.id.clone(),
                ..Default::default()
            };
            self.publish(topics::TASK_DELETE_EVENT_TOPIC, Box::new(event)).await;
        } else {
            if p.status() != ProcStatus::Created && c.vm().try_exit().is_none() {
                let del = guest::DeleteRequest {
                    id: c.id.clone(),
                    exec_id: req.exec_id.clone(),
                    ..Default::default()
                };
                rpc("Tasks.Delete", c.guest().tasks().delete(rpc_context(false), &del).await)?;
            }
            c.execs.lock().expect("execs lock").remove(&req.exec_id);
        }
        Ok(DeleteResponse {
            pid: p.pid(),
            exit_status: status,
            exited_at: Some(timestamp(at)).into(),
            ..Default::default()
        })
    }

    async fn do_state(&self, req: StateRequest) -> Result<StateResponse> {
        let c = self.container(&req.id)?;
        let p = c.process(&req.exec_id)?;
        let (exit_status, exited_at) = match p.exit() {
            Some((s, at)) => (s, MessageField::some(timestamp(at))),
            None => (0, MessageField::none()),
        };
        Ok(StateResponse {
            id: if req.exec_id.is_empty() {
                c.id.clone()
            } else {
                req.exec_id.clone()
            },
            bundle: c.bundle.display().to_string(),
            pid: p.pid(),
            status: self.state_of(&c, &p).into(),
            stdin: p.paths.stdin.clone(),
            stdout: p.paths.stdout.clone(),
            stderr: p.paths.stderr.clone(),
            terminal: p.paths.terminal,
            exit_status,
            exited_at,
            exec_id: req.exec_id,
            ..Default::default()
        })
    }

    async fn do_wait(&self, req: WaitRequest) -> Result<WaitResponse> {
        let p = self.container(&req.id)?.process(&req.exec_id)?;
        let (exit_status, at) = p.wait().await;
        Span::current().set_attribute("exit.status", exit_status as i64);
        Ok(WaitResponse {
            exit_status,
            exited_at: Some(timestamp(at)).into(),
            ..Default::default()
        })
    }

    async fn do_kill(&self, req: KillRequest) -> Result<Empty> {
        let c = self.container(&req.id)?;
        let p = c.process(&req.exec_id)?;
        Span::current().set_attribute("signal", req.signal as i64);
        if p.exit().is_some() || c.vm().try_exit().is_some() {
            return Err(ShimError::NotFound(format!(
                "process {} already finished",
                display_exec(&req.exec_id)
            )));
        }
        let kill = guest::KillRequest {
            id: req.id,
            exec_id: req.exec_id,
            signal: req.signal,
            all: req.all,
            ..Default::default()
        };
        rpc("Tasks.Kill", c.guest().tasks().kill(rpc_context(false), &kill).await)?;
        Ok(Empty::new())
    }

    async fn do_exec(&self, req: ExecProcessRequest) -> Result<Empty> {
        let c = self.container(&req.id)?;
        if c.init.exit().is_some() {
            return Err(ShimError::FailedPrecondition(format!(
                "container {} is not running",
                req.id
            )));
        }
        let spec = req.spec.as_ref().map(|a| a.value.clone()).unwrap_or_default();
        if spec.is_empty() {
            return Err(ShimError::InvalidArgument("exec without a process spec".into()));
        }
        let paths = IoPaths {
            stdin: req.stdin,
            stdout: req.stdout,
            stderr: req.stderr,
            terminal: req.terminal,
        };
        {
            let mut execs = c.execs.lock().expect("execs lock");
            if execs.contains_key(&req.exec_id) {
                return Err(ShimError::AlreadyExists(format!("exec {} already exists", req.exec_id)));
            }
            execs.insert(req.exec_id.clone(), Process::new(&req.exec_id, paths, spec));
        }
        let event = TaskExecAdded {
            container_id: req.id,
            exec_id: req.exec_id,
            ..Default::default()
        };
        self.publish(topics::TASK_EXEC_ADDED_EVENT_TOPIC, Box::new(event)).await;
        Ok(Empty::new())
    }

    async fn do_pids(&self, req: PidsRequest) -> Result<PidsResponse> {
        let c = self.container(&req.id)?;
        let r = guest::PidsRequest {
            id: req.id,
            ..Default::default()
        };
        let resp = rpc("Tasks.Pids", c.guest().tasks().pids(rpc_context(false), &r).await)?;
        let processes = resp
            .processes
            .into_iter()
            .map(|p| {
                let info = (!p.exec_id.is_empty()).then(|| Any {
                    type_url: "containerd.runc.v1.ProcessDetails".into(),
                    value: ProcessDetails {
                        exec_id: p.exec_id.clone(),
                        ..Default::default()
                    }
                    .write_to_bytes()
                    .expect("serialize"),
                    ..Default::default()
                });
                ProcessInfo {
                    pid: p.pid,
                    info: info.into(),
                    ..Default::default()
                }
            })
            .collect();
        Ok(PidsResponse {
            processes,
            ..Default::default()
        })
    }

    fn state_of(&self, c: &Container, p: &Process) -> Status {
        match p.status() {
            ProcStatus::Created => Status::CREATED,
            ProcStatus::Running if c.paused.load(Ordering::SeqCst) => Status::PAUSED,
            ProcStatus::Running => Status::RUNNING,
            ProcStatus::Exited { .. } => Status::STOPPED,
        }
    }
}

fn display_exec(exec_id: &str) -> &str {
    if exec_id.is_empty() {
        "init"
    } else {
        exec_id
    }
}

#[async_trait]
impl Task for TaskService {
    async fn create(&self, ctx: &TtrpcContext, req: CreateTaskRequest) -> ttrpc::Result<CreateTaskResponse> {
        self.open_roots(ctx, &req);
        let span = self.span("Create", ctx, &req.id);
        ttrpc(traced(span, self.do_create(req)).await)
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
        ttrpc(
            traced(span, async {
                let c = self.container(&req.id)?;
                let r = guest::ResizePtyRequest {
                    id: req.id,
                    exec_id: req.exec_id,
                    width: req.width,
                    height: req.height,
                    ..Default::default()
                };
                rpc(
                    "Tasks.ResizePty",
                    c.guest().tasks().resize_pty(rpc_context(false), &r).await,
                )?;
                Ok(Empty::new())
            })
            .await,
        )
    }

    async fn close_io(&self, ctx: &TtrpcContext, req: CloseIORequest) -> ttrpc::Result<Empty> {
        let span = self.span("CloseIO", ctx, &req.id);
        ttrpc(
            traced(span, async {
                let p = self.container(&req.id)?.process(&req.exec_id)?;
                if let Some(io) = p.io() {
                    io.close_stdin();
                }
                Ok(Empty::new())
            })
            .await,
        )
    }

    async fn pids(&self, ctx: &TtrpcContext, req: PidsRequest) -> ttrpc::Result<PidsResponse> {
        let span = self.span("Pids", ctx, &req.id);
        ttrpc(traced(span, self.do_pids(req)).await)
    }

    async fn pause(&self, ctx: &TtrpcContext, req: PauseRequest) -> ttrpc::Result<Empty> {
        let span = self.span("Pause", ctx, &req.id);
        ttrpc(
            traced(span, async {
                let c = self.container(&req.id)?;
                let r = guest::PauseRequest {
                    id: req.id.clone(),
                    ..Default::default()
                };
                rpc("Tasks.Pause", c.guest().tasks().pause(rpc_context(false), &r).await)?;
                c.paused.store(true, Ordering::SeqCst);
                self.publish(
                    topics::TASK_PAUSED_EVENT_TOPIC,
                    Box::new(TaskPaused {
                        container_id: req.id,
                        ..Default::default()
                    }),
                )
                .await;
                Ok(Empty::new())
            })
            .await,
        )
    }

    async fn resume(&self, ctx: &TtrpcContext, req: ResumeRequest) -> ttrpc::Result<Empty> {
        let span = self.span("Resume", ctx, &req.id);
        ttrpc(
            traced(span, async {
                let c = self.container(&req.id)?;
                let r = guest::ResumeRequest {
                    id: req.id.clone(),
                    ..Default::default()
                };
                rpc("Tasks.Resume", c.guest().tasks().resume(rpc_context(false), &r).await)?;
                c.paused.store(false, Ordering::SeqCst);
                let event = TaskResumed {
                    container_id: req.id,
                    ..Default::default()
                };
                self.publish(topics::TASK_RESUMED_EVENT_TOPIC, Box::new(event)).await;
                Ok(Empty::new())
            })
            .await,
        )
    }

    async fn checkpoint(&self, ctx: &TtrpcContext, req: CheckpointTaskRequest) -> ttrpc::Result<Empty> {
        let span = self.span("Checkpoint", ctx, &req.id);
        ttrpc(
            traced(span, async {
                Err(ShimError::Unimplemented(
                    "checkpoint is not implemented by voidbox".into(),
                ))
            })
            .await,
        )
    }

    async fn update(&self, ctx: &TtrpcContext, req: UpdateTaskRequest) -> ttrpc::Result<Empty> {
        let span = self.span("Update", ctx, &req.id);
        ttrpc(
            traced(span, async {
                let c = self.container(&req.id)?;
                let resources = req.resources.as_ref().map(|a| a.value.clone()).unwrap_or_default();
                let r = guest::UpdateRequest {
                    id: req.id,
                    resources,
                    ..Default::default()
                };
                rpc("Tasks.Update", c.guest().tasks().update(rpc_context(false), &r).await)?;
                Ok(Empty::new())
            })
            .await,
        )
    }

    async fn stats(&self, ctx: &TtrpcContext, req: StatsRequest) -> ttrpc::Result<StatsResponse> {
        let span = self.span("Stats", ctx, &req.id);
        ttrpc(
            traced(span, async {
                let c = self.container(&req.id)?;
                let r = guest::StatsRequest {
                    id: req.id,
                    ..Default::default()
                };
                let files = rpc("Tasks.Stats", c.guest().tasks().stats(rpc_context(false), &r).await)?.files;
                let stats = metrics::to_any(&metrics::from_files(&files));
                Ok(StatsResponse {
                    stats: MessageField::some(stats),
                    ..Default::default()
                })
            })
            .await,
        )
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

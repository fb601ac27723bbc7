//! Create, Start, Delete, State and Wait: a container's and its processes'
//! lives, as containerd sees them, with the events it expects.

use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime};

use containerd_shim_protos::api::*;
use containerd_shim_protos::events::task::{TaskCreate, TaskDelete, TaskExecStarted, TaskIO, TaskStart};
use containerd_shim_protos::protobuf::MessageField;
use containerd_shim_protos::topics;
use tracing::{info, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::exits::{self, timestamp};
use super::roots;
use super::service::TaskService;
use crate::container::{self, Container, CreateOptions, Process, Status as ProcStatus};
use crate::error::{Result, ShimError};
use crate::io::IoPaths;
use crate::otel::metrics;
use crate::spec::Bundle;

impl TaskService {
    pub(super) async fn do_create(&self, req: CreateTaskRequest, bundle: Result<Bundle>) -> Result<CreateTaskResponse> {
        let received = Instant::now();
        // Before any VM boots for it.
        voidbox_api::ids::check_container_id(&req.id).map_err(ShimError::InvalidArgument)?;
        if !req.checkpoint.is_empty() {
            return Err(ShimError::Unimplemented(
                "restore from a checkpoint is not implemented by voidbox".into(),
            ));
        }
        let reservation = self.registry.reserve(&req.id)?;
        let opts = CreateOptions {
            namespace: &self.namespace,
            id: &req.id,
            bundle: std::path::Path::new(&req.bundle),
            rootfs: &req.rootfs,
            io: IoPaths {
                stdin: req.stdin.clone(),
                stdout: req.stdout.clone(),
                stderr: req.stderr.clone(),
                terminal: req.terminal,
            },
            options: req.options.as_ref(),
            host: &self.host,
            received,
        };
        let container = container::create(&opts, bundle, &self.obs, self.registry.sandboxes()).await?;
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

    pub(super) async fn do_start(&self, req: StartRequest) -> Result<StartResponse> {
        let c = self.container(&req.id)?;
        let p = c.process(&req.exec_id)?;
        let pid = c.start(&p, &self.namespace).await?;
        exits::watch(&c, &p, self.events.clone());
        if req.exec_id.is_empty() {
            metrics::get().start.record(
                c.received.elapsed().as_secs_f64(),
                &metrics::vm_attrs(&c.id, &c.sandbox.vm_id),
            );
            let event = TaskStart {
                container_id: c.id.clone(),
                pid,
                ..Default::default()
            };
            self.publish(topics::TASK_START_EVENT_TOPIC, Box::new(event)).await;
        } else {
            let event = TaskExecStarted {
                container_id: c.id.clone(),
                exec_id: req.exec_id.clone(),
                pid,
                ..Default::default()
            };
            self.publish(topics::TASK_EXEC_STARTED_EVENT_TOPIC, Box::new(event))
                .await;
        }
        Ok(StartResponse {
            pid,
            ..Default::default()
        })
    }

    pub(super) async fn do_delete(&self, req: DeleteRequest) -> Result<DeleteResponse> {
        let c = self.container(&req.id)?;
        let p = c.process(&req.exec_id)?;
        c.check_deletable(&p)?;
        let (status, at) = p.exit().unwrap_or((0, SystemTime::now()));
        if req.exec_id.is_empty() {
            let writeback = c.start_writeback();
            c.delete_init().await;
            if c.owns_vm() {
                // A pod's VM ends with its sandbox container.
                self.registry.remove_sandbox(&c.sandbox.id);
                c.sandbox.teardown().await;
                // The guest's last spans are in (teardown waits for them):
                // the container's root span tells what was lost.
                self.registry.annotate_root(&req.id, &roots::span_losses(&self.obs));
            }
            c.release_files(writeback).await;
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
            c.delete_exec(&p).await?;
        }
        Ok(DeleteResponse {
            pid: p.pid(),
            exit_status: status,
            exited_at: Some(timestamp(at)).into(),
            ..Default::default()
        })
    }

    pub(super) async fn do_state(&self, req: StateRequest) -> Result<StateResponse> {
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
            status: state_of(&c, &p).into(),
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

    pub(super) async fn do_wait(&self, req: WaitRequest) -> Result<WaitResponse> {
        let p = self.container(&req.id)?.process(&req.exec_id)?;
        let (exit_status, at) = p.wait().await;
        Span::current().set_attribute("exit.status", exit_status as i64);
        Ok(WaitResponse {
            exit_status,
            exited_at: Some(timestamp(at)).into(),
            ..Default::default()
        })
    }
}

fn state_of(c: &Container, p: &Process) -> Status {
    match p.status() {
        ProcStatus::Created => Status::CREATED,
        ProcStatus::Running if c.paused.load(Ordering::SeqCst) => Status::PAUSED,
        ProcStatus::Running => Status::RUNNING,
        ProcStatus::Exited { .. } => Status::STOPPED,
    }
}

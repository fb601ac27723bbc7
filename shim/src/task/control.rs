//! Kill, Exec, ResizePty, CloseIO, Pids, Pause, Resume, Update and Stats:
//! what containerd asks of a running container.

use containerd_shim_protos::api::*;
use containerd_shim_protos::events::task::{TaskExecAdded, TaskPaused, TaskResumed};
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::{Message, MessageField};
use containerd_shim_protos::shim::oci::ProcessDetails;
use containerd_shim_protos::topics;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::metrics;
use super::service::TaskService;
use crate::error::Result;
use crate::io::IoPaths;

impl TaskService {
    pub(super) async fn do_kill(&self, req: KillRequest) -> Result<Empty> {
        Span::current().set_attribute("signal", req.signal as i64);
        let c = self.container(&req.id)?;
        c.kill(&req.exec_id, req.signal, req.all).await?;
        Ok(Empty::new())
    }

    pub(super) async fn do_exec(&self, req: ExecProcessRequest) -> Result<Empty> {
        let c = self.container(&req.id)?;
        let spec = req.spec.as_ref().map(|a| a.value.clone()).unwrap_or_default();
        let paths = IoPaths {
            stdin: req.stdin,
            stdout: req.stdout,
            stderr: req.stderr,
            terminal: req.terminal,
        };
        c.add_exec(&req.exec_id, paths, spec)?;
        let event = TaskExecAdded {
            container_id: req.id,
            exec_id: req.exec_id,
            ..Default::default()
        };
        self.publish(topics::TASK_EXEC_ADDED_EVENT_TOPIC, Box::new(event)).await;
        Ok(Empty::new())
    }

    pub(super) async fn do_resize_pty(&self, req: ResizePtyRequest) -> Result<Empty> {
        let c = self.container(&req.id)?;
        c.resize_pty(&req.exec_id, req.width, req.height).await?;
        Ok(Empty::new())
    }

    pub(super) async fn do_close_io(&self, req: CloseIORequest) -> Result<Empty> {
        let p = self.container(&req.id)?.process(&req.exec_id)?;
        if let Some(io) = p.io() {
            io.close_stdin();
        }
        Ok(Empty::new())
    }

    pub(super) async fn do_pids(&self, req: PidsRequest) -> Result<PidsResponse> {
        let c = self.container(&req.id)?;
        let processes = c
            .pids()
            .await?
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

    pub(super) async fn do_pause(&self, req: PauseRequest) -> Result<Empty> {
        self.container(&req.id)?.pause().await?;
        let event = TaskPaused {
            container_id: req.id,
            ..Default::default()
        };
        self.publish(topics::TASK_PAUSED_EVENT_TOPIC, Box::new(event)).await;
        Ok(Empty::new())
    }

    pub(super) async fn do_resume(&self, req: ResumeRequest) -> Result<Empty> {
        self.container(&req.id)?.resume().await?;
        let event = TaskResumed {
            container_id: req.id,
            ..Default::default()
        };
        self.publish(topics::TASK_RESUMED_EVENT_TOPIC, Box::new(event)).await;
        Ok(Empty::new())
    }

    pub(super) async fn do_update(&self, req: UpdateTaskRequest) -> Result<Empty> {
        let c = self.container(&req.id)?;
        let resources = req.resources.as_ref().map(|a| a.value.clone()).unwrap_or_default();
        c.update(resources).await?;
        Ok(Empty::new())
    }

    pub(super) async fn do_stats(&self, req: StatsRequest) -> Result<StatsResponse> {
        let files = self.container(&req.id)?.cgroup_files().await?;
        Ok(StatsResponse {
            stats: MessageField::some(metrics::to_any(&metrics::from_files(&files))),
            ..Default::default()
        })
    }
}

//! Extra processes in a running container: registered by Exec, run by Start.

use std::sync::Arc;

use tracing::{info_span, Instrument};
use voidbox_api::task::*;

use super::{Result, TaskService};
use crate::tasks::container::Container;
use crate::tasks::error::TaskError;
use crate::tasks::process::{PendingExec, Process};
use crate::tasks::stdio::Streams;

/// Registers the process; it runs at its Start.
pub async fn add(svc: &TaskService, req: ExecRequest) -> Result<ExecResponse> {
    let container = svc.container(&req.id)?;
    if req.exec_id.is_empty() {
        return Err(TaskError::Invalid("exec without an exec id".into()));
    }
    // The id names files in the bundle (`exec-<id>.json`): no `/`, no `..`.
    voidbox_api::ids::check_exec_id(&req.exec_id).map_err(TaskError::Invalid)?;
    if container.init.exit().is_some() {
        return Err(TaskError::Precondition(format!("container {} is not running", req.id)));
    }
    let mut execs = container.execs.lock().expect("execs lock");
    if execs.contains_key(&req.exec_id) {
        return Err(TaskError::Exists(format!("exec {}", req.exec_id)));
    }
    let pending = PendingExec {
        process: req.process,
        stdio: req.stdio.into_option().unwrap_or_default(),
    };
    execs.insert(req.exec_id.clone(), Process::new(&req.exec_id, Some(pending)));
    Ok(ExecResponse::default())
}

/// Runs a registered process with crun exec; its pid once it exists.
pub async fn start(svc: &TaskService, container: &Arc<Container>, process: &Arc<Process>) -> Result<u32> {
    let pending = process
        .pending
        .lock()
        .expect("pending lock")
        .take()
        .ok_or_else(|| TaskError::Precondition(format!("exec {} was already started", process.exec_id)))?;
    let dir = container.bundle();
    let process_file = dir.join(format!("exec-{}.json", process.exec_id));
    std::fs::write(&process_file, &pending.process).map_err(|e| TaskError::io("write", &process_file, e))?;
    let pid_file = dir.join(format!("exec-{}.pid", process.exec_id));
    let streams = Streams::connect(&pending.stdio)
        .instrument(info_span!("stdio.connect"))
        .await?;
    let crun = svc.crun.clone();
    let id = container.id.clone();
    let result = svc
        .run_with_stdio(process, streams, &pid_file, async |console, stdio| {
            crun.exec(&id, &dir, &process_file, &pid_file, console, stdio).await
        })
        .await;
    let _ = std::fs::remove_file(&process_file);
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reaper::Reaper;

    #[tokio::test]
    async fn exec_ids_that_are_not_one_path_component_are_refused() {
        let svc = TaskService::new(Reaper::default());
        svc.containers
            .lock()
            .unwrap()
            .insert("c1".into(), Arc::new(Container::new("c1")));
        for bad in ["../../etc/passwd", "a/b", "..", "/abs"] {
            let req = ExecRequest {
                id: "c1".into(),
                exec_id: bad.into(),
                ..Default::default()
            };
            let err = add(&svc, req).await.expect_err(bad);
            assert!(matches!(err, TaskError::Invalid(_)), "{bad:?}: {err}");
        }
        let ok = ExecRequest {
            id: "c1".into(),
            exec_id: "e1".into(),
            ..Default::default()
        };
        assert!(add(&svc, ok).await.is_ok());
    }
}

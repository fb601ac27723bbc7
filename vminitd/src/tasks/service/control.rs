//! Acting on a running container: signals, freezing, resources, stats,
//! pids and terminal size.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use nix::sys::signal::{kill as send_signal, Signal};
use nix::unistd::Pid;
use voidbox_api::task::*;

use super::{Result, TaskService};
use crate::tasks::cgroup;
use crate::tasks::error::TaskError;
use crate::tasks::stdio::resize;

pub async fn kill(svc: &TaskService, req: KillRequest) -> Result<KillResponse> {
    let container = svc.container(&req.id)?;
    let process = container.process(&req.exec_id)?;
    let finished = || TaskError::NoProcess {
        id: req.id.clone(),
        exec_id: format!("{} (already finished)", req.exec_id),
    };
    if process.exit().is_some() && !req.all {
        return Err(finished());
    }
    if req.exec_id.is_empty() {
        svc.crun.kill(&req.id, &container.bundle(), req.signal, req.all).await?;
        #[cfg(feature = "debug-rpcs")]
        crate::test_delay::before_kill_answer().await;
    } else {
        let sig =
            Signal::try_from(req.signal as i32).map_err(|_| TaskError::Invalid(format!("signal {}", req.signal)))?;
        if process.pid() == 0 {
            return Err(TaskError::Precondition(format!("exec {} was not started", req.exec_id)));
        }
        send_signal(Pid::from_raw(process.pid() as i32), sig).map_err(|_| finished())?;
    }
    Ok(KillResponse::default())
}

pub async fn pause(svc: &TaskService, req: PauseRequest) -> Result<PauseResponse> {
    let container = svc.container(&req.id)?;
    svc.crun.pause(&req.id, &container.bundle()).await?;
    container.paused.store(true, Ordering::SeqCst);
    Ok(PauseResponse::default())
}

pub async fn resume(svc: &TaskService, req: ResumeRequest) -> Result<ResumeResponse> {
    let container = svc.container(&req.id)?;
    svc.crun.resume(&req.id, &container.bundle()).await?;
    container.paused.store(false, Ordering::SeqCst);
    Ok(ResumeResponse::default())
}

pub async fn update(svc: &TaskService, req: UpdateRequest) -> Result<UpdateResponse> {
    let container = svc.container(&req.id)?;
    let file = container.bundle().join("resources.json");
    std::fs::write(&file, &req.resources).map_err(|e| TaskError::io("write", &file, e))?;
    svc.crun.update(&req.id, &container.bundle(), &file).await?;
    Ok(UpdateResponse::default())
}

pub async fn stats(svc: &TaskService, req: StatsRequest) -> Result<StatsResponse> {
    svc.container(&req.id)?;
    Ok(StatsResponse {
        files: cgroup::stat_files(&req.id),
        ..Default::default()
    })
}

pub async fn pids(svc: &TaskService, req: PidsRequest) -> Result<PidsResponse> {
    let container = svc.container(&req.id)?;
    let execs: HashMap<u32, String> = container
        .execs
        .lock()
        .expect("execs lock")
        .values()
        .map(|p| (p.pid(), p.exec_id.clone()))
        .collect();
    let processes = cgroup::pids(&req.id)
        .into_iter()
        .map(|pid| ProcessPid {
            pid,
            exec_id: execs.get(&pid).cloned().unwrap_or_default(),
            ..Default::default()
        })
        .collect();
    Ok(PidsResponse {
        processes,
        ..Default::default()
    })
}

pub async fn resize_pty(svc: &TaskService, req: ResizePtyRequest) -> Result<ResizePtyResponse> {
    let container = svc.container(&req.id)?;
    let process = container.process(&req.exec_id)?;
    let pty = process.pty.lock().expect("pty lock");
    let master = pty
        .as_ref()
        .ok_or_else(|| TaskError::Precondition("the process has no terminal".into()))?;
    resize(master, req.width, req.height)?;
    Ok(ResizePtyResponse::default())
}

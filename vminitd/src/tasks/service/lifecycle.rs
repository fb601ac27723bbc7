//! A container's life: its bundle, create, start, wait, state and delete.

use std::sync::Arc;

use tracing::{info, info_span, warn, Instrument};
use voidbox_api::task::*;

use super::{exec, Result, TaskService};
use crate::tasks::cgroup;
use crate::tasks::container::{bundle_dir, check_id, remove_bundle, Container};
use crate::tasks::error::TaskError;
use crate::tasks::process::{ProcState, Process};
use crate::tasks::stdio::Streams;
use crate::tasks::{shares, spec};

pub async fn put_bundle(svc: &TaskService, req: PutBundleRequest) -> Result<PutBundleResponse> {
    check_id(&req.id)?;
    if svc.containers.lock().expect("containers lock").contains_key(&req.id) {
        return Err(TaskError::Exists(req.id));
    }
    let dir = bundle_dir(&req.id);
    std::fs::create_dir_all(&dir).map_err(|e| TaskError::io("create bundle", &dir, e))?;
    for (name, data) in &req.files {
        let plain = !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            && name != ".."
            && name != ".";
        if !plain {
            return Err(TaskError::Invalid(format!("bundle file name {name:?}")));
        }
        let path = dir.join(name);
        std::fs::write(&path, data).map_err(|e| TaskError::io("write", &path, e))?;
    }
    Ok(PutBundleResponse::default())
}

pub async fn create(svc: &TaskService, req: CreateRequest) -> Result<CreateResponse> {
    check_id(&req.id)?;
    let container = Arc::new(Container::new(&req.id));
    {
        let mut all = svc.containers.lock().expect("containers lock");
        if all.contains_key(&req.id) {
            return Err(TaskError::Exists(req.id));
        }
        all.insert(req.id.clone(), container.clone());
    }
    match create_in(svc, &container, &req).await {
        Ok(pid) => Ok(CreateResponse {
            pid,
            ..Default::default()
        }),
        Err(e) => {
            let _ = svc.crun.delete(&req.id, &container.bundle()).await;
            remove_bundle(&req.id);
            svc.containers.lock().expect("containers lock").remove(&req.id);
            Err(e)
        }
    }
}

async fn create_in(svc: &TaskService, container: &Arc<Container>, req: &CreateRequest) -> Result<u32> {
    let dir = container.bundle();
    std::fs::create_dir_all(&dir).map_err(|e| TaskError::io("create bundle", &dir, e))?;
    let rootfs = info_span!("mount.rootfs", tag = %req.rootfs_tag, path = %req.rootfs_path)
        .in_scope(|| shares::resolve(&req.rootfs_tag, &req.rootfs_path))?;
    let rootfs_s = rootfs.to_string_lossy().into_owned();
    let config_path = dir.join("config.json");
    let sent = std::fs::read(&config_path)
        .map_err(|_| TaskError::Precondition(format!("container {}: no config.json (PutBundle first)", req.id)))?;
    let config = spec::for_guest(&sent, &req.id, &rootfs_s)?;
    std::fs::write(&config_path, config.json).map_err(|e| TaskError::io("write", &config_path, e))?;
    container
        .poststart_hooks
        .store(config.poststart_hooks, std::sync::atomic::Ordering::SeqCst);

    let streams = Streams::connect(req.stdio.as_ref().unwrap_or_default())
        .instrument(info_span!("stdio.connect"))
        .await?;
    let pid_file = dir.join("init.pid");
    let crun = svc.crun.clone();
    let id = req.id.clone();
    let pid = svc
        .run_with_stdio(&container.init, streams, &pid_file, async |console, stdio| {
            crun.create(&id, &dir, &pid_file, console, stdio).await
        })
        .await?;
    let watch = tokio::spawn(cgroup::watch_oom(req.id.clone(), svc.events.clone()));
    *container.oom_watch.lock().expect("oom lock") = Some(watch);
    info!("created container {} (init pid {pid})", req.id);
    Ok(pid)
}

pub async fn start(svc: &TaskService, req: StartRequest) -> Result<StartResponse> {
    let container = svc.container(&req.id)?;
    let process = container.process(&req.exec_id)?;
    let pid = if req.exec_id.is_empty() {
        if process.state() != ProcState::Created {
            return Err(TaskError::Precondition(format!(
                "container {} is not in the created state",
                req.id
            )));
        }
        let hooks = container.poststart_hooks.load(std::sync::atomic::Ordering::SeqCst);
        svc.crun.start(&req.id, &container.bundle(), hooks).await?;
        process.pid()
    } else {
        exec::start(svc, &container, &process).await?
    };
    process.set_running();
    Ok(StartResponse {
        pid,
        ..Default::default()
    })
}

pub async fn wait(svc: &TaskService, req: WaitRequest) -> Result<WaitResponse> {
    let container = svc.container(&req.id)?;
    let process = container.process(&req.exec_id)?;
    let (exit_status, exited_at_unix_nano) = process.wait().await;
    let oom_killed = req.exec_id.is_empty() && cgroup::oom_kills(&req.id) > 0;
    Ok(WaitResponse {
        exit_status,
        exited_at_unix_nano,
        oom_killed,
        ..Default::default()
    })
}

pub async fn delete(svc: &TaskService, req: DeleteRequest) -> Result<DeleteResponse> {
    let container = svc.container(&req.id)?;
    let process = container.process(&req.exec_id)?;
    if process.state() == ProcState::Running {
        return Err(TaskError::Precondition(format!(
            "process {} of container {} is running; kill it first",
            if req.exec_id.is_empty() { "init" } else { &req.exec_id },
            req.id
        )));
    }
    let (exit_status, exited_at_unix_nano) = process.exit().unwrap_or((0, 0));
    if req.exec_id.is_empty() {
        if let Err(e) = svc.crun.delete(&req.id, &container.bundle()).await {
            warn!("{e}");
        }
        if let Some(w) = container.oom_watch.lock().expect("oom lock").take() {
            w.abort();
        }
        remove_bundle(&req.id);
        svc.containers.lock().expect("containers lock").remove(&req.id);
        info!("deleted container {}", req.id);
    } else {
        container.execs.lock().expect("execs lock").remove(&req.exec_id);
    }
    Ok(DeleteResponse {
        pid: process.pid(),
        exit_status,
        exited_at_unix_nano,
        ..Default::default()
    })
}

pub async fn state(svc: &TaskService, req: StateRequest) -> Result<StateResponse> {
    let container = svc.container(&req.id)?;
    let process = container.process(&req.exec_id)?;
    let (exit_status, exited_at_unix_nano) = process.exit().unwrap_or((0, 0));
    Ok(StateResponse {
        pid: process.pid(),
        status: status_of(&container, &process).into(),
        exit_status,
        exited_at_unix_nano,
        ..Default::default()
    })
}

fn status_of(container: &Container, process: &Process) -> Status {
    match process.state() {
        ProcState::Created => Status::CREATED,
        ProcState::Running if container.is_paused() => Status::PAUSED,
        ProcState::Running => Status::RUNNING,
        ProcState::Exited { .. } => Status::STOPPED,
    }
}

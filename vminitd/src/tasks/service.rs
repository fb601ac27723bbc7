//! `voidbox.task.v1.Tasks`: the container lifecycle, mapped onto crun.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::sync::broadcast;
use tracing::Instrument;
use tracing::{info, info_span, warn, Span};
use ttrpc::r#async::{ServerStreamSender, TtrpcContext};
use voidbox_api::task::*;
use voidbox_api::task_ttrpc::Tasks;

use crate::reaper::Reaper;
use crate::services::handler::handle;
use crate::tasks::container::{bundle_dir, check_id, remove_bundle, Container};
use crate::tasks::crun::{read_pid, ChildStdio, Crun};
use crate::tasks::error::TaskError;
use crate::tasks::process::{PendingExec, ProcState, Process};
use crate::tasks::stdio::{resize, ConsoleSocket, Streams};
use crate::tasks::{cgroup, shares, spec};

type Result<T> = std::result::Result<T, TaskError>;

pub struct TaskService {
    containers: Mutex<HashMap<String, Arc<Container>>>,
    crun: Crun,
    reaper: Reaper,
    events: broadcast::Sender<Event>,
}

impl TaskService {
    pub fn new(reaper: Reaper) -> Self {
        TaskService {
            containers: Mutex::new(HashMap::new()),
            crun: Crun::new(reaper.clone()),
            reaper,
            events: broadcast::channel(64).0,
        }
    }

    fn container(&self, id: &str) -> Result<Arc<Container>> {
        self.containers
            .lock()
            .expect("containers lock")
            .get(id)
            .cloned()
            .ok_or_else(|| TaskError::NoContainer(id.to_string()))
    }

    /// Runs crun create or exec with `streams` as the process's stdio, and
    /// returns once the process exists (its pid in `pid_file`).
    async fn run_with_stdio(
        &self,
        process: &Arc<Process>,
        streams: Streams,
        console_path: std::path::PathBuf,
        pid_file: &std::path::Path,
        run: impl AsyncFnOnce(Option<&std::path::Path>, ChildStdio) -> Result<()>,
    ) -> Result<u32> {
        if streams.terminal {
            let console = ConsoleSocket::bind(&console_path)?;
            let master = tokio::spawn(console.receive());
            let created = run(Some(&console_path), ChildStdio::null()).await;
            let _ = std::fs::remove_file(&console_path);
            if let Err(e) = created {
                master.abort();
                return Err(e);
            }
            let master = master.await.map_err(|e| TaskError::Stdio(e.to_string()))??;
            let (keep, relays) = streams.attach_pty(master)?;
            *process.pty.lock().expect("pty lock") = Some(keep);
            process.relays.lock().expect("relays lock").extend(relays);
        } else {
            let (child, relays) = streams.into_pipes()?;
            process.relays.lock().expect("relays lock").extend(relays);
            run(None, child).await?;
        }
        let pid = read_pid(pid_file)?;
        process.track(pid, &self.reaper);
        Ok(pid)
    }

    async fn create_container(&self, req: CreateRequest) -> Result<u32> {
        check_id(&req.id)?;
        let container = Arc::new(Container::new(&req.id));
        {
            let mut all = self.containers.lock().expect("containers lock");
            if all.contains_key(&req.id) {
                return Err(TaskError::Exists(req.id));
            }
            all.insert(req.id.clone(), container.clone());
        }
        match self.create_in(&container, &req).await {
            Ok(pid) => Ok(pid),
            Err(e) => {
                let _ = self.crun.delete(&req.id, &container.bundle()).await;
                remove_bundle(&req.id);
                self.containers.lock().expect("containers lock").remove(&req.id);
                Err(e)
            }
        }
    }

    async fn create_in(&self, container: &Arc<Container>, req: &CreateRequest) -> Result<u32> {
        let dir = container.bundle();
        std::fs::create_dir_all(&dir).map_err(|e| TaskError::io("create bundle", &dir, e))?;
        let rootfs = info_span!("mount.rootfs", tag = %req.rootfs_tag, path = %req.rootfs_path)
            .in_scope(|| shares::resolve(&req.rootfs_tag, &req.rootfs_path))?;
        let rootfs_s = rootfs.to_string_lossy().into_owned();
        let config_path = dir.join("config.json");
        let sent = std::fs::read(&config_path)
            .map_err(|_| TaskError::Precondition(format!("container {}: no config.json (PutBundle first)", req.id)))?;
        let config = spec::for_guest(&sent, &req.id, &rootfs_s)?;
        std::fs::write(&config_path, config).map_err(|e| TaskError::io("write", &config_path, e))?;

        let streams = Streams::connect(req.stdio.as_ref().unwrap_or_default())
            .instrument(info_span!("stdio.connect"))
            .await?;
        let pid_file = dir.join("init.pid");
        let crun = self.crun.clone();
        let id = req.id.clone();
        let pid = self
            .run_with_stdio(
                &container.init,
                streams,
                dir.join("console.sock"),
                &pid_file,
                async |console, stdio| crun.create(&id, &dir, &pid_file, console, stdio).await,
            )
            .await?;
        let watch = tokio::spawn(cgroup::watch_oom(req.id.clone(), self.events.clone()));
        *container.oom_watch.lock().expect("oom lock") = Some(watch);
        info!("created container {} (init pid {pid})", req.id);
        Ok(pid)
    }

    async fn start_exec(&self, container: &Arc<Container>, process: &Arc<Process>) -> Result<u32> {
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
        let crun = self.crun.clone();
        let id = container.id.clone();
        let result = self
            .run_with_stdio(
                process,
                streams,
                dir.join(format!("exec-{}.sock", process.exec_id)),
                &pid_file,
                async |console, stdio| crun.exec(&id, &dir, &process_file, &pid_file, console, stdio).await,
            )
            .await;
        let _ = std::fs::remove_file(&process_file);
        result
    }
}

fn status_of(container: &Container, process: &Process) -> Status {
    match process.state() {
        ProcState::Created => Status::CREATED,
        ProcState::Running if container.is_paused() => Status::PAUSED,
        ProcState::Running => Status::RUNNING,
        ProcState::Exited { .. } => Status::STOPPED,
    }
}

#[async_trait]
impl Tasks for TaskService {
    async fn put_bundle(&self, ctx: &TtrpcContext, req: PutBundleRequest) -> ttrpc::Result<PutBundleResponse> {
        let span = info_span!("bundle.put", container.id = %req.id, files = req.files.len());
        handle(ctx, span, async move {
            check_id(&req.id)?;
            if self.containers.lock().expect("containers lock").contains_key(&req.id) {
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
            Ok::<_, TaskError>(PutBundleResponse::default())
        })
        .await
    }

    async fn create(&self, ctx: &TtrpcContext, req: CreateRequest) -> ttrpc::Result<CreateResponse> {
        let span = info_span!("task.create", container.id = %req.id);
        handle(ctx, span, async move {
            let pid = self.create_container(req).await?;
            Ok::<_, TaskError>(CreateResponse {
                pid,
                ..Default::default()
            })
        })
        .await
    }

    async fn start(&self, ctx: &TtrpcContext, req: StartRequest) -> ttrpc::Result<StartResponse> {
        let span = info_span!("task.start", container.id = %req.id, exec.id = %req.exec_id);
        handle(ctx, span, async move {
            let container = self.container(&req.id)?;
            let process = container.process(&req.exec_id)?;
            let pid = if req.exec_id.is_empty() {
                if process.state() != ProcState::Created {
                    return Err(TaskError::Precondition(format!(
                        "container {} is not in the created state",
                        req.id
                    )));
                }
                self.crun.start(&req.id, &container.bundle()).await?;
                process.pid()
            } else {
                self.start_exec(&container, &process).await?
            };
            process.set_running();
            Ok::<_, TaskError>(StartResponse {
                pid,
                ..Default::default()
            })
        })
        .await
    }

    async fn exec(&self, ctx: &TtrpcContext, req: ExecRequest) -> ttrpc::Result<ExecResponse> {
        let span = info_span!("task.exec", container.id = %req.id, exec.id = %req.exec_id);
        handle(ctx, span, async move {
            let container = self.container(&req.id)?;
            if req.exec_id.is_empty() {
                return Err(TaskError::Invalid("exec without an exec id".into()));
            }
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
            Ok::<_, TaskError>(ExecResponse::default())
        })
        .await
    }

    async fn kill(&self, ctx: &TtrpcContext, req: KillRequest) -> ttrpc::Result<KillResponse> {
        let span = info_span!("task.kill", container.id = %req.id, exec.id = %req.exec_id);
        handle(ctx, span, async move {
            let container = self.container(&req.id)?;
            let process = container.process(&req.exec_id)?;
            let finished = || TaskError::NoProcess {
                id: req.id.clone(),
                exec_id: format!("{} (already finished)", req.exec_id),
            };
            if process.exit().is_some() && !req.all {
                return Err(finished());
            }
            if req.exec_id.is_empty() {
                self.crun
                    .kill(&req.id, &container.bundle(), req.signal, req.all)
                    .await?;
            } else {
                let sig = Signal::try_from(req.signal as i32)
                    .map_err(|_| TaskError::Invalid(format!("signal {}", req.signal)))?;
                if process.pid() == 0 {
                    return Err(TaskError::Precondition(format!("exec {} was not started", req.exec_id)));
                }
                kill(Pid::from_raw(process.pid() as i32), sig).map_err(|_| finished())?;
            }
            Ok::<_, TaskError>(KillResponse::default())
        })
        .await
    }

    async fn wait(&self, ctx: &TtrpcContext, req: WaitRequest) -> ttrpc::Result<WaitResponse> {
        let span = info_span!("process.wait", container.id = %req.id, exec.id = %req.exec_id);
        handle(ctx, span, async move {
            let container = self.container(&req.id)?;
            let process = container.process(&req.exec_id)?;
            let (exit_status, exited_at_unix_nano) = process.wait().await;
            let oom_killed = req.exec_id.is_empty() && cgroup::oom_kills(&req.id) > 0;
            Ok::<_, TaskError>(WaitResponse {
                exit_status,
                exited_at_unix_nano,
                oom_killed,
                ..Default::default()
            })
        })
        .await
    }

    async fn delete(&self, ctx: &TtrpcContext, req: DeleteRequest) -> ttrpc::Result<DeleteResponse> {
        let span = info_span!("task.delete", container.id = %req.id, exec.id = %req.exec_id);
        handle(ctx, span, async move {
            let container = self.container(&req.id)?;
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
                if let Err(e) = self.crun.delete(&req.id, &container.bundle()).await {
                    warn!("{e}");
                }
                if let Some(w) = container.oom_watch.lock().expect("oom lock").take() {
                    w.abort();
                }
                remove_bundle(&req.id);
                self.containers.lock().expect("containers lock").remove(&req.id);
                info!("deleted container {}", req.id);
            } else {
                container.execs.lock().expect("execs lock").remove(&req.exec_id);
            }
            Ok::<_, TaskError>(DeleteResponse {
                pid: process.pid(),
                exit_status,
                exited_at_unix_nano,
                ..Default::default()
            })
        })
        .await
    }

    async fn state(&self, ctx: &TtrpcContext, req: StateRequest) -> ttrpc::Result<StateResponse> {
        let span = info_span!("task.state", container.id = %req.id, exec.id = %req.exec_id);
        handle(ctx, span, async move {
            let container = self.container(&req.id)?;
            let process = container.process(&req.exec_id)?;
            let (exit_status, exited_at_unix_nano) = process.exit().unwrap_or((0, 0));
            Ok::<_, TaskError>(StateResponse {
                pid: process.pid(),
                status: status_of(&container, &process).into(),
                exit_status,
                exited_at_unix_nano,
                ..Default::default()
            })
        })
        .await
    }

    async fn pids(&self, ctx: &TtrpcContext, req: PidsRequest) -> ttrpc::Result<PidsResponse> {
        let span = info_span!("task.pids", container.id = %req.id);
        handle(ctx, span, async move {
            let container = self.container(&req.id)?;
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
            Ok::<_, TaskError>(PidsResponse {
                processes,
                ..Default::default()
            })
        })
        .await
    }

    async fn pause(&self, ctx: &TtrpcContext, req: PauseRequest) -> ttrpc::Result<PauseResponse> {
        let span = info_span!("task.pause", container.id = %req.id);
        handle(ctx, span, async move {
            let container = self.container(&req.id)?;
            self.crun.pause(&req.id, &container.bundle()).await?;
            container.paused.store(true, Ordering::SeqCst);
            Ok::<_, TaskError>(PauseResponse::default())
        })
        .await
    }

    async fn resume(&self, ctx: &TtrpcContext, req: ResumeRequest) -> ttrpc::Result<ResumeResponse> {
        let span = info_span!("task.resume", container.id = %req.id);
        handle(ctx, span, async move {
            let container = self.container(&req.id)?;
            self.crun.resume(&req.id, &container.bundle()).await?;
            container.paused.store(false, Ordering::SeqCst);
            Ok::<_, TaskError>(ResumeResponse::default())
        })
        .await
    }

    async fn stats(&self, ctx: &TtrpcContext, req: StatsRequest) -> ttrpc::Result<StatsResponse> {
        let span = info_span!("task.stats", container.id = %req.id);
        handle(ctx, span, async move {
            self.container(&req.id)?;
            Ok::<_, TaskError>(StatsResponse {
                files: cgroup::stat_files(&req.id),
                ..Default::default()
            })
        })
        .await
    }

    async fn update(&self, ctx: &TtrpcContext, req: UpdateRequest) -> ttrpc::Result<UpdateResponse> {
        let span = info_span!("task.update", container.id = %req.id);
        handle(ctx, span, async move {
            let container = self.container(&req.id)?;
            let file = container.bundle().join("resources.json");
            std::fs::write(&file, &req.resources).map_err(|e| TaskError::io("write", &file, e))?;
            self.crun.update(&req.id, &container.bundle(), &file).await?;
            Ok::<_, TaskError>(UpdateResponse::default())
        })
        .await
    }

    async fn resize_pty(&self, ctx: &TtrpcContext, req: ResizePtyRequest) -> ttrpc::Result<ResizePtyResponse> {
        let span = info_span!("task.resize_pty", container.id = %req.id, exec.id = %req.exec_id);
        handle(ctx, span, async move {
            let container = self.container(&req.id)?;
            let process = container.process(&req.exec_id)?;
            let pty = process.pty.lock().expect("pty lock");
            let master = pty
                .as_ref()
                .ok_or_else(|| TaskError::Precondition("the process has no terminal".into()))?;
            resize(master, req.width, req.height)?;
            Ok::<_, TaskError>(ResizePtyResponse::default())
        })
        .await
    }

    async fn events(
        &self,
        ctx: &TtrpcContext,
        _req: EventsRequest,
        sender: ServerStreamSender<Event>,
    ) -> ttrpc::Result<()> {
        handle(ctx, Span::none(), async move {
            let mut events = self.events.subscribe();
            loop {
                match events.recv().await {
                    Ok(event) => sender.send(&event).await?,
                    Err(broadcast::error::RecvError::Lagged(n)) => warn!("events stream lagged by {n}"),
                    Err(broadcast::error::RecvError::Closed) => return Ok::<_, ttrpc::Error>(()),
                }
            }
        })
        .await
    }
}

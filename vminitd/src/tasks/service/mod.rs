//! `voidbox.task.v1.Tasks`: the container lifecycle, mapped onto crun.
//!
//! This file is the service's face: every RPC's span, and which module does
//! the work: `lifecycle` (bundle, create, start, wait, state, delete),
//! `exec` (extra processes) and `control` (signals, freezing, resources,
//! stats, pids, terminal size).

mod control;
mod exec;
mod lifecycle;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::sync::broadcast;
use tracing::{info_span, warn, Span};
use ttrpc::r#async::{ServerStreamSender, TtrpcContext};
use voidbox_api::task::*;
use voidbox_api::task_ttrpc::Tasks;

use crate::reaper::Reaper;
use crate::services::handler::handle;
use crate::tasks::container::Container;
use crate::tasks::crun::{read_pid, ChildStdio, Crun};
use crate::tasks::error::TaskError;
use crate::tasks::process::Process;
use crate::tasks::stdio::{ConsoleSocket, Streams};

type Result<T> = std::result::Result<T, TaskError>;

/// Where console sockets go: ids make paths too long for a unix socket
/// (CRI's container and exec ids are 64 characters each).
const CONSOLES: &str = "/run/voidbox/consoles";

pub struct TaskService {
    containers: Mutex<HashMap<String, Arc<Container>>>,
    /// Names console sockets.
    consoles: std::sync::atomic::AtomicU64,
    crun: Crun,
    reaper: Reaper,
    events: broadcast::Sender<Event>,
}

impl TaskService {
    pub fn new(reaper: Reaper) -> Self {
        TaskService {
            containers: Mutex::new(HashMap::new()),
            consoles: Default::default(),
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
        pid_file: &std::path::Path,
        run: impl AsyncFnOnce(Option<&std::path::Path>, ChildStdio) -> Result<()>,
    ) -> Result<u32> {
        if streams.terminal {
            let n = self.consoles.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            std::fs::create_dir_all(CONSOLES).map_err(|e| TaskError::io("create", CONSOLES, e))?;
            let console_path = std::path::Path::new(CONSOLES).join(format!("{n}.sock"));
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
}

#[async_trait]
impl Tasks for TaskService {
    async fn put_bundle(&self, ctx: &TtrpcContext, req: PutBundleRequest) -> ttrpc::Result<PutBundleResponse> {
        let span = info_span!("bundle.put", container.id = %req.id, files = req.files.len());
        handle(ctx, span, lifecycle::put_bundle(self, req)).await
    }

    async fn create(&self, ctx: &TtrpcContext, req: CreateRequest) -> ttrpc::Result<CreateResponse> {
        let span = info_span!("task.create", container.id = %req.id);
        handle(ctx, span, lifecycle::create(self, req)).await
    }

    async fn start(&self, ctx: &TtrpcContext, req: StartRequest) -> ttrpc::Result<StartResponse> {
        let span = info_span!("task.start", container.id = %req.id, exec.id = %req.exec_id);
        handle(ctx, span, lifecycle::start(self, req)).await
    }

    async fn exec(&self, ctx: &TtrpcContext, req: ExecRequest) -> ttrpc::Result<ExecResponse> {
        let span = info_span!("task.exec", container.id = %req.id, exec.id = %req.exec_id);
        handle(ctx, span, exec::add(self, req)).await
    }

    async fn kill(&self, ctx: &TtrpcContext, req: KillRequest) -> ttrpc::Result<KillResponse> {
        let span = info_span!("task.kill", container.id = %req.id, exec.id = %req.exec_id);
        handle(ctx, span, control::kill(self, req)).await
    }

    async fn wait(&self, ctx: &TtrpcContext, req: WaitRequest) -> ttrpc::Result<WaitResponse> {
        let span = info_span!("process.wait", container.id = %req.id, exec.id = %req.exec_id);
        handle(ctx, span, lifecycle::wait(self, req)).await
    }

    async fn delete(&self, ctx: &TtrpcContext, req: DeleteRequest) -> ttrpc::Result<DeleteResponse> {
        let span = info_span!("task.delete", container.id = %req.id, exec.id = %req.exec_id);
        handle(ctx, span, lifecycle::delete(self, req)).await
    }

    async fn state(&self, ctx: &TtrpcContext, req: StateRequest) -> ttrpc::Result<StateResponse> {
        let span = info_span!("task.state", container.id = %req.id, exec.id = %req.exec_id);
        handle(ctx, span, lifecycle::state(self, req)).await
    }

    async fn pids(&self, ctx: &TtrpcContext, req: PidsRequest) -> ttrpc::Result<PidsResponse> {
        let span = info_span!("task.pids", container.id = %req.id);
        handle(ctx, span, control::pids(self, req)).await
    }

    async fn pause(&self, ctx: &TtrpcContext, req: PauseRequest) -> ttrpc::Result<PauseResponse> {
        let span = info_span!("task.pause", container.id = %req.id);
        handle(ctx, span, control::pause(self, req)).await
    }

    async fn resume(&self, ctx: &TtrpcContext, req: ResumeRequest) -> ttrpc::Result<ResumeResponse> {
        let span = info_span!("task.resume", container.id = %req.id);
        handle(ctx, span, control::resume(self, req)).await
    }

    async fn stats(&self, ctx: &TtrpcContext, req: StatsRequest) -> ttrpc::Result<StatsResponse> {
        let span = info_span!("task.stats", container.id = %req.id);
        handle(ctx, span, control::stats(self, req)).await
    }

    async fn update(&self, ctx: &TtrpcContext, req: UpdateRequest) -> ttrpc::Result<UpdateResponse> {
        let span = info_span!("task.update", container.id = %req.id);
        handle(ctx, span, control::update(self, req)).await
    }

    async fn resize_pty(&self, ctx: &TtrpcContext, req: ResizePtyRequest) -> ttrpc::Result<ResizePtyResponse> {
        let span = info_span!("task.resize_pty", container.id = %req.id, exec.id = %req.exec_id);
        handle(ctx, span, control::resize_pty(self, req)).await
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

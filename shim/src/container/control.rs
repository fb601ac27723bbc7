//! What a running container can be asked: signals, new exec processes,
//! pause and resume, resource updates, its processes and its cgroup stats.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use voidbox_api::task as guest;

use super::lifecycle::display_exec;
use super::process::Process;
use super::Container;
use crate::error::{Result, ShimError};
use crate::io::IoPaths;

impl Container {
    pub async fn kill(&self, exec_id: &str, signal: u32, all: bool) -> Result<()> {
        let p = self.process(exec_id)?;
        let ended = || p.exit().is_some() || self.vm_gone();
        let finished = || ShimError::NotFound(format!("process {} already finished", display_exec(exec_id)));
        if ended() {
            return Err(finished());
        }
        let kill = guest::KillRequest {
            id: self.id.clone(),
            exec_id: exec_id.to_string(),
            signal,
            all,
            ..Default::default()
        };
        let _answering = self.sandbox.kills.read().await;
        match self.ask(self.guest().kill(&kill)).await {
            Ok(()) => Ok(()),
            // The VM ended under the call (it crashed, or its teardown
            // waited for the answer no longer than its bound): the answer a
            // Kill a moment later gets.
            Err(_) if ended() => Err(finished()),
            Err(e) => Err(e),
        }
    }

    /// Registers exec process `exec_id`; Start runs it.
    pub fn add_exec(&self, exec_id: &str, paths: IoPaths, spec: Vec<u8>) -> Result<()> {
        // The guest makes file names of it; refuse here what it would refuse.
        voidbox_api::ids::check_exec_id(exec_id).map_err(ShimError::InvalidArgument)?;
        if self.init.exit().is_some() {
            return Err(ShimError::FailedPrecondition(format!(
                "container {} is not running",
                self.id
            )));
        }
        if spec.is_empty() {
            return Err(ShimError::InvalidArgument("exec without a process spec".into()));
        }
        let mut execs = self.execs.lock().expect("execs lock");
        if execs.contains_key(exec_id) {
            return Err(ShimError::AlreadyExists(format!("exec {exec_id} already exists")));
        }
        execs.insert(exec_id.to_string(), Process::new(exec_id, paths, spec));
        Ok(())
    }

    pub async fn resize_pty(&self, exec_id: &str, width: u32, height: u32) -> Result<()> {
        let r = guest::ResizePtyRequest {
            id: self.id.clone(),
            exec_id: exec_id.to_string(),
            width,
            height,
            ..Default::default()
        };
        self.ask(self.guest().resize_pty(&r)).await
    }

    pub async fn pause(&self) -> Result<()> {
        let r = guest::PauseRequest {
            id: self.id.clone(),
            ..Default::default()
        };
        self.ask(self.guest().pause(&r)).await?;
        self.paused.store(true, Ordering::SeqCst);
        Ok(())
    }

    pub async fn resume(&self) -> Result<()> {
        let r = guest::ResumeRequest {
            id: self.id.clone(),
            ..Default::default()
        };
        self.ask(self.guest().resume(&r)).await?;
        self.paused.store(false, Ordering::SeqCst);
        Ok(())
    }

    /// Applies new resources (an OCI `LinuxResources`, JSON).
    pub async fn update(&self, resources: Vec<u8>) -> Result<()> {
        let r = guest::UpdateRequest {
            id: self.id.clone(),
            resources,
            ..Default::default()
        };
        self.ask(self.guest().update(&r)).await
    }

    /// The guest's processes of this container.
    pub async fn pids(&self) -> Result<Vec<guest::ProcessPid>> {
        let r = guest::PidsRequest {
            id: self.id.clone(),
            ..Default::default()
        };
        Ok(self.ask(self.guest().pids(&r)).await?.processes)
    }

    /// The container's cgroup files in the guest, by name.
    pub async fn cgroup_files(&self) -> Result<HashMap<String, String>> {
        let r = guest::StatsRequest {
            id: self.id.clone(),
            ..Default::default()
        };
        Ok(self.ask(self.guest().stats(&r)).await?.files)
    }
}

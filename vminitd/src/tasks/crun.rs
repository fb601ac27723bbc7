//! Driving crun. Each call runs `crun --root /run/crun --log <bundle>/crun.log
//! --log-format json ...` and, on failure, reports crun's own last error;
//! but a start without poststart hooks writes crun's exec FIFO instead
//! (`exec_fifo.rs`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::sys::wait::WaitStatus;
use tracing::Instrument;

use super::exec_fifo;
use crate::reaper::Reaper;
use crate::tasks::error::TaskError;

const CRUN: &str = "/usr/bin/crun";
const ROOT: &str = "/run/crun";

/// The standard streams a crun invocation hands to the container process.
pub struct ChildStdio {
    pub stdin: Stdio,
    pub stdout: Stdio,
    pub stderr: Stdio,
}

impl ChildStdio {
    pub fn null() -> Self {
        ChildStdio {
            stdin: Stdio::null(),
            stdout: Stdio::null(),
            stderr: Stdio::null(),
        }
    }
}

#[derive(Clone)]
pub struct Crun {
    reaper: Reaper,
}

impl Crun {
    pub fn new(reaper: Reaper) -> Self {
        Crun { reaper }
    }

    /// Runs crun with `args`; `stdio` (when given) becomes the container's.
    async fn run(
        &self,
        op: &'static str,
        bundle: &Path,
        args: &[&str],
        stdio: Option<ChildStdio>,
    ) -> Result<(), TaskError> {
        let span = tracing::info_span!("crun", otel.name = %format!("crun.{op}"), crun.args = %args.join(" "));
        let result = self.run_crun(op, bundle, args, stdio).instrument(span.clone()).await;
        marked(&span, result)
    }

    async fn run_crun(
        &self,
        op: &'static str,
        bundle: &Path,
        args: &[&str],
        stdio: Option<ChildStdio>,
    ) -> Result<(), TaskError> {
        let log = bundle.join("crun.log");
        let mut cmd = Command::new(CRUN);
        cmd.arg("--root")
            .arg(ROOT)
            .arg("--log")
            .arg(&log)
            .arg("--log-format")
            .arg("json");
        cmd.args(args);
        let stdio = stdio.unwrap_or_else(ChildStdio::null);
        cmd.stdin(stdio.stdin).stdout(stdio.stdout).stderr(stdio.stderr);
        let (_, exited) = self.reaper.spawn(&mut cmd).map_err(|e| TaskError::Crun {
            op,
            message: format!("cannot run {CRUN}: {e}"),
        })?;
        // The Command (and its copies of the stdio descriptors) must be gone
        // before waiting: the container's pipes reach EOF only when every
        // writer has closed.
        drop(cmd);
        let status = exited.await.map_err(|_| TaskError::Crun {
            op,
            message: "crun's exit was not observed".into(),
        })?;
        match status {
            WaitStatus::Exited(_, 0) => Ok(()),
            other => Err(TaskError::Crun {
                op,
                message: last_error(&log).unwrap_or_else(|| format!("crun {op} failed: {other:?}")),
            }),
        }
    }

    pub async fn create(
        &self,
        id: &str,
        bundle: &Path,
        pid_file: &Path,
        console: Option<&Path>,
        stdio: ChildStdio,
    ) -> Result<(), TaskError> {
        let bundle_s = bundle.to_string_lossy();
        let pid_s = pid_file.to_string_lossy();
        let console_s = console.map(|c| c.to_string_lossy().into_owned());
        let mut args = vec!["create", "--bundle", &bundle_s, "--pid-file", &pid_s];
        if let Some(c) = &console_s {
            args.extend(["--console-socket", c]);
        }
        args.push(id);
        self.run("create", bundle, &args, Some(stdio)).await
    }

    /// Starts the created container `id`: through `crun start` when its
    /// spec has poststart hooks, which crun runs; else by crun's exec FIFO
    /// directly, sparing a crun process (`exec_fifo.rs`).
    pub async fn start(&self, id: &str, bundle: &Path, poststart_hooks: bool) -> Result<(), TaskError> {
        if poststart_hooks {
            return self.run("start", bundle, &["start", id], None).await;
        }
        let span = tracing::info_span!("crun", otel.name = "crun.start", crun.exec_fifo = true);
        let released = span.in_scope(|| exec_fifo::release(Path::new(ROOT), id));
        let result = released.map_err(|e| match e.raw_os_error() {
            Some(libc::ENXIO) => TaskError::Precondition(format!("container {id} is not running: its init has exited")),
            Some(libc::ENOENT) => TaskError::Precondition(format!("container {id} is not waiting to start")),
            _ => TaskError::io("start through", exec_fifo::path(Path::new(ROOT), id), e),
        });
        marked(&span, result)
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn exec(
        &self,
        id: &str,
        bundle: &Path,
        process_file: &Path,
        pid_file: &Path,
        console: Option<&Path>,
        stdio: ChildStdio,
    ) -> Result<(), TaskError> {
        let process_s = process_file.to_string_lossy();
        let pid_s = pid_file.to_string_lossy();
        let console_s = console.map(|c| c.to_string_lossy().into_owned());
        let mut args = vec!["exec", "--detach", "--process", &process_s, "--pid-file", &pid_s];
        if let Some(c) = &console_s {
            args.extend(["--console-socket", c]);
        }
        args.push(id);
        self.run("exec", bundle, &args, Some(stdio)).await
    }

    pub async fn kill(&self, id: &str, bundle: &Path, signal: u32, all: bool) -> Result<(), TaskError> {
        let sig = signal.to_string();
        let mut args = vec!["kill"];
        if all {
            args.push("--all");
        }
        args.extend([id, &sig]);
        self.run("kill", bundle, &args, None).await
    }

    pub async fn delete(&self, id: &str, bundle: &Path) -> Result<(), TaskError> {
        self.run("delete", bundle, &["delete", "--force", id], None).await
    }

    pub async fn pause(&self, id: &str, bundle: &Path) -> Result<(), TaskError> {
        self.run("pause", bundle, &["pause", id], None).await
    }

    pub async fn resume(&self, id: &str, bundle: &Path) -> Result<(), TaskError> {
        self.run("resume", bundle, &["resume", id], None).await
    }

    pub async fn update(&self, id: &str, bundle: &Path, resources: &Path) -> Result<(), TaskError> {
        let r = resources.to_string_lossy();
        self.run("update", bundle, &["update", "--resources", &r, id], None)
            .await
    }
}

/// `result`, with its error (if any) marked on `span`, a crun operation's.
fn marked(span: &tracing::Span, result: Result<(), TaskError>) -> Result<(), TaskError> {
    if let Err(e) = &result {
        crate::trace::fail(span, e.to_string(), "crun".into());
    }
    result
}

/// The message of the last error crun logged (JSON lines with "msg").
fn last_error(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines().rev().find_map(|line| {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        let level = v.get("level").and_then(|l| l.as_str()).unwrap_or("error");
        (level == "error").then(|| v.get("msg")?.as_str().map(str::to_string))?
    })
}

/// Reads the pid crun wrote.
pub fn read_pid(pid_file: &Path) -> Result<u32, TaskError> {
    let text = std::fs::read_to_string(pid_file).map_err(|e| TaskError::Io {
        what: "read pid file",
        path: PathBuf::from(pid_file),
        source: e,
    })?;
    text.trim().parse().map_err(|_| TaskError::Crun {
        op: "create",
        message: format!("pid file {} holds {text:?}", pid_file.display()),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_last_error_line() {
        let dir = std::env::temp_dir().join(format!("vminitd-crun-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("crun.log");
        std::fs::write(
            &log,
            "{\"msg\":\"first\",\"level\":\"error\"}\n{\"msg\":\"executable file `nope` not found in $PATH: No such file or directory\",\"level\":\"error\",\"time\":\"x\"}\n{\"msg\":\"note\",\"level\":\"warning\"}\n",
        )
        .unwrap();
        assert_eq!(
            super::last_error(&log).unwrap(),
            "executable file `nope` not found in $PATH: No such file or directory"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}

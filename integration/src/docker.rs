//! A private Docker Engine for one test: dockerd 28 over a private
//! containerd 2.1, its own data root, exec root and socket, with voidbox
//! registered in daemon.json as a user would (docs/docker.md), and the
//! busybox image imported. No bridge and no iptables: the host's network is
//! never touched, so containers run with `--network none`.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::clients::{docker_dir, ContainerdVersion};
use crate::containerd::Containerd;
use crate::image::busybox_layer_tarball;

pub const IMAGE: &str = "localhost/busybox:latest";
/// The runtime as daemon.json names it; `io.containerd.voidbox.v2` works too.
pub const RUNTIME: &str = "voidbox";

pub struct Docker {
    /// dockerd, stopped in `drop` before its containerd (dropped after).
    child: Child,
    pub socket: PathBuf,
    pub containerd: Containerd,
}

impl Docker {
    pub fn start(name: &str) -> Docker {
        let containerd = Containerd::start_on(ContainerdVersion::V2_1, name, &[]);
        let root = docker_dir();
        let dir = containerd.dir.join("docker");
        let exec_root = containerd.state.join("d");
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("daemon.json");
        std::fs::write(
            &config,
            serde_json::to_vec_pretty(&serde_json::json!({
                "runtimes": {RUNTIME: {"runtimeType": "io.containerd.voidbox.v2"}}
            }))
            .unwrap(),
        )
        .unwrap();
        let socket = containerd.state.join("docker.sock");
        let path = std::env::join_paths(
            [root.join("usr/bin"), root.join("usr/sbin")]
                .into_iter()
                .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("dockerd.log")).unwrap();
        let child = Command::new(root.join("usr/sbin/dockerd"))
            .arg("--config-file")
            .arg(&config)
            .arg("--containerd")
            .arg(&containerd.socket)
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(&exec_root)
            .arg("--pidfile")
            .arg(dir.join("dockerd.pid"))
            .arg("-H")
            .arg(format!("unix://{}", socket.display()))
            .args(["--iptables=false", "--ip6tables=false", "--bridge=none"])
            .env("PATH", path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start dockerd (make deps fetches it)");
        let docker = Docker {
            child,
            socket,
            containerd,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !docker.docker(&["version"]).status.success() {
            assert!(
                Instant::now() < deadline,
                "dockerd did not come up: {}",
                docker.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let layer = busybox_layer_tarball(&docker.containerd.dir);
        let out = docker.docker(&[
            "import",
            "--change",
            "ENV PATH=/usr/bin:/bin",
            "--change",
            "CMD [\"sh\"]",
            &layer.display().to_string(),
            IMAGE,
        ]);
        assert!(
            out.status.success(),
            "docker import: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        docker
    }

    pub fn command(&self) -> Command {
        let mut cmd = Command::new(docker_dir().join("usr/bin/docker"));
        cmd.arg("-H").arg(format!("unix://{}", self.socket.display()));
        cmd
    }

    pub fn docker(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("run docker")
    }

    /// `docker run --runtime voidbox --network none` with `extra` flags.
    pub fn run_command(&self, extra: &[&str], cmd: &[&str]) -> Command {
        let mut c = self.command();
        c.args(["run", "--runtime", RUNTIME, "--network", "none"])
            .args(extra)
            .arg(IMAGE)
            .args(cmd);
        c
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.containerd.dir.join("docker/dockerd.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        format!(
            "--- dockerd ---\n{}\n--- containerd ---\n{}",
            lines[lines.len().saturating_sub(30)..].join("\n"),
            self.containerd.log_tail()
        )
    }

    /// Every container gone: nothing of any is left (VMs, mounts, sockets).
    pub fn assert_clean(&self) {
        self.containerd.assert_clean();
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! A private containerd for one test: its own config, root, state and
//! socket, started and stopped by the test. The host's containerd is never
//! touched. The voidbox shim is found on its PATH (the cargo target dir).
//! Either release in `ContainerdVersion` can run; `start` runs the system's.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::clients::ContainerdVersion;
use crate::image::busybox_tarball;

pub const RUNTIME: &str = "io.containerd.voidbox.v2";
pub const IMAGE: &str = "localhost/busybox:latest";
pub const NAMESPACE: &str = "voidbox-test";

pub struct Containerd {
    pub version: ContainerdVersion,
    pub dir: PathBuf,
    pub state: PathBuf,
    pub socket: PathBuf,
    child: Child,
}

/// The cargo output directory that holds the shim: next to the running
/// binary (target/release/voidbox-bench) or one up (target/debug/deps/<test>).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("own binary path");
    let dir = exe.parent().expect("binary dir");
    if dir.join("containerd-shim-voidbox-v2").exists() {
        dir.to_path_buf()
    } else {
        dir.parent().unwrap_or(dir).to_path_buf()
    }
}

/// The optimized shim, for measurements: a debug build's span and protobuf
/// work costs several times what users' builds do. `make test` builds it.
pub fn release_shim() -> PathBuf {
    let dir = target_dir();
    let shim = dir.parent().unwrap_or(&dir).join("release/containerd-shim-voidbox-v2");
    assert!(
        shim.exists(),
        "{} is missing: timing tests measure the release shim; run `cargo build --release -p voidbox-shim`",
        shim.display()
    );
    shim
}

impl Containerd {
    pub fn start(name: &str) -> Containerd {
        Self::start_with_env(name, &[])
    }

    /// As `start`, with extra environment for containerd and so its shims.
    pub fn start_with_env(name: &str, env: &[(&str, &str)]) -> Containerd {
        Self::start_on(ContainerdVersion::V1_6, name, env)
    }

    /// As `start_with_env`, running containerd `version`.
    pub fn start_on(version: ContainerdVersion, name: &str, env: &[(&str, &str)]) -> Containerd {
        let shim = target_dir().join("containerd-shim-voidbox-v2");
        assert!(
            shim.exists(),
            "{} missing: build the workspace first (make test does)",
            shim.display()
        );
        let c = Self::launch(version, name, env, |_, _| {
            "disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n".to_string()
        });
        let image = busybox_tarball(&c.dir);
        c.import_image(NAMESPACE, "localhost/busybox", &image);
        c
    }

    /// Starts containerd `name` with the config `plugins(dir, state)` adds to
    /// the common part (top-level keys first, then tables), and waits for it.
    /// The config is format 2, which 2.x migrates as it loads it.
    pub(crate) fn launch(
        version: ContainerdVersion,
        name: &str,
        env: &[(&str, &str)],
        plugins: impl FnOnce(&Path, &Path) -> String,
    ) -> Containerd {
        let tag = format!("{name}-{}-{}", version.tag(), std::process::id());
        let dir = std::env::temp_dir().join(format!("voidbox-ctd-{tag}"));
        // State holds sockets: keep it short.
        let state = PathBuf::from(format!("/run/vbt-{tag}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("root")).unwrap();
        std::fs::create_dir_all(&state).unwrap();
        let socket = state.join("c.sock");
        let config = dir.join("config.toml");
        let extra = plugins(&dir, &state);
        std::fs::write(
            &config,
            format!(
                "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\n{extra}\
                 [grpc]\n  address = \"{socket}\"\n[debug]\n  level = \"debug\"\n",
                root = dir.join("root").display(),
                state = state.join("ctd").display(),
                socket = socket.display(),
            ),
        )
        .unwrap();
        // The shim first; then the release's own binaries (its runc shim).
        let path = std::env::join_paths(
            std::iter::once(target_dir())
                .chain(version.bin_dir())
                .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("containerd.log")).unwrap();
        let child = Command::new(version.binary("containerd"))
            .arg("--config")
            .arg(&config)
            .env("PATH", path)
            .env("VOIDBOX_STATE_DIR", state.join("vms"))
            .env("VOIDBOX_SOCKET_DIR", state.join("s"))
            .env(
                "VOIDBOX_VMM",
                std::env::var("VOIDBOX_TEST_BACKEND").unwrap_or_else(|_| "qemu".into()),
            )
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {version} (make deps installs it): {e}"));
        let c = Containerd {
            version,
            dir,
            state,
            socket,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !(c.socket.exists() && c.ctr(&["version"]).status.success()) {
            assert!(Instant::now() < deadline, "{version} did not come up: {}", c.log_tail());
            std::thread::sleep(Duration::from_millis(20));
        }
        c
    }

    /// `ctr -n namespace image import --base-name base_name tarball`.
    pub fn import_image(&self, namespace: &str, base_name: &str, tarball: &Path) {
        let out = Command::new(self.version.binary("ctr"))
            .arg("--address")
            .arg(&self.socket)
            .args(["--namespace", namespace, "image", "import", "--base-name", base_name])
            .arg(tarball)
            .output()
            .expect("run ctr");
        assert!(
            out.status.success(),
            "image import on {}: {}",
            self.version,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// containerd's own pid (its command line names our directory too).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Where the VMs of this containerd's shims keep their state.
    pub fn vm_state_root(&self) -> PathBuf {
        self.state.join("vms")
    }

    pub fn ctr_command(&self) -> Command {
        let mut cmd = Command::new(self.version.binary("ctr"));
        cmd.arg("--address").arg(&self.socket).arg("--namespace").arg(NAMESPACE);
        cmd
    }

    pub fn ctr(&self, args: &[&str]) -> Output {
        self.ctr_command().args(args).output().expect("run ctr")
    }

    /// `ctr run --rm` with the voidbox runtime; FIFOs in our own directory.
    pub fn run_command(&self, id: &str, extra: &[&str], cmd: &[&str]) -> Command {
        let mut c = self.ctr_command();
        c.args(["run", "--rm", "--runtime", RUNTIME, "--fifo-dir"])
            .arg(self.dir.join("fifo"));
        c.args(extra).arg(IMAGE).arg(id).args(cmd);
        c
    }

    /// The last lines of containerd's log, headed by its version, after
    /// the last warnings and errors (a shim's among them) that came earlier.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let (earlier, tail) = lines.split_at(lines.len().saturating_sub(40));
        let problems: Vec<&str> = earlier
            .iter()
            .filter(|l| l.contains("level=warning") || l.contains("level=error"))
            .copied()
            .collect();
        format!(
            "[{}]\nearlier warnings and errors:\n{}\nlast lines:\n{}",
            self.version,
            problems[problems.len().saturating_sub(20)..].join("\n"),
            tail.join("\n")
        )
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
        // Shims outlive their containerd by design (containers keep running
        // across a containerd restart): after a failed test, end this one's,
        // and their VMs die with them.
        for pid in crate::processes(&self.socket)
            .into_iter()
            .filter(|(_, cmd)| cmd.contains("containerd-shim"))
            .map(|(pid, _)| pid)
        {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        // Snapshot mounts live under root, a failed test's rootfs, shm and
        // netns mounts under state; nothing may stay mounted.
        crate::unmount_all_under(&self.dir);
        crate::unmount_all_under(&self.state);
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::remove_dir_all(&self.state);
    }
}

/// `ctr events` running in the background, collecting what containerd published.
pub struct Events {
    child: Child,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Events {
    /// Lines mentioning `topic` (e.g. "/tasks/oom") seen so far.
    pub fn topic(&self, topic: &str) -> Vec<String> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(&format!(" {topic} ")))
            .cloned()
            .collect()
    }

    /// Waits up to `timeout` for an event on `topic` whose line mentions `needle`.
    pub fn wait_for(&self, topic: &str, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.topic(topic).iter().any(|l| l.contains(needle)) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Containerd {
    pub fn events(&self) -> Events {
        use std::io::BufRead;
        let mut child = self
            .ctr_command()
            .arg("events")
            .stdout(Stdio::piped())
            .spawn()
            .expect("ctr events");
        let stdout = child.stdout.take().unwrap();
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        // ctr subscribes asynchronously; give it a moment before anything happens.
        std::thread::sleep(Duration::from_millis(300));
        Events { child, lines }
    }

    /// This containerd's running shims (`pid: command line`).
    pub fn shim_processes(&self) -> Vec<String> {
        // Shims carry containerd's socket on their command line.
        crate::processes_mentioning(&self.socket)
            .into_iter()
            .filter(|p| p.contains("containerd-shim"))
            .collect()
    }

    /// What this containerd's shims left: processes, mounts, VM state.
    pub fn leftovers(&self) -> Vec<String> {
        let mut left = self.shim_processes();
        left.extend(
            crate::leftovers(&self.vm_state_root())
                .into_iter()
                .filter(|l| !l.starts_with("state directory")),
        );
        for (what, dir) in [
            ("VM state", self.vm_state_root()),
            ("shim socket", self.state.join("s")),
        ] {
            if let Ok(entries) = std::fs::read_dir(dir) {
                left.extend(
                    entries
                        .filter_map(|e| e.ok())
                        .map(|e| format!("{what} {}", e.path().display())),
                );
            }
        }
        left.extend(
            crate::mounts_mentioning(&self.dir.join("root"))
                .into_iter()
                .filter(|m| !m.contains("snapshots/")),
        );
        left
    }

    /// Asserts that, once every container is gone, nothing of it remains.
    pub fn assert_clean(&self) {
        crate::assert_nothing_left_or(|| self.leftovers(), || self.log_tail());
    }
}

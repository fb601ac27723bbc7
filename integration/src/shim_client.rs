//! A client that drives the shim as containerd 2.x does: the bootstrap
//! protocol of containerd ≥ 2.3 for `start`, task API v3 over TTRPC with
//! request metadata, and an events service receiving what the shim publishes.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use containerd_shim_protos::api::{
    CreateTaskRequest, DeleteRequest, Empty, KillRequest, ShutdownRequest, StartRequest, WaitRequest, WaitResponse,
};
use containerd_shim_protos::bootstrap_api::{BootstrapParams, BootstrapResult};
use containerd_shim_protos::protobuf::Message;
use containerd_shim_protos::shim::events::ForwardRequest;
use containerd_shim_protos::shim_async::{create_events, Events, TaskClient};
use containerd_shim_protos::types::mount::Mount;
use ttrpc::r#async::TtrpcContext;

use crate::containerd::target_dir;

/// What the shim published: (topic, event type URL).
#[derive(Default)]
pub struct Received(Mutex<Vec<(String, String)>>);

impl Received {
    pub fn topics(&self) -> Vec<String> {
        self.0.lock().unwrap().iter().map(|(t, _)| t.clone()).collect()
    }
}

#[async_trait]
impl Events for Received {
    async fn forward(&self, _ctx: &TtrpcContext, req: ForwardRequest) -> ttrpc::Result<Empty> {
        let env = req.envelope.unwrap_or_default();
        let url = env.event.as_ref().map(|e| e.type_url.clone()).unwrap_or_default();
        self.0.lock().unwrap().push((env.topic, url));
        Ok(Empty::new())
    }
}

pub struct ShimUnderTest {
    pub dir: PathBuf,
    pub bundle: PathBuf,
    pub id: String,
    pub namespace: String,
    pub events: Arc<Received>,
    pub result: BootstrapResult,
    pub client: TaskClient,
    _events_server: ttrpc::r#async::Server,
}

/// A minimal OCI spec for the busybox rootfs, like ctr's defaults.
pub fn spec(args: &[&str]) -> serde_json::Value {
    serde_json::json!({
        "ociVersion": "1.0.2",
        "process": {"terminal": false, "user": {"uid": 0, "gid": 0}, "args": args, "env": ["PATH=/usr/bin:/bin"], "cwd": "/"},
        "root": {"path": "rootfs"},
        "hostname": "v3",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}
        ],
        "linux": {"namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "network"}]}
    })
}

/// A pod sandbox's spec as CRI writes it: `spec(args)` with CRI's sandbox
/// annotations and CNI's network namespace at `netns`.
pub fn pod_sandbox_spec(args: &[&str], sandbox_id: &str, pod_name: &str, netns: &str) -> serde_json::Value {
    let mut sandbox = spec(args);
    sandbox["annotations"] = serde_json::json!({
        "io.kubernetes.cri.container-type": "sandbox",
        "io.kubernetes.cri.sandbox-id": sandbox_id,
        "io.kubernetes.cri.sandbox-name": pod_name,
    });
    sandbox["linux"]["namespaces"] = serde_json::json!([
        {"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"},
        {"type": "network", "path": netns},
    ]);
    sandbox
}

impl ShimUnderTest {
    /// Prepares a bundle (busybox rootfs, `config`), serves the events API,
    /// and starts the shim with the bootstrap protocol.
    pub async fn start(name: &str, config: &serde_json::Value) -> ShimUnderTest {
        Self::start_with_env(name, config, &[]).await
    }

    /// As `start`, with extra environment for the shim (OTEL_*, for instance).
    pub async fn start_with_env(name: &str, config: &serde_json::Value, env: &[(&str, &str)]) -> ShimUnderTest {
        Self::start_binary(&target_dir().join("containerd-shim-voidbox-v2"), name, config, env).await
    }

    /// As `start_with_env`, running the shim binary at `shim`.
    pub async fn start_binary(
        shim: &Path,
        name: &str,
        config: &serde_json::Value,
        env: &[(&str, &str)],
    ) -> ShimUnderTest {
        let (started, out) = Started::run(shim, name, config, env).await;
        assert!(
            out.status.success(),
            "shim start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let result = BootstrapResult::parse_from_bytes(&out.stdout).expect("a BootstrapResult on stdout");
        let client = ttrpc::r#async::Client::connect(&result.address)
            .await
            .expect("connect to the shim");
        ShimUnderTest {
            dir: started.dir,
            bundle: started.bundle,
            id: started.id,
            namespace: "v3test".into(),
            events: started.events,
            result,
            client: TaskClient::new(client),
            _events_server: started.server,
        }
    }

    /// Runs `start` as `start_with_env` does, expecting it to refuse;
    /// returns what it wrote to stderr.
    pub async fn start_refused(name: &str, config: &serde_json::Value, env: &[(&str, &str)]) -> String {
        let shim = target_dir().join("containerd-shim-voidbox-v2");
        let (started, out) = Started::run(&shim, name, config, env).await;
        let _ = std::fs::remove_dir_all(&started.dir);
        assert!(!out.status.success(), "shim start should refuse: {out:?}");
        String::from_utf8_lossy(&out.stderr).trim().to_string()
    }

    /// Another bundle beside the first (a pod's other container, say):
    /// busybox rootfs and `config`. Returns its path.
    pub fn add_bundle(&self, name: &str, config: &serde_json::Value) -> PathBuf {
        let bundle = self.dir.join(name);
        std::fs::create_dir_all(bundle.join("rootfs")).unwrap();
        crate::image::unpack_busybox(&bundle.join("rootfs"));
        std::fs::write(bundle.join("config.json"), serde_json::to_vec_pretty(config).unwrap()).unwrap();
        bundle
    }

    /// Create, then Start, with `metadata` on both calls.
    pub async fn create_and_start(&self, metadata: &[(&str, &str)]) {
        self.create_with_rootfs_and_start(metadata, Vec::new()).await
    }

    /// As `create_and_start`, with the rootfs mounted as containerd's
    /// overlayfs snapshotter has it mounted (`overlay_rootfs`).
    pub async fn create_overlay_and_start(&self) {
        let overlay = crate::overlay_rootfs::prepare(&self.dir, &self.bundle);
        self.create_with_rootfs_and_start(&[], vec![overlay]).await
    }

    async fn create_with_rootfs_and_start(&self, metadata: &[(&str, &str)], rootfs: Vec<Mount>) {
        let create = CreateTaskRequest {
            id: self.id.clone(),
            bundle: self.bundle.display().to_string(),
            rootfs,
            ..Default::default()
        };
        self.client.create(self.ctx(metadata), &create).await.expect("Create");
        let start = StartRequest {
            id: self.id.clone(),
            ..Default::default()
        };
        self.client.start(self.ctx(metadata), &start).await.expect("Start");
    }

    /// Signals every process of the container.
    pub async fn kill(&self, signal: u32, metadata: &[(&str, &str)]) {
        let kill = KillRequest {
            id: self.id.clone(),
            signal,
            all: true,
            ..Default::default()
        };
        self.client.kill(self.ctx(metadata), &kill).await.expect("Kill");
    }

    pub async fn wait(&self, metadata: &[(&str, &str)]) -> WaitResponse {
        let wait = WaitRequest {
            id: self.id.clone(),
            ..Default::default()
        };
        self.client.wait(self.ctx(metadata), &wait).await.expect("Wait")
    }

    /// Delete, then Shutdown: the shim exits, flushing its exports.
    pub async fn delete_and_shutdown(&self, metadata: &[(&str, &str)]) {
        let delete = DeleteRequest {
            id: self.id.clone(),
            ..Default::default()
        };
        self.client.delete(self.ctx(metadata), &delete).await.expect("Delete");
        self.shutdown(metadata).await;
    }

    /// SIGKILL, Wait, Delete and Shutdown: a running container ended and
    /// its shim gone, as containerd ends a container it is told to kill.
    pub async fn kill_and_remove(&self) {
        self.kill(9, &[]).await;
        self.wait(&[]).await;
        self.delete_and_shutdown(&[]).await;
    }

    /// Shutdown, as containerd sends it when it is done with the shim.
    pub async fn shutdown(&self, metadata: &[(&str, &str)]) {
        let shutdown = ShutdownRequest {
            id: self.id.clone(),
            ..Default::default()
        };
        // The shim may exit before it answers.
        let _ = self.client.shutdown(self.ctx(metadata), &shutdown).await;
    }

    /// Waits up to `within` for the shim to exit, and checks it left
    /// nothing behind.
    pub async fn assert_gone_clean(&self, within: std::time::Duration) {
        assert!(
            crate::eventually(within, || self.shim_processes().is_empty()).await,
            "the shim exits: {:?}",
            self.shim_processes()
        );
        assert_eq!(self.leftovers(), Vec::<String>::new());
    }

    /// The shim's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.bundle.join("log")).unwrap_or_default()
    }

    /// A FIFO in the test directory, opened for reading as containerd does.
    pub fn fifo(&self, name: &str) -> (String, std::fs::File) {
        let path = self.dir.join(name);
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .unwrap();
        (path.display().to_string(), file)
    }

    /// A context carrying request metadata, as containerd's ttrpc client sends it.
    pub fn ctx(&self, metadata: &[(&str, &str)]) -> ttrpc::context::Context {
        let mut ctx = ttrpc::context::with_timeout(60_000_000_000);
        let mut md: HashMap<String, Vec<String>> = HashMap::new();
        md.insert("containerd-namespace-ttrpc".into(), vec![self.namespace.clone()]);
        for (k, v) in metadata {
            md.entry(k.to_string()).or_default().push(v.to_string());
        }
        ctx.metadata = md;
        ctx
    }

    /// The serving shim's pid, if it runs.
    pub fn pid(&self) -> Option<u32> {
        self.shim_processes().first()?.split(':').next()?.trim().parse().ok()
    }

    pub fn shim_processes(&self) -> Vec<String> {
        crate::processes_mentioning(Path::new(&self.id))
            .into_iter()
            .filter(|p| p.contains("containerd-shim"))
            .collect()
    }

    /// VM processes, mounts and state directories this shim left.
    pub fn leftovers(&self) -> Vec<String> {
        let root = self.dir.join("vms");
        let mut left: Vec<String> = std::fs::read_dir(&root)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .flat_map(|e| crate::leftovers(&e.path()))
                    .collect()
            })
            .unwrap_or_default();
        left.extend(crate::processes_mentioning(&root));
        left.extend(crate::mounts_mentioning(&self.bundle));
        left
    }
}

/// A bundle and an events service, and what `start` said about them.
struct Started {
    dir: PathBuf,
    bundle: PathBuf,
    id: String,
    events: Arc<Received>,
    server: ttrpc::r#async::Server,
}

impl Started {
    /// Prepares a bundle (busybox rootfs, `config`), serves the events API,
    /// and runs the shim's `start` with the bootstrap protocol.
    async fn run(
        shim: &Path,
        name: &str,
        config: &serde_json::Value,
        env: &[(&str, &str)],
    ) -> (Started, std::process::Output) {
        let id = format!("{name}-{}", std::process::id());
        let dir = std::env::temp_dir().join(format!("voidbox-v3-{id}"));
        let _ = std::fs::remove_dir_all(&dir);
        let bundle = dir.join("bundle");
        std::fs::create_dir_all(bundle.join("rootfs")).unwrap();
        crate::image::unpack_busybox(&bundle.join("rootfs"));
        std::fs::write(bundle.join("config.json"), serde_json::to_vec_pretty(config).unwrap()).unwrap();
        // containerd makes `log` a FIFO it reads; a plain file keeps the lines.
        std::fs::write(bundle.join("log"), b"").unwrap();

        let events = Arc::new(Received::default());
        let events_socket = dir.join("events.sock");
        let mut server = ttrpc::r#async::Server::new()
            .bind(&format!("unix://{}", events_socket.display()))
            .unwrap()
            .register_service(create_events(events.clone()));
        server.start().await.unwrap();

        let params = BootstrapParams {
            instance_id: id.clone(),
            namespace: "v3test".into(),
            containerd_ttrpc_address: events_socket.display().to_string(),
            containerd_grpc_address: dir.join("grpc.sock").display().to_string(),
            containerd_binary: "/bin/true".into(),
            containerd_version: "2.3.0".into(),
            socket_dir: Some(dir.display().to_string()),
            ..Default::default()
        };
        let mut child = Command::new(shim)
            .args([
                "-namespace",
                "v3test",
                "-id",
                &id,
                "-address",
                &params.containerd_grpc_address,
                "start",
            ])
            .current_dir(&bundle)
            .env("VOIDBOX_STATE_DIR", dir.join("vms"))
            .env(
                "VOIDBOX_VMM",
                std::env::var("VOIDBOX_TEST_BACKEND").unwrap_or_else(|_| "qemu".into()),
            )
            // Only what the test asks for: none of the runner's OTEL_* settings.
            .envs(
                std::env::vars()
                    .filter(|(k, _)| k.starts_with("OTEL_"))
                    .map(|(k, _)| (k, String::new())),
            )
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run the shim");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(&params.write_to_bytes().unwrap())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let started = Started {
            dir,
            bundle,
            id,
            events,
            server,
        };
        (started, out)
    }
}

impl Drop for ShimUnderTest {
    fn drop(&mut self) {
        // A test that failed midway must not leave its shim (and VM) behind,
        // nor the mounts the killed shim held (its shared directory's).
        for pid in crate::pids_mentioning(&self.dir.join("")) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
        crate::unmount_all_under(&self.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

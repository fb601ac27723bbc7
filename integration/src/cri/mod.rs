//! A typed CRI v1 client for containerd's CRI plugin over its unix socket, and
//! builders for the minimal pod and container configs a test needs.

use std::path::Path;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::*;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

mod config;
pub use config::{ContainerBuilder, PodBuilder};

/// Every CRI v1 message, for what the builders do not cover.
pub use k8s_cri::v1 as api;
pub use k8s_cri::v1::{ContainerConfig, ContainerState, MountPropagation, PodSandboxConfig, PodSandboxState};

/// The image containers run unless told otherwise (imported by the harness).
pub const BUSYBOX: &str = "localhost/busybox:latest";

/// A failed CRI call: which one, and what containerd said.
#[derive(Debug, Clone)]
pub struct CriError {
    pub call: &'static str,
    pub code: tonic::Code,
    pub message: String,
}

impl std::fmt::Display for CriError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} failed ({:?}): {}", self.call, self.code, self.message)
    }
}

impl std::error::Error for CriError {}

pub type Result<T> = std::result::Result<T, CriError>;

fn err(call: &'static str) -> impl FnOnce(tonic::Status) -> CriError {
    move |s| CriError {
        call,
        code: s.code(),
        message: s.message().to_string(),
    }
}

/// What ExecSync returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    pub exit_code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// The runtime and image services of one CRI endpoint.
pub struct Cri {
    pub runtime: RuntimeServiceClient<Channel>,
    pub images: ImageServiceClient<Channel>,
}

impl Cri {
    /// Connects to the CRI gRPC server on `socket` (containerd's own socket).
    pub async fn connect(socket: &Path) -> std::result::Result<Cri, String> {
        let path = socket.to_path_buf();
        // The URI is a placeholder tonic needs; the connector ignores it.
        let channel = Endpoint::try_from("http://[::]:50051")
            .map_err(|e| e.to_string())?
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
            }))
            .await
            .map_err(|e| format!("connect to CRI at {}: {e}", socket.display()))?;
        Ok(Cri {
            runtime: RuntimeServiceClient::new(channel.clone()),
            images: ImageServiceClient::new(channel),
        })
    }

    pub async fn version(&mut self) -> Result<VersionResponse> {
        let req = VersionRequest { version: "v1".into() };
        Ok(self.runtime.version(req).await.map_err(err("Version"))?.into_inner())
    }

    /// The repo tags of every image CRI sees.
    pub async fn list_images(&mut self) -> Result<Vec<String>> {
        let resp = self
            .images
            .list_images(ListImagesRequest { filter: None })
            .await
            .map_err(err("ListImages"))?;
        Ok(resp.into_inner().images.into_iter().flat_map(|i| i.repo_tags).collect())
    }

    /// Waits until CRI's image store lists `images` (it catches up with an
    /// import asynchronously).
    pub async fn wait_for_images(&mut self, images: &[&str]) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let listed = self.list_images().await.unwrap_or_default();
            if images.iter().all(|i| listed.iter().any(|t| t == i)) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "CRI does not list the imported images {images:?}: {listed:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// RunPodSandbox with `handler` ("" for the default runtime); the sandbox id.
    pub async fn run_pod_sandbox(&mut self, config: &PodSandboxConfig, handler: &str) -> Result<String> {
        let req = RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: handler.into(),
        };
        let resp = self.runtime.run_pod_sandbox(req).await.map_err(err("RunPodSandbox"))?;
        Ok(resp.into_inner().pod_sandbox_id)
    }

    pub async fn stop_pod_sandbox(&mut self, id: &str) -> Result<()> {
        let req = StopPodSandboxRequest {
            pod_sandbox_id: id.into(),
        };
        self.runtime
            .stop_pod_sandbox(req)
            .await
            .map_err(err("StopPodSandbox"))?;
        Ok(())
    }

    pub async fn remove_pod_sandbox(&mut self, id: &str) -> Result<()> {
        let req = RemovePodSandboxRequest {
            pod_sandbox_id: id.into(),
        };
        self.runtime
            .remove_pod_sandbox(req)
            .await
            .map_err(err("RemovePodSandbox"))?;
        Ok(())
    }

    /// The sandbox's state and its pod IP ("" without one).
    pub async fn pod_sandbox_status(&mut self, id: &str) -> Result<(PodSandboxState, String)> {
        let status = self.pod_sandbox_status_verbose(id).await?.status.unwrap_or_default();
        let ip = status.network.as_ref().map(|n| n.ip.clone()).unwrap_or_default();
        Ok((status.state(), ip))
    }

    /// The whole verbose status; `info["info"]` is containerd's JSON (spec, pid, CNI result).
    pub async fn pod_sandbox_status_verbose(&mut self, id: &str) -> Result<PodSandboxStatusResponse> {
        let req = PodSandboxStatusRequest {
            pod_sandbox_id: id.into(),
            verbose: true,
        };
        let resp = self
            .runtime
            .pod_sandbox_status(req)
            .await
            .map_err(err("PodSandboxStatus"))?;
        Ok(resp.into_inner())
    }

    pub async fn list_pod_sandboxes(&mut self) -> Result<Vec<PodSandbox>> {
        let req = ListPodSandboxRequest { filter: None };
        let resp = self
            .runtime
            .list_pod_sandbox(req)
            .await
            .map_err(err("ListPodSandbox"))?;
        Ok(resp.into_inner().items)
    }

    /// CreateContainer in sandbox `sandbox_id` (created with `sandbox_config`); the container id.
    pub async fn create_container(
        &mut self,
        sandbox_id: &str,
        config: &ContainerConfig,
        sandbox_config: &PodSandboxConfig,
    ) -> Result<String> {
        let req = CreateContainerRequest {
            pod_sandbox_id: sandbox_id.into(),
            config: Some(config.clone()),
            sandbox_config: Some(sandbox_config.clone()),
        };
        let resp = self
            .runtime
            .create_container(req)
            .await
            .map_err(err("CreateContainer"))?;
        Ok(resp.into_inner().container_id)
    }

    pub async fn start_container(&mut self, id: &str) -> Result<()> {
        let req = StartContainerRequest {
            container_id: id.into(),
        };
        self.runtime.start_container(req).await.map_err(err("StartContainer"))?;
        Ok(())
    }

    /// StopContainer: SIGTERM (or the image's stop signal), SIGKILL after `timeout`.
    pub async fn stop_container(&mut self, id: &str, timeout: Duration) -> Result<()> {
        let req = StopContainerRequest {
            container_id: id.into(),
            timeout: timeout.as_secs() as i64,
        };
        self.runtime.stop_container(req).await.map_err(err("StopContainer"))?;
        Ok(())
    }

    pub async fn remove_container(&mut self, id: &str) -> Result<()> {
        let req = RemoveContainerRequest {
            container_id: id.into(),
        };
        self.runtime
            .remove_container(req)
            .await
            .map_err(err("RemoveContainer"))?;
        Ok(())
    }

    pub async fn container_status(&mut self, id: &str) -> Result<ContainerStatus> {
        let req = ContainerStatusRequest {
            container_id: id.into(),
            verbose: false,
        };
        let resp = self
            .runtime
            .container_status(req)
            .await
            .map_err(err("ContainerStatus"))?;
        Ok(resp.into_inner().status.unwrap_or_default())
    }

    pub async fn list_containers(&mut self) -> Result<Vec<Container>> {
        let req = ListContainersRequest { filter: None };
        let resp = self.runtime.list_containers(req).await.map_err(err("ListContainers"))?;
        Ok(resp.into_inner().containers)
    }

    /// ExecSync `cmd` in container `id`; containerd kills it after `timeout`.
    pub async fn exec_sync(&mut self, id: &str, cmd: &[&str], timeout: Duration) -> Result<ExecOutput> {
        let req = ExecSyncRequest {
            container_id: id.into(),
            cmd: strings(cmd),
            timeout: timeout.as_secs() as i64,
        };
        let resp = self.runtime.exec_sync(req).await.map_err(err("ExecSync"))?.into_inner();
        Ok(ExecOutput {
            exit_code: resp.exit_code,
            stdout: String::from_utf8_lossy(&resp.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&resp.stderr).into_owned(),
        })
    }

    /// Exec, as kubelet calls it for `kubectl exec`: the URL of the stream
    /// on containerd's streaming server (see `cri_stream`).
    pub async fn exec(&mut self, id: &str, cmd: &[&str], tty: bool, stdin: bool) -> Result<String> {
        let req = ExecRequest {
            container_id: id.into(),
            cmd: strings(cmd),
            tty,
            stdin,
            stdout: true,
            stderr: !tty,
        };
        Ok(self.runtime.exec(req).await.map_err(err("Exec"))?.into_inner().url)
    }

    /// PortForward, as kubelet calls it for `kubectl port-forward`: the URL
    /// of the stream on containerd's streaming server.
    pub async fn port_forward(&mut self, sandbox: &str, ports: &[i32]) -> Result<String> {
        let req = PortForwardRequest {
            pod_sandbox_id: sandbox.into(),
            port: ports.to_vec(),
        };
        Ok(self
            .runtime
            .port_forward(req)
            .await
            .map_err(err("PortForward"))?
            .into_inner()
            .url)
    }

    /// Polls ContainerStatus until the container is in `state`, up to `timeout`.
    pub async fn wait_container_state(&mut self, id: &str, state: ContainerState, timeout: Duration) -> Result<bool> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.container_status(id).await?.state() == state {
                return Ok(true);
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Owned copies of `items`, as the CRI messages take them.
fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

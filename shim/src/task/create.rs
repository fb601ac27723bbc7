//! Create: bundle, VM, rootfs, stdio, then the container in the guest.

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use containerd_shim_protos::api::CreateTaskRequest;
use sha2::{Digest, Sha256};
use tracing::{info, warn};
use voidbox_api::task::CreateRequest;

use super::bundle::Bundle;
use super::container::Container;
use super::error::{Result, ShimError};
use super::options;
use super::process::Process;
use super::rootfs::Rootfs;
use crate::assets;
use crate::guest::rpc_context;
use crate::io::{IoPaths, ProcessIo, StreamMux};
use crate::vm::{Backend, MicroVm, Share, VmConfig, VmError};

/// The virtio-fs tag of the container's root filesystem.
pub const ROOTFS_TAG: &str = "rootfs";
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// A short, stable state directory for a container's VM: socket paths must
/// stay under the unix limit whatever the namespace and id.
pub fn state_dir(namespace: &str, id: &str) -> std::path::PathBuf {
    let digest = Sha256::digest(format!("{namespace}/{id}").as_bytes());
    let name: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    assets::state_root().join(name)
}

pub async fn create(backend: &dyn Backend, namespace: &str, req: &CreateTaskRequest) -> Result<Arc<Container>> {
    if !req.checkpoint.is_empty() {
        return Err(ShimError::Unimplemented(
            "restore from a checkpoint is not implemented by voidbox".into(),
        ));
    }
    let bundle = Bundle::load(std::path::Path::new(&req.bundle))?;
    let settings = options::resolve(&bundle.annotations(), req.options.as_ref())?;
    let rootfs = Rootfs::mount(&bundle.rootfs(), &req.rootfs)?;

    let mut config = VmConfig::new(
        &req.id,
        assets::kernel(),
        assets::guest_root(),
        state_dir(namespace, &req.id),
    );
    config.vcpus = settings.cpus;
    config.memory_mib = settings.memory_mib;
    config.vsock_ports = vec![voidbox_api::TTRPC_PORT, voidbox_api::STDIO_PORT];
    config.shares.push(Share {
        tag: ROOTFS_TAG.into(),
        host_path: rootfs.path().to_path_buf(),
    });
    let vm = Arc::new(MicroVm::start(backend, config).await?);
    let guest = match vm.connect_guest().await {
        Ok(g) => g,
        Err(e) => {
            vm.kill().await;
            return Err(e.into());
        }
    };
    info!(id = %req.id, cpus = settings.cpus, memory_mib = settings.memory_mib, "VM ready");

    let mux = StreamMux::new();
    let paths = IoPaths {
        stdin: req.stdin.clone(),
        stdout: req.stdout.clone(),
        stderr: req.stderr.clone(),
        terminal: req.terminal,
    };
    let init = Process::new("", paths.clone(), Vec::new());
    let container = Arc::new(Container {
        id: req.id.clone(),
        bundle: bundle.path.clone(),
        vm: vm.clone(),
        guest: guest.clone(),
        mux: mux.clone(),
        rootfs: Mutex::new(rootfs),
        init: init.clone(),
        execs: Mutex::new(Default::default()),
        paused: AtomicBool::new(false),
        deleting: AtomicBool::new(false),
        ooms: AtomicU64::new(0),
        tasks: Mutex::new(vec![tokio::spawn(mux.clone().serve(vm.clone()))]),
    });

    let (ids, io) = match ProcessIo::start(&mux, &paths) {
        Ok(v) => v,
        Err(e) => {
            teardown(&container).await;
            return Err(ShimError::InvalidArgument(e));
        }
    };
    let io = Arc::new(io);
    let request = CreateRequest {
        id: req.id.clone(),
        spec: bundle.guest_spec.clone(),
        rootfs_tag: ROOTFS_TAG.into(),
        stdio: Some(ids).into(),
        ..Default::default()
    };
    match guest.tasks().create(rpc_context(false), &request).await {
        Ok(resp) => {
            init.set_pid(resp.pid);
            init.set_io(io);
            Ok(container)
        }
        Err(source) => {
            io.abort(&mux);
            teardown(&container).await;
            Err(VmError::Rpc {
                method: "Tasks.Create",
                source,
            }
            .into())
        }
    }
}

/// Powers the VM off (killing it if it will not) and unmounts the rootfs.
pub async fn teardown(container: &Container) {
    if container.vm.try_exit().is_none() {
        let exit = container.vm.shutdown(&container.guest, SHUTDOWN_GRACE).await;
        if !exit.is_clean() {
            warn!(id = %container.id, "VM of container did not power off cleanly: {exit}");
        }
    }
    container.rootfs.lock().expect("rootfs lock").unmount();
}

//! Create, phase by phase, each phase a span under the Create span:
//! BundleLoad, then VMBoot (a container on its own, or a pod's sandbox) or
//! joining the pod's VM, MountSetup, BundleTransfer, IOSetup, TaskCreate.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use containerd_shim_protos::api::CreateTaskRequest;
use tracing::{info, info_span};
use voidbox_api::task::{CreateRequest, PutBundleRequest};

use super::bundle::Bundle;
use super::container::Container;
use super::error::{traced, Result, ShimError};
use super::options;
use super::pod::Role;
use super::podnet::PodNetSpec;
use super::process::Process;
use super::registry::Sandboxes;
use super::rootfs::Rootfs;
use super::sandbox::{Observability, Sandbox};
use super::shared::{ContainerShare, SHARED_TAG};
use crate::guest::rpc_context;
use crate::io::{IoPaths, Owner, ProcessIo};
use crate::vm::{select, VmError};

fn rpc_err(method: &'static str) -> impl Fn(ttrpc::Error) -> ShimError {
    move |source| VmError::Rpc { method, source }.into()
}

pub async fn create(
    namespace: &str,
    req: &CreateTaskRequest,
    obs: &Observability,
    sandboxes: &Sandboxes,
) -> Result<Arc<Container>> {
    let received = Instant::now();
    if !req.checkpoint.is_empty() {
        return Err(ShimError::Unimplemented(
            "restore from a checkpoint is not implemented by voidbox".into(),
        ));
    }
    let (bundle, role) = traced(info_span!("BundleLoad", bundle = %req.bundle), async {
        let bundle = Bundle::load(std::path::Path::new(&req.bundle))?;
        let role = Role::of(&bundle.annotations())?;
        bundle.check(&role)?;
        let limit = bundle
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.resources().as_ref()?.memory().as_ref()?.limit());
        options::check_container_limit(&req.id, limit, options::HostLimits::of_this_host())?;
        Ok((bundle, role))
    })
    .await?;

    let sandbox = match &role {
        Role::Member { sandbox_id } => sandboxes
            .lock()
            .expect("sandboxes lock")
            .get(sandbox_id)
            .cloned()
            .ok_or_else(|| {
                ShimError::NotFound(format!(
                    "pod sandbox {sandbox_id} of container {} is not running in this shim",
                    req.id
                ))
            })?,
        Role::Standalone | Role::Sandbox => {
            let settings = options::resolve(&bundle.annotations(), req.options.as_ref())?;
            let (backend, why) = select::choose(settings.backend);
            info!(id = %req.id, backend = backend.name(), "VMM backend: {why}");
            let pod_net = bundle
                .netns_path()
                .filter(|_| role == Role::Sandbox)
                .map(|netns| PodNetSpec {
                    netns,
                    sysctls: bundle.pod_net_sysctls(),
                });
            let sandbox = Sandbox::boot(namespace, &req.id, &settings, backend.as_ref(), obs, pod_net).await?;
            sandboxes
                .lock()
                .expect("sandboxes lock")
                .insert(req.id.clone(), sandbox.clone());
            sandbox
        }
    };
    let created = create_in(namespace, &sandbox, &bundle, role.clone(), req, received).await;
    if created.is_err() && !matches!(role, Role::Member { .. }) {
        sandboxes.lock().expect("sandboxes lock").remove(&req.id);
        sandbox.teardown().await;
    }
    created
}

/// The rootfs and volumes into the share, and the container into the guest.
async fn create_in(
    namespace: &str,
    sandbox: &Arc<Sandbox>,
    bundle: &Bundle,
    role: Role,
    req: &CreateTaskRequest,
    received: Instant,
) -> Result<Arc<Container>> {
    let (rootfs, share, guest_spec, rootfs_path) = traced(info_span!("MountSetup", mounts = req.rootfs.len()), async {
        let rootfs = Rootfs::mount(&bundle.rootfs(), &req.rootfs)?;
        let mut share = sandbox.shared.lock().expect("shared lock").container(&req.id)?;
        let files = bind_files(&mut share, bundle, &role, &rootfs);
        match files {
            Ok((spec, path)) => Ok((rootfs, share, spec, path)),
            Err(e) => {
                share.remove();
                Err(e)
            }
        }
    })
    .await?;
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
        role,
        sandbox: sandbox.clone(),
        rootfs: Mutex::new(rootfs),
        share,
        init: init.clone(),
        execs: Mutex::new(Default::default()),
        paused: AtomicBool::new(false),
        deleting: AtomicBool::new(false),
        ooms: AtomicU64::new(0),
        received,
        tasks: Mutex::new(Vec::new()),
    });
    let guest = &sandbox.guest;
    let mux = &sandbox.mux;
    let created = async {
        let files = HashMap::from([("config.json".to_string(), guest_spec.clone())]);
        let put = PutBundleRequest {
            id: req.id.clone(),
            files,
            ..Default::default()
        };
        traced(info_span!("BundleTransfer", bytes = guest_spec.len()), async {
            guest
                .tasks()
                .put_bundle(rpc_context(false), &put)
                .await
                .map_err(rpc_err("Tasks.PutBundle"))
        })
        .await?;
        let (ids, io) = traced(info_span!("IOSetup", terminal = req.terminal), async {
            let owner = Owner {
                container: &req.id,
                namespace,
            };
            ProcessIo::start(mux, &paths, owner).await.map_err(ShimError::from)
        })
        .await?;
        let io = Arc::new(io);
        let request = CreateRequest {
            id: req.id.clone(),
            rootfs_tag: SHARED_TAG.into(),
            rootfs_path: rootfs_path.clone(),
            stdio: Some(ids).into(),
            ..Default::default()
        };
        let resp = traced(info_span!("TaskCreate"), async {
            guest
                .tasks()
                .create(rpc_context(false), &request)
                .await
                .map_err(rpc_err("Tasks.Create"))
        })
        .await;
        match resp {
            Ok(resp) => {
                init.set_pid(resp.pid);
                init.set_io(io);
                Ok(())
            }
            Err(e) => {
                io.abort(mux);
                Err(e)
            }
        }
    };
    match created.await {
        Ok(()) => Ok(container),
        Err(e) => {
            container.release_files();
            Err(e)
        }
    }
}

/// Binds the rootfs and the volumes into the share; returns the guest's
/// spec and the rootfs path in the share.
fn bind_files(share: &mut ContainerShare, bundle: &Bundle, role: &Role, rootfs: &Rootfs) -> Result<(Vec<u8>, String)> {
    let rootfs_path = share.bind_rootfs(rootfs.path())?;
    let spec = bundle.guest_spec(role, |source| share.bind_volume(source))?;
    Ok((spec, rootfs_path))
}

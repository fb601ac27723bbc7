//! Create, phase by phase, each phase a span under the Create span:
//! BundleLoad, then VMBoot (a container on its own, or a pod's sandbox) or
//! joining the pod's VM, MountSetup, BundleTransfer, IOSetup, TaskCreate.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use containerd_shim_protos::api::Mount;
use protobuf::well_known_types::any::Any;
use tracing::{info, info_span};
use voidbox_api::task::{CreateRequest, PutBundleRequest};

use super::process::Process;
use super::rootfs::Rootfs;
use super::Container;
use crate::config::HostConfig;
use crate::error::{traced, Result, ShimError};
use crate::io::{IoPaths, Owner, ProcessIo};
use crate::sandbox::podnet::PodNetSpec;
use crate::sandbox::{ContainerShare, Observability, Sandbox, Sandboxes, SHARED_TAG};
use crate::spec::{options, Bundle, Role};
use crate::vm::select;

/// What Create asks for, beyond the bundle.
pub struct CreateOptions<'a> {
    pub namespace: &'a str,
    pub id: &'a str,
    /// The bundle's directory, as the request named it.
    pub bundle: &'a std::path::Path,
    /// containerd's mounts of the rootfs (a snapshot), or none.
    pub rootfs: &'a [Mount],
    pub io: IoPaths,
    /// The runtime options containerd passed (a config file path).
    pub options: Option<&'a Any>,
    pub host: &'a HostConfig,
    /// When the request arrived: container start latency runs from here.
    pub received: Instant,
}

/// Creates the container from its bundle, read once by the caller (a read
/// that failed fails BundleLoad).
pub async fn create(
    opts: &CreateOptions<'_>,
    bundle: Result<Bundle>,
    obs: &Observability,
    sandboxes: &Sandboxes,
) -> Result<Arc<Container>> {
    let bundle = traced(info_span!("BundleLoad", bundle = %opts.bundle.display()), async {
        let bundle = bundle?;
        bundle.check()?;
        options::check_container_limit(opts.id, bundle.memory_limit(), options::HostLimits::of_this_host())?;
        Ok(bundle)
    })
    .await?;

    let sandbox = match &bundle.role {
        Role::Member { sandbox_id } => sandboxes
            .lock()
            .expect("sandboxes lock")
            .get(sandbox_id)
            .cloned()
            .ok_or_else(|| {
                ShimError::NotFound(format!(
                    "pod sandbox {sandbox_id} of container {} is not running in this shim",
                    opts.id
                ))
            })?,
        Role::Standalone | Role::Sandbox => {
            let settings = bundle.vm_settings(opts.options, opts.host.backend.as_deref())?;
            let (backend, why) = select::choose(settings.backend, opts.host.accel);
            info!(id = %opts.id, backend = backend.name(), "VMM backend: {why}");
            let pod_net = bundle
                .netns_path()
                .filter(|_| bundle.role == Role::Sandbox)
                .map(|netns| PodNetSpec {
                    netns,
                    sysctls: bundle.pod_net_sysctls(),
                });
            let sandbox = Sandbox::boot(
                opts.host,
                opts.namespace,
                opts.id,
                &settings,
                backend.as_ref(),
                obs,
                pod_net,
            )
            .await?;
            sandboxes
                .lock()
                .expect("sandboxes lock")
                .insert(opts.id.to_string(), sandbox.clone());
            sandbox
        }
    };
    let owns_vm = !matches!(bundle.role, Role::Member { .. });
    let created = create_in(opts, &sandbox, bundle).await;
    if created.is_err() && owns_vm {
        sandboxes.lock().expect("sandboxes lock").remove(opts.id);
        sandbox.teardown().await;
    }
    created
}

/// The rootfs and volumes into the share, and the container into the guest.
async fn create_in(opts: &CreateOptions<'_>, sandbox: &Arc<Sandbox>, bundle: Bundle) -> Result<Arc<Container>> {
    let (rootfs, share, guest_spec, rootfs_path) =
        traced(info_span!("MountSetup", mounts = opts.rootfs.len()), async {
            let rootfs = Rootfs::mount(&bundle.rootfs(), opts.rootfs)?;
            let mut share = sandbox.shared.lock().expect("shared lock").container(opts.id)?;
            let files = bind_files(&mut share, opts.id, &bundle, &rootfs);
            match files {
                Ok((spec, path)) => Ok((rootfs, share, spec, path)),
                Err(e) => {
                    share.remove();
                    Err(e)
                }
            }
        })
        .await?;
    let paths = opts.io.clone();
    let init = Process::new("", paths.clone(), Vec::new());
    let container = Arc::new(Container {
        id: opts.id.to_string(),
        bundle: bundle.path.clone(),
        role: bundle.role.clone(),
        sandbox: sandbox.clone(),
        rootfs: Mutex::new(rootfs),
        share,
        init: init.clone(),
        execs: Mutex::new(Default::default()),
        paused: AtomicBool::new(false),
        deleting: AtomicBool::new(false),
        ooms: AtomicU64::new(0),
        received: opts.received,
        tasks: Mutex::new(Vec::new()),
    });
    let guest = &sandbox.guest;
    let mux = &sandbox.mux;
    let created = async {
        let files = HashMap::from([("config.json".to_string(), guest_spec.clone())]);
        let put = PutBundleRequest {
            id: opts.id.to_string(),
            files,
            ..Default::default()
        };
        traced(info_span!("BundleTransfer", bytes = guest_spec.len()), async {
            Ok(guest.put_bundle(&put).await?)
        })
        .await?;
        let (ids, io) = traced(info_span!("IOSetup", terminal = paths.terminal), async {
            let owner = Owner {
                container: opts.id,
                namespace: opts.namespace,
            };
            ProcessIo::start(mux, &paths, owner).await.map_err(ShimError::from)
        })
        .await?;
        let io = Arc::new(io);
        let request = CreateRequest {
            id: opts.id.to_string(),
            rootfs_tag: SHARED_TAG.into(),
            rootfs_path: rootfs_path.clone(),
            stdio: Some(ids).into(),
            ..Default::default()
        };
        let resp = traced(info_span!("TaskCreate"), async { Ok(guest.create(&request).await?) }).await;
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
            container.release_files(None).await;
            Err(e)
        }
    }
}

/// Binds the rootfs and the volumes into the share; returns the guest's
/// spec and the rootfs path in the share.
fn bind_files(share: &mut ContainerShare, id: &str, bundle: &Bundle, rootfs: &Rootfs) -> Result<(Vec<u8>, String)> {
    let rootfs_path = share.bind_rootfs(rootfs.path())?;
    let spec = bundle.guest_spec(id, |source, mode| share.bind_volume(source, mode))?;
    Ok((spec, rootfs_path))
}

//! Long runs leak nothing: container lifecycles (create, start, exec, stop,
//! remove; three at a time) in one pod through containerd's CRI, while the
//! pod's shim lives on. Before and after, it samples what could leak: the
//! fds, RSS and threads of containerd and of the pod's shim, and mounts,
//! sockets, VM state, cgroups and network namespaces. `make test` runs 30
//! lifecycles; `make soak` runs 300 (`VOIDBOX_SOAK_LIFECYCLES`).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use voidbox_integration::clients::ContainerdVersion;
use voidbox_integration::containerd::Containerd;
use voidbox_integration::containerd_cri::{CriContainerd, PAUSE_IMAGE, VOIDBOX_HANDLER};
use voidbox_integration::cri::{ContainerBuilder, Cri, PodSandboxConfig, BUSYBOX};

const AT_ONCE: usize = 3;

fn count(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

fn status_kib(pid: i32, key: &str) -> usize {
    voidbox_integration::proc_status_field(pid, key).unwrap_or(0) as usize
}

/// What could leak, by name.
fn sample(ctd: &CriContainerd, shim: i32) -> BTreeMap<&'static str, usize> {
    let containerd = ctd.pid() as i32;
    let cgroups: usize = ctd.cgroup_parent_dirs().iter().map(|d| walkdir_dirs(d)).sum();
    BTreeMap::from([
        ("containerd fds", count(Path::new(&format!("/proc/{containerd}/fd")))),
        ("containerd threads", status_kib(containerd, "Threads:")),
        ("containerd RSS KiB", status_kib(containerd, "VmRSS:")),
        ("shim fds", count(Path::new(&format!("/proc/{shim}/fd")))),
        ("shim threads", status_kib(shim, "Threads:")),
        ("shim RSS KiB", status_kib(shim, "VmRSS:")),
        // This containerd's and its VMs' (other tests may mount meanwhile).
        (
            "mounts",
            voidbox_integration::mounts_mentioning(&ctd.dir).len()
                + voidbox_integration::mounts_mentioning(&ctd.state).len(),
        ),
        ("VM state entries", count(&ctd.vm_state_root())),
        ("shim sockets", count(&ctd.state.join("s"))),
        ("cgroups", cgroups),
        ("network namespaces", count(&ctd.netns_dir())),
    ])
}

fn walkdir_dirs(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| 1 + walkdir_dirs(&e.path()))
                .sum()
        })
        .unwrap_or(0)
}

/// How much a resource may grow before it counts as a leak: none for
/// kernel objects, a little for what allocators and runtimes keep.
fn allowed(name: &str, before: usize) -> usize {
    match name {
        n if n.ends_with("RSS KiB") => before + (before / 5).max(8 << 10),
        n if n.ends_with("threads") => before + 4,
        n if n.ends_with("fds") => before + 4,
        _ => before,
    }
}

async fn lifecycle(cri: &mut Cri, sandbox: &str, pod: &PodSandboxConfig, n: usize) {
    let config = ContainerBuilder::new(&format!("soak-{n}"), &["sleep", "3600"]).build();
    let id = cri.create_container(sandbox, &config, pod).await.unwrap();
    cri.start_container(&id).await.unwrap();
    let out = cri
        .exec_sync(&id, &["echo", "alive"], Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(out.stdout, "alive\n");
    cri.stop_container(&id, Duration::ZERO).await.unwrap();
    cri.remove_container(&id).await.unwrap();
}

async fn round(ctd: &CriContainerd, sandbox: &str, pod: &PodSandboxConfig, from: usize, n: usize) {
    let mut workers = Vec::new();
    for w in 0..AT_ONCE {
        let mut cri = ctd.connect().await;
        let (sandbox, pod) = (sandbox.to_string(), pod.clone());
        workers.push(tokio::spawn(async move {
            let mut i = from + w;
            while i < from + n {
                lifecycle(&mut cri, &sandbox, &pod, i).await;
                i += AT_ONCE;
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn container_lifecycles_in_a_pod_leak_nothing() {
    let lifecycles: usize = std::env::var("VOIDBOX_SOAK_LIFECYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let ctd = Containerd::start_cri_on(ContainerdVersion::V1_6, "vbx-soak", &[]);
    let mut cri = ctd.connect().await;
    cri.wait_for_images(&[BUSYBOX, PAUSE_IMAGE]).await;
    let pod = ctd.pod("soak").build();
    let sandbox = cri.run_pod_sandbox(&pod, VOIDBOX_HANDLER).await.unwrap();
    let shims: Vec<i32> = voidbox_integration::processes_mentioning(&ctd.socket)
        .iter()
        .filter(|p| p.contains("containerd-shim-voidbox-v2"))
        .map(|p| p.split(':').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(shims.len(), 1, "one shim for the pod: {shims:?}");
    let shim = shims[0];

    // A warm-up round first: what the first containers allocate for good
    // (thread pools, caches) is not a leak.
    let warm_up = AT_ONCE * 2;
    round(&ctd, &sandbox, &pod, 0, warm_up).await;
    let before = sample(&ctd, shim);
    let t = Instant::now();
    round(&ctd, &sandbox, &pod, warm_up, lifecycles).await;
    let took = t.elapsed();
    let after = sample(&ctd, shim);

    println!("{lifecycles} container lifecycles in one pod, {AT_ONCE} at a time, in {took:?}:");
    let mut grew = Vec::new();
    for (name, b) in &before {
        let a = after[name];
        println!("  {name:<20} {b:>8} -> {a:>8}");
        if a > allowed(name, *b) {
            grew.push(format!("{name}: {b} -> {a}"));
        }
    }
    assert!(grew.is_empty(), "grew beyond noise: {grew:?}");

    cri.stop_pod_sandbox(&sandbox).await.unwrap();
    cri.remove_pod_sandbox(&sandbox).await.unwrap();
    ctd.assert_clean();
}

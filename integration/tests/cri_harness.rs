//! containerd 1.6's real CRI plugin driven over gRPC as kubelet would: a pod
//! with the runc handler on a CNI bridge network of the test's own. This
//! proves the harness; the voidbox handler gets the same treatment elsewhere.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use voidbox_integration::cni;
use voidbox_integration::containerd::Containerd;
use voidbox_integration::containerd_cri::{PAUSE_IMAGE, RUNC_HANDLER};
use voidbox_integration::cri::{ContainerBuilder, ContainerState, PodSandboxState, BUSYBOX};

const PAGE: &str = "hello-from-pod";
const EXEC_TIMEOUT: Duration = Duration::from_secs(10);

/// The OCI spec containerd wrote for a task.
fn read_spec(bundle: PathBuf) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(bundle.join("config.json")).expect("config.json in bundle")).unwrap()
}

/// The path of the network namespace a task's OCI spec joins.
fn netns_of(bundle: PathBuf) -> String {
    read_spec(bundle)["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|ns| ns["type"] == "network")
        .and_then(|ns| ns["path"].as_str())
        .expect("sandbox joins a network namespace by path")
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn runc_pod_serves_http_to_its_other_container_and_to_the_host_then_leaves_nothing() {
    let t0 = Instant::now();
    let ctd = Containerd::start_cri("cri-pod", &[]);
    let mut cri = ctd.connect().await;
    let version = cri.version().await.unwrap();
    assert_eq!(version.runtime_name, "containerd");
    cri.wait_for_images(&[BUSYBOX, PAUSE_IMAGE]).await;
    eprintln!("containerd with CRI up in {:?}", t0.elapsed());

    let t = Instant::now();
    let pod = ctd.pod("web").dns(&["10.233.255.53"], &["vbt.test"]).build();
    let sandbox = cri
        .run_pod_sandbox(&pod, RUNC_HANDLER)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", ctd.log_tail()));
    let (state, ip) = cri.pod_sandbox_status(&sandbox).await.unwrap();
    assert_eq!(state, PodSandboxState::SandboxReady);
    assert!(ctd.in_subnet(&ip), "pod IP {ip:?} not in {}", ctd.network.subnet());
    let netns = netns_of(ctd.bundle(&sandbox));
    assert!(
        netns.starts_with(&*ctd.netns_dir().to_string_lossy()),
        "netns {netns} not under the test's state"
    );
    eprintln!("RunPodSandbox in {:?}: ip {ip}, netns {netns}", t.elapsed());

    let t = Instant::now();
    let web = ContainerBuilder::new(
        "web",
        &[
            "sh",
            "-c",
            "echo serving; mkdir -p /www && echo hello-from-pod > /www/index.html && exec httpd -f -v -p 8080 -h /www",
        ],
    )
    .build();
    let sidecar = ContainerBuilder::new("sidecar", &["sleep", "3600"])
        .memory_limit(64 << 20)
        .build();
    let mut ids = vec![];
    for config in [&web, &sidecar] {
        let id = cri
            .create_container(&sandbox, config, &pod)
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", ctd.log_tail()));
        cri.start_container(&id).await.unwrap();
        ids.push(id);
    }
    let (web_id, sidecar_id) = (&ids[0], &ids[1]);
    for id in &ids {
        let status = cri.container_status(id).await.unwrap();
        assert_eq!(status.state(), ContainerState::ContainerRunning, "{status:?}");
    }
    eprintln!("two containers created and started in {:?}", t.elapsed());
    let spec = read_spec(ctd.bundle(sidecar_id));
    assert_eq!(spec["linux"]["resources"]["memory"]["limit"], 64 << 20, "{spec}");
    assert!(spec["linux"]["maskedPaths"]
        .as_array()
        .unwrap()
        .contains(&"/proc/kcore".into()));

    // The other container reaches httpd on localhost: one network namespace.
    let t = Instant::now();
    let wget = ["wget", "-q", "-O", "-", "http://127.0.0.1:8080/"];
    let deadline = Instant::now() + Duration::from_secs(10);
    let out = loop {
        let out = cri.exec_sync(sidecar_id, &wget, EXEC_TIMEOUT).await.unwrap();
        if out.exit_code == 0 || Instant::now() > deadline {
            break out;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!((out.exit_code, out.stdout.trim()), (0, PAGE), "{out:?}");
    eprintln!("ExecSync wget from the other container in {:?}", t.elapsed());

    // The host reaches the pod IP over the bridge.
    let body = voidbox_integration::http_get(&format!("{ip}:8080")).await.unwrap();
    assert_eq!(body.trim(), PAGE);

    // What CRI wrote into the pod: hostname and resolv.conf from the pod config.
    let hostname = cri
        .exec_sync(web_id, &["cat", "/etc/hostname"], EXEC_TIMEOUT)
        .await
        .unwrap();
    assert_eq!((hostname.exit_code, hostname.stdout.trim()), (0, "web"));
    let resolv = cri
        .exec_sync(sidecar_id, &["cat", "/etc/resolv.conf"], EXEC_TIMEOUT)
        .await
        .unwrap();
    assert!(
        resolv.stdout.contains("nameserver 10.233.255.53") && resolv.stdout.contains("search vbt.test"),
        "{resolv:?}"
    );
    // Each container has its own pid namespace (kubelet's default).
    let init = cri
        .exec_sync(sidecar_id, &["cat", "/proc/1/cmdline"], EXEC_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(init.stdout.split('\0').collect::<Vec<_>>(), ["sleep", "3600", ""]);
    let failing = cri
        .exec_sync(sidecar_id, &["sh", "-c", "echo oops >&2; exit 3"], EXEC_TIMEOUT)
        .await
        .unwrap();
    assert_eq!((failing.exit_code, failing.stderr.as_str()), (3, "oops\n"));

    // The web container's log file is in CRI format: <RFC3339Nano> <stream> <P|F> <text>.
    let log_path = ctd.log_dir("web").join("web.log");
    let log = std::fs::read_to_string(&log_path).unwrap();
    let line = log
        .lines()
        .find(|l| l.ends_with(" stdout F serving"))
        .unwrap_or_else(|| panic!("no CRI log line for 'serving' in {}:\n{log}", log_path.display()));
    let timestamp = line.split(' ').next().unwrap();
    assert!(
        timestamp.len() > 20 && timestamp.as_bytes()[10] == b'T' && timestamp.contains('.'),
        "not RFC3339Nano: {line}"
    );
    // httpd -v logs each request on stderr; the host's came from the bridge.
    let from_host = format!(" stderr F [::ffff:{}]:", ctd.network.gateway());
    let deadline = Instant::now() + Duration::from_secs(5);
    while !std::fs::read_to_string(&log_path).unwrap().contains(&from_host) {
        assert!(
            Instant::now() < deadline,
            "no '{from_host}' line in {}",
            log_path.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The leftover checks see a live pod: they are not vacuous.
    let live = ctd.leftovers().join("\n");
    for what in [&netns, "/shm ", &ctd.cgroup_parent, &format!("IP {ip} ")] {
        assert!(
            live.contains(what),
            "leftovers miss {what:?} of the running pod:\n{live}"
        );
    }

    let t = Instant::now();
    cri.stop_pod_sandbox(&sandbox).await.unwrap();
    for id in &ids {
        assert_eq!(
            cri.container_status(id).await.unwrap().state(),
            ContainerState::ContainerExited
        );
    }
    assert_eq!(
        cri.pod_sandbox_status(&sandbox).await.unwrap().0,
        PodSandboxState::SandboxNotready
    );
    cri.remove_pod_sandbox(&sandbox).await.unwrap();
    eprintln!("StopPodSandbox and RemovePodSandbox in {:?}", t.elapsed());
    assert!(cri.list_pod_sandboxes().await.unwrap().is_empty());
    assert!(cri.list_containers().await.unwrap().is_empty());
    assert!(!std::path::Path::new(&netns).exists(), "netns {netns} still there");
    ctd.assert_clean();

    let bridge = ctd.network.bridge.clone();
    drop(cri);
    drop(ctd);
    assert!(
        !std::path::Path::new("/sys/class/net").join(&bridge).exists(),
        "bridge {bridge} still there"
    );
    eprintln!("whole test in {:?}", t0.elapsed());
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_runtime_handler_is_refused_by_name_and_leaves_nothing() {
    let ctd = Containerd::start_cri("cri-nope", &[]);
    let mut cri = ctd.connect().await;
    cri.wait_for_images(&[BUSYBOX, PAUSE_IMAGE]).await;
    let pod = ctd.pod("nope").build();
    let err = cri.run_pod_sandbox(&pod, "nope").await.unwrap_err();
    eprintln!("{err}");
    assert!(err.message.contains("\"nope\""), "{err}");
    assert!(cri.list_pod_sandboxes().await.unwrap().is_empty());
    ctd.assert_clean();
}

/// What a test that panics with a pod running relies on: dropping the harness
/// kills the pod and its shim, unmounts, removes cgroups, bridge and state.
#[tokio::test(flavor = "multi_thread")]
async fn dropping_the_harness_with_a_pod_running_leaves_nothing() {
    let ctd = Containerd::start_cri("cri-drop", &[]);
    let mut cri = ctd.connect().await;
    cri.wait_for_images(&[BUSYBOX, PAUSE_IMAGE]).await;
    let pod = ctd.pod("left").build();
    let sandbox = cri.run_pod_sandbox(&pod, RUNC_HANDLER).await.unwrap();
    let sleeper = ContainerBuilder::new("sleeper", &["sleep", "3600"]).build();
    let id = cri.create_container(&sandbox, &sleeper, &pod).await.unwrap();
    cri.start_container(&id).await.unwrap();

    let leftovers_before = ctd.leftovers();
    let dirs = [ctd.dir.clone(), ctd.state.clone()];
    let cgroups = ctd.cgroup_parent_dirs();
    let bridge = ctd.network.bridge.clone();
    for what in ["containerd-shim-runc-v2", "CNI result cache", "IP "] {
        assert!(
            leftovers_before.iter().any(|l| l.contains(what)),
            "{what}: {leftovers_before:#?}"
        );
    }
    assert!(!cgroups.is_empty(), "no cgroup {}", ctd.cgroup_parent);
    drop(cri);
    drop(ctd);

    assert_eq!(
        voidbox_integration::processes_mentioning(&dirs[1]),
        Vec::<String>::new()
    );
    for dir in &dirs {
        assert_eq!(voidbox_integration::mounts_mentioning(dir), Vec::<String>::new());
        assert!(!dir.exists(), "{} still there", dir.display());
    }
    for cgroup in cgroups {
        assert!(!cgroup.exists(), "{} still there", cgroup.display());
    }
    assert!(
        !PathBuf::from("/sys/class/net").join(&bridge).exists(),
        "bridge {bridge} still there"
    );
    assert_eq!(cni::cached_results_mentioning(&dirs[1]), Vec::<PathBuf>::new());
}

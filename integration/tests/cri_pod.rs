//! Kubernetes through the real CRI plugin of containerd 1.6 and 2.1, with
//! the voidbox runtime handler: one VM per pod, the pod's containers inside
//! it, on the pod's CNI network, with volumes and CRI's /etc files shared in.

use std::path::Path;
use std::time::{Duration, Instant};

use voidbox_integration::clients::ContainerdVersion;
use voidbox_integration::containerd::Containerd;
use voidbox_integration::containerd_cri::{CriContainerd, PAUSE_IMAGE, VOIDBOX_HANDLER};
use voidbox_integration::cri::{ContainerBuilder, ContainerState, Cri, ExecOutput, PodSandboxState, BUSYBOX};
use voidbox_integration::otlp::Receiver;
use voidbox_integration::trace_check::{one_trace, parented, pod_shape, roots, under_containerd};
use voidbox_integration::trace_tree::Tree;

const PAGE: &str = "hello-from-a-vm";
const EXEC_TIMEOUT: Duration = Duration::from_secs(20);

async fn exec(cri: &mut Cri, id: &str, cmd: &[&str]) -> ExecOutput {
    let out = cri
        .exec_sync(id, cmd, EXEC_TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert_eq!(out.exit_code, 0, "{cmd:?}: {out:?}");
    out
}

/// The VMM processes of this containerd's shims.
fn vmms(ctd: &CriContainerd) -> Vec<String> {
    voidbox_integration::processes_mentioning(&ctd.vm_state_root())
        .into_iter()
        .filter(|p| p.contains("qemu-system") || p.contains("voidbox-krun"))
        .collect()
}

fn host_boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .unwrap()
        .trim()
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pod_runs_in_one_vm_on_containerd_1_6() {
    a_pod_runs_in_one_vm_on_its_cni_network_and_leaves_nothing(ContainerdVersion::V1_6).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pod_runs_in_one_vm_on_containerd_2_1() {
    a_pod_runs_in_one_vm_on_its_cni_network_and_leaves_nothing(ContainerdVersion::V2_1).await
}

async fn a_pod_runs_in_one_vm_on_its_cni_network_and_leaves_nothing(v: ContainerdVersion) {
    let t0 = Instant::now();
    let otlp = Receiver::start("127.0.0.1:0").await.unwrap();
    let endpoint = otlp.endpoint();
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        // containerd 2.x traces itself from the same variables; its batch
        // is not flushed at exit, so it exports soon instead.
        ("OTEL_BSP_SCHEDULE_DELAY", "200"),
    ];
    let ctd = Containerd::start_cri_on(v, "vbx-pod", &env);
    let mut cri = ctd.connect().await;
    cri.wait_for_images(&[BUSYBOX, PAUSE_IMAGE]).await;

    let t = Instant::now();
    let pod = ctd.pod("web").dns(&["10.233.255.53"], &["vbt.test"]).build();
    let sandbox = cri
        .run_pod_sandbox(&pod, VOIDBOX_HANDLER)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", ctd.log_tail()));
    let (state, ip) = cri.pod_sandbox_status(&sandbox).await.unwrap();
    assert_eq!(state, PodSandboxState::SandboxReady);
    assert!(ctd.in_subnet(&ip), "pod IP {ip:?} not in {}", ctd.network.subnet());
    println!("RunPodSandbox (VM boot included) in {:?}: pod IP {ip}", t.elapsed());

    // A volume both containers mount (what an emptyDir or hostPath is to the runtime).
    let volume = ctd.dir.join("volumes/data");
    std::fs::create_dir_all(&volume).unwrap();
    std::fs::write(volume.join("from-host"), "written on the host\n").unwrap();
    let t = Instant::now();
    let web = ContainerBuilder::new(
        "web",
        &[
            "sh",
            "-c",
            "echo serving; mkdir -p /www && echo hello-from-a-vm > /www/index.html && exec httpd -f -v -p 8080 -h /www",
        ],
    )
    .mount(&volume, "/data", false)
    .build();
    let sidecar = ContainerBuilder::new("sidecar", &["sleep", "3600"])
        .mount(&volume, "/data", false)
        .memory_limit(64 << 20)
        .build();
    let mut ids = vec![];
    for config in [&web, &sidecar] {
        let id = cri
            .create_container(&sandbox, config, &pod)
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", ctd.log_tail()));
        cri.start_container(&id)
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", ctd.log_tail()));
        ids.push(id);
    }
    let (web_id, sidecar_id) = (ids[0].clone(), ids[1].clone());
    for id in &ids {
        let status = cri.container_status(id).await.unwrap();
        assert_eq!(status.state(), ContainerState::ContainerRunning, "{status:?}");
    }
    println!("two containers created and started in {:?}", t.elapsed());

    // One VM for the pod: one VMM, one guest kernel under both containers,
    // and not the host's.
    assert_eq!(vmms(&ctd).len(), 1, "{:#?}", vmms(&ctd));
    let boot_id = ["cat", "/proc/sys/kernel/random/boot_id"];
    let web_kernel = exec(&mut cri, &web_id, &boot_id).await.stdout;
    let sidecar_kernel = exec(&mut cri, &sidecar_id, &boot_id).await.stdout;
    assert_eq!(web_kernel, sidecar_kernel, "both containers in one guest kernel");
    assert_ne!(web_kernel.trim(), host_boot_id(), "a guest kernel, not the host's");

    // Both see the same interface, with the pod's IP and the veth's MAC.
    let mut seen = vec![];
    for id in [&web_id, &sidecar_id] {
        let addr = exec(&mut cri, id, &["ip", "-4", "-o", "addr", "show", "eth0"])
            .await
            .stdout;
        let mac = exec(&mut cri, id, &["cat", "/sys/class/net/eth0/address"]).await.stdout;
        assert!(addr.contains(&format!("inet {ip}/")), "{addr}");
        seen.push((addr.split_whitespace().nth(3).unwrap().to_string(), mac));
    }
    assert_eq!(seen[0], seen[1], "one network namespace");

    // The sidecar reaches httpd over localhost; the host reaches it at the pod IP.
    let wget = ["wget", "-q", "-O", "-", "http://127.0.0.1:8080/"];
    let deadline = Instant::now() + Duration::from_secs(20);
    let out = loop {
        let out = cri.exec_sync(&sidecar_id, &wget, EXEC_TIMEOUT).await.unwrap();
        if out.exit_code == 0 || Instant::now() > deadline {
            break out;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!((out.exit_code, out.stdout.trim()), (0, PAGE), "{out:?}");
    let body = voidbox_integration::http_get(&format!("{ip}:8080")).await.unwrap();
    assert_eq!(body.trim(), PAGE);

    // CRI's /etc files reach the containers.
    let hostname = exec(&mut cri, &web_id, &["cat", "/etc/hostname"]).await.stdout;
    assert_eq!(hostname.trim(), "web");
    assert_eq!(exec(&mut cri, &sidecar_id, &["hostname"]).await.stdout.trim(), "web");
    let resolv = exec(&mut cri, &sidecar_id, &["cat", "/etc/resolv.conf"]).await.stdout;
    assert!(
        resolv.contains("nameserver 10.233.255.53") && resolv.contains("search vbt.test"),
        "{resolv}"
    );
    let hosts = exec(&mut cri, &web_id, &["cat", "/etc/hosts"]).await.stdout;
    assert!(hosts.contains("localhost"), "{hosts}");

    // The volume: the host's file is there, and what one container writes the
    // other reads and the host sees.
    let from_host = exec(&mut cri, &web_id, &["cat", "/data/from-host"]).await.stdout;
    assert_eq!(from_host, "written on the host\n");
    exec(&mut cri, &web_id, &["sh", "-c", "echo from-web > /data/from-web"]).await;
    assert_eq!(
        exec(&mut cri, &sidecar_id, &["cat", "/data/from-web"]).await.stdout,
        "from-web\n"
    );
    assert_eq!(std::fs::read_to_string(volume.join("from-web")).unwrap(), "from-web\n");

    // The sidecar's limit is its own cgroup's in the guest, where the JVM,
    // Go and .NET look for it.
    let limit = exec(&mut cri, &sidecar_id, &["cat", "/sys/fs/cgroup/memory.max"])
        .await
        .stdout;
    assert_eq!(limit.trim(), (64u64 << 20).to_string(), "{v}");

    // Logs come back through CRI's log files.
    let log_path = ctd.log_dir("web").join("web.log");
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.lines().any(|l| l.ends_with(" stdout F serving")), "{log}");

    let t = Instant::now();
    cri.stop_pod_sandbox(&sandbox)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", ctd.log_tail()));
    for id in &ids {
        assert_eq!(
            cri.container_status(id).await.unwrap().state(),
            ContainerState::ContainerExited
        );
    }
    cri.remove_pod_sandbox(&sandbox).await.unwrap();
    println!("StopPodSandbox and RemovePodSandbox in {:?}", t.elapsed());
    assert!(cri.list_pod_sandboxes().await.unwrap().is_empty());
    assert!(cri.list_containers().await.unwrap().is_empty());
    assert!(
        voidbox_integration::eventually(Duration::from_secs(10), || vmms(&ctd).is_empty()).await,
        "VMs left: {:#?}",
        vmms(&ctd)
    );
    assert_empty(&ctd.vm_state_root());
    ctd.assert_clean();

    // containerd 1.6 propagates no context: one trace for the pod, the Pod
    // root, a Container span per container under it. containerd 2.1 does:
    // each request is a trace of containerd's, with the shim's spans under
    // its own. Either way, the VM boot is under the sandbox's Create.
    assert!(
        otlp.wait_for(Duration::from_secs(15), |s| s.iter().any(|s| s.name == "Pod")
            && parented(s))
            .await,
        "the pod's root span arrives when the shim exits, with every parent"
    );
    let spans = otlp.spans();
    let tree = Tree::new(&spans).waterfall(40);
    let pod_root = spans.iter().find(|s| s.name == "Pod").unwrap();
    assert_eq!(pod_root.attributes.get("k8s.pod.name").map(String::as_str), Some("web"));
    let containers: Vec<(&str, &str)> = spans
        .iter()
        .filter(|s| s.name == "Container")
        .map(|s| {
            (
                s.attributes["container.id"].as_str(),
                s.attributes["container.kind"].as_str(),
            )
        })
        .collect();
    assert_eq!(containers.len(), 3, "{containers:?}\n{tree}");
    assert!(containers.contains(&(sandbox.as_str(), "sandbox")), "{containers:?}");
    for id in &ids {
        assert!(containers.contains(&(id.as_str(), "container")), "{containers:?}");
    }
    if v.propagates_trace_context() {
        under_containerd(&spans).unwrap_or_else(|e| panic!("{e}\n{tree}"));
    } else {
        one_trace(&spans).unwrap_or_else(|e| panic!("{e}\n{tree}"));
        assert_eq!(roots(&spans), [("Pod".to_string(), String::new())], "{tree}");
        assert!(spans
            .iter()
            .filter(|s| s.name == "Container")
            .all(|s| s.parent_span_id == pod_root.span_id));
    }
    pod_shape(&spans, &sandbox, &[&web_id, &sidecar_id]).unwrap_or_else(|e| panic!("{e}\n{tree}"));
    // The top of the tree: the pod, its containers, their Create phases.
    for line in tree.lines().filter(|l| l.len() - l.trim_start().len() <= 8).take(30) {
        println!("{line}");
    }
    println!("whole pod test in {:?}", t0.elapsed());
}

/// No VM state directory or shared directory is left.
fn assert_empty(dir: &Path) {
    let left: Vec<String> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path().display().to_string()).collect())
        .unwrap_or_default();
    assert_eq!(left, Vec::<String>::new());
    assert_eq!(voidbox_integration::mounts_mentioning(dir), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn pods_that_ask_too_much_or_an_unknown_handler_get_clear_errors_and_leave_nothing() {
    let ctd = Containerd::start_cri("vbx-bad", &[]);
    let mut cri = ctd.connect().await;
    cri.wait_for_images(&[BUSYBOX, PAUSE_IMAGE]).await;

    // The pod's limits add up to more memory than the host has.
    let huge = ctd.pod("huge").memory_limit(1 << 40).build();
    let err = cri.run_pod_sandbox(&huge, VOIDBOX_HANDLER).await.unwrap_err();
    println!("{err}");
    assert!(
        err.message.contains("the VM would need 1048736 MiB of memory")
            && err.message.contains("the pod's memory limits, 1048576 MiB")
            && err.message.contains("but this host has"),
        "{err}"
    );
    assert!(cri
        .list_pod_sandboxes()
        .await
        .unwrap()
        .iter()
        .all(|p| p.state() != PodSandboxState::SandboxReady));

    // A container asking for more than the host has, in a pod that fits:
    // CRI creates the task (and so asks the runtime) at StartContainer.
    let pod = ctd.pod("fits").build();
    let sandbox = cri
        .run_pod_sandbox(&pod, VOIDBOX_HANDLER)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let greedy = ContainerBuilder::new("greedy", &["sleep", "1"])
        .memory_limit(1 << 40)
        .build();
    let id = cri.create_container(&sandbox, &greedy, &pod).await.unwrap();
    let err = cri.start_container(&id).await.unwrap_err();
    println!("{err}");
    let expected = format!("container {id} asks for 1048576 MiB of memory (its limit), but this host has");
    assert!(err.message.contains(&expected), "{err}");
    cri.remove_container(&id).await.unwrap();
    cri.stop_pod_sandbox(&sandbox).await.unwrap();
    cri.remove_pod_sandbox(&sandbox).await.unwrap();

    let err = cri.run_pod_sandbox(&ctd.pod("nope").build(), "nope").await.unwrap_err();
    assert!(err.message.contains("no runtime for \"nope\" is configured"), "{err}");

    for p in cri.list_pod_sandboxes().await.unwrap() {
        let _ = cri.remove_pod_sandbox(&p.id).await;
    }
    assert!(cri.list_pod_sandboxes().await.unwrap().is_empty());
    assert!(vmms(&ctd).is_empty(), "{:#?}", vmms(&ctd));
    assert_empty(&ctd.vm_state_root());
    ctd.assert_clean();
}

//! Kubernetes as kubelet drives it, through the real CRI plugin of
//! containerd 1.6 and 2.1: `kubectl exec -it` over the CRI streaming server,
//! an exec probe that times out, volumes with each propagation mode and a
//! non-recursive read-only one, and a pod whose removal leaves its host
//! volumes free to unmount and remove.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use voidbox_integration::clients::ContainerdVersion;
use voidbox_integration::containerd::Containerd;
use voidbox_integration::containerd_cri::{CriContainerd, PAUSE_IMAGE, VOIDBOX_HANDLER};
use voidbox_integration::cri::{ContainerBuilder, Cri, ExecOutput, MountPropagation, BUSYBOX};
use voidbox_integration::cri_stream::{forward_once, Session, STDIN};

const EXEC_TIMEOUT: Duration = Duration::from_secs(20);

fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn mount_tmpfs(at: &Path) {
    std::fs::create_dir_all(at).unwrap();
    run("mount", &["-t", "tmpfs", "tmpfs", &at.to_string_lossy()]);
}

/// A directory on a shared mount of its own: kubelet's hostPath for
/// HostToContainer must be (containerd checks).
fn shared_dir(at: &Path) {
    std::fs::create_dir_all(at).unwrap();
    let p = at.to_string_lossy();
    run("mount", &["--bind", &p, &p]);
    run("mount", &["--make-shared", &p]);
}

async fn sh(cri: &mut Cri, id: &str, script: &str) -> ExecOutput {
    cri.exec_sync(id, &["sh", "-c", script], EXEC_TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("{script}: {e}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn kubelet_calls_on_containerd_1_6() {
    kubelet_calls(ContainerdVersion::V1_6).await
}

#[tokio::test(flavor = "multi_thread")]
async fn kubelet_calls_on_containerd_2_1() {
    kubelet_calls(ContainerdVersion::V2_1).await
}

async fn kubelet_calls(v: ContainerdVersion) {
    let ctd = Containerd::start_cri_on(v, "vbx-kube", &[]);
    let mut cri = ctd.connect().await;
    cri.wait_for_images(&[BUSYBOX, PAUSE_IMAGE]).await;
    let vols = ctd.dir.join("volumes");
    // An emptyDir of medium Memory; a read-only volume with a writable
    // tmpfs under it; two volumes that watch for the host's later mounts.
    let tmpfs = vols.join("tmpfs");
    mount_tmpfs(&tmpfs);
    let ro = vols.join("ro");
    mount_tmpfs(&ro.join("sub"));
    let (private, slave) = (vols.join("private"), vols.join("slave"));
    shared_dir(&private);
    shared_dir(&slave);

    host_namespaces_are_refused_by_name(&mut cri, &ctd).await;

    let pod = ctd.pod("kube").build();
    let sandbox = cri
        .run_pod_sandbox(&pod, VOIDBOX_HANDLER)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", ctd.log_tail()));
    let app = ContainerBuilder::new("app", &["sleep", "3600"])
        .mount(&tmpfs, "/tmpfs", false)
        .mount(&ro, "/ro", true)
        .mount_propagating(&private, "/private", MountPropagation::PropagationPrivate)
        .mount_propagating(&slave, "/slave", MountPropagation::PropagationHostToContainer)
        .build();
    let app = cri.create_container(&sandbox, &app, &pod).await.unwrap();
    cri.start_container(&app)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", ctd.log_tail()));
    let web = ContainerBuilder::new(
        "web",
        &[
            "sh",
            "-c",
            "mkdir -p /www && echo forwarded > /www/index.html && exec httpd -f -p 8080 -h /www",
        ],
    )
    .build();
    let web = cri.create_container(&sandbox, &web, &pod).await.unwrap();
    cri.start_container(&web).await.unwrap();

    // hostIPC false: the pod's containers, and execs in them, share one IPC
    // namespace (the sandbox's, in the guest).
    let ipc = "readlink /proc/self/ns/ipc";
    let (a, w) = (sh(&mut cri, &app, ipc).await, sh(&mut cri, &web, ipc).await);
    assert!(a.exit_code == 0 && a.stdout.starts_with("ipc:["), "{a:?}");
    assert_eq!(a.stdout, w.stdout, "one IPC namespace in the pod");

    exec_with_a_terminal(&mut cri, &app).await;
    port_forward_reaches_the_pod(&mut cri, &sandbox, &ctd).await;
    an_exec_probe_times_out_and_its_process_goes(&mut cri, &app).await;
    volumes_keep_their_modes(&mut cri, &app, &ro, &private, &slave).await;
    bidirectional_is_refused_by_name(&mut cri, &ctd, &sandbox, &pod, &slave).await;

    // Removing the pod frees its volumes: the host can unmount and remove them.
    sh(&mut cri, &app, "echo in-memory > /tmpfs/file").await;
    cri.stop_pod_sandbox(&sandbox)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", ctd.log_tail()));
    cri.remove_pod_sandbox(&sandbox).await.unwrap();
    // Not lazily: a mount the pod still held would make it busy.
    run("umount", &[&tmpfs.to_string_lossy()]);
    std::fs::remove_dir(&tmpfs).unwrap_or_else(|e| panic!("rmdir {}: {e}", tmpfs.display()));
    for m in [ro.join("sub"), private, slave] {
        run("umount", &["--recursive", &m.to_string_lossy()]);
    }
    assert!(voidbox_integration::mounts_mentioning(&vols).is_empty());
    assert!(voidbox_integration::mounts_mentioning(&ctd.vm_state_root()).is_empty());
    ctd.assert_clean();
}

/// `kubectl exec -it app -- sh`: a terminal of the size the client has,
/// stdin typed into it, the exit code back.
async fn exec_with_a_terminal(cri: &mut Cri, app: &str) {
    let url = cri.exec(app, &["sh"], true, true).await.unwrap();
    let mut s = Session::open(&url).await.unwrap();
    s.resize(100, 30).await.unwrap();
    s.send(STDIN, b"stty size; tty; echo tty-$((6*7))\n").await.unwrap();
    let out = s.read_until("tty-42", EXEC_TIMEOUT).await.unwrap();
    s.send(STDIN, b"exit 3\n").await.unwrap();
    let t = s.finish(EXEC_TIMEOUT).await.unwrap();
    let out = out + &t.stdout;
    assert!(out.contains("30 100"), "the terminal's size: {out:?}");
    assert!(out.contains("/dev/pts/"), "a terminal: {out:?}");
    assert!(
        t.status.contains("NonZeroExitCode") && t.status.contains("\"3\""),
        "{t:?}"
    );
}

/// An exec probe with a 1 s timeout on a process that does not finish: an
/// error in about that time, and the process is gone afterwards.
async fn an_exec_probe_times_out_and_its_process_goes(cri: &mut Cri, app: &str) {
    let t = Instant::now();
    let probe = cri.exec_sync(app, &["sleep", "600"], Duration::from_secs(1));
    let r = tokio::time::timeout(Duration::from_secs(30), probe)
        .await
        .expect("ExecSync returns after its timeout");
    let took = t.elapsed();
    assert!(r.is_err(), "{r:?}");
    println!("ExecSync with a 1 s timeout: {:?} after {took:?}", r.unwrap_err());
    assert!(took < Duration::from_secs(15), "the probe took {took:?}");
    let left = sh(cri, app, "ps -o args | grep -c '^sleep 600' || true").await.stdout;
    assert_eq!(left.trim(), "0", "the timed-out process is gone");
}

async fn volumes_keep_their_modes(cri: &mut Cri, app: &str, ro: &Path, private: &Path, slave: &Path) {
    // readOnly without recursiveReadOnly: the volume is read-only, the
    // host's writable mount under it stays writable.
    let top = sh(cri, app, "echo x > /ro/top").await;
    assert_ne!(top.exit_code, 0, "{top:?}");
    assert!(top.stderr.contains("Read-only file system"), "{top:?}");
    let sub = sh(cri, app, "echo under > /ro/sub/file").await;
    assert_eq!(sub.exit_code, 0, "{sub:?}");
    assert_eq!(std::fs::read_to_string(ro.join("sub/file")).unwrap(), "under\n");

    // What the host mounts after the container started: HostToContainer
    // sees it, None does not.
    for v in [private, slave] {
        mount_tmpfs(&v.join("late"));
        std::fs::write(v.join("late/file"), "late\n").unwrap();
    }
    let seen = sh(cri, app, "cat /slave/late/file").await;
    assert_eq!((seen.exit_code, seen.stdout.as_str()), (0, "late\n"), "{seen:?}");
    let unseen = sh(cri, app, "ls -A /private/late").await;
    assert_eq!((unseen.exit_code, unseen.stdout.trim()), (0, ""), "{unseen:?}");
}

async fn bidirectional_is_refused_by_name(
    cri: &mut Cri,
    ctd: &CriContainerd,
    sandbox: &str,
    pod: &voidbox_integration::cri::PodSandboxConfig,
    shared: &Path,
) {
    let config = ContainerBuilder::new("bidi", &["sleep", "1"])
        .mount_propagating(shared, "/shared", MountPropagation::PropagationBidirectional)
        .build();
    let refused = match cri.create_container(sandbox, &config, pod).await {
        Err(e) => e,
        Ok(id) => {
            let e = cri.start_container(&id).await.unwrap_err();
            cri.remove_container(&id).await.unwrap();
            e
        }
    };
    assert!(
        refused
            .message
            .contains("propagation rshared (Kubernetes' Bidirectional) cannot be honoured in a VM"),
        "{refused}\n{}",
        ctd.log_tail()
    );
}

/// hostPID and hostIPC: the host's processes and IPC objects are not in the
/// VM, so RunPodSandbox refuses them, naming the field, and leaves nothing.
async fn host_namespaces_are_refused_by_name(cri: &mut Cri, ctd: &CriContainerd) {
    for (pid, ipc, field) in [(true, false, "hostPID"), (false, true, "hostIPC")] {
        let pod = ctd.pod(&field.to_lowercase()).host_pid_ipc(pid, ipc).build();
        let err = cri.run_pod_sandbox(&pod, VOIDBOX_HANDLER).await.unwrap_err();
        assert!(
            err.message.contains(&format!("a pod with {field} cannot run in a VM")),
            "{err}"
        );
    }
    for p in cri.list_pod_sandboxes().await.unwrap() {
        cri.remove_pod_sandbox(&p.id).await.unwrap();
    }
}

/// `kubectl port-forward pod 8080`: a connection to the pod's port 8080,
/// where a container listens inside the VM; and to a port nothing listens on.
async fn port_forward_reaches_the_pod(cri: &mut Cri, sandbox: &str, ctd: &CriContainerd) {
    let get = b"GET /index.html HTTP/1.0\r\n\r\n";
    let deadline = Instant::now() + Duration::from_secs(20);
    let page = loop {
        let url = cri.port_forward(sandbox, &[8080]).await.unwrap();
        match forward_once(&url, 8080, get, "forwarded\n", Duration::from_secs(5)).await {
            Ok(page) if !page.is_empty() => break String::from_utf8_lossy(&page).into_owned(),
            // httpd may not listen yet.
            r if Instant::now() < deadline => {
                println!("port-forward, not yet: {r:?}");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            r => panic!("port-forward to 8080: {r:?}\n{}", ctd.log_tail()),
        }
    };
    assert!(page.starts_with("HTTP/1.") && page.ends_with("forwarded\n"), "{page:?}");

    let url = cri.port_forward(sandbox, &[8081]).await.unwrap();
    let closed = forward_once(&url, 8081, get, "HTTP", Duration::from_secs(3)).await;
    assert!(
        closed.as_ref().map_or(true, |d| d.is_empty()),
        "nothing listens on 8081: {closed:?}"
    );
}

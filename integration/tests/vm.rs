//! The guest platform against real VMs (the test backend: QEMU, TCG here;
//! libkrun where hardware KVM exists), vminitd, vsock, virtio-fs. What a
//! backend runs is asked of it, never assumed.

use std::time::Duration;

use voidbox_integration::{eventually, leftovers, test_backend, vm_config};
use voidbox_shim::guest::GuestClient;
use voidbox_shim::vm::{MicroVm, Share, VmExit};

const GRACE: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boots_and_answers_system_info_over_vsock() {
    let config = vm_config("info");
    let state = config.state_dir.clone();
    let vm = MicroVm::start(test_backend().as_ref(), config).await.expect("start VM");
    let guest = GuestClient::connect(&vm).await.expect("vminitd dials in");
    let info = guest.info().await.expect("System.Info");

    assert_eq!(info.vminitd_version, env!("CARGO_PKG_VERSION"));
    assert!(
        info.kernel_release.starts_with("6.1."),
        "kernel {}",
        info.kernel_release
    );
    let backend = format!("voidbox.backend={}", test_backend().name());
    assert!(info.cmdline.contains(&backend), "cmdline {}", info.cmdline);
    assert_eq!(info.cpus, 1);
    // The root disk's readahead, as the backend set it up: the first fault in
    // a guest binary reads the whole of it in a few requests.
    let (ra, _) = guest
        .debug()
        .read_file("/sys/block/vda/queue/read_ahead_kb", 0)
        .await
        .expect("read the root disk's readahead");
    assert_eq!(
        String::from_utf8_lossy(&ra).trim(),
        test_backend().root_readahead_kib().to_string(),
        "the root disk's readahead (KiB)"
    );
    // Where the backend hands the kernel the TSC's rate (QEMU under TCG),
    // the kernel takes it for the CPU's rate too, rather than calibrate the
    // CPU against the PIT: a calibrated rate is never exactly the given one.
    if let Some(khz) = info
        .cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("tsc_early_khz="))
    {
        let khz: u64 = khz.parse().expect("tsc_early_khz is a number");
        let (cpuinfo, _) = guest
            .debug()
            .read_file("/proc/cpuinfo", 0)
            .await
            .expect("read /proc/cpuinfo");
        let cpuinfo = String::from_utf8_lossy(&cpuinfo);
        let mhz = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("cpu MHz"))
            .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string());
        assert_eq!(
            mhz,
            Some(format!("{}.{:03}", khz / 1000, khz % 1000)),
            "the guest CPU's rate, as the command line gave it (not calibrated against the PIT)"
        );
    }
    let boot = info.boot.as_ref().expect("boot times");
    assert!(boot.init_start_ns > 0, "init start {boot:?}");
    assert!(boot.ready_ns >= boot.init_start_ns, "ready before init: {boot:?}");
    assert!(
        boot.kernel_start_unix_nano > 1_600_000_000_000_000_000,
        "kernel start {boot:?}"
    );
    println!(
        "guest reached /init at {:.3}s, ready at {:.3}s (guest uptime)",
        boot.init_start_ns as f64 / 1e9,
        boot.ready_ns as f64 / 1e9
    );

    let exit = guest.power_off(&vm, GRACE).await;
    assert_eq!(exit, VmExit::Shutdown, "clean power-off");
    assert_eq!(leftovers(&state), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_a_host_file_shared_over_virtio_fs() {
    let host_dir = tempdir("share");
    let payload = format!("hello from the host, pid {}\n", std::process::id());
    std::fs::write(host_dir.join("greeting.txt"), &payload).unwrap();

    let mut config = vm_config("virtiofs");
    config.shares.push(Share {
        tag: "hostshare".into(),
        host_path: host_dir.clone(),
    });
    let state = config.state_dir.clone();
    let vm = MicroVm::start(test_backend().as_ref(), config).await.expect("start VM");
    let guest = GuestClient::connect(&vm).await.expect("vminitd dials in");

    guest
        .debug()
        .mount("virtiofs", "hostshare", "/mnt/host", &[])
        .await
        .expect("mount virtio-fs");
    let (data, truncated) = guest
        .debug()
        .read_file("/mnt/host/greeting.txt", 0)
        .await
        .expect("read");
    assert_eq!(String::from_utf8_lossy(&data), payload);
    assert!(!truncated);

    // A missing file is a NOT_FOUND naming the path, not a hang or a crash.
    let err = guest
        .debug()
        .read_file("/mnt/host/missing.txt", 0)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("/mnt/host/missing.txt"), "{err}");

    assert_eq!(guest.power_off(&vm, GRACE).await, VmExit::Shutdown);
    assert_eq!(leftovers(&state), Vec::<String>::new());
    std::fs::remove_dir_all(host_dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_vmm_leaves_nothing_behind() {
    let host_dir = tempdir("kill");
    let mut config = vm_config("kill");
    config.shares.push(Share {
        tag: "s".into(),
        host_path: host_dir.clone(),
    });
    let state = config.state_dir.clone();
    let expected = config.clone();
    let vm = MicroVm::start(test_backend().as_ref(), config).await.expect("start VM");
    let guest = GuestClient::connect(&vm).await.expect("vminitd dials in");
    guest
        .debug()
        .mount("virtiofs", "s", "/mnt/s", &[])
        .await
        .expect("mount");
    // Every process of the backend runs and mentions the state directory.
    let running = voidbox_integration::processes_mentioning(&state);
    voidbox_integration::runs_all_of(&expected, &running).unwrap();

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(vm.vmm_pid() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill the VMM");
    let exit = tokio::time::timeout(GRACE, vm.wait()).await.expect("exit reported");
    assert_eq!(exit, VmExit::Killed { signal: 9 });
    assert!(
        eventually(GRACE, || leftovers(&state).is_empty()).await,
        "left behind: {:?}",
        leftovers(&state)
    );
    std::fs::remove_dir_all(host_dir).unwrap();
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("voidbox-test-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_dies_with_the_process_that_started_it() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let host_dir = tempdir("parent");
    let state = voidbox_integration::state_root().join(format!("parent-{}", std::process::id()));
    let mut holder = Command::new(env!("CARGO_BIN_EXE_voidbox-vm"))
        .arg("--state-dir")
        .arg(&state)
        .arg("--share")
        .arg(format!("s={}", host_dir.display()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn voidbox-vm");
    let mut lines = BufReader::new(holder.stdout.take().unwrap()).lines();
    let ready = lines.by_ref().map_while(Result::ok).any(|l| l.starts_with("ready"));
    assert!(ready, "voidbox-vm never reported ready");
    let running = voidbox_integration::processes_mentioning(&state);
    // What voidbox-vm starts: the test backend, with its one share.
    let mut expected = vm_config("expected");
    expected.shares.push(Share {
        tag: "s".into(),
        host_path: host_dir.clone(),
    });
    voidbox_integration::runs_all_of(&expected, &running).unwrap();

    // SIGKILL: no chance to clean up; only the kernel's parent-death signal acts.
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert!(
        eventually(GRACE, || voidbox_integration::processes_mentioning(&state).is_empty()).await,
        "processes outlived their parent: {:?}",
        voidbox_integration::processes_mentioning(&state)
    );
    let _ = std::fs::remove_dir_all(&state);
    std::fs::remove_dir_all(host_dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_helper_stops_its_vm() {
    let config = vm_config("helper");
    let Some(&helper) = test_backend().processes(&config).get(1) else {
        eprintln!(
            "skipped: the {} backend runs no helper process to crash",
            test_backend().name()
        );
        return;
    };
    let state = config.state_dir.clone();
    let vm = MicroVm::start(test_backend().as_ref(), config).await.expect("start VM");
    let _guest = GuestClient::connect(&vm).await.expect("vminitd dials in");
    let running = voidbox_integration::processes_mentioning(&state)
        .into_iter()
        .find(|p| p.contains(helper))
        .unwrap_or_else(|| panic!("{helper} runs"));
    let pid: i32 = running.split(':').next().unwrap().parse().unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).unwrap();

    let exit = tokio::time::timeout(GRACE, vm.wait()).await.expect("exit reported");
    match exit {
        VmExit::HelperFailed { process, .. } => assert_eq!(process, helper),
        other => panic!("expected the helper's failure, got {other}"),
    }
    assert!(
        eventually(GRACE, || leftovers(&state).is_empty()).await,
        "left: {:?}",
        leftovers(&state)
    );
}

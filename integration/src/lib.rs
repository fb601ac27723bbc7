//! Helpers shared by the integration tests: VM configs built from the
//! assets `make test` prepares, and checks that nothing was left behind.

pub mod clients;
pub mod cni;
pub mod containerd;
pub mod containerd_cri;
pub mod cri;
pub mod cri_stream;
pub mod ctr;
pub mod docker;
pub mod fake_cni;
pub mod image;
pub mod otlp;
pub mod overlay_rootfs;
pub mod prometheus;
pub mod shim_client;
pub mod smaps;
pub mod trace_check;
pub mod trace_tree;

use std::path::{Path, PathBuf};

use voidbox_shim::config::HostConfig;
use voidbox_shim::vm::VmConfig;

/// A VM config for test `name`, with the kernel and image `make test` built.
///
/// The assets come from VOIDBOX_KERNEL and VOIDBOX_IMAGE, which the Makefile
/// sets; without them the installed assets are used.
pub fn vm_config(name: &str) -> VmConfig {
    let host = host_config();
    let kernel = host.kernel.clone();
    assert!(
        kernel.exists(),
        "no guest kernel at {}: run the tests through `make test`, which builds it",
        kernel.display()
    );
    let state = state_root().join(format!("{name}-{}", std::process::id()));
    VmConfig::new(name, kernel, voidbox_shim::vm::GuestRoot::from_image(host.image), state)
}

/// The backend the suite runs on: `VOIDBOX_TEST_BACKEND` (qemu by default;
/// `make test` runs the suite again with libkrun where hardware KVM exists).
pub fn test_backend() -> Box<dyn voidbox_shim::vm::Backend> {
    match std::env::var("VOIDBOX_TEST_BACKEND").as_deref() {
        Ok("libkrun") => Box::new(voidbox_shim::vm::libkrun::Libkrun),
        _ => Box::new(voidbox_shim::vm::qemu::Qemu::new()),
    }
}

/// The shim's telemetry as a shim serving container `id` in `namespace`
/// installs it (its VM named `id` too), exporting where this process's
/// OTEL_* variables say; its log is discarded.
pub fn install_telemetry(id: &str, namespace: &str) -> Result<voidbox_shim::otel::Telemetry, String> {
    let identity = voidbox_shim::otel::Identity {
        container_id: id.into(),
        namespace: namespace.into(),
        vm_id: id.into(),
    };
    voidbox_shim::otel::Telemetry::install(std::io::sink, false, &identity, host_config().otel)
}

/// The number a `/proc/PID/status` text gives for `key` ("VmRSS:" in kB,
/// "Threads:", ...).
pub fn status_field(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// `key` of a host process's `/proc/PID/status`; None if it is gone.
pub fn proc_status_field(pid: impl std::fmt::Display, key: &str) -> Option<u64> {
    status_field(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?, key)
}

/// Whether the test backend emulates the CPU (QEMU with TCG): only then is
/// there a translation cache to size (`VOIDBOX_TCG_CACHE_MIB`).
pub fn under_tcg() -> bool {
    test_backend().name() == "qemu"
        && voidbox_shim::vm::qemu::Qemu::choosing(host_config().accel).accel() == voidbox_shim::vm::qemu::Accel::Tcg
}

/// The program of the test backend's VMM, as its command line names it.
pub fn vmm_program() -> &'static str {
    test_backend().vmm().name
}

/// The one VMM process of the shim whose state directory is `dir`:
/// `pid: command line`.
pub fn vmm_process(dir: &Path) -> String {
    let vmm = vmm_program();
    let mut vms: Vec<String> = processes_mentioning(&dir.join("vms"))
        .into_iter()
        .filter(|p| p.contains(vmm))
        .collect();
    assert_eq!(vms.len(), 1, "{vms:#?}");
    vms.remove(0)
}

/// The pid of [`vmm_process`].
pub fn vmm_pid(dir: &Path) -> u32 {
    let vm = vmm_process(dir);
    vm.split(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{vm}"))
}

/// Whether every program the test backend runs for `config` is among
/// `running` (`pid: command line` entries).
pub fn runs_all_of(config: &VmConfig, running: &[String]) -> Result<(), String> {
    let missing: Vec<&str> = test_backend()
        .processes(config)
        .into_iter()
        .filter(|name| !running.iter().any(|p| p.contains(name)))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("not running: {missing:?}; running: {running:?}"))
    }
}

/// Detaches every mount that mentions `dir` (what a killed shim or a
/// failed test left), deepest first.
pub fn unmount_all_under(dir: &Path) {
    let mut targets: Vec<String> = mounts_mentioning(dir)
        .iter()
        .filter_map(|m| m.split_whitespace().nth(4).map(str::to_string))
        .collect();
    targets.sort_by_key(|t| std::cmp::Reverse(t.len()));
    for target in targets {
        let _ = nix::mount::umount2(target.as_str(), nix::mount::MntFlags::MNT_DETACH);
    }
}

/// A client command's stdout, once it succeeded; else a failure that
/// shows its stderr and `context` (the daemon's log).
pub fn succeeded(out: &std::process::Output, context: impl FnOnce() -> String) -> String {
    assert!(
        out.status.success(),
        "failed ({:?}): {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        context()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Where test VMs keep their state.
pub fn state_root() -> PathBuf {
    host_config().state_root.join("test")
}

/// The shim's configuration, from this process's environment.
pub fn host_config() -> HostConfig {
    HostConfig::from_env().expect("the environment's voidbox settings")
}

/// Processes whose command line mentions `needle` (a VM's state directory).
pub fn processes_mentioning(needle: &Path) -> Vec<String> {
    processes(needle)
        .into_iter()
        .map(|(pid, cmd)| format!("{pid}: {cmd}"))
        .collect()
}

/// The pids of processes whose command line mentions `needle`.
pub fn pids_mentioning(needle: &Path) -> Vec<i32> {
    processes(needle).into_iter().map(|(pid, _)| pid).collect()
}

pub(crate) fn processes(needle: &Path) -> Vec<(i32, String)> {
    let needle = needle.to_string_lossy().into_owned();
    let me = std::process::id() as i32;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let raw = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&raw).replace('\0', " ");
            (pid != me && cmd.contains(&needle)).then(|| (pid, cmd.trim().to_string()))
        })
        .collect()
}

/// Mounts whose source or target mentions `needle`.
pub fn mounts_mentioning(needle: &Path) -> Vec<String> {
    let needle = needle.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(&needle))
        .map(str::to_string)
        .collect()
}

/// Everything a VM could leave behind: processes, mounts, its state directory.
pub fn leftovers(state_dir: &Path) -> Vec<String> {
    let mut left = processes_mentioning(state_dir);
    left.extend(mounts_mentioning(state_dir));
    if state_dir.exists() {
        let entries: Vec<String> = std::fs::read_dir(state_dir)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        left.push(format!(
            "state directory {} still holds {entries:?}",
            state_dir.display()
        ));
    }
    left
}

/// Waits up to `timeout` for `cond`, polling every 20 ms.
pub async fn eventually(timeout: std::time::Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    cond()
}

/// `eventually`'s blocking twin, for tests without a runtime: polls `cond`
/// every `step` until it holds or `timeout` has passed; whether it held.
/// The caller asserts, with what its failure should show.
pub fn wait_until(timeout: std::time::Duration, step: std::time::Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(step);
    }
    cond()
}

/// Waits up to 15 s (teardown is asynchronous) for `leftovers` to come back
/// empty, then asserts it is.
pub fn assert_nothing_left(leftovers: impl Fn() -> Vec<String>) {
    assert_nothing_left_or(leftovers, String::new)
}

/// As `assert_nothing_left`, with `context()` (a log, say) in the failure.
pub fn assert_nothing_left_or(leftovers: impl Fn() -> Vec<String>, context: impl Fn() -> String) {
    let step = std::time::Duration::from_millis(100);
    wait_until(std::time::Duration::from_secs(15), step, || leftovers().is_empty());
    let left = leftovers();
    assert!(left.is_empty(), "left behind: {left:#?}\n{}", context());
}

/// An HTTP/1.0 GET of `/` over plain TCP, as any client on the host would
/// make it; the response body.
pub async fn http_get(addr: &str) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream.write_all(b"GET / HTTP/1.0\r\nHost: pod\r\n\r\n").await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    Ok(response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or(response))
}

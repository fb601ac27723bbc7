//! Bad input gives one clear error that names the fix, and leaves nothing behind.

use std::process::Command;
use std::time::Duration;

use voidbox_integration::{leftovers, vm_config};
use voidbox_shim::guest::GuestClient;
use voidbox_shim::vm::{qemu::Qemu, MicroVm, VmError, VmExit};

/// Runs voidbox-vm with extra environment and arguments; returns its stderr.
fn voidbox_vm_fails(env: &[(&str, &str)], args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_voidbox-vm"))
        .envs(env.iter().copied())
        .args(args)
        .output()
        .expect("run voidbox-vm");
    assert_eq!(out.status.code(), Some(1), "voidbox-vm should fail: {out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(stderr.lines().count(), 1, "one error line, got: {stderr}");
    stderr
}

#[test]
fn a_missing_kernel_names_make_kernel() {
    let err = voidbox_vm_fails(&[("VOIDBOX_KERNEL", "/nonexistent/vmlinux")], &[]);
    assert!(err.contains("guest kernel not found at /nonexistent/vmlinux"), "{err}");
    assert!(err.contains("make kernel"), "{err}");
}

#[test]
fn a_bad_guest_image_path_names_make_image() {
    let err = voidbox_vm_fails(&[("VOIDBOX_IMAGE", "/nonexistent/guest.erofs")], &[]);
    assert!(
        err.contains("guest image /nonexistent/guest.erofs: no such file"),
        "{err}"
    );
    assert!(err.contains("make image"), "{err}");
    let err = voidbox_vm_fails(&[("VOIDBOX_IMAGE", "/etc/hostname")], &[]);
    assert!(err.contains("not an erofs image"), "{err}");
}

#[test]
fn a_missing_qemu_names_the_package() {
    let err = voidbox_vm_fails(&[("VOIDBOX_QEMU", "/nonexistent/qemu-system-x86_64")], &[]);
    assert!(err.contains("qemu-system-x86_64 not found"), "{err}");
    assert!(err.contains("apt-get install qemu-system-x86"), "{err}");
}

#[test]
fn a_socket_path_over_the_unix_limit_names_the_state_dir() {
    let long = format!("/tmp/{}", "d".repeat(100));
    let err = voidbox_vm_fails(&[], &["--state-dir", &long]);
    assert!(err.contains("over the 107-byte limit"), "{err}");
    assert!(err.contains("VOIDBOX_STATE_DIR"), "{err}");
    assert!(!std::path::Path::new(&long).exists(), "nothing created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_that_never_gets_ready_times_out_with_its_console() {
    let mut config = vm_config("neverready");
    // vminitd dials a port nobody listens on, so it never reaches the host.
    config.extra_cmdline.push("voidbox.port=4000".into());
    // Long enough for a loaded machine's guest to get as far as dialing.
    config.ready_timeout = Duration::from_secs(8);
    let state = config.state_dir.clone();
    let vm = MicroVm::start(&Qemu::new(), config).await.expect("start VM");
    let err = GuestClient::connect(&vm).await.err().expect("must time out");
    assert!(matches!(err, VmError::ReadyTimeout { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("did not become ready within 8s"), "{msg}");
    assert!(
        msg.contains("dialing host vsock port 4000"),
        "the console tail shows why: {msg}"
    );
    vm.kill().await;
    assert_eq!(leftovers(&state), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_that_panics_is_reported_with_the_panic() {
    let mut config = vm_config("panic");
    config.extra_cmdline.push("init=/nonexistent".into());
    let state = config.state_dir.clone();
    let vm = MicroVm::start(&Qemu::new(), config).await.expect("start VM");
    let err = GuestClient::connect(&vm).await.err().expect("no guest");
    match err {
        VmError::EndedBeforeReady {
            exit: VmExit::Panicked { message, .. },
        } => {
            assert!(message.contains("Kernel panic"), "{message}")
        }
        other => panic!("expected a panic report, got {other}"),
    }
    assert_eq!(leftovers(&state), Vec::<String>::new());
}

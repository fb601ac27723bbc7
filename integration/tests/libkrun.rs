//! The libkrun backend on this host. Its configuration runs against the real
//! library up to krun_start_enter; where there is no hardware KVM (PVM, say)
//! asking for it fails fast and names the reason. The full suite runs on
//! libkrun where hardware KVM exists (make test, VOIDBOX_TEST_BACKEND).

use std::process::Command;
use std::time::{Duration, Instant};

use voidbox_integration::containerd::{target_dir, Containerd};
use voidbox_integration::vm_config;
use voidbox_shim::vm::libkrun::Libkrun;
use voidbox_shim::vm::{kvm, Share, VmNetwork};

fn voidbox_krun() -> std::path::PathBuf {
    let bin = target_dir().join("voidbox-krun");
    assert!(bin.exists(), "{} missing: make test builds it", bin.display());
    bin
}

#[test]
fn every_libkrun_call_before_start_enter_succeeds_with_the_real_library() {
    let share = std::env::temp_dir().join(format!("voidbox-krun-share-{}", std::process::id()));
    std::fs::create_dir_all(&share).unwrap();
    let mut config = vm_config("krun");
    config.vcpus = 2;
    config.vsock_ports = vec![voidbox_api::TTRPC_PORT, voidbox_api::STDIO_PORT];
    config.shares.push(Share {
        tag: "rootfs".into(),
        host_path: share.clone(),
    });
    // A pod's NIC: the tap is opened only at krun_start_enter.
    config.network = Some(VmNetwork {
        netns: "/var/run/netns/unused".into(),
        tap: "vbtap0".into(),
        mac: "02:42:0a:00:00:02".into(),
    });
    std::fs::create_dir_all(&config.state_dir).unwrap();
    let plan = Libkrun.plan(&config).unwrap();
    assert!(plan.cmdline.contains("voidbox.backend=libkrun") && plan.cmdline.contains("console=hvc0"));
    assert_eq!(plan.net.as_ref().map(|n| n.mac), Some([2, 0x42, 0x0a, 0, 0, 2]));
    let path = config.state_dir.join("krun.json");
    std::fs::write(&path, serde_json::to_vec(&plan).unwrap()).unwrap();

    let out = Command::new(voidbox_krun()).arg("--check").arg(&path).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("every libkrun call succeeded"), "{stdout}");

    // A plan the library refuses fails with the call named.
    let mut bad = plan.clone();
    bad.vcpus = 0;
    std::fs::write(&path, serde_json::to_vec(&bad).unwrap()).unwrap();
    let out = Command::new(voidbox_krun()).arg("--check").arg(&path).output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("krun_set_vm_config failed"),
        "{out:?}"
    );
    std::fs::remove_dir_all(&config.state_dir).unwrap();
    std::fs::remove_dir_all(share).unwrap();
}

/// Asking for libkrun: with hardware KVM a container runs on it (checked
/// here, not assumed from the rest of the suite); without, it fails fast
/// and says why.
#[test]
fn libkrun_runs_where_hardware_kvm_exists_and_fails_fast_elsewhere() {
    let Err(why) = kvm::hardware_kvm() else {
        let ctd = Containerd::start_with_env("krun-env", &[("VOIDBOX_VMM", "libkrun")]);
        let out = ctd
            .run_command(
                "krun0",
                &[],
                &[
                    "sh",
                    "-c",
                    "echo on-libkrun; grep -o 'voidbox.backend=[a-z]*' /proc/cmdline",
                ],
            )
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "on-libkrun\nvoidbox.backend=libkrun\n"
        );
        ctd.assert_clean();
        return;
    };
    // VOIDBOX_VMM=libkrun in containerd's environment; then an annotation,
    // against a containerd whose environment says qemu.
    let by_env = Containerd::start_with_env("nokvm-env", &[("VOIDBOX_VMM", "libkrun")]);
    let by_annotation = Containerd::start_with_env("nokvm-ann", &[("VOIDBOX_VMM", "qemu")]);
    let cases = [
        (&by_env, "krun1", vec![]),
        (
            &by_annotation,
            "krun2",
            vec!["--annotation", "io.containerd.voidbox.vm.backend=libkrun"],
        ),
    ];
    for (ctd, id, extra) in cases {
        let start = Instant::now();
        let out = ctd.run_command(id, &extra, &["true"]).output().unwrap();
        let took = start.elapsed();
        assert!(!out.status.success(), "{id} must fail on this host");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("the libkrun backend needs hardware KVM"), "{err}");
        assert!(err.contains(&why), "the reason ({why}) is named: {err}");
        assert!(took < Duration::from_secs(5), "{id} failed in {took:?}");
        println!("{id}: refused in {took:?}: {}", err.trim());
        let _ = ctd.ctr(&["container", "delete", id]);
        ctd.assert_clean();
    }
}

//! The shim of a running container is SIGKILLed: its VM goes with it, and
//! containerd recovers as it does from a dead runc shim. It reports the
//! task stopped or drops it, `ctr task rm` and `ctr container rm` work, and the shim's
//! `delete` action (which containerd runs) leaves nothing behind.

use std::time::Duration;

use voidbox_integration::clients::ContainerdVersion;
use voidbox_integration::containerd::Containerd;
use voidbox_integration::ctr::{ok, run_detached, task_status};
use voidbox_integration::{on_each_containerd, wait_until};

/// The pid of the shim serving container `id`.
fn shim_of(ctd: &Containerd, id: &str) -> i32 {
    // Shims carry containerd's socket on their command line.
    let shims: Vec<String> = voidbox_integration::processes_mentioning(&ctd.socket)
        .into_iter()
        .filter(|p| p.contains("containerd-shim-voidbox-v2") && p.contains(&format!(" {id} ")))
        .collect();
    assert_eq!(shims.len(), 1, "{shims:#?}");
    shims[0].split(':').next().unwrap().parse().unwrap()
}

fn a_killed_shim_takes_its_vm_and_containerd_recovers(v: ContainerdVersion) {
    let ctd = Containerd::start_on(v, "killed", &[]);
    run_detached(&ctd, "victim", &["sleep", "3600"]);
    let vmm = voidbox_integration::vmm_program();
    let vms = || {
        voidbox_integration::processes_mentioning(&ctd.vm_state_root())
            .into_iter()
            .filter(|p| p.contains(vmm))
            .count()
    };
    assert_eq!(vms(), 1);

    let shim = shim_of(&ctd, "victim");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(shim), nix::sys::signal::Signal::SIGKILL).unwrap();
    // containerd either keeps the task, stopped, or drops it at once.
    wait_until(Duration::from_secs(20), Duration::from_millis(200), || {
        let status = task_status(&ctd, "victim");
        status.contains("STOPPED") || status.is_empty()
    });
    let status = task_status(&ctd, "victim");
    assert!(
        status.contains("STOPPED") || status.is_empty(),
        "{status:?}\n{}",
        ctd.log_tail()
    );
    wait_until(Duration::from_secs(10), Duration::from_millis(100), || vms() == 0);
    assert_eq!(vms(), 0, "the VM dies with its shim");
    if !status.is_empty() {
        ok(&ctd.ctr(&["task", "rm", "victim"]), &ctd);
    }
    ok(&ctd.ctr(&["container", "rm", "victim"]), &ctd);
    ctd.assert_clean();
}

on_each_containerd!(a_killed_shim_takes_its_vm_and_containerd_recovers);

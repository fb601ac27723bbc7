//! Giving TCG's translation cache back whenever the VM goes quiet. Most of
//! what a VM translated is code that ran once (the boot, the container's
//! start, a burst of work), and QEMU keeps all of it resident (about 36 MiB
//! after a start) until asked to drop it (vm/monitor.rs). So, each time the
//! VMM has been busy and then stays quiet for a whole window, the shim asks.
//! A VM that never goes quiet keeps its cache: it is running that code.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tracing::{debug, warn};

use crate::vm::{MicroVm, Release};

/// Quiet: the VMM used less than this share of one host CPU over a window.
const QUIET: f64 = 0.05;
/// Busy: more than this; translations were likely made.
const BUSY: f64 = 0.25;

/// Watches `vm` every `window`, releasing its translations once busy turns
/// quiet; None where the VM has no cache to give back.
pub(super) fn watch(vm: Arc<MicroVm>, sandbox: &str, window: Option<Duration>) -> Option<JoinHandle<()>> {
    let window = window?;
    if !vm.has_translation_cache() {
        return None;
    }
    let sandbox = sandbox.to_string();
    Some(tokio::spawn(async move {
        // The boot and the first start are the busiest time of all.
        let mut busy_since_release = true;
        let mut last = vm.vmm_cpu_time();
        loop {
            tokio::time::sleep(window).await;
            let now = vm.vmm_cpu_time();
            let (Some(a), Some(b)) = (last, now) else { return };
            last = now;
            let share = b.saturating_sub(a).as_secs_f64() / window.as_secs_f64();
            busy_since_release |= share > BUSY;
            if share >= QUIET || !busy_since_release || vm.try_exit().is_some() {
                continue;
            }
            busy_since_release = false;
            match vm.release_translations().await {
                None => return,
                Some(Ok(Release::Done)) => debug!(%sandbox, "translation cache released"),
                Some(Ok(Release::Unsupported)) => {
                    return warn!(
                        %sandbox,
                        "this QEMU has no tb_flush (it is not voidbox's build, hack/build-qemu.sh): \
                         its translation cache stays resident"
                    )
                }
                // A VM that ended meanwhile has nothing left to release.
                Some(Err(_)) if vm.try_exit().is_some() => return,
                Some(Err(e)) => return warn!(%sandbox, "releasing the translation cache: {e}"),
            }
        }
    }))
}

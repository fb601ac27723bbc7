//! `VOIDBOX_TCG_CACHE_MIB` reaches QEMU's command line under TCG (and
//! nothing changes where no code is translated), and a bad value is
//! refused when the shim starts, naming the variable.
//!
//! Once a VM that was busy goes quiet (`VOIDBOX_TCG_RELEASE_MS`; 0: never),
//! its translation cache goes back to the host, and a QEMU that cannot
//! give it back is named in the log while the container runs on.

use std::time::Duration;

use voidbox_integration::shim_client::{spec, ShimUnderTest};
use voidbox_integration::smaps::{mib_of, poll_mib, Kind};

/// More than an idle VM keeps once its cache is given back (about 1 MiB),
/// less than a start fills (about 36 MiB).
const RELEASED_MIB: f64 = 8.0;

/// The VMM's translation cache, MiB, polled until `done` holds or `within`
/// passes; the last reading.
async fn cache_until(pid: u32, within: Duration, done: impl Fn(f64) -> bool) -> f64 {
    poll_mib(within, || mib_of(pid, Kind::TranslationCache), done).await
}

/// Under TCG, the cache a start filled goes back once the VM is quiet, and
/// the container's VM still answers: the container is killed and its
/// exit status comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_containers_translation_cache_goes_back_to_the_host() {
    if !voidbox_integration::under_tcg() {
        println!("skipped: with hardware virtualization no code is translated, so there is no cache to give back");
        return;
    }
    let shim = ShimUnderTest::start_with_env("tcg-release", &spec(&["sleep", "60"]), &[]).await;
    shim.create_and_start(&[]).await;
    let pid = voidbox_integration::vmm_pid(&shim.dir);
    let filled = mib_of(pid, Kind::TranslationCache);
    assert!(filled > 2.0 * RELEASED_MIB, "the start translated only {filled:.1} MiB");
    let left = cache_until(pid, Duration::from_secs(15), |mib| mib < RELEASED_MIB).await;
    assert!(
        left < RELEASED_MIB,
        "the translation cache is still {left:.1} MiB (was {filled:.1}); log:\n{}",
        shim.log()
    );
    println!("translation cache: {filled:.1} MiB after the start, {left:.1} MiB once released");
    shim.kill(9, &[]).await;
    assert_eq!(shim.wait(&[]).await.exit_status, 137, "sleep ended by SIGKILL");
    shim.delete_and_shutdown(&[]).await;
    shim.assert_gone_clean(Duration::from_secs(10)).await;
}

/// With the release off, the cache stays: what the first test sees is the
/// release's doing, not QEMU's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_release_off_the_cache_stays() {
    if !voidbox_integration::under_tcg() {
        println!("skipped: with hardware virtualization no code is translated, so there is no cache to give back");
        return;
    }
    let env = [("VOIDBOX_TCG_RELEASE_MS", "0")];
    let shim = ShimUnderTest::start_with_env("tcg-keep", &spec(&["sleep", "60"]), &env).await;
    shim.create_and_start(&[]).await;
    let pid = voidbox_integration::vmm_pid(&shim.dir);
    // Three default windows (config.rs, DEFAULT_TCG_RELEASE).
    let kept = cache_until(pid, Duration::from_secs(6), |mib| mib < RELEASED_MIB).await;
    assert!(
        kept > 2.0 * RELEASED_MIB,
        "the cache went down to {kept:.1} MiB with the release off"
    );
    shim.kill_and_remove().await;
    shim.assert_gone_clean(Duration::from_secs(10)).await;
}

/// Debian's own QEMU has no `tb_flush`: the log says so, once, and the
/// container runs as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_qemu_that_cannot_give_its_cache_back_is_named_and_the_container_runs_on() {
    let system = "/usr/bin/qemu-system-x86_64";
    if !voidbox_integration::under_tcg() || !std::path::Path::new(system).exists() {
        println!("skipped: needs TCG and Debian's QEMU at {system}");
        return;
    }
    let env = [("VOIDBOX_QEMU", system), ("VOIDBOX_TCG_RELEASE_MS", "200")];
    let shim = ShimUnderTest::start_with_env("tcg-sysqemu", &spec(&["sleep", "60"]), &env).await;
    shim.create_and_start(&[]).await;
    let said = voidbox_integration::wait_until(Duration::from_secs(10), Duration::from_millis(100), || {
        shim.log().contains("this QEMU has no tb_flush")
    });
    assert!(said, "log:\n{}", shim.log());
    assert_eq!(
        shim.log().matches("this QEMU has no tb_flush").count(),
        1,
        "{}",
        shim.log()
    );
    shim.kill(9, &[]).await;
    assert_eq!(shim.wait(&[]).await.exit_status, 137, "sleep ended by SIGKILL");
    shim.delete_and_shutdown(&[]).await;
    shim.assert_gone_clean(Duration::from_secs(10)).await;
}

#[tokio::test]
async fn a_bad_release_delay_is_refused_by_name() {
    let err =
        ShimUnderTest::start_refused("tcg-release-bad", &spec(&["true"]), &[("VOIDBOX_TCG_RELEASE_MS", "2s")]).await;
    assert_eq!(
        err,
        "containerd-shim-voidbox-v2: VOIDBOX_TCG_RELEASE_MS=\"2s\": a whole number of ms, 0 to 3600000"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_translation_cache_setting_reaches_the_vmm() {
    let shim =
        ShimUnderTest::start_with_env("tcg-cache", &spec(&["sleep", "60"]), &[("VOIDBOX_TCG_CACHE_MIB", "24")]).await;
    shim.create_and_start(&[]).await;
    let vm = voidbox_integration::vmm_process(&shim.dir);
    if voidbox_integration::under_tcg() {
        assert!(vm.contains(" -accel tcg,tb-size=24 "), "{vm}");
    } else {
        // Hardware virtualization translates nothing: the setting does not apply.
        assert!(!vm.contains("tb-size"), "{vm}");
    }
    shim.kill_and_remove().await;
    shim.assert_gone_clean(Duration::from_secs(10)).await;
}

#[tokio::test]
async fn a_bad_translation_cache_setting_is_refused_by_name() {
    for bad in ["16M", "0", "5000"] {
        let err =
            ShimUnderTest::start_refused("tcg-cache-bad", &spec(&["true"]), &[("VOIDBOX_TCG_CACHE_MIB", bad)]).await;
        assert_eq!(
            err,
            format!("containerd-shim-voidbox-v2: VOIDBOX_TCG_CACHE_MIB={bad:?}: a whole number of MiB, 1 to 4096")
        );
    }
}

//! `VOIDBOX_TCG_CACHE_MIB` reaches QEMU's command line under TCG (and
//! nothing changes where no code is translated), and a bad value is
//! refused when the shim starts, naming the variable.

use std::time::Duration;

use voidbox_integration::shim_client::{spec, ShimUnderTest};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_translation_cache_setting_reaches_the_vmm() {
    let shim =
        ShimUnderTest::start_with_env("tcg-cache", &spec(&["sleep", "60"]), &[("VOIDBOX_TCG_CACHE_MIB", "24")]).await;
    shim.create_and_start(&[]).await;
    let vmm = voidbox_integration::vmm_program();
    let vms: Vec<String> = voidbox_integration::processes_mentioning(&shim.dir.join("vms"))
        .into_iter()
        .filter(|p| p.contains(vmm))
        .collect();
    assert_eq!(vms.len(), 1, "{vms:#?}");
    if voidbox_integration::under_tcg() {
        assert!(vms[0].contains(" -accel tcg,tb-size=24 "), "{}", vms[0]);
    } else {
        // Hardware virtualization translates nothing: the setting does not apply.
        assert!(!vms[0].contains("tb-size"), "{}", vms[0]);
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

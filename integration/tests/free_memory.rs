//! What a container frees goes back to the host: the guest reports its free
//! pages through the balloon (QEMU's free page reporting; libkrun's balloon
//! takes the same reports), blocks of every size, as the shim asks on the
//! kernel's command line (`page_reporting.page_reporting_order=0`).

use std::cell::Cell;
use std::time::Duration;

use voidbox_integration::shim_client::{spec, ShimUnderTest};
use voidbox_integration::smaps::{poll_mib, total_mib};

/// The order the guest reports free blocks from, as a container sees it:
/// the exit status is 100 + the order (2 if it cannot be read).
const REPORTING_ORDER: &str = "exit $((100 + $(cat /sys/module/page_reporting/parameters/page_reporting_order)))";

/// The guest reports from order 0, as the shim asks; left to itself, Linux
/// 6.1 would report only whole pageblocks (order 9).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guest_reports_free_blocks_of_every_size() {
    let shim = ShimUnderTest::start_with_env("report-order", &spec(&["sh", "-c", REPORTING_ORDER]), &[]).await;
    shim.create_and_start(&[]).await;
    let status = shim.wait(&[]).await.exit_status;
    assert_eq!(
        status,
        100,
        "the guest's reporting order is {}; log:\n{}",
        status as i64 - 100,
        shim.log()
    );
    shim.delete_and_shutdown(&[]).await;
    shim.assert_gone_clean(Duration::from_secs(10)).await;
}

/// An order the kernel cannot take is named in the log; the guest keeps the
/// kernel's own (a pageblock: order 9) and the container runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_reporting_order_is_named_and_the_container_runs() {
    let env = [("VOIDBOX_GUEST_CMDLINE", "page_reporting.page_reporting_order=99")];
    let shim = ShimUnderTest::start_with_env("report-order-bad", &spec(&["sh", "-c", REPORTING_ORDER]), &env).await;
    shim.create_and_start(&[]).await;
    assert_eq!(shim.wait(&[]).await.exit_status, 109, "log:\n{}", shim.log());
    assert!(
        shim.log()
            .contains("page_reporting.page_reporting_order=\"99\" ignored: an order is 0 to 10"),
        "{}",
        shim.log()
    );
    shim.delete_and_shutdown(&[]).await;
    shim.assert_gone_clean(Duration::from_secs(10)).await;
}

/// A container holds 128 MiB, then frees it: the VMM's PSS rises by most of
/// it, then falls by most of it within seconds (the guest reports every 2 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_a_container_frees_goes_back_to_the_host() {
    // dd holds its 128 MiB buffer while `sleep 4` leaves the pipe unread,
    // then exits and frees it.
    let script = "sleep 3; dd if=/dev/zero bs=128M count=1 2>/dev/null | sleep 4; sleep 60";
    let shim = ShimUnderTest::start_with_env("free-memory", &spec(&["sh", "-c", script]), &[]).await;
    shim.create_and_start(&[]).await;
    let pid = voidbox_integration::vmm_pid(&shim.dir);
    let before = total_mib(pid);
    let holding = poll_mib(Duration::from_secs(20), || total_mib(pid), |mib| mib > before + 100.0).await;
    assert!(
        holding > before + 100.0,
        "the VMM's PSS went from {before:.1} to only {holding:.1} MiB"
    );
    // The peak, then the fall from it.
    let peak = Cell::new(holding);
    let after = poll_mib(
        Duration::from_secs(30),
        || total_mib(pid),
        |mib| {
            peak.set(peak.get().max(mib));
            mib < peak.get() - 100.0
        },
    )
    .await;
    let peak = peak.get();
    assert!(
        after < peak - 100.0,
        "the VMM's PSS is still {after:.1} MiB after the container freed 128 MiB (peak {peak:.1}, before {before:.1}); log:\n{}",
        shim.log()
    );
    println!("VMM PSS: {before:.1} MiB, {peak:.1} holding 128 MiB, {after:.1} once freed");
    shim.kill_and_remove().await;
    shim.assert_gone_clean(Duration::from_secs(10)).await;
}

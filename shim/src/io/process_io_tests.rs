use std::time::{Duration, Instant};

use super::*;

/// A stdin FIFO nobody opens (ctr opens stdin only to write to it): giving
/// up on its open releases the thread blocked in open(), so the runtime's
/// shutdown, and with it the shim's exit, does not wait for that thread.
/// (Unreleased, it held every such shim's exit for the runtime's shutdown
/// bound.) No timing is asserted but the bound itself, which a blocked
/// thread always reaches and a released one never does.
#[test]
fn an_abandoned_fifo_open_releases_its_thread() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("stdin");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let open = open_fifo(fifo.clone(), false);
        // No writer ever comes: the open is still blocked when given up.
        assert!(tokio::time::timeout(Duration::from_millis(100), open).await.is_err());
    });
    let bound = Duration::from_secs(10);
    let began = Instant::now();
    rt.shutdown_timeout(bound);
    assert!(
        began.elapsed() < bound,
        "the runtime's shutdown waited its whole bound ({bound:?}) for a thread still in open()"
    );
}

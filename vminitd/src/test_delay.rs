//! A test-only delay (built only with the `debug-rpcs` feature, the test
//! image's): `voidbox.test.kill_answer_delay_ms=N` holds Kill's answer N ms
//! after the signal went out. The container's exit, and the client's
//! Delete, then overtake the answer, as they did under load; the shim's
//! Delete must wait for it (up to a bound) before it ends the VM.

use std::sync::OnceLock;
use std::time::Duration;

use crate::cmdline::Cmdline;

/// Waits as long as the command line asks, if it asks.
pub async fn before_kill_answer() {
    // The command line does not change while the guest runs: read it once.
    static DELAY_MS: OnceLock<Option<u64>> = OnceLock::new();
    let delay = *DELAY_MS.get_or_init(|| {
        Cmdline::read()
            .get("voidbox.test.kill_answer_delay_ms")
            .and_then(|v| v.parse::<u64>().ok())
    });
    if let Some(ms) = delay {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

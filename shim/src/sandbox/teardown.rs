//! A VM's end, phase by phase under the caller's span (Delete's, or
//! Shutdown's): SpanDrain, VMStop, Cleanup.
//!
//! The guest holds nothing that must outlive it: its root is a read-only
//! image, and what containers wrote to their shares is on the host once
//! System.Shutdown has answered (vminitd syncs first if a container's
//! process still runs). So the host does not wait for the guest to power itself off
//! (terminate, unmount, reset): once Shutdown has answered and the last
//! spans are in, the VMM is killed.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::task::JoinHandle;
use tracing::{debug, info_span, warn, Instrument, Span};

use super::relay::RelayEnd;
use super::Sandbox;
use crate::otel::metrics::{self, vm_attrs};

/// How long the guest gets to answer Shutdown (sync, if it must) and close
/// its span streams.
const SHUTDOWN_BOUND: Duration = Duration::from_secs(10);
/// How long teardown waits for the guest's answers to Kills in flight.
const KILL_ANSWER_BOUND: Duration = Duration::from_secs(5);
/// How long teardown waits for the guest's last spans.
const RELAY_DRAIN: Duration = Duration::from_secs(2);
/// A clock sample younger than this serves the spans of the end too.
const FRESH_SAMPLE: Duration = Duration::from_secs(1);

pub(super) async fn teardown(sandbox: &Sandbox) {
    if sandbox.vm.try_exit().is_none() {
        wait_for_kills(sandbox).await;
        span_drain(sandbox).instrument(info_span!("SpanDrain")).await;
        async {
            let exit = sandbox.vm.kill().await;
            debug!(sandbox = %sandbox.id, "VM stopped: {exit}");
        }
        .instrument(info_span!("VMStop"))
        .await;
    } else {
        // The VM already ended: what it sent is in, or never will be.
        let _ = wait_relay(sandbox).await;
    }
    cleanup(sandbox).instrument(info_span!("Cleanup")).await;
}

/// Waits, up to a bound, for the guest's answers to Kills in flight. A
/// process that dies of a signal at once can exit, and its client Delete
/// the task, before the guest has answered the Kill; ending the VM then
/// would fail a Kill that worked (`ctr task kill` beside `ctr run --rm`).
async fn wait_for_kills(sandbox: &Sandbox) {
    if sandbox.kills.try_write().is_ok() {
        return;
    }
    let wait = tokio::time::timeout(KILL_ANSWER_BOUND, sandbox.kills.write());
    if wait.instrument(info_span!("KillAnswers")).await.is_err() {
        warn!(sandbox = %sandbox.id, "a Kill's answer took more than {KILL_ANSWER_BOUND:?}: deleting without it");
    }
}

/// The guest ends its span streams (System.Shutdown); the relay
/// ends when it has passed on the last span.
async fn span_drain(sandbox: &Sandbox) {
    // A last clock sample, for the spans of the end, unless one was just
    // taken (a short-lived container's boot sample, say), or no spans come.
    let relayed = sandbox.relay.lock().expect("relay lock").is_some();
    let fresh = sandbox.clock.sampled_within(FRESH_SAMPLE);
    async {
        if relayed && !fresh {
            let _ = sandbox.clock.remeasure_once_more(&sandbox.guest).await;
        }
    }
    .instrument(info_span!("ClockSample", clock.fresh = fresh))
    .await;
    sandbox.vm.expect_shutdown();
    let answered = sandbox
        .guest
        .shutdown(SHUTDOWN_BOUND)
        .instrument(info_span!("GuestShutdown"))
        .await;
    if let Err(e) = answered {
        warn!(sandbox = %sandbox.id, "the guest did not answer Shutdown and close its streams: {e}");
    }
    let last = info_span!("LastSpans", relay.end = tracing::field::Empty);
    async {
        if let Some(end) = wait_relay(sandbox).await {
            Span::current().record("relay.end", end);
        }
    }
    .instrument(last)
    .await;
}

/// How the wait for the relay ended: the relay's own end, or the waiter's
/// bound (the relay never times out by itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Drained {
    Relay(RelayEnd),
    TimedOut,
}

impl Drained {
    fn as_str(self) -> &'static str {
        match self {
            Drained::Relay(end) => end.as_str(),
            Drained::TimedOut => "timeout",
        }
    }
}

/// Waits for the relay's end, at most `RELAY_DRAIN`; None without a relay.
async fn wait_relay(sandbox: &Sandbox) -> Option<&'static str> {
    let relay = sandbox.relay.lock().expect("relay lock").take()?;
    let drained = drain(relay, RELAY_DRAIN).await;
    if drained == Drained::TimedOut {
        warn!(sandbox = %sandbox.id, "the guest's span stream did not end in time");
    }
    Some(drained.as_str())
}

/// The relay's end, or `TimedOut` after `bound`; a relay still running then
/// is stopped (the VM ends next, and its stream with it), not left behind.
async fn drain(mut relay: JoinHandle<RelayEnd>, bound: Duration) -> Drained {
    match tokio::time::timeout(bound, &mut relay).await {
        Ok(Ok(end)) => Drained::Relay(end),
        Ok(Err(_)) => Drained::Relay(RelayEnd::Failed),
        Err(_) => {
            relay.abort();
            Drained::TimedOut
        }
    }
}

async fn cleanup(sandbox: &Sandbox) {
    if sandbox.live.swap(false, Ordering::Relaxed) {
        metrics::get().live_vms.add(-1, &vm_attrs(&sandbox.id, &sandbox.vm_id));
        if let Some(net) = &sandbox.network {
            net.detach().await;
        }
    }
    sandbox.shared.lock().expect("shared lock").unmount();
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use super::{drain, Drained, RelayEnd};

    /// Sets its flag when dropped: the task holding it is gone.
    struct Gone(Arc<AtomicBool>);

    impl Drop for Gone {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn a_relay_that_ended_says_how() {
        let ended = tokio::spawn(async { RelayEnd::LastBatch });
        assert_eq!(
            drain(ended, Duration::from_secs(5)).await,
            Drained::Relay(RelayEnd::LastBatch)
        );
        let panicked = tokio::spawn(async { panic!("relay panicked") });
        assert_eq!(
            drain(panicked, Duration::from_secs(5)).await,
            Drained::Relay(RelayEnd::Failed)
        );
        assert_eq!(Drained::Relay(RelayEnd::StreamEnd).as_str(), "stream_end");
    }

    #[tokio::test]
    async fn a_relay_past_the_bound_is_stopped() {
        let gone = Arc::new(AtomicBool::new(false));
        let guard = Gone(gone.clone());
        let stuck = tokio::spawn(async move {
            let _guard = guard;
            std::future::pending::<RelayEnd>().await
        });
        let drained = drain(stuck, Duration::from_millis(20)).await;
        assert_eq!(drained, Drained::TimedOut);
        assert_eq!(drained.as_str(), "timeout");
        // The aborted task drops what it held at its next turn.
        for _ in 0..100 {
            if gone.load(Ordering::SeqCst) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("the relay past its bound is still running");
    }
}

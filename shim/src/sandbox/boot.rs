//! A VM's boot, phase by phase under the VMBoot span: VMSpawn,
//! WaitForReady, ClockSync; then the clock kept measured while it runs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry::KeyValue;
use tracing::{info, info_span, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::clock::{Clock, Sample};
use crate::error::{traced, Result, ShimError};
use crate::guest::GuestClient;
use crate::otel::metrics;
use crate::vm::{Backend, MicroVm, VmConfig, VmError};

/// How often the clock offset is measured again while the VM runs.
const CLOCK_RESYNC: Duration = Duration::from_secs(10);

/// VMSpawn, WaitForReady, then the guest clock set from the host's, and
/// measured after if `measure_clock` (guest spans or metrics are on). The
/// guest's quick RPCs are bounded by `rpc_timeout` from then on, if set, else
/// by the guest client's default.
pub(super) async fn boot(
    backend: &dyn Backend,
    config: VmConfig,
    clock: Arc<Clock>,
    measure_clock: bool,
    rpc_timeout: Option<Duration>,
    span: Span,
    attrs: Vec<KeyValue>,
) -> Result<(Arc<MicroVm>, GuestClient)> {
    let m = metrics::get();
    let phase = |name: &'static str, since: Instant| {
        let mut a = attrs.clone();
        a.push(KeyValue::new("phase", name));
        m.boot.record(since.elapsed().as_secs_f64(), &a);
    };
    let set_time = sets_guest_clock(&config.extra_cmdline);
    let begun = Instant::now();
    // Each phase marks its own span when it fails, not only VMBoot.
    let vm = Arc::new(
        traced(info_span!("VMSpawn"), async {
            Ok(MicroVm::start(backend, config).await?)
        })
        .await?,
    );
    phase("spawn", begun);
    let t = Instant::now();
    let ready = traced(info_span!("WaitForReady"), async {
        let guest = GuestClient::connect(&vm).await?;
        Ok(match rpc_timeout {
            Some(t) => guest.with_rpc_timeout(t),
            None => guest,
        })
    });
    let guest = match ready.await {
        Ok(g) => g,
        Err(e) => {
            vm.kill().await;
            return Err(e);
        }
    };
    phase("ready", t);
    let t = Instant::now();
    // A VM that ends mid-exchange fails the boot at once, saying so, not
    // when the RPC's bound runs out.
    let synced = tokio::select! {
        s = traced(info_span!("ClockSync"), async { Ok(clock.sync_at_boot(&guest, set_time, measure_clock).await?) }) => s,
        exit = vm.wait() => Err(ShimError::from(VmError::EndedBeforeReady { exit })),
    };
    let (before, after) = match synced {
        Ok(s) => s,
        Err(e) => {
            vm.kill().await;
            return Err(e);
        }
    };
    phase("clock_sync", t);
    phase("total", begun);
    span.set_attribute("clock.offset_before_sync_ns", before.offset_ns);
    if !set_time {
        span.set_attribute("clock.set", false);
    }
    match after {
        Some(after) => {
            record_clock(&after, &attrs);
            span.set_attribute("clock.offset_ns", after.offset_ns);
            span.set_attribute("clock.uncertainty_ns", after.uncertainty_ns);
            info!(
                offset_ns = after.offset_ns,
                uncertainty_ns = after.uncertainty_ns,
                skew_before_ns = before.offset_ns,
                "guest clock set"
            );
        }
        None => info!(
            skew_before_ns = before.offset_ns,
            uncertainty_ns = before.uncertainty_ns,
            "guest clock set (not measured after: no spans or metrics use it)"
        ),
    }
    Ok((vm, guest))
}

/// Whether the boot sets the guest's wall clock: always, but in a test
/// build (`debug-rpcs`) whose guest was told to start with a wrong clock
/// (`voidbox.test.clock_*`, which only the test image's vminitd heeds). The
/// clock tests need that clock left wrong, so that only a correct rebase of
/// the guest's spans passes them. A release shim has no such words.
fn sets_guest_clock(cmdline: &[String]) -> bool {
    #[cfg(feature = "debug-rpcs")]
    if cmdline.iter().any(|w| w.starts_with("voidbox.test.clock_")) {
        return false;
    }
    let _ = cmdline;
    true
}

fn record_clock(s: &Sample, attrs: &[KeyValue]) {
    let m = metrics::get();
    m.clock_offset.record(s.offset_ns as f64 / 1e9, attrs);
    m.clock_uncertainty.record(s.uncertainty_ns as f64 / 1e9, attrs);
}

/// Keeps measuring the guest clock: an emulated clock drifts.
pub(super) async fn resync_clock(guest: GuestClient, clock: Arc<Clock>, vm: Arc<MicroVm>, attrs: Vec<KeyValue>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(CLOCK_RESYNC) => {}
            _ = vm.wait() => return,
        }
        match clock.remeasure(&guest).await {
            Ok(s) => record_clock(&s, &attrs),
            Err(_) => return,
        }
    }
}

//! The guest-to-OTLP relay: how fast spans cross from vminitd's buffer to a
//! collector, and whether a steady rate loses any.
//!
//! - Throughput: the guest's buffer is filled while nobody drains it, then
//!   the relay starts; the time from its start until the OTLP receiver has
//!   decoded every span prices `Traces.Stream`, the checks, the clock rebase
//!   and the shim's exporter, not the guest making spans.
//! - Sustained: 1,000 spans/s for 60 s, made at that pace while relayed;
//!   every stage's losses are counted.
//!
//! These runs use the test image (`VOIDBOX_TEST_IMAGE`): only its vminitd
//! serves Debug.Flood, which makes the spans. The relay and the exporter
//! are the shim's own, configured as the shim configures them.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use voidbox_hack::stats::Samples;
use voidbox_integration::otlp::Receiver;
use voidbox_shim::guest::GuestClient;
use voidbox_shim::otel::GuestSink;
use voidbox_shim::sandbox::clock::{now_ns, Clock};
use voidbox_shim::sandbox::relay::{self, RelayEnd, RelayStats};
use voidbox_shim::vm::{GuestRoot, MicroVm, VmConfig};

/// The guest buffer's default capacity (vminitd's DEFAULT_CAPACITY), the
/// burst measured.
const BURST: u64 = 16384;
/// Room in the buffer for the boot's spans and the Flood span itself.
const BOOT_SPANS_ROOM: u64 = 64;
const THROUGHPUT_GOAL: f64 = 50_000.0;
const SUSTAINED_RATE: u64 = 1_000;
const SUSTAINED_SECS: u64 = 60;

struct Vm {
    vm: MicroVm,
    guest: GuestClient,
    clock: Arc<Clock>,
}

impl Vm {
    /// Starts relaying this VM's spans to `sink`, with counters of its own.
    fn relay(&self, sink: &GuestSink) -> (Arc<RelayStats>, tokio::task::JoinHandle<RelayEnd>) {
        let stats = Arc::new(RelayStats::default());
        let relaying = relay::start(
            self.guest.clone(),
            self.clock.clone(),
            sink.clone(),
            stats.clone(),
            Vec::new(),
            // No boot span here: the guest sends no boot spans.
            Default::default(),
        );
        (stats, relaying)
    }
}

async fn boot(name: &str, buffer: u64) -> Result<Vm, String> {
    let host = voidbox_integration::host_config();
    let image = std::env::var("VOIDBOX_TEST_IMAGE").map_err(|_| "VOIDBOX_TEST_IMAGE is not set".to_string())?;
    let state = voidbox_integration::state_root().join(format!("bench-{name}-{}", std::process::id()));
    let mut config = VmConfig::new(name, host.kernel, GuestRoot::from_image(image.into()), state);
    config
        .extra_cmdline
        .extend(["voidbox.trace=1".to_string(), format!("voidbox.trace_buffer={buffer}")]);
    let started = now_ns();
    let vm = MicroVm::start(voidbox_integration::test_backend().as_ref(), config)
        .await
        .map_err(|e| format!("{name}: {e}"))?;
    let guest = GuestClient::connect(&vm).await.map_err(|e| format!("{name}: {e}"))?;
    let clock = Arc::new(Clock::new(started));
    clock
        .sync_at_boot(&guest, true, true)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Vm { vm, guest, clock })
}

fn flood_spans(receiver: &Receiver) -> u64 {
    receiver.count_spans("flood.span")
}

/// Waits until the receiver holds `want` flood spans, or `timeout`.
async fn received(receiver: &Receiver, want: u64, timeout: Duration) -> Option<Instant> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if flood_spans(receiver) >= want {
            return Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    None
}

async fn stop(vm: Vm, relaying: tokio::task::JoinHandle<RelayEnd>) {
    vm.guest.power_off(&vm.vm, Duration::from_secs(10)).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), relaying).await;
}

/// One burst: BURST spans buffered, then relayed; seconds until the relay
/// handed the last to the exporter, and until the receiver decoded it.
async fn burst(round: usize, receiver: &Receiver, sink: &GuestSink) -> Result<(Duration, Duration), String> {
    let vm = boot(&format!("relay-{round}"), BURST + BOOT_SPANS_ROOM).await?;
    vm.guest.debug().flood(BURST, 0).await.map_err(|e| e.to_string())?;
    receiver.clear_spans();
    let started = Instant::now();
    let (stats, relaying) = vm.relay(sink);
    // The relay's own stage: every flood span handed to the exporter.
    let handed = async {
        while stats.relayed.load(Ordering::Relaxed) < BURST {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Instant::now()
    };
    let (handed, done) = tokio::join!(handed, received(receiver, BURST, Duration::from_secs(30)));
    let dropped = stats.dropped.load(Ordering::Relaxed);
    stop(vm, relaying).await;
    let done = done.ok_or_else(|| {
        format!(
            "burst {round}: {} of {BURST} spans arrived (guest dropped {dropped})",
            flood_spans(receiver)
        )
    })?;
    if dropped > 0 {
        return Err(format!("burst {round}: the guest dropped {dropped} spans"));
    }
    Ok((handed - started, done - started))
}

async fn sustained(receiver: &Receiver, sink: &GuestSink) -> Result<(), String> {
    let vm = boot("relay-sustained", 2048).await?;
    let (stats, relaying) = vm.relay(sink);
    receiver.clear_spans();
    let count = SUSTAINED_RATE * SUSTAINED_SECS;
    let resp = vm
        .guest
        .debug()
        .flood(count, SUSTAINED_RATE)
        .await
        .map_err(|e| e.to_string())?;
    let arrived = received(receiver, count, Duration::from_secs(10)).await.is_some();
    let got = flood_spans(receiver);
    let (dropped, rejected) = (
        stats.dropped.load(Ordering::Relaxed),
        stats.rejected.load(Ordering::Relaxed),
    );
    stop(vm, relaying).await;
    let missing = count - got.min(count);
    println!(
        "  sustained: {count} spans at {SUSTAINED_RATE}/s, made over {:.1} s: {got} arrived, {missing} missing \
         (dropped in the guest {dropped}, refused by the relay {rejected}); goal 0 missing: {}",
        resp.elapsed_ns as f64 / 1e9,
        if arrived && missing == 0 { "met" } else { "NOT met" }
    );
    Ok(())
}

pub async fn run(rounds: usize) -> Result<(), String> {
    let receiver = Receiver::start("127.0.0.1:0")
        .await
        .map_err(|e| format!("OTLP receiver: {e}"))?;
    // SAFETY (of set_var): set before any thread of ours reads the
    // environment again; the exporter is built from it just below.
    std::env::set_var(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        format!("{}/v1/traces", receiver.endpoint()),
    );
    let telemetry = voidbox_integration::install_telemetry("bench-relay", "bench")?;
    let sink = telemetry.guest_sink().ok_or("tracing did not turn on")?;
    println!(
        "relay: guest spans to a local OTLP/HTTP receiver, through the shim's relay and exporter (test image)\n  \
         throughput: {rounds} bursts of {BURST} spans into a buffer of as many, filled first, then relayed"
    );
    let (mut handed, mut received) = (Samples::default(), Samples::default());
    for round in 0..rounds {
        let (h, r) = burst(round, &receiver, &sink).await?;
        handed.push(h);
        received.push(r);
    }
    let rate = |s: &Samples| BURST as f64 / s.median().as_secs_f64();
    let end_to_end = rate(&received);
    println!("  relayed (guest buffer to the exporter's queue): {}", handed.summary());
    println!(
        "  received (decoded by the OTLP receiver):       {}",
        received.summary()
    );
    println!(
        "  throughput (median): {end_to_end:.0} spans/s end to end, {:.0} spans/s through the relay alone; \
         0 dropped (goal ≥ {THROUGHPUT_GOAL:.0} end to end: {})",
        rate(&handed),
        if end_to_end >= THROUGHPUT_GOAL {
            "met"
        } else {
            "NOT met"
        },
    );
    sustained(&receiver, &sink).await?;
    tokio::task::spawn_blocking(move || telemetry.shutdown())
        .await
        .map_err(|e| e.to_string())
}

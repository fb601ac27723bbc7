//! A span flood in the guest: the buffer is bounded, drops are counted and
//! reach the host, vminitd's memory stays flat, and nothing waits.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_sdk::trace::SpanData;
use voidbox_integration::otlp::Receiver;
use voidbox_integration::{leftovers, vm_config};
use voidbox_shim::guest::GuestClient;
use voidbox_shim::otel::SpanSink;
use voidbox_shim::sandbox::clock::Clock;
use voidbox_shim::sandbox::relay::{self, RelayStats};
use voidbox_shim::vm::{qemu::Qemu, MicroVm};

const CAPACITY: usize = 256;

#[derive(Debug, Default)]
struct Collect(Mutex<Vec<SpanData>>);

impl SpanSink for Collect {
    fn offer(&self, span: SpanData) -> bool {
        self.0.lock().unwrap().push(span);
        true
    }
}

async fn vminitd_rss_kib(guest: &GuestClient) -> u64 {
    let (status, _) = guest.debug().read_file("/proc/1/status", 0).await.unwrap();
    voidbox_integration::status_field(&String::from_utf8_lossy(&status), "VmRSS:").expect("VmRSS")
}

async fn flood(guest: &GuestClient, count: u64) -> Duration {
    let resp = guest.debug().flood(count, 0).await.expect("Flood");
    Duration::from_nanos(resp.elapsed_ns)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_span_flood_is_bounded_counted_and_never_blocks() {
    let mut config = vm_config("flood");
    config.extra_cmdline.extend([
        "voidbox.trace=1".to_string(),
        format!("voidbox.trace_buffer={CAPACITY}"),
    ]);
    let state = config.state_dir.clone();
    let vm = MicroVm::start(&Qemu::new(), config).await.expect("start VM");
    let guest = GuestClient::connect(&vm).await.expect("guest");

    // Nobody drains the buffer yet: it fills, then every span is dropped.
    let first = flood(&guest, 10_000).await;
    let rss_after_10k = vminitd_rss_kib(&guest).await;

    // A flood of 50,000 more, with the guest answering other calls meanwhile.
    let flooding = {
        let g = guest.clone();
        tokio::spawn(async move { flood(&g, 50_000).await })
    };
    let mut slowest = Duration::ZERO;
    while !flooding.is_finished() {
        let t = Instant::now();
        guest.info().await.expect("Info during the flood");
        slowest = slowest.max(t.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let second = flooding.await.unwrap();
    let rss_after_60k = vminitd_rss_kib(&guest).await;
    println!(
        "flood: 10k spans in {first:?}, 50k in {second:?}; slowest Info meanwhile {slowest:?}; \
         vminitd RSS {rss_after_10k} KiB after 10k, {rss_after_60k} KiB after 60k"
    );
    assert!(
        slowest < Duration::from_secs(2),
        "the guest kept answering: slowest {slowest:?}"
    );
    assert!(
        rss_after_60k <= rss_after_10k + 2048,
        "memory is bounded by the buffer: {rss_after_10k} KiB -> {rss_after_60k} KiB"
    );

    // Now drain: what the buffer held arrives, with the count of the rest,
    // also as the shim's metrics, exported through its own pipeline.
    let otlp = Receiver::start("127.0.0.1:0").await.unwrap();
    // SAFETY (of set_var): this test is the binary's only one, and nothing
    // else reads the environment at this point.
    std::env::set_var(
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        format!("{}/v1/metrics", otlp.endpoint()),
    );
    let telemetry = Arc::new(voidbox_integration::install_telemetry("flood", "test").expect("telemetry"));
    let sink = Arc::new(Collect::default());
    let stats = Arc::new(RelayStats::default());
    let relay = relay::start(
        guest.clone(),
        Arc::new(Clock::default()),
        sink.clone(),
        stats.clone(),
        vec![opentelemetry::KeyValue::new("container.id", "flood")],
        opentelemetry::Context::new(),
    );
    let streaming =
        voidbox_integration::eventually(Duration::from_secs(10), || sink.0.lock().unwrap().len() >= CAPACITY).await;
    assert!(streaming, "the buffered spans stream out");
    let exit = guest.power_off(&vm, Duration::from_secs(10)).await;
    assert!(exit.is_clean(), "{exit}");
    tokio::time::timeout(Duration::from_secs(5), relay)
        .await
        .expect("the stream ends at power-off")
        .unwrap();

    let relayed = sink.0.lock().unwrap().len() as u64;
    let dropped = stats.dropped.load(std::sync::atomic::Ordering::Relaxed);
    println!("relayed {relayed}, dropped {dropped} (capacity {CAPACITY})");
    assert_eq!(
        stats.capacity.load(std::sync::atomic::Ordering::Relaxed),
        CAPACITY as u64
    );
    assert!(
        relayed >= CAPACITY as u64 && relayed <= CAPACITY as u64 + 16,
        "the buffer's worth arrives: {relayed}"
    );
    // 60,000 flood spans plus the two Flood spans themselves, minus what arrived.
    assert!(dropped >= 60_002 - relayed - 16, "drops are counted: {dropped}");
    let flood_span = sink
        .0
        .lock()
        .unwrap()
        .iter()
        .find(|s| s.name == "flood.span")
        .cloned()
        .expect("flood spans arrive");
    assert!(
        flood_span.attributes.iter().any(|kv| kv.key.as_str() == "i"),
        "attributes survive the buffer"
    );
    let t = telemetry.clone();
    tokio::task::spawn_blocking(move || t.shutdown()).await.unwrap();
    let counter = |name: &str, reason: Option<&str>| {
        otlp.points()
            .iter()
            .rev()
            .find(|p| {
                p.name == name
                    && p.attributes.get("container.id").map(String::as_str) == Some("flood")
                    && p.attributes.get("reason").map(String::as_str) == reason
            })
            .map(|p| p.value as u64)
    };
    assert_eq!(
        counter("voidbox.guest.spans.relayed", None),
        Some(relayed),
        "relayed, as a metric"
    );
    assert_eq!(
        counter("voidbox.spans.dropped", Some("guest_buffer_full")),
        Some(dropped),
        "dropped, as a metric"
    );
    assert_eq!(leftovers(&state), Vec::<String>::new());
}

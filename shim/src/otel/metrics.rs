//! The shim's metrics, named by OpenTelemetry conventions under `voidbox.`,
//! with units. Without a metrics endpoint the global meter is a no-op and
//! recording costs next to nothing.

use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::metrics::{Counter, Gauge, Histogram, Meter, UpDownCounter};
use opentelemetry::{global, KeyValue};

pub struct Metrics {
    /// VM boot, by phase (spawn, ready, clock_sync, total).
    pub boot: Histogram<f64>,
    /// Create received to Start answered.
    pub start: Histogram<f64>,
    /// Task RPCs, by method.
    pub rpc: Histogram<f64>,
    /// Guest spans handed to the exporter's queue.
    pub spans_relayed: Counter<u64>,
    /// Spans lost, by `reason` (`DropReason`).
    pub spans_dropped: Counter<u64>,
    /// What the guest sent that the host refused (or cut to fit), by
    /// `reason`; see docs/security.md.
    pub guest_rejected: Counter<u64>,
    pub clock_offset: Gauge<f64>,
    pub clock_uncertainty: Gauge<f64>,
    pub live_vms: UpDownCounter<i64>,
    // Guest telemetry.
    pub guest_cpu: Gauge<f64>,
    pub guest_memory_used: Gauge<u64>,
    pub guest_memory_available: Gauge<u64>,
    pub guest_pressure: Gauge<f64>,
    pub container_memory: Gauge<u64>,
    pub container_cpu: Counter<f64>,
    pub container_oom_kills: Counter<u64>,
}

/// Buckets for latencies of 1 ms to 2 min, in seconds.
const SECONDS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 120.0,
];

fn build(meter: &Meter) -> Metrics {
    let histogram = |name: &'static str, description: &'static str| {
        meter
            .f64_histogram(name)
            .with_unit("s")
            .with_description(description)
            .with_boundaries(SECONDS.to_vec())
            .build()
    };
    Metrics {
        boot: histogram("voidbox.vm.boot.duration", "VM boot, by phase"),
        start: histogram(
            "voidbox.container.start.duration",
            "Container start: Create received to Start answered",
        ),
        rpc: histogram("voidbox.rpc.duration", "Task API calls, by method"),
        spans_relayed: meter
            .u64_counter("voidbox.guest.spans.relayed")
            .with_unit("{span}")
            .build(),
        spans_dropped: meter
            .u64_counter("voidbox.spans.dropped")
            .with_unit("{span}")
            .with_description("Spans lost, by reason: guest_buffer_full, host_queue_full, export_failed")
            .build(),
        guest_rejected: meter
            .u64_counter("voidbox.guest.rejected")
            .with_unit("{item}")
            .with_description("What the guest sent that the host refused or cut to fit, by reason")
            .build(),
        clock_offset: meter
            .f64_gauge("voidbox.clock.offset")
            .with_unit("s")
            .with_description("Guest clock minus host clock")
            .build(),
        clock_uncertainty: meter.f64_gauge("voidbox.clock.uncertainty").with_unit("s").build(),
        live_vms: meter.i64_up_down_counter("voidbox.vms.live").with_unit("{vm}").build(),
        guest_cpu: meter
            .f64_gauge("voidbox.guest.cpu.utilization")
            .with_unit("1")
            .with_description("Busy share of the guest's vCPUs since the previous sample")
            .build(),
        guest_memory_used: meter.u64_gauge("voidbox.guest.memory.used").with_unit("By").build(),
        guest_memory_available: meter
            .u64_gauge("voidbox.guest.memory.available")
            .with_unit("By")
            .build(),
        guest_pressure: meter
            .f64_gauge("voidbox.guest.pressure")
            .with_unit("%")
            .with_description("PSI avg10, by resource (cpu, memory, io) and kind (some, full)")
            .build(),
        container_memory: meter
            .u64_gauge("voidbox.container.memory.usage")
            .with_unit("By")
            .build(),
        container_cpu: meter.f64_counter("voidbox.container.cpu.time").with_unit("s").build(),
        container_oom_kills: meter
            .u64_counter("voidbox.container.oom_kills")
            .with_unit("{kill}")
            .build(),
    }
}

/// The instruments, made once from the global meter (installed first, when
/// metrics are on).
pub fn get() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| build(&global::meter("voidbox-shim")))
}

/// Why spans were lost: the `reason` of `voidbox.spans.dropped`, and the
/// suffix of the container span's `voidbox.spans.dropped.<reason>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// vminitd's span buffer was full (the guest counts, the shim relays).
    GuestBufferFull,
    /// The host's span queue was at its bound (`otel::queue`).
    HostQueueFull,
    /// The exporter failed (or gave up on) the batch they were in.
    ExportFailed,
}

impl DropReason {
    pub const ALL: [DropReason; 3] = [
        DropReason::GuestBufferFull,
        DropReason::HostQueueFull,
        DropReason::ExportFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::GuestBufferFull => "guest_buffer_full",
            DropReason::HostQueueFull => "host_queue_full",
            DropReason::ExportFailed => "export_failed",
        }
    }
}

impl Metrics {
    /// Counts `n` spans lost for `reason`, with the VM's attributes.
    pub fn span_drops(&self, reason: DropReason, n: u64, vm: &[KeyValue]) {
        let mut attrs = vm.to_vec();
        attrs.push(KeyValue::new("reason", reason.as_str()));
        self.spans_dropped.add(n, &attrs);
    }

    /// Counts `n` things the guest sent that were refused for `reason`
    /// (snake_case, e.g. `span_malformed_id`), with the VM's attributes.
    pub fn reject(&self, reason: &'static str, n: u64, vm: &[KeyValue]) {
        let mut attrs = vm.to_vec();
        attrs.push(KeyValue::new("reason", reason));
        self.guest_rejected.add(n, &attrs);
    }
}

/// Attributes every VM-related point carries.
pub fn vm_attrs(container_id: &str, vm_id: &str) -> Vec<KeyValue> {
    vec![
        KeyValue::new("container.id", container_id.to_string()),
        KeyValue::new("voidbox.vm.id", vm_id.to_string()),
    ]
}

pub fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Times every task RPC span (`rpc`, with its `rpc.method`) into
/// `voidbox.rpc.duration`: RPC latency without touching each handler.
pub struct RpcTimer;

struct Timing {
    method: String,
    start: std::time::Instant,
}

struct MethodVisitor<'a>(&'a mut String);

impl tracing::field::Visit for MethodVisitor<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "rpc.method" {
            *self.0 = value.to_string();
        }
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "rpc.method" {
            *self.0 = format!("{value:?}").trim_matches('"').to_string();
        }
    }
}

impl<S> tracing_subscriber::Layer<S> for RpcTimer
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if attrs.metadata().name() != "rpc" {
            return;
        }
        let mut method = String::new();
        attrs.record(&mut MethodVisitor(&mut method));
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(Timing {
                method,
                start: std::time::Instant::now(),
            });
        }
    }

    fn on_close(&self, id: tracing::span::Id, ctx: tracing_subscriber::layer::Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let extensions = span.extensions();
        if let Some(t) = extensions.get::<Timing>() {
            get().rpc.record(
                t.start.elapsed().as_secs_f64(),
                &[KeyValue::new("rpc.method", t.method.clone())],
            );
        }
    }
}

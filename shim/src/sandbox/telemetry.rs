//! The guest's telemetry as OTLP metrics: vminitd samples /proc and the
//! containers' cgroups and streams the samples; the shim turns them into
//! gauges and counters. Only when metrics are on is the stream opened, so
//! only then does the guest sample.

use std::collections::HashMap;
use std::time::Duration;

use opentelemetry::KeyValue;
use tokio::task::JoinHandle;
use tracing::debug;
use voidbox_api::telemetry::{CpuTimes, Sample, StreamRequest};

use crate::guest::GuestClient;
use crate::otel::metrics::get;

fn busy(c: &CpuTimes) -> u64 {
    c.user + c.nice + c.system + c.irq + c.softirq + c.steal
}

/// The busy share of the vCPUs between two samples.
pub fn cpu_utilization(prev: &CpuTimes, now: &CpuTimes) -> Option<f64> {
    let busy = busy(now).saturating_sub(busy(prev));
    let idle = (now.idle + now.iowait).saturating_sub(prev.idle + prev.iowait);
    let total = busy + idle;
    (total > 0).then(|| busy as f64 / total as f64)
}

/// Per-container counters, to turn cumulative values into increments.
#[derive(Default)]
struct Seen {
    cpu_usec: u64,
    oom_kills: u64,
}

fn record(sample: &Sample, prev: Option<&Sample>, seen: &mut HashMap<String, Seen>, vm: &[KeyValue]) {
    let m = get();
    if let (Some(p), Some(now)) = (prev.and_then(|p| p.cpu.as_ref()), sample.cpu.as_ref()) {
        if let Some(u) = cpu_utilization(p, now) {
            m.guest_cpu.record(u, vm);
        }
    }
    m.guest_memory_used
        .record(sample.memory_total.saturating_sub(sample.memory_available), vm);
    m.guest_memory_available.record(sample.memory_available, vm);
    for (resource, p) in [
        ("cpu", &sample.cpu_pressure),
        ("memory", &sample.memory_pressure),
        ("io", &sample.io_pressure),
    ] {
        let Some(p) = p.as_ref() else { continue };
        for (kind, value) in [("some", p.some_avg10), ("full", p.full_avg10)] {
            let mut attrs = vm.to_vec();
            attrs.push(KeyValue::new("resource", resource));
            attrs.push(KeyValue::new("kind", kind));
            m.guest_pressure.record(value, &attrs);
        }
    }
    for c in &sample.containers {
        let mut attrs: Vec<KeyValue> = vm
            .iter()
            .filter(|kv| kv.key.as_str() != "container.id")
            .cloned()
            .collect();
        attrs.push(KeyValue::new("container.id", c.id.clone()));
        m.container_memory.record(c.memory_current, &attrs);
        let s = seen.entry(c.id.clone()).or_default();
        m.container_cpu
            .add(c.cpu_usage_usec.saturating_sub(s.cpu_usec) as f64 / 1e6, &attrs);
        m.container_oom_kills
            .add(c.oom_kills.saturating_sub(s.oom_kills), &attrs);
        (s.cpu_usec, s.oom_kills) = (c.cpu_usage_usec, c.oom_kills);
    }
}

/// Streams the guest's samples into metrics until the VM ends.
pub fn start(guest: GuestClient, interval: Duration, vm: Vec<KeyValue>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let req = StreamRequest {
            interval_ms: interval.as_millis() as u64,
            ..Default::default()
        };
        let mut stream = match guest.telemetry_stream(&req).await {
            Ok(s) => s,
            Err(e) => return debug!("guest telemetry stream: {e}"),
        };
        let mut prev: Option<Sample> = None;
        let mut seen = HashMap::new();
        while let Ok(Some(sample)) = stream.recv().await {
            record(&sample, prev.as_ref(), &mut seen, &vm);
            prev = Some(sample);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utilization_is_busy_over_total_between_samples() {
        let a = CpuTimes {
            user: 100,
            system: 50,
            idle: 850,
            ..Default::default()
        };
        let b = CpuTimes {
            user: 160,
            system: 90,
            idle: 900,
            ..Default::default()
        };
        assert_eq!(cpu_utilization(&a, &b), Some(100.0 / 150.0));
        assert_eq!(cpu_utilization(&a, &a), None);
    }
}

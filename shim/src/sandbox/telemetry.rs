//! The guest's telemetry as OTLP metrics: vminitd samples /proc and the
//! containers' cgroups and streams the samples; the shim turns them into
//! gauges and counters. Only when metrics are on is the stream opened, so
//! only then does the guest sample.
//!
//! The guest is untrusted: a sample with a value no honest guest sends (see
//! [`check`]) is refused whole, counted (`voidbox.guest.rejected`, reason
//! `telemetry_sample_invalid`), and not kept as the previous sample.

use std::collections::HashMap;
use std::time::Duration;

use opentelemetry::KeyValue;
use tokio::task::JoinHandle;
use tracing::debug;
use voidbox_api::telemetry::{CpuTimes, Sample, StreamRequest};

use crate::guest::GuestClient;
use crate::otel::metrics::get;

/// Containers one sample may report.
pub const MAX_CONTAINERS: usize = 256;

/// Sums the guest's counters; None if they overflow (no real CPU's do).
fn sum(values: &[u64]) -> Option<u64> {
    values.iter().try_fold(0u64, |acc, v| acc.checked_add(*v))
}

fn busy(c: &CpuTimes) -> Option<u64> {
    sum(&[c.user, c.nice, c.system, c.irq, c.softirq, c.steal])
}

fn idle(c: &CpuTimes) -> Option<u64> {
    sum(&[c.idle, c.iowait])
}

/// The busy share of the vCPUs between two samples, in [0, 1]: None when
/// no time passed or the counters are absurd (they overflow when summed).
pub fn cpu_utilization(prev: &CpuTimes, now: &CpuTimes) -> Option<f64> {
    let busy = busy(now)?.saturating_sub(busy(prev)?);
    let idle = idle(now)?.saturating_sub(idle(prev)?);
    let total = busy.checked_add(idle)?;
    (total > 0).then(|| busy as f64 / total as f64)
}

/// Why a sample is refused: PSI averages are percentages, memory fits the
/// VM (`memory_limit` bytes), container ids are ids (they label metrics),
/// at most [`MAX_CONTAINERS`] of them.
pub fn check(sample: &Sample, memory_limit: u64) -> Result<(), &'static str> {
    for p in [&sample.cpu_pressure, &sample.memory_pressure, &sample.io_pressure] {
        let Some(p) = p.as_ref() else { continue };
        if ![p.some_avg10, p.full_avg10].iter().all(|v| (0.0..=100.0).contains(v)) {
            return Err("pressure outside 0-100");
        }
    }
    if sample.memory_total > memory_limit || sample.memory_available > sample.memory_total {
        return Err("memory beyond the VM's");
    }
    if sample.containers.len() > MAX_CONTAINERS {
        return Err("too many containers");
    }
    for c in &sample.containers {
        if voidbox_api::ids::check_container_id(&c.id).is_err() {
            return Err("a container id that is no id");
        }
        if c.memory_current > memory_limit {
            return Err("container memory beyond the VM's");
        }
    }
    if let Some(cpu) = sample.cpu.as_ref() {
        if busy(cpu).and(idle(cpu)).is_none() {
            return Err("CPU times that overflow");
        }
    }
    Ok(())
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
    // Only the containers of this sample: the map stays within its bound.
    seen.retain(|id, _| sample.containers.iter().any(|c| &c.id == id));
}

/// Streams the guest's samples into metrics until the VM ends; the VM has
/// `memory_limit` bytes. The stream opens one interval after the VM is up,
/// when the guest's first sample is due: opening it costs the guest the
/// first run of its stream code (about 300 translation blocks under TCG,
/// docs/performance-tracing.md), which a container's start should not pay,
/// nor a container that ends within the interval, which would get no
/// sample anyway.
pub fn start(guest: GuestClient, interval: Duration, memory_limit: u64, vm: Vec<KeyValue>) -> JoinHandle<()> {
    tokio::spawn(async move {
        tokio::time::sleep(interval).await;
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
            if let Err(why) = check(&sample, memory_limit) {
                get().reject("telemetry_sample_invalid", 1, &vm);
                debug!("refusing a guest telemetry sample: {why}");
                continue;
            }
            record(&sample, prev.as_ref(), &mut seen, &vm);
            prev = Some(sample);
        }
    })
}

#[cfg(test)]
mod tests {
    use voidbox_api::telemetry::{ContainerSample, Pressure};

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
        let absurd = CpuTimes {
            user: u64::MAX,
            system: 1,
            ..Default::default()
        };
        assert_eq!(cpu_utilization(&a, &absurd), None);
    }

    const GIB: u64 = 1 << 30;

    fn honest() -> Sample {
        Sample {
            memory_total: GIB,
            memory_available: GIB / 2,
            cpu_pressure: Some(Pressure {
                some_avg10: 1.5,
                ..Default::default()
            })
            .into(),
            containers: vec![ContainerSample {
                id: "c1".into(),
                memory_current: GIB / 4,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn absurd_samples_are_refused() {
        assert_eq!(check(&honest(), GIB), Ok(()));
        let cases: [fn(&mut Sample); 9] = [
            |s| s.cpu_pressure.as_mut().unwrap().some_avg10 = f64::NAN,
            |s| s.cpu_pressure.as_mut().unwrap().full_avg10 = -1.0,
            |s| s.cpu_pressure.as_mut().unwrap().some_avg10 = 100.5,
            |s| s.memory_total = 2 * GIB,
            |s| s.memory_available = s.memory_total + 1,
            |s| s.containers[0].id = "../x".into(),
            |s| s.containers[0].memory_current = 2 * GIB,
            |s| s.containers = vec![s.containers[0].clone(); MAX_CONTAINERS + 1],
            |s| {
                s.cpu = Some(CpuTimes {
                    user: u64::MAX,
                    nice: 1,
                    ..Default::default()
                })
                .into()
            },
        ];
        for (i, case) in cases.iter().enumerate() {
            let mut s = honest();
            case(&mut s);
            assert!(check(&s, GIB).is_err(), "case {i}");
        }
    }

    #[test]
    fn containers_gone_are_forgotten() {
        let mut seen = HashMap::new();
        record(&honest(), None, &mut seen, &[]);
        assert!(seen.contains_key("c1"));
        let mut next = honest();
        next.containers[0].id = "c2".into();
        record(&next, None, &mut seen, &[]);
        assert_eq!(seen.keys().collect::<Vec<_>>(), ["c2"]);
    }

    fn cpu() -> impl proptest::strategy::Strategy<Value = CpuTimes> {
        use proptest::prelude::*;
        let n = || prop_oneof![any::<u64>(), 0u64..1_000_000];
        (n(), n(), n(), n(), n(), n(), n(), n()).prop_map(|(user, nice, system, idle, iowait, irq, softirq, steal)| {
            CpuTimes {
                user,
                nice,
                system,
                idle,
                iowait,
                irq,
                softirq,
                steal,
                ..Default::default()
            }
        })
    }

    fn sample() -> impl proptest::strategy::Strategy<Value = Sample> {
        use proptest::prelude::*;
        let pressure = (any::<f64>(), any::<f64>()).prop_map(|(some_avg10, full_avg10)| Pressure {
            some_avg10,
            full_avg10,
            ..Default::default()
        });
        let container = ("[a-c./]{0,3}", any::<u64>(), any::<u64>(), any::<u64>()).prop_map(
            |(id, cpu_usage_usec, memory_current, oom_kills)| ContainerSample {
                id,
                cpu_usage_usec,
                memory_current,
                oom_kills,
                ..Default::default()
            },
        );
        (
            proptest::option::of(cpu()),
            any::<u64>(),
            any::<u64>(),
            proptest::option::of(pressure),
            proptest::collection::vec(container, 0..4),
        )
            .prop_map(|(cpu, memory_total, memory_available, p, containers)| Sample {
                cpu: cpu.into(),
                memory_total,
                memory_available,
                io_pressure: p.into(),
                containers,
                ..Default::default()
            })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        #[test]
        fn utilization_is_a_share_or_nothing(a in cpu(), b in cpu()) {
            if let Some(u) = cpu_utilization(&a, &b) {
                proptest::prop_assert!((0.0..=1.0).contains(&u), "{u}");
            }
        }

        #[test]
        fn any_samples_are_refused_or_recorded(samples in proptest::collection::vec(sample(), 1..4)) {
            let mut prev: Option<Sample> = None;
            let mut seen = HashMap::new();
            for s in samples {
                if check(&s, u64::MAX).is_ok() {
                    record(&s, prev.as_ref(), &mut seen, &[]);
                    prev = Some(s);
                }
            }
            proptest::prop_assert!(seen.len() <= MAX_CONTAINERS);
        }
    }
}

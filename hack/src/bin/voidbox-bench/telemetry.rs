//! Guest telemetry: what vminitd's sampler costs at the default interval,
//! as a share of one vCPU.
//!
//! One VM runs a real container (its cgroup is sampled too). Windows of the
//! same length alternate: idle, then with a telemetry stream open. vminitd's
//! CPU time (the scheduler's, in ns) is read through System.Info at each
//! window's ends, so the idle window prices everything but the sampler.

use std::path::Path;
use std::time::{Duration, Instant};

use voidbox_api::telemetry::StreamRequest;
use voidbox_shim::config::HostConfig;
use voidbox_shim::container::{self, CreateOptions};
use voidbox_shim::guest::GuestClient;
use voidbox_shim::sandbox::{Observability, Sandboxes};
use voidbox_shim::spec::Bundle;

const WINDOW_SAMPLES: u64 = 10;
const GOAL_PERCENT: f64 = 1.0;

async fn cpu_ns(guest: &GuestClient) -> Result<(u64, Instant), String> {
    let info = guest.info().await.map_err(|e| e.to_string())?;
    Ok((info.vminitd_cpu_ns, Instant::now()))
}

/// vminitd's CPU use over a window, in ns per second.
fn rate(a: (u64, Instant), b: (u64, Instant)) -> f64 {
    (b.0 - a.0) as f64 / (b.1 - a.1).as_secs_f64()
}

async fn idle_window(guest: &GuestClient, length: Duration) -> Result<f64, String> {
    let a = cpu_ns(guest).await?;
    tokio::time::sleep(length).await;
    Ok(rate(a, cpu_ns(guest).await?))
}

/// A stream at the default interval for WINDOW_SAMPLES samples, the first
/// at its opening: the window ends WINDOW_SAMPLES intervals after it, so
/// that it holds one sample per interval, as the idle window's length.
async fn sampling_window(guest: &GuestClient) -> Result<f64, String> {
    let a = cpu_ns(guest).await?;
    let end = tokio::time::Instant::now() + Duration::from_secs(WINDOW_SAMPLES);
    let req = StreamRequest {
        max_samples: WINDOW_SAMPLES,
        ..Default::default()
    };
    let mut stream = guest.telemetry_stream(&req).await.map_err(|e| e.to_string())?;
    let mut n = 0;
    while let Ok(Some(_)) = stream.recv().await {
        n += 1;
    }
    if n != WINDOW_SAMPLES {
        return Err(format!("{n} samples, not {WINDOW_SAMPLES}"));
    }
    tokio::time::sleep_until(end).await;
    Ok(rate(a, cpu_ns(guest).await?))
}

pub async fn run(rounds: usize) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("voidbox-bench-telemetry-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("rootfs")).map_err(|e| e.to_string())?;
    voidbox_integration::image::unpack_busybox(&dir.join("rootfs"));
    let spec = voidbox_integration::shim_client::spec(&["sleep", "3600"]);
    std::fs::write(dir.join("config.json"), spec.to_string()).map_err(|e| e.to_string())?;
    let result = measure(&dir, rounds).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn measure(bundle: &Path, rounds: usize) -> Result<(), String> {
    let host = HostConfig::from_env()?;
    let opts = CreateOptions {
        namespace: "bench",
        id: "bench-telemetry",
        bundle,
        rootfs: &[],
        io: Default::default(),
        options: None,
        host: &host,
        received: Instant::now(),
    };
    let loaded = Bundle::load(bundle);
    let sandboxes = Sandboxes::default();
    let container = container::create(&opts, loaded, &Observability::default(), &sandboxes)
        .await
        .map_err(|e| format!("create the container: {e}"))?;
    let result = windows(container.guest(), rounds).await;
    container.sandbox.teardown().await;
    container.release_files(None).await;
    result
}

async fn windows(guest: &GuestClient, rounds: usize) -> Result<(), String> {
    println!(
        "telemetry: {rounds} rounds of idle vs sampling windows, {WINDOW_SAMPLES} samples at the default 1 s interval"
    );
    println!("      one VM, 1 vCPU, one container running; vminitd CPU time from the guest scheduler");
    let (mut idle, mut sampling) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let s = sampling_window(guest).await?;
        // Same length as the sampling window: N intervals.
        idle.push(idle_window(guest, Duration::from_secs(WINDOW_SAMPLES)).await?);
        sampling.push(s);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (idle, sampling) = (median(&mut idle), median(&mut sampling));
    let overhead = (sampling - idle).max(0.0);
    let percent = overhead / 1e9 * 100.0;
    println!();
    println!("  vminitd, idle                  {:8.3} ms CPU per s", idle / 1e6);
    println!("  vminitd, sampling every 1 s    {:8.3} ms CPU per s", sampling / 1e6);
    // One sample per 1 s interval: the overhead per second is one sample's.
    let per_sample = overhead;
    println!("  one sample costs               {:8.3} ms CPU", per_sample / 1e6);
    println!(
        "  sampling overhead: {percent:.3}% of one vCPU  (goal < {GOAL_PERCENT}%: {})",
        if percent < GOAL_PERCENT { "met" } else { "NOT met" }
    );
    Ok(())
}

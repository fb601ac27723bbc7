//! How it scales: 1, 4 and 8 containers started at once (`sleep`, each its
//! own shim and VM), the time until every one runs (each Start answered),
//! and the host memory they cost together. The machine's cores are the
//! limit: under TCG each VM's boot is CPU-bound emulation.

use std::time::{Duration, Instant};

use voidbox_integration::shim_client::{spec, ShimUnderTest};

use crate::memory::{mib, pss_of};

const COUNTS: [usize; 3] = [1, 4, 8];

async fn round(n: usize) -> Result<(Duration, u64), String> {
    let started = Instant::now();
    let runs = (0..n).map(|i| async move {
        let shim = ShimUnderTest::start(&format!("bench-scale-{n}-{i}"), &spec(&["sleep", "3600"])).await;
        shim.create_and_start(&[]).await;
        shim
    });
    let shims = futures_util::future::join_all(runs).await;
    let all_running = started.elapsed();
    let mut pss = 0;
    for shim in &shims {
        pss += pss_of(shim)?;
    }
    for shim in &shims {
        shim.kill_and_remove().await;
    }
    Ok((all_running, pss))
}

pub async fn run() -> Result<(), String> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("scaling: 1, 4 and 8 containers (`sleep`) started at once, on {cores} cores");
    let mut one = None;
    for n in COUNTS {
        let (took, pss) = round(n).await?;
        let per = took.as_secs_f64() * 1000.0;
        let base = *one.get_or_insert(per);
        println!(
            "  {n} at once: all running after {per:.0} ms ({:.2}× one alone); host PSS {:.1} MiB in all, {:.1} MiB each",
            per / base,
            mib(pss),
            mib(pss) / n as f64
        );
    }
    Ok(())
}

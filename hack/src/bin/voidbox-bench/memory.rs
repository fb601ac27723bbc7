//! Dense: what an idle container costs the host. 8 containers (`sleep`)
//! run at once, each with its shim and VM at the default size; for each,
//! the PSS of every host process it costs (the shim and what it started:
//! the VMM and its helpers) and the guest's own used memory, from the
//! shim's telemetry (metrics on, to a local receiver). Then one container
//! allocates and frees 200 MiB: does the host get the memory back? The
//! containers' PSS is also split by what the mappings hold (voidbox_integration::smaps).

use std::collections::HashMap;
use std::time::Duration;

use voidbox_integration::otlp::Receiver;
use voidbox_integration::shim_client::{spec, ShimUnderTest};
use voidbox_integration::smaps;

use crate::container::DENSE_TCG_CACHE_MIB;

const CONTAINERS: usize = 8;
const GOAL_MIB: f64 = 64.0;
/// Let the boot's page faults and caches settle before measuring.
const SETTLE: Duration = Duration::from_secs(5);

/// Parent of each live process.
fn parents() -> HashMap<u32, u32> {
    let mut out = HashMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // Fields after the parenthesised command: state, ppid, ...
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse().ok());
        if let Some(ppid) = ppid {
            out.insert(pid, ppid);
        }
    }
    out
}

/// `root` and every process below it, with their names.
fn tree(root: u32) -> Vec<(u32, String)> {
    let parents = parents();
    let mut pids = vec![root];
    let mut i = 0;
    while i < pids.len() {
        let p = pids[i];
        pids.extend(parents.iter().filter(|(_, &pp)| pp == p).map(|(&c, _)| c));
        i += 1;
    }
    pids.into_iter()
        .map(|p| {
            let name = std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
            (p, name.trim().to_string())
        })
        .collect()
}

/// A process's proportional set size, KiB.
fn pss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

pub(crate) fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

pub async fn run() -> Result<(), String> {
    let receiver = Receiver::start("127.0.0.1:0")
        .await
        .map_err(|e| format!("OTLP receiver: {e}"))?;
    let metrics = format!("{}/v1/metrics", receiver.endpoint());
    let env = [
        ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", metrics.as_str()),
        ("OTEL_METRIC_EXPORT_INTERVAL", "1000"),
        ("VOIDBOX_TELEMETRY_INTERVAL", "1000"),
    ];
    println!("memory: {CONTAINERS} idle containers (`sleep`) at once, default VM size, metrics on");
    idle(&receiver, &env, "").await?;
    if voidbox_integration::under_tcg() {
        println!("  again with VOIDBOX_TCG_CACHE_MIB={DENSE_TCG_CACHE_MIB} (QEMU's translation cache; see the container suite for its start time)");
        let mut dense = env.to_vec();
        dense.push(("VOIDBOX_TCG_CACHE_MIB", DENSE_TCG_CACHE_MIB));
        idle(&receiver, &dense, "-dense").await?;
    }
    balloon(&env).await
}

/// CONTAINERS idle containers with `env`: each process's PSS, the total per
/// container against the goal, and the guest's own used memory.
async fn idle(receiver: &Receiver, env: &[(&str, &str)], tag: &str) -> Result<(), String> {
    let mut shims = Vec::new();
    for i in 0..CONTAINERS {
        let shim = ShimUnderTest::start_with_env(&format!("bench-mem{tag}-{i}"), &spec(&["sleep", "3600"]), env).await;
        shim.create_and_start(&[]).await;
        shims.push(shim);
    }
    tokio::time::sleep(SETTLE).await;
    let mut by_name: HashMap<String, Vec<u64>> = HashMap::new();
    let mut by_kind = [0u64; 4];
    let mut totals = Vec::new();
    for shim in &shims {
        let pid = shim_pid(shim)?;
        let mut total = 0u64;
        for (p, name) in tree(pid) {
            // One read of its mappings gives both the whole and the parts.
            let parts = smaps::of_pid(p);
            let pss = parts.iter().sum();
            total += pss;
            by_name.entry(name).or_default().push(pss);
            for (sum, kib) in by_kind.iter_mut().zip(parts) {
                *sum += kib;
            }
        }
        totals.push(total);
    }
    let guest_used: Vec<f64> = shims
        .iter()
        .filter_map(|s| {
            let points = receiver.points();
            points
                .iter()
                .rev()
                .find(|p| p.name == "voidbox.guest.memory.used" && p.resource.get("container.id") == Some(&s.id))
                .map(|p| p.value / 1_048_576.0)
        })
        .collect();
    let mut names: Vec<_> = by_name.into_iter().collect();
    names.sort();
    for (name, pss) in &names {
        let mean = pss.iter().sum::<u64>() as f64 / pss.len() as f64;
        println!(
            "  {name:<20} {:>6.1} MiB PSS on average (n={})",
            mib(mean as u64),
            pss.len()
        );
    }
    totals.sort();
    let median = mib(totals[totals.len() / 2]);
    println!(
        "  host PSS per idle container: median {median:.1} MiB (min {:.1}, max {:.1}); goal ≤ {GOAL_MIB} MiB: {}",
        mib(totals[0]),
        mib(*totals.last().unwrap()),
        if median <= GOAL_MIB { "met" } else { "NOT met" }
    );
    // The same PSS by what the mappings hold.
    println!("  where it goes, per container on average:");
    for (kind, kib) in smaps::Kind::ALL.iter().zip(by_kind) {
        println!("    {:<44} {:>6.1} MiB", kind.label(), mib(kib) / shims.len() as f64);
    }
    if !guest_used.is_empty() {
        let mean = guest_used.iter().sum::<f64>() / guest_used.len() as f64;
        println!(
            "  the guest's own used memory: {mean:.1} MiB on average (n={})",
            guest_used.len()
        );
    }
    for shim in &shims {
        shim.kill_and_remove().await;
    }
    Ok(())
}

fn shim_pid(shim: &ShimUnderTest) -> Result<u32, String> {
    shim.pid().ok_or_else(|| "a shim without a process".to_string())
}

/// The host PSS of `shim`'s processes, KiB.
pub(crate) fn pss_of(shim: &ShimUnderTest) -> Result<u64, String> {
    Ok(tree(shim_pid(shim)?).into_iter().map(|(p, _)| pss_kib(p)).sum())
}

/// A container that allocates 200 MiB, frees it, and idles again: its host
/// PSS idle, at the peak, and after (free page reporting hands freed guest
/// memory back within seconds).
async fn balloon(env: &[(&str, &str)]) -> Result<(), String> {
    // dd holds a 200 MiB buffer while `sleep 3` keeps its pipe unread,
    // then exits and frees it.
    let script = "sleep 10; dd if=/dev/zero bs=200M count=1 2>/dev/null | sleep 3; sleep 3600";
    let shim = ShimUnderTest::start_with_env("bench-balloon", &spec(&["sh", "-c", script]), env).await;
    let started = std::time::Instant::now();
    shim.create_and_start(&[]).await;
    let at = |secs: u64| started + Duration::from_secs(secs);
    tokio::time::sleep_until(at(8).into()).await;
    let idle = pss_of(&shim)?;
    // dd fills its buffer from about 10 s; the most it holds, read until
    // well after `sleep 3` ends (filling 200 MiB under TCG takes seconds).
    let mut peak = idle;
    while std::time::Instant::now() < at(16) {
        peak = peak.max(pss_of(&shim)?);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Freed at about 13 s, or once dd has filled its buffer; the guest
    // reports free pages every 2 s.
    tokio::time::sleep_until(at(25).into()).await;
    let after = pss_of(&shim)?;
    shim.kill_and_remove().await;
    let back = (after as f64 - idle as f64) / idle as f64 * 100.0;
    println!(
        "  balloon: a container allocating and freeing 200 MiB: host PSS {:.1} MiB idle, {:.1} MiB holding it, \
         {:.1} MiB after ({back:+.1}% of idle; goal within 10%: {})",
        mib(idle),
        mib(peak),
        mib(after),
        if back.abs() <= 10.0 { "met" } else { "NOT met" }
    );
    Ok(())
}

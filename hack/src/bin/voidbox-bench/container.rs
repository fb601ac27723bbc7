//! Container start: `ctr run --rm IMAGE true` with voidbox against runc, and
//! voidbox with tracing on against off. Each runtime/setting runs through
//! its own private containerd 1.6; runs alternate, so drift in the
//! machine's load touches every arm alike.

use std::time::{Duration, Instant};

use voidbox_hack::stats::{ms, paired, paired_interval, ratio, Samples};
use voidbox_integration::containerd::{Containerd, IMAGE};
use voidbox_integration::otlp::Receiver;

const RUNC: &str = "io.containerd.runc.v2";
const VOIDBOX: &str = "io.containerd.voidbox.v2";
const TRACING_GOAL: f64 = 1.02;
/// The translation cache the dense setting uses (memory suite too).
pub const DENSE_TCG_CACHE_MIB: &str = "16";

fn run(ctd: &Containerd, runtime: &str, id: &str) -> Result<Duration, String> {
    let start = Instant::now();
    let out = ctd
        .ctr_command()
        .args(["run", "--rm", "--runtime", runtime, "--fifo-dir"])
        .arg(ctd.dir.join("fifo"))
        .args([IMAGE, id, "true"])
        .output()
        .map_err(|e| format!("ctr: {e}"))?;
    let took = start.elapsed();
    if !out.status.success() {
        return Err(format!("{runtime}: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(took)
}

pub fn run_suite(rt: &tokio::runtime::Runtime, n: usize) -> Result<(), String> {
    let receiver = rt
        .block_on(Receiver::start("127.0.0.1:0"))
        .map_err(|e| format!("OTLP receiver: {e}"))?;
    let plain = Containerd::start("bench");
    let traced = Containerd::start_with_env("bench-traced", &[("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint())]);
    // Under TCG, also voidbox with a small translation cache: the start
    // time the memory suite's denser figure costs.
    let dense = voidbox_integration::under_tcg()
        .then(|| Containerd::start_with_env("bench-dense", &[("VOIDBOX_TCG_CACHE_MIB", DENSE_TCG_CACHE_MIB)]));
    let (mut runc, mut off, mut on) = (Samples::default(), Samples::default(), Samples::default());
    let mut small_cache = Samples::default();
    println!(
        "container: {n} runs of `ctr run --rm IMAGE true` each, alternating runc, voidbox, voidbox traced \
         (off and on swap order every run)"
    );
    // One unmeasured run of each warms the page cache and containerd.
    run(&plain, RUNC, "warm-runc")?;
    run(&plain, VOIDBOX, "warm-voidbox")?;
    run(&traced, VOIDBOX, "warm-traced")?;
    if let Some(dense) = &dense {
        run(dense, VOIDBOX, "warm-dense")?;
    }
    for i in 0..n {
        runc.push(run(&plain, RUNC, &format!("runc-{i}"))?);
        // Off and on take turns going first: neither always follows the
        // other's teardown.
        if i % 2 == 0 {
            off.push(run(&plain, VOIDBOX, &format!("voidbox-{i}"))?);
            on.push(run(&traced, VOIDBOX, &format!("traced-{i}"))?);
        } else {
            on.push(run(&traced, VOIDBOX, &format!("traced-{i}"))?);
            off.push(run(&plain, VOIDBOX, &format!("voidbox-{i}"))?);
        }
        if let Some(dense) = &dense {
            small_cache.push(run(dense, VOIDBOX, &format!("dense-{i}"))?);
        }
    }
    let spans = receiver.spans().len();
    println!();
    println!("  runc                 {}", runc.summary());
    println!("  voidbox              {}", off.summary());
    println!("  voidbox, traced      {}   ({spans} spans exported)", on.summary());
    if dense.is_some() {
        println!(
            "  voidbox, TCG cache {DENSE_TCG_CACHE_MIB} MiB {}   (VOIDBOX_TCG_CACHE_MIB; {:.2}× the default's start)",
            small_cache.summary(),
            ratio(&small_cache, &off)
        );
    }
    println!(
        "  ratio voidbox / runc (median): {:.2}  (+{:.0} ms: the VM)",
        ratio(&off, &runc),
        ms(off.median()) - ms(runc.median())
    );
    let (lo, hi) = paired_interval(&off, &runc);
    println!(
        "    round by round: median of the {n} rounds' ratios {:.2}  (90% interval {lo:.2}–{hi:.2})",
        paired(&off, &runc).0
    );
    // Also round by round: the machine's drift between rounds moves both
    // runs of a round alike. The goal holds only if both ratios meet it.
    let r = ratio(&on, &off);
    let (per_round, shorter) = paired(&on, &off);
    let met = r <= TRACING_GOAL && per_round <= TRACING_GOAL;
    let (lo, hi) = paired_interval(&on, &off);
    println!("  ratio tracing on / off (median): {r:.3}");
    println!(
        "    round by round: median of the {n} rounds' ratios {per_round:.3}, traced the shorter in {shorter} of {n}  \
         (goal ≤ {TRACING_GOAL} by both: {})",
        if met { "met" } else { "NOT met" }
    );
    // The interval says whether the run could tell at all.
    let verdict = if hi <= TRACING_GOAL {
        "within the goal"
    } else if lo > TRACING_GOAL {
        "above the goal"
    } else {
        "it spans the goal: this run cannot settle it"
    };
    println!("    90% interval of the round-by-round ratio: {lo:.3}–{hi:.3}  ({verdict})");
    Ok(())
}

//! A dead OTLP endpoint costs containers nothing. Alone in its test binary,
//! so no other test's VMs disturb the timing.
//!
//! It measures the release shim, the build users run. Under TCG one boot
//! varies by ±10% on its own, and the host's other load only ever adds
//! time. So the runs come in pairs, tracing off and endpoint down back to
//! back (alternating which goes first, after a discarded warm-up pair),
//! and each series is judged by its lower quartile, the steadiest estimate
//! of what a container costs when nothing else interferes; the medians are
//! printed beside it.

use std::time::{Duration, Instant};

use voidbox_integration::containerd::release_shim;
use voidbox_integration::shim_client::{spec, ShimUnderTest};

const PAIRS: usize = 15;

/// Create to exit, then delete and shutdown.
type Phases = (Duration, Duration);

/// One container, start to finish.
async fn run_container(env: &[(&str, &str)], name: &str) -> Phases {
    let shim = ShimUnderTest::start_binary(&release_shim(), name, &spec(&["true"]), env).await;
    let created = Instant::now();
    shim.create_and_start(&[]).await;
    assert_eq!(shim.wait(&[]).await.exit_status, 0);
    let exited = Instant::now();
    shim.delete_and_shutdown(&[]).await;
    let deleted = Instant::now();
    assert!(voidbox_integration::eventually(Duration::from_secs(10), || shim.shim_processes().is_empty()).await);
    (exited - created, deleted - exited)
}

/// The value a `num`/`den` share of the way up the sorted series.
fn quantile(v: &[f64], num: usize, den: usize) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[(v.len() - 1) * num / den]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_endpoint_neither_fails_nor_slows_containers() {
    // Nothing listens here: every export fails at once.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    // Traces, metrics and logs all on, all failing.
    let down_env = [("OTEL_EXPORTER_OTLP_ENDPOINT", dead.as_str())];
    run_container(&[], "warm-off").await;
    run_container(&down_env, "warm-down").await;

    let mut pairs = Vec::new();
    for i in 0..PAIRS {
        let (off, down) = if i % 2 == 0 {
            let off = run_container(&[], &format!("off{i}")).await;
            (off, run_container(&down_env, &format!("down{i}")).await)
        } else {
            let down = run_container(&down_env, &format!("down{i}")).await;
            (run_container(&[], &format!("off{i}")).await, down)
        };
        pairs.push((off, down));
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let series = |f: &dyn Fn(&(Phases, Phases)) -> Duration| pairs.iter().map(|p| ms(f(p))).collect::<Vec<_>>();
    let (off_exit, down_exit) = (series(&|p| p.0 .0), series(&|p| p.1 .0));
    let (off_delete, down_delete) = (series(&|p| p.0 .1), series(&|p| p.1 .1));
    let (off_q1, down_q1) = (quantile(&off_exit, 1, 4), quantile(&down_exit, 1, 4));
    let ratio = down_q1 / off_q1;
    println!(
        "{PAIRS} pairs, create to exit: lower quartile tracing off {off_q1:.0} ms, endpoint down {down_q1:.0} ms, \
         ratio {ratio:.3} (medians {:.0} ms, {:.0} ms); delete and shutdown, medians off {:.0} ms, down {:.0} ms",
        quantile(&off_exit, 1, 2),
        quantile(&down_exit, 1, 2),
        quantile(&off_delete, 1, 2),
        quantile(&down_delete, 1, 2),
    );
    assert!(
        ratio <= 1.10,
        "a dead endpoint slowed containers down: create to exit {ratio:.3} times as long (off, down: {pairs:?})"
    );
}

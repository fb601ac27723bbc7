//! A dead OTLP endpoint costs containers nothing. Alone in its test binary,
//! so no other test's VMs disturb the timing.

use std::time::Duration;

use voidbox_integration::shim_client::{spec, ShimUnderTest};

async fn run_container(shim: &ShimUnderTest) {
    shim.create_and_start(&[]).await;
    assert_eq!(shim.wait(&[]).await.exit_status, 0);
    shim.delete_and_shutdown(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_endpoint_neither_fails_nor_slows_containers() {
    // Nothing listens here: every export fails at once.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    async fn create_to_exit(env: &[(&str, &str)], name: &str) -> Duration {
        let shim = ShimUnderTest::start_with_env(name, &spec(&["true"]), env).await;
        let start = std::time::Instant::now();
        run_container(&shim).await;
        let took = start.elapsed();
        assert!(voidbox_integration::eventually(Duration::from_secs(10), || shim.shim_processes().is_empty()).await);
        took
    }
    let (mut off, mut down) = (Vec::new(), Vec::new());
    for i in 0..3 {
        off.push(create_to_exit(&[], &format!("off{i}")).await);
        down.push(create_to_exit(&[("OTEL_EXPORTER_OTLP_ENDPOINT", &dead)], &format!("down{i}")).await);
    }
    off.sort();
    down.sort();
    let ratio = down[1].as_secs_f64() / off[1].as_secs_f64();
    println!(
        "create to exit, median of 3: tracing off {:?}, endpoint down {:?}, ratio {ratio:.3}",
        off[1], down[1]
    );
    assert!(
        ratio <= 1.10,
        "a dead endpoint slowed containers down: {ratio:.3} (off {off:?}, down {down:?})"
    );
}

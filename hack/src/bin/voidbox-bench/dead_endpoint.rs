//! What a dead OTLP endpoint costs a container: create to exit, and delete
//! to shim exit, with tracing off against every signal exporting to a port
//! nobody listens on. It measures the release shim, the build users run,
//! driven as containerd 2.x drives it.
//!
//! Under TCG one boot varies by ±10% on its own, and the host's other load
//! only ever adds time. So the runs come in pairs, off and down back to
//! back (alternating which goes first, after a discarded warm-up pair); the
//! medians and the lower quartiles (the steadiest estimate of what a
//! container costs when nothing else interferes) are printed side by side.

use std::time::{Duration, Instant};

use voidbox_hack::stats::{ms, ratio, Samples};
use voidbox_integration::containerd::release_shim;
use voidbox_integration::shim_client::{spec, ShimUnderTest};

/// Create to exit, then delete to shim exit.
type Phases = (Duration, Duration);

async fn run_container(env: &[(&str, &str)], name: &str) -> Result<Phases, String> {
    let shim = ShimUnderTest::start_binary(&release_shim(), name, &spec(&["true"]), env).await;
    let created = Instant::now();
    shim.create_and_start(&[]).await;
    let status = shim.wait(&[]).await.exit_status;
    if status != 0 {
        return Err(format!("{name}: `true` exited {status}"));
    }
    let exited = Instant::now();
    shim.delete_and_shutdown(&[]).await;
    if !voidbox_integration::eventually(Duration::from_secs(10), || shim.shim_processes().is_empty()).await {
        return Err(format!("{name}: the shim did not exit within 10 s of Shutdown"));
    }
    Ok((exited - created, exited.elapsed()))
}

pub async fn run(pairs: usize) -> Result<(), String> {
    // Nothing listens here: every export fails at once.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        format!("http://{}", l.local_addr().map_err(|e| e.to_string())?)
    };
    // Traces, metrics and logs all on, all failing.
    let down_env = [("OTEL_EXPORTER_OTLP_ENDPOINT", dead.as_str())];
    println!(
        "dead endpoint: {pairs} pairs of one container (`true`, release shim, task API v3), \
         tracing off against every signal exporting to a dead endpoint (order swaps every pair)"
    );
    run_container(&[], "warm-off").await?;
    run_container(&down_env, "warm-down").await?;

    let (mut off_exit, mut down_exit) = (Samples::default(), Samples::default());
    let (mut off_delete, mut down_delete) = (Samples::default(), Samples::default());
    for i in 0..pairs {
        let (off, down) = if i % 2 == 0 {
            let off = run_container(&[], &format!("off{i}")).await?;
            (off, run_container(&down_env, &format!("down{i}")).await?)
        } else {
            let down = run_container(&down_env, &format!("down{i}")).await?;
            (run_container(&[], &format!("off{i}")).await?, down)
        };
        off_exit.push(off.0);
        off_delete.push(off.1);
        down_exit.push(down.0);
        down_delete.push(down.1);
    }
    println!();
    println!("  create to exit, tracing off      {}", off_exit.summary());
    println!("  create to exit, endpoint down    {}", down_exit.summary());
    println!("  delete to shim exit, off         {}", off_delete.summary());
    println!("  delete to shim exit, down        {}", down_delete.summary());
    println!(
        "  ratio down / off, create to exit: median {:.3}, lower quartile {:.3}",
        ratio(&down_exit, &off_exit),
        down_exit.quantile(1, 4).as_secs_f64() / off_exit.quantile(1, 4).as_secs_f64()
    );
    println!(
        "  shutdown with the endpoint down costs +{:.0} ms (median; the flush bound is 2 s)",
        ms(down_delete.median()) - ms(off_delete.median())
    );
    Ok(())
}

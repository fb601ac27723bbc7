//! A dead OTLP endpoint costs containers nothing they would notice: Create
//! does not wait on an export, no output is lost, and the shim still exits
//! within its flush bound. What it costs in time is measured side by side
//! by `make bench` (voidbox-bench dead-endpoint), never asserted here.

use std::io::Read;
use std::time::{Duration, Instant};

use containerd_shim_protos::api::{CreateTaskRequest, StartRequest};
use voidbox_integration::shim_client::{spec, ShimUnderTest};

/// Enough output to cross several relay buffers.
const LINES: usize = 20_000;

/// Reads the FIFO to EOF (the writer closes it after the last byte). Read
/// as it comes, since the output is more than a pipe holds. A FIFO with no
/// writer yet reads as EOF too: only one after some output ends it.
fn read_all(mut f: std::fs::File) -> Vec<u8> {
    let mut buf = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut chunk = [0u8; 65536];
        match f.read(&mut chunk) {
            Ok(0) if !buf.is_empty() => return buf,
            Ok(0) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(0) => return buf,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => panic!("read fifo: {e}"),
        }
    }
}

/// The shim's bound on flushing every pipeline at exit (FLUSH_TIMEOUT in
/// shim/src/otel/setup.rs), plus the process ending and this test's poll.
const GONE_WITHIN: Duration = Duration::from_secs(2 + 3);

/// Create and Start of a one-vCPU TCG VM take 1–3 s, 8 s on a loaded
/// machine; an export in their path to a silent endpoint would add its
/// 3 s timeout and 3 retries for every batch.
const STARTED_WITHIN: Duration = Duration::from_secs(30);

/// One container with every signal exporting to `endpoint`: Create does not
/// wait on exports, its output arrives whole, and the shim exits within the
/// flush bound after Shutdown.
async fn container_with_endpoint(name: &str, endpoint: &str) {
    // Traces, metrics and logs all on, all failing.
    let env = [("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)];
    let cmd = format!("seq 1 {LINES}");
    let shim = ShimUnderTest::start_with_env(name, &spec(&["sh", "-c", &cmd]), &env).await;
    let (stdout, reader) = shim.fifo("stdout");
    let reader = std::thread::spawn(move || read_all(reader));

    let began = Instant::now();
    let create = CreateTaskRequest {
        id: shim.id.clone(),
        bundle: shim.bundle.display().to_string(),
        stdout,
        ..Default::default()
    };
    shim.client.create(shim.ctx(&[]), &create).await.expect("Create");
    let start = StartRequest {
        id: shim.id.clone(),
        ..Default::default()
    };
    shim.client.start(shim.ctx(&[]), &start).await.expect("Start");
    let started = began.elapsed();
    assert!(
        started < STARTED_WITHIN,
        "{name}: Create and Start took {started:?}: they waited on the endpoint"
    );
    assert_eq!(shim.wait(&[]).await.exit_status, 0, "{name}: exit status");
    let expected: String = (1..=LINES).map(|i| format!("{i}\n")).collect();
    let got = reader.join().unwrap();
    assert!(
        got == expected.as_bytes(),
        "{name}: output lost: {} of {} bytes",
        got.len(),
        expected.len()
    );

    shim.delete_and_shutdown(&[]).await;
    let shutdown = Instant::now();
    shim.assert_gone_clean(GONE_WITHIN).await;
    println!(
        "{name}: Create+Start {started:?}, shim gone {:?} after Shutdown",
        shutdown.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_endpoint_blocks_nothing_and_loses_no_output() {
    // Nothing listens here: every export fails at once.
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    container_with_endpoint("refused", &refused).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_endpoint_blocks_nothing_and_loses_no_output() {
    // Accepts connections and never answers: every export hangs until its
    // timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", silent.local_addr().unwrap());
    let _held = std::thread::spawn(move || {
        let mut conns = Vec::new();
        for c in silent.incoming() {
            conns.push(c);
        }
    });
    container_with_endpoint("silent", &endpoint).await;
}

//! voidbox-bench: the benchmarks of `make bench`. Every figure is a median of
//! samples taken side by side in this run, and every ratio compares two such
//! medians from the same run.
//!
//!   voidbox-bench [--boots N] [boot] [container] [dead-endpoint] [telemetry] [relay] [delete] [memory] [scaling]

mod boot;
mod container;
mod dead_endpoint;
mod delete;
mod memory;
mod relay;
mod scaling;
mod telemetry;

/// Runs of each arm of the container suite, at least: one TCG start varies
/// by ±5–10%, and the tracing goal is 2%.
const CONTAINER_RUNS: usize = 31;
/// Off/down pairs of the dead-endpoint suite.
const DEAD_ENDPOINT_PAIRS: usize = 15;
/// Idle/sampling window pairs of the telemetry suite.
const TELEMETRY_ROUNDS: usize = 3;
/// Containers of the delete suite.
const DELETE_RUNS: usize = 11;
/// Bursts of the relay suite.
const RELAY_BURSTS: usize = 5;

fn main() {
    let mut boots = 7;
    let mut suites = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--boots" => {
                boots = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&n| n >= 5)
                    .unwrap_or_else(|| die("--boots takes a number of at least 5"))
            }
            "boot" | "container" | "delete" | "memory" | "scaling" | "dead-endpoint" | "telemetry" | "relay" => {
                suites.push(arg)
            }
            other => die(&format!("unknown argument {other}")),
        }
    }
    if suites.is_empty() {
        suites = [
            "boot",
            "container",
            "delete",
            "memory",
            "scaling",
            "dead-endpoint",
            "telemetry",
            "relay",
        ]
        .map(String::from)
        .to_vec();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    for (i, suite) in suites.iter().enumerate() {
        if i > 0 {
            println!();
        }
        let result = match suite.as_str() {
            "boot" => rt.block_on(boot::run(boots)),
            // One TCG boot varies by ±10%: a 2% goal needs more samples.
            "container" => container::run_suite(&rt, boots.max(CONTAINER_RUNS)),
            "dead-endpoint" => rt.block_on(dead_endpoint::run(DEAD_ENDPOINT_PAIRS)),
            "telemetry" => rt.block_on(telemetry::run(TELEMETRY_ROUNDS)),
            "relay" => rt.block_on(relay::run(RELAY_BURSTS)),
            "delete" => rt.block_on(delete::run(DELETE_RUNS)),
            "memory" => rt.block_on(memory::run()),
            "scaling" => rt.block_on(scaling::run()),
            _ => unreachable!(),
        };
        if let Err(e) = result {
            die(&e);
        }
    }
}

fn die(msg: &str) -> ! {
    eprintln!("voidbox-bench: {msg}");
    std::process::exit(1)
}

//! voidbox-trace: receive OTLP traces, and show a trace as a Mermaid gantt
//! chart and a terminal waterfall.
//!
//!   voidbox-trace receive [--listen ADDR] --out FILE [--until SPAN] [--timeout SECS]
//!       An OTLP/HTTP receiver: writes what arrives to FILE (OTLP/JSON lines)
//!       when SPAN has arrived (and a second has passed), at the timeout, or
//!       on SIGINT/SIGTERM.
//!   voidbox-trace show (--file FILE | --jaeger URL) [--service NAME] [--trace ID] [--mermaid | --waterfall]
//!       The trace in FILE, or the latest trace of NAME (default voidbox) in
//!       the Jaeger at URL.

use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use voidbox_integration::otlp::{self, Receiver};
use voidbox_integration::trace_tree::Tree;

fn usage(msg: &str) -> ! {
    eprintln!("voidbox-trace: {msg}");
    eprintln!("usage: voidbox-trace receive [--listen ADDR] --out FILE [--until SPAN] [--timeout SECS]");
    eprintln!("       voidbox-trace show (--file FILE | --jaeger URL) [--service NAME] [--trace ID] [--mermaid | --waterfall]");
    std::process::exit(2)
}

struct Args(Vec<String>);

impl Args {
    fn value(&self, flag: &str) -> Option<String> {
        let i = self.0.iter().position(|a| a == flag)?;
        Some(
            self.0
                .get(i + 1)
                .cloned()
                .unwrap_or_else(|| usage(&format!("{flag} needs a value"))),
        )
    }
    fn has(&self, flag: &str) -> bool {
        self.0.iter().any(|a| a == flag)
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let all: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = all.split_first() else {
        usage("no command")
    };
    let args = Args(rest.to_vec());
    let result = match command.as_str() {
        "receive" => receive(&args).await,
        "show" => show(&args).await,
        other => usage(&format!("unknown command {other}")),
    };
    if let Err(e) = result {
        eprintln!("voidbox-trace: {e}");
        std::process::exit(1);
    }
}

async fn receive(args: &Args) -> Result<(), String> {
    let listen = args.value("--listen").unwrap_or_else(|| "127.0.0.1:4318".into());
    let out = args.value("--out").unwrap_or_else(|| usage("receive needs --out FILE"));
    let until = args.value("--until");
    let timeout: u64 = args
        .value("--timeout")
        .map(|t| t.parse().unwrap_or_else(|_| usage("--timeout takes seconds")))
        .unwrap_or(3600);
    let receiver = Receiver::start(&listen)
        .await
        .map_err(|e| format!("listen on {listen}: {e}"))?;
    eprintln!("voidbox-trace: receiving OTLP/HTTP on {}", receiver.endpoint());
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    let arrived = async {
        match &until {
            Some(name) => {
                receiver
                    .wait_for(Duration::from_secs(timeout), |s| s.iter().any(|s| &s.name == name))
                    .await;
                // Spans exported in the same flush may still be on their way.
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            None => tokio::time::sleep(Duration::from_secs(timeout)).await,
        }
    };
    tokio::select! {
        _ = arrived => {}
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    let requests = receiver.requests();
    std::fs::write(&out, otlp::to_json_lines(&requests)).map_err(|e| format!("write {out}: {e}"))?;
    eprintln!("voidbox-trace: {} spans written to {out}", receiver.spans().len());
    Ok(())
}

async fn show(args: &Args) -> Result<(), String> {
    let spans = if let Some(file) = args.value("--file") {
        let text = std::fs::read_to_string(&file).map_err(|e| format!("read {file}: {e}"))?;
        otlp::from_json(&text)?
    } else if let Some(url) = args.value("--jaeger") {
        let service = args.value("--service").unwrap_or_else(|| "voidbox".into());
        let api = format!(
            "{}/api/traces?service={service}&limit=1&lookback=1h",
            url.trim_end_matches('/')
        );
        voidbox_shim::otel::install_tls_provider();
        let answer = reqwest::get(&api)
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| format!("fetch {api}: {e} (is Jaeger running? `make jaeger-start`)"))?
            .text()
            .await
            .map_err(|e| format!("read {api}: {e}"))?;
        otlp::from_jaeger(&answer)?
    } else {
        usage("show needs --file FILE or --jaeger URL")
    };
    if spans.is_empty() {
        return Err("the trace has no spans".into());
    }
    // The trace asked for, or the latest if the file holds several (a
    // containerd 2.x run holds one per request).
    let latest = args.value("--trace").unwrap_or_else(|| {
        spans
            .iter()
            .max_by_key(|s| s.end_ns)
            .map(|s| s.trace_id.clone())
            .unwrap_or_default()
    });
    let spans: Vec<_> = spans.into_iter().filter(|s| s.trace_id == latest).collect();
    if spans.is_empty() {
        return Err(format!("no spans of trace {latest}"));
    }
    let tree = Tree::new(&spans);
    if !args.has("--waterfall") {
        println!("```mermaid\n{}```", tree.mermaid(&format!("voidbox trace {latest}")));
    }
    if !args.has("--mermaid") {
        if !args.has("--waterfall") {
            println!();
        }
        print!("{}", tree.waterfall(40));
    }
    Ok(())
}

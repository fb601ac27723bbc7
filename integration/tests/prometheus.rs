//! The Grafana dashboard's queries (docs/observability/grafana/
//! voidbox-dashboard.json) in Prometheus 3.5.3, on the metrics a running
//! shim pushes to it over OTLP.
//!
//! Prometheus loads the playground's prometheus.yml (its `otlp` section
//! included) and receives a real shim's metrics on its OTLP receiver
//! (`/api/v1/otlp/v1/metrics`); every metric and label name the queries read
//! must arrive, and every query must answer for the running container.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use containerd_shim_protos::api::KillRequest;
use voidbox_integration::otlp::Receiver;
use voidbox_integration::prometheus::Prometheus;
use voidbox_integration::shim_client::{spec, ShimUnderTest};

fn docs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/observability")
}

/// Each panel's query, with its title, from the dashboard JSON (rows'
/// nested panels included).
fn dashboard_queries() -> Vec<(String, String)> {
    fn walk(panels: &[serde_json::Value], out: &mut Vec<(String, String)>) {
        for p in panels {
            walk(p["panels"].as_array().map(Vec::as_slice).unwrap_or_default(), out);
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = t["expr"].as_str() {
                    out.push((p["title"].as_str().unwrap_or_default().to_string(), expr.to_string()));
                }
            }
        }
    }
    let path = docs().join("grafana/voidbox-dashboard.json");
    let dashboard: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut out = Vec::new();
    walk(dashboard["panels"].as_array().unwrap(), &mut out);
    out
}

/// Grafana's own variables, as Grafana fills them in: `$__range` is the
/// dashboard's time range, `$__rate_interval` at least four scrape
/// intervals of the data source (15 s by default).
fn as_grafana_sends(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m").replace("$__range", "5m")
}

/// The metric names a query reads (voidbox's), and the label names it
/// groups by or matches on.
fn names_in(expr: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let metrics = expr.match_indices("voidbox_").map(|(i, _)| ident(&expr[i..])).collect();
    let mut labels = BTreeSet::new();
    for (i, _) in expr.match_indices(" by (") {
        let list = &expr[i + 5..];
        let list = &list[..list.find(')').unwrap()];
        labels.extend(list.split(',').map(|l| l.trim().to_string()));
    }
    for (i, _) in expr.match_indices('{') {
        let body = &expr[i + 1..];
        let body = &body[..body.find('}').unwrap()];
        labels.extend(body.split(',').map(|m| ident(m.trim())).filter(|l| !l.is_empty()));
    }
    (metrics, labels)
}

/// What of `wanted` (metric -> label names) the series in Prometheus
/// (`has`, the same shape) lack; an API error is itself the problem.
fn missing(
    has: &Result<BTreeMap<String, BTreeSet<String>>, String>,
    wanted: &BTreeMap<String, BTreeSet<String>>,
) -> Vec<String> {
    let has = match has {
        Ok(has) => has,
        Err(e) => return vec![format!("listing the series failed: {e}")],
    };
    let mut out = Vec::new();
    for (metric, labels) in wanted {
        let Some(there) = has.get(metric) else {
            out.push(format!("{metric}: no such series"));
            continue;
        };
        for l in labels.iter().filter(|l| !there.contains(*l)) {
            out.push(format!("{metric}: no label {l} (it has {there:?})"));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_3_5_loads_the_config_and_evaluates_every_dashboard_query() {
    let queries = dashboard_queries();
    assert!(queries.len() >= 15, "the dashboard's queries: {queries:?}");
    let prometheus = Prometheus::start("queries", &docs().join("prometheus.yml")).await;
    let mut failed = Vec::new();
    for (title, expr) in &queries {
        if let Err(e) = prometheus.query(&as_grafana_sends(expr)).await {
            failed.push(format!("{title}: {e}"));
        }
    }
    assert!(
        failed.is_empty(),
        "queries Prometheus refused:\n  {}",
        failed.join("\n  ")
    );
    println!("Prometheus 3.5.3 evaluated all {} dashboard queries", queries.len());
}

/// The labels a query grouped by (phase, rpc_method, ...), for the log:
/// those that name no VM or job.
fn grouping(metric: &serde_json::Value) -> String {
    let common = [
        "__name__",
        "job",
        "instance",
        "container_id",
        "voidbox_vm_id",
        "voidbox_namespace",
    ];
    let labels: Vec<String> = metric
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| !common.contains(&k.as_str()))
        .map(|(k, v)| format!("{k}:{}", v.as_str().unwrap_or_default()))
        .collect();
    format!("{{{}}}", labels.join(","))
}

/// A series' value, as Prometheus writes it.
fn value(series: &serde_json::Value) -> f64 {
    series["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

/// What is wrong with a query's answer for container `id`, if anything:
/// no series, a value that is not a number (a quantile of nothing), or a
/// series of another container.
fn problem(answer: &[serde_json::Value], id: &str) -> Option<String> {
    if answer.is_empty() {
        return Some("no series".into());
    }
    for s in answer {
        if value(s).is_nan() {
            return Some(format!("NaN in {}", s["metric"]));
        }
        if let Some(other) = s["metric"]["container_id"].as_str().filter(|c| *c != id) {
            return Some(format!("series of container {other}: {}", s["metric"]));
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_answers_for_a_running_container() {
    let queries = dashboard_queries();
    let mut wanted: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (_, expr) in &queries {
        let (metrics, labels) = names_in(expr);
        for m in metrics {
            wanted.entry(m).or_default().extend(labels.clone());
        }
    }
    let prometheus = Prometheus::start("dashboard", &docs().join("prometheus.yml")).await;
    // Spans to the test's receiver: the shim's metric and span pipelines
    // both run, as they do for a user.
    let otlp = Receiver::start("127.0.0.1:0").await.unwrap();
    let traces = format!("{}/v1/traces", otlp.endpoint());
    let metrics = prometheus.otlp_metrics_endpoint();
    let shim = ShimUnderTest::start_with_env(
        "promdash",
        &spec(&["sleep", "300"]),
        &[
            ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", metrics.as_str()),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", traces.as_str()),
            ("OTEL_METRIC_EXPORT_INTERVAL", "300"),
            ("VOIDBOX_TELEMETRY_INTERVAL", "250"),
        ],
    )
    .await;
    shim.create_and_start(&[]).await;
    let id = shim.id.clone();
    // Until every name the dashboard reads is in Prometheus, or 30 s; then
    // 2 s more, so that rates have samples to work with.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut problems = missing(&prometheus.voidbox_labels().await, &wanted);
    while !problems.is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        problems = missing(&prometheus.voidbox_labels().await, &wanted);
    }
    assert!(
        problems.is_empty(),
        "the dashboard reads what did not arrive in Prometheus:\n  {}\nmetrics in Prometheus: {:?}\nPrometheus log:\n{}",
        problems.join("\n  "),
        prometheus.metric_names().await,
        prometheus.log()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Each panel's query, as Grafana sends it.
    let mut failed = Vec::new();
    let mut answers = Vec::new();
    for (title, expr) in &queries {
        match prometheus.query(&as_grafana_sends(expr)).await {
            Ok(answer) => match problem(&answer, &id) {
                Some(p) => failed.push(format!("{title}: {expr}: {p}")),
                None => answers.push(format!(
                    "{expr} -> {}",
                    answer
                        .iter()
                        .map(|s| format!("{}={:.4}", grouping(&s["metric"]), value(s)))
                        .collect::<Vec<_>>()
                        .join(" ")
                )),
            },
            Err(e) => failed.push(format!("{title}: {e}")),
        }
    }
    let live = prometheus.query("sum(voidbox_vms_live)").await.unwrap();
    // What docs/observability.md says prometheus.yml promotes: on every series.
    let promoted = ["container_id", "voidbox_namespace", "voidbox_vm_id"].map(String::from);
    let mut unpromoted = Vec::new();
    // After the queries' 2 s, so that series the dashboard does not read
    // have arrived too.
    match prometheus.voidbox_labels().await {
        Ok(series) => {
            for (name, has) in &series {
                let lacking: Vec<&String> = promoted.iter().filter(|l| !has.contains(*l)).collect();
                if !lacking.is_empty() {
                    unpromoted.push(format!("{name} lacks {lacking:?}"));
                }
            }
        }
        Err(e) => unpromoted.push(format!("listing the series failed: {e}")),
    }
    let kill = KillRequest {
        id: id.clone(),
        signal: 9,
        all: true,
        ..Default::default()
    };
    shim.client.kill(shim.ctx(&[]), &kill).await.unwrap();
    shim.wait(&[]).await;
    shim.delete_and_shutdown(&[]).await;
    shim.assert_gone_clean(Duration::from_secs(10)).await;

    assert!(
        failed.is_empty(),
        "dashboard queries without data for container {id}:\n  {}\nPrometheus log:\n{}",
        failed.join("\n  "),
        prometheus.log()
    );
    assert!(
        unpromoted.is_empty(),
        "promoted attributes missing:\n  {}",
        unpromoted.join("\n  ")
    );
    // One container, one VM.
    assert_eq!(value(&live[0]), 1.0, "{live:?}");
    println!(
        "{} dashboard queries, {} metric names, all answered for container {id} (pushed over OTLP):\n  {}",
        queries.len(),
        wanted.len(),
        answers.join("\n  ")
    );
}

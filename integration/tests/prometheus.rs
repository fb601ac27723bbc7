//! The Grafana dashboard's queries (docs/observability/grafana/
//! voidbox-dashboard.json) against Prometheus 3.5.3 and against the metrics
//! a running shim really exports.
//!
//! Debian's Prometheus 3.5.3 has no OTLP receiver (compiled out; see
//! voidbox_integration::prometheus), so the shim cannot push to it here.
//! What runs instead: that Prometheus loads the playground's prometheus.yml
//! and evaluates every query without error; and every metric and label
//! name the queries use is one that Prometheus 3's OTLP receiver makes (by
//! its documented rules) of what a real shim, with a real VM and container,
//! exported, decoded with opentelemetry-proto.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use containerd_shim_protos::api::KillRequest;
use voidbox_integration::otlp::{Point, Receiver};
use voidbox_integration::prometheus::{otlp_label_name, otlp_series_names, Prometheus};
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

/// The label names in `prometheus.yml`'s `otlp.promote_resource_attributes`.
fn promoted() -> Vec<String> {
    let text = std::fs::read_to_string(docs().join("prometheus.yml")).unwrap();
    let config: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    config["otlp"]["promote_resource_attributes"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| otlp_label_name(a.as_str().unwrap()))
        .collect()
}

/// The series Prometheus would hold for `points`, each with its label names.
fn series_of(points: &[Point]) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let from_resource = ["job", "instance"].map(String::from).into_iter().chain(promoted());
    for p in points {
        for name in otlp_series_names(&p.name, &p.unit, p.kind, p.monotonic) {
            let labels = out.entry(name.clone()).or_default();
            labels.extend(p.attributes.keys().map(|k| otlp_label_name(k)));
            labels.extend(from_resource.clone());
            if name.ends_with("_bucket") {
                labels.insert("le".into());
            }
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_name_the_dashboard_reads_is_one_a_running_shim_exports() {
    let queries = dashboard_queries();
    let mut wanted: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (_, expr) in &queries {
        let (metrics, labels) = names_in(expr);
        for m in metrics {
            wanted.entry(m).or_default().extend(labels.clone());
        }
    }
    let otlp = Receiver::start("127.0.0.1:0").await.unwrap();
    let metrics = format!("{}/v1/metrics", otlp.endpoint());
    let traces = format!("{}/v1/traces", otlp.endpoint());
    let shim = ShimUnderTest::start_with_env(
        "promnames",
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
    // Until every name the dashboard reads has arrived, or 30 s.
    let all_arrived = otlp
        .wait_for_points(Duration::from_secs(30), |p| {
            let series = series_of(p);
            wanted.keys().all(|m| series.contains_key(m))
        })
        .await;
    let series = series_of(&otlp.points());
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

    let mut problems = Vec::new();
    for (metric, labels) in &wanted {
        match series.get(metric) {
            None => problems.push(format!("{metric}: no such series")),
            Some(has) => {
                for l in labels.iter().filter(|l| !has.contains(*l)) {
                    problems.push(format!("{metric}: no label {l} (it has {has:?})"));
                }
            }
        }
    }
    assert!(
        all_arrived && problems.is_empty(),
        "the dashboard reads what the shim does not export:\n  {}\nseries from the shim: {:?}",
        problems.join("\n  "),
        series.keys().collect::<Vec<_>>()
    );
    println!(
        "{} dashboard queries read {} metric names, all among the {} series names of container {id}",
        queries.len(),
        wanted.len(),
        series.len()
    );
}

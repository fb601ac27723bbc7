//! The playground's configurations (docs/observability/) for what cannot run
//! here: no OpenTelemetry Collector, Tempo, Grafana or Jaeger is installable
//! on the project's machines. What can be checked without them: each file
//! parses, the Collector's pipelines name only components the file defines,
//! and the services point at each other's ports. (Prometheus does run:
//! tests/prometheus.rs.)

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_yaml::Value;

fn docs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/observability")
}

fn yaml(name: &str) -> Value {
    let path = docs().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{name} is not YAML: {e}"))
}

/// The keys of the mapping at `v`.
fn keys(v: &Value) -> BTreeSet<String> {
    v.as_mapping()
        .map(|m| m.keys().filter_map(|k| k.as_str().map(String::from)).collect())
        .unwrap_or_default()
}

/// The names in the list at `v`.
fn names(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| s.iter().filter_map(|n| n.as_str().map(String::from)).collect())
        .unwrap_or_default()
}

/// What is wrong with a Collector config's pipelines, if anything: an
/// unknown signal, a pipeline without receivers or exporters, a component
/// that is not defined in the file.
fn pipeline_problems(config: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let pipelines = &config["service"]["pipelines"];
    if keys(pipelines).is_empty() {
        problems.push("no service.pipelines".to_string());
    }
    for (pipeline, def) in pipelines.as_mapping().into_iter().flatten() {
        let pipeline = pipeline.as_str().unwrap_or_default();
        let signal = pipeline.split('/').next().unwrap_or_default();
        if !["traces", "metrics", "logs"].contains(&signal) {
            problems.push(format!("pipeline {pipeline}: unknown signal {signal}"));
        }
        for kind in ["receivers", "processors", "exporters"] {
            let used = names(&def[kind]);
            if used.is_empty() && kind != "processors" {
                problems.push(format!("pipeline {pipeline} has no {kind}"));
            }
            let defined = keys(&config[kind]);
            for name in used.iter().filter(|n| !defined.contains(*n)) {
                problems.push(format!("pipeline {pipeline}: {kind} {name} is not defined"));
            }
        }
    }
    problems
}

/// host:port or scheme://host:port[/path] -> (host, port).
fn host_port(endpoint: &str) -> (String, u16) {
    let rest = endpoint.split_once("://").map_or(endpoint, |(_, r)| r);
    let hostport = rest.split('/').next().unwrap();
    let (host, port) = hostport
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("no port in {endpoint}"));
    (host.to_string(), port.parse().unwrap())
}

#[test]
fn the_collectors_pipelines_name_components_it_defines() {
    let config = yaml("otel-collector.yaml");
    assert_eq!(pipeline_problems(&config), Vec::<String>::new());
    let pipelines = keys(&config["service"]["pipelines"]);
    assert_eq!(pipelines, ["logs", "metrics", "traces"].map(String::from).into());
    assert!(config["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
        .as_str()
        .is_some_and(|e| e.ends_with(":4318")));
}

/// The check above can fail: a pipeline naming an undefined exporter, and
/// one without receivers.
#[test]
fn a_pipeline_naming_an_undefined_component_is_caught() {
    let mut config = yaml("otel-collector.yaml");
    config["service"]["pipelines"]["metrics"]["exporters"] = serde_yaml::from_str("[prometheus]").unwrap();
    config["service"]["pipelines"]["logs"]["receivers"] = serde_yaml::from_str("[]").unwrap();
    assert_eq!(
        pipeline_problems(&config),
        [
            "pipeline metrics: exporters prometheus is not defined",
            "pipeline logs has no receivers",
        ]
    );
}

#[test]
fn tempo_receives_otlp_where_the_collector_sends_traces() {
    let tempo = yaml("tempo.yaml");
    let otlp = &tempo["distributor"]["receivers"]["otlp"]["protocols"];
    let grpc = otlp["grpc"]["endpoint"]
        .as_str()
        .expect("tempo: distributor.receivers.otlp.protocols.grpc");
    let collector = yaml("otel-collector.yaml");
    let traces = names(&collector["service"]["pipelines"]["traces"]["exporters"]);
    let to_tempo = collector["exporters"][traces[0].as_str()]["endpoint"].as_str().unwrap();
    assert_eq!(host_port(to_tempo), ("tempo".into(), host_port(grpc).1));
    assert!(tempo["server"]["http_listen_port"].as_u64().is_some());
}

#[test]
fn the_compose_file_wires_the_services_to_these_files() {
    let compose = yaml("compose.yaml");
    let services = keys(&compose["services"]);
    // Every service an exporter or a data source names is in the compose file.
    let collector = yaml("otel-collector.yaml");
    for (name, exporter) in collector["exporters"].as_mapping().unwrap() {
        if let Some(endpoint) = exporter["endpoint"].as_str() {
            let (host, _) = host_port(endpoint);
            assert!(
                services.contains(&host),
                "exporter {name:?} sends to {host}, not a service"
            );
        }
    }
    let datasources = yaml("grafana/datasources.yaml");
    for ds in datasources["datasources"].as_sequence().unwrap() {
        let (host, _) = host_port(ds["url"].as_str().unwrap());
        assert!(services.contains(&host), "data source {host} is not a service");
    }
    // Each mounted file exists here.
    for (name, service) in compose["services"].as_mapping().unwrap() {
        for volume in names(&service["volumes"]) {
            let source = volume.split(':').next().unwrap();
            assert!(
                docs().join(source).exists(),
                "{name:?} mounts {source}, which is missing"
            );
        }
    }
    // Prometheus receives the Collector's metrics over OTLP.
    let command = names(&compose["services"]["prometheus"]["command"]);
    assert!(command.iter().any(|a| a == "--web.enable-otlp-receiver"), "{command:?}");
}

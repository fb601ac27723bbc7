//! An OTLP receiver for tests and tools: OTLP/HTTP (a small HTTP/1.1 server
//! for `/v1/traces`, `/v1/metrics` and `/v1/logs`) and OTLP/gRPC (the
//! collector services, on a port of their own), both decoding with
//! opentelemetry-proto into one store kept for assertions.

mod faults;
mod grpc;
mod http;
pub mod logs;
pub mod metrics;
mod spans;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::eventually;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use prost::Message;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use logs::Record;
pub use metrics::Point;
pub use spans::{flatten, from_jaeger, from_json, to_json_lines, Event, Span};

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn value(v: &Option<AnyValue>) -> String {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn attrs(kvs: &[KeyValue]) -> HashMap<String, String> {
    kvs.iter().map(|kv| (kv.key.clone(), value(&kv.value))).collect()
}

/// How an export arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Http,
    Grpc,
}

#[derive(Default)]
struct Store {
    traces: Vec<ExportTraceServiceRequest>,
    metrics: Vec<ExportMetricsServiceRequest>,
    logs: Vec<ExportLogsServiceRequest>,
    /// (signal, transport) of every export, in arrival order.
    arrivals: Vec<(&'static str, Transport)>,
    faults: faults::Faults,
}

impl Store {
    fn traces(&mut self, req: ExportTraceServiceRequest, via: Transport) {
        self.traces.push(req);
        self.arrivals.push(("traces", via));
    }

    fn metrics(&mut self, req: ExportMetricsServiceRequest, via: Transport) {
        self.metrics.push(req);
        self.arrivals.push(("metrics", via));
    }

    fn logs(&mut self, req: ExportLogsServiceRequest, via: Transport) {
        self.logs.push(req);
        self.arrivals.push(("logs", via));
    }

    /// Keeps an HTTP request's body by its path; false if it does not decode.
    fn keep_http(&mut self, path: &str, body: &[u8]) -> bool {
        let via = Transport::Http;
        match path {
            "/v1/traces" => ExportTraceServiceRequest::decode(body)
                .map(|r| self.traces(r, via))
                .is_ok(),
            "/v1/metrics" => ExportMetricsServiceRequest::decode(body)
                .map(|r| self.metrics(r, via))
                .is_ok(),
            "/v1/logs" => ExportLogsServiceRequest::decode(body)
                .map(|r| self.logs(r, via))
                .is_ok(),
            _ => false,
        }
    }
}

pub struct Receiver {
    /// OTLP/HTTP.
    pub addr: SocketAddr,
    /// OTLP/gRPC.
    pub grpc_addr: SocketAddr,
    store: Arc<Mutex<Store>>,
    hold: tokio::sync::watch::Sender<Option<String>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Receiver {
    /// OTLP/HTTP on `addr` ("127.0.0.1:0" for any free port), OTLP/gRPC on
    /// any free port of the same address.
    pub async fn start(addr: &str) -> std::io::Result<Receiver> {
        let http = TcpListener::bind(addr).await?;
        let grpc = TcpListener::bind((http.local_addr()?.ip(), 0)).await?;
        Self::serve(http, grpc)
    }

    /// OTLP/HTTP on `http`, OTLP/gRPC on `grpc`.
    pub async fn start_on(http: &str, grpc: &str) -> std::io::Result<Receiver> {
        Self::serve(TcpListener::bind(http).await?, TcpListener::bind(grpc).await?)
    }

    fn serve(http: TcpListener, grpc: TcpListener) -> std::io::Result<Receiver> {
        let (addr, grpc_addr) = (http.local_addr()?, grpc.local_addr()?);
        let store = Arc::new(Mutex::new(Store::default()));
        let s = store.clone();
        let (hold, held) = tokio::sync::watch::channel(None);
        let tasks = vec![
            tokio::spawn(async move {
                while let Ok((conn, _)) = http.accept().await {
                    tokio::spawn(http::serve(conn, s.clone(), held.clone()));
                }
            }),
            tokio::spawn(grpc::serve(grpc, store.clone())),
        ];
        Ok(Receiver {
            addr,
            grpc_addr,
            store,
            hold,
            tasks,
        })
    }

    /// Answers the next `n` trace exports of `service` over HTTP with 500,
    /// keeping nothing of them but the count of their spans.
    pub fn fail_traces(&self, service: &str, n: usize) {
        self.store
            .lock()
            .unwrap()
            .faults
            .fail_next
            .insert(service.to_string(), n);
    }

    /// Trace requests refused by `fail_traces` so far.
    pub fn refused_requests(&self) -> usize {
        self.store.lock().unwrap().faults.refused_requests
    }

    /// Spans of `service` in the trace requests `fail_traces` refused.
    pub fn refused_spans(&self, service: &str) -> usize {
        let store = self.store.lock().unwrap();
        store.faults.refused_spans.get(service).copied().unwrap_or(0)
    }

    /// Trace exports over HTTP holding spans of `service` wait, unanswered,
    /// from now until `hold_traces(None)`.
    pub fn hold_traces(&self, service: Option<&str>) {
        self.hold.send_replace(service.map(str::to_string));
    }

    /// Trace exports waiting on the hold now.
    pub fn held_traces(&self) -> usize {
        self.store.lock().unwrap().faults.held
    }

    /// How each export of `signal` ("traces", "metrics", "logs") arrived.
    pub fn arrivals(&self, signal: &str) -> Vec<Transport> {
        let store = self.store.lock().unwrap();
        store
            .arrivals
            .iter()
            .filter(|(s, _)| *s == signal)
            .map(|(_, t)| *t)
            .collect()
    }

    /// The base URL for OTEL_EXPORTER_OTLP_ENDPOINT (http/protobuf).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The endpoint for OTEL_EXPORTER_OTLP_PROTOCOL=grpc.
    pub fn grpc_endpoint(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    pub fn spans(&self) -> Vec<Span> {
        self.store.lock().unwrap().traces.iter().flat_map(flatten).collect()
    }

    /// How many spans named `name` arrived, counted in place (cheap enough
    /// to poll while spans stream in).
    pub fn count_spans(&self, name: &str) -> u64 {
        let store = self.store.lock().unwrap();
        let spans = store.traces.iter().flat_map(|r| &r.resource_spans);
        let spans = spans.flat_map(|rs| &rs.scope_spans).flat_map(|ss| &ss.spans);
        spans.filter(|s| s.name == name).count() as u64
    }

    /// Forgets every span received so far (a benchmark's rounds).
    pub fn clear_spans(&self) {
        self.store.lock().unwrap().traces.clear();
    }

    /// Every trace export request received.
    pub fn requests(&self) -> Vec<ExportTraceServiceRequest> {
        self.store.lock().unwrap().traces.clone()
    }

    pub fn points(&self) -> Vec<Point> {
        self.store
            .lock()
            .unwrap()
            .metrics
            .iter()
            .flat_map(metrics::flatten)
            .collect()
    }

    pub fn logs(&self) -> Vec<Record> {
        self.store.lock().unwrap().logs.iter().flat_map(logs::flatten).collect()
    }

    /// Waits until `cond` holds for the received spans.
    pub async fn wait_for(&self, timeout: Duration, cond: impl Fn(&[Span]) -> bool) -> bool {
        eventually(timeout, || cond(&self.spans())).await
    }

    /// Waits until `cond` holds for the received metric points.
    pub async fn wait_for_points(&self, timeout: Duration, cond: impl Fn(&[Point]) -> bool) -> bool {
        eventually(timeout, || cond(&self.points())).await
    }

    /// Waits until `cond` holds for the received log records.
    pub async fn wait_for_logs(&self, timeout: Duration, cond: impl Fn(&[Record]) -> bool) -> bool {
        eventually(timeout, || cond(&self.logs())).await
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

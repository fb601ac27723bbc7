//! An OTLP/HTTP receiver for tests and tools: a small HTTP/1.1 server that
//! decodes the protobuf bodies of `/v1/traces`, `/v1/metrics` and `/v1/logs`
//! with opentelemetry-proto and keeps everything for assertions.

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
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub use logs::Record;
pub use metrics::Point;
pub use spans::{flatten, from_jaeger, from_json, to_json_lines, Span};

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

#[derive(Default)]
struct Store {
    traces: Vec<ExportTraceServiceRequest>,
    metrics: Vec<ExportMetricsServiceRequest>,
    logs: Vec<ExportLogsServiceRequest>,
}

impl Store {
    /// Keeps a request's body by its path; false if it does not decode.
    fn keep(&mut self, path: &str, body: &[u8]) -> bool {
        match path {
            "/v1/traces" => ExportTraceServiceRequest::decode(body)
                .map(|r| self.traces.push(r))
                .is_ok(),
            "/v1/metrics" => ExportMetricsServiceRequest::decode(body)
                .map(|r| self.metrics.push(r))
                .is_ok(),
            "/v1/logs" => ExportLogsServiceRequest::decode(body)
                .map(|r| self.logs.push(r))
                .is_ok(),
            _ => false,
        }
    }
}

pub struct Receiver {
    pub addr: SocketAddr,
    store: Arc<Mutex<Store>>,
    task: JoinHandle<()>,
}

impl Receiver {
    /// Listens on `addr` ("127.0.0.1:0" for any free port).
    pub async fn start(addr: &str) -> std::io::Result<Receiver> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let store = Arc::new(Mutex::new(Store::default()));
        let s = store.clone();
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(serve(conn, s.clone()));
            }
        });
        Ok(Receiver { addr, store, task })
    }

    /// The base URL for OTEL_EXPORTER_OTLP_ENDPOINT.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn spans(&self) -> Vec<Span> {
        self.store.lock().unwrap().traces.iter().flat_map(flatten).collect()
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
        self.task.abort();
    }
}

/// Every well-formed export gets 200 and an empty protobuf response.
async fn serve(conn: TcpStream, store: Arc<Mutex<Store>>) {
    let mut conn = BufReader::new(conn);
    while let Some(req) = http::read(&mut conn).await {
        let kept = req.method == "POST" && store.lock().unwrap().keep(&req.path, &req.body);
        let status = if kept { "200 OK" } else { "400 Bad Request" };
        let reply = format!("HTTP/1.1 {status}\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n");
        if conn.get_mut().write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}

//! An OTLP/HTTP receiver for tests and tools: a small HTTP/1.1 server that
//! decodes `ExportTraceServiceRequest` protobuf bodies with opentelemetry-proto
//! and keeps every span with its resource's service name.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// One received span, flattened for assertions.
#[derive(Debug, Clone)]
pub struct Span {
    pub service: String,
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root.
    pub parent_span_id: String,
    pub name: String,
    pub start_ns: u64,
    pub end_ns: u64,
    pub attributes: HashMap<String, String>,
    pub resource: HashMap<String, String>,
    /// 0 unset, 1 ok, 2 error.
    pub status_code: i32,
    pub status_message: String,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn value(v: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn attrs(kvs: &[opentelemetry_proto::tonic::common::v1::KeyValue]) -> HashMap<String, String> {
    kvs.iter().map(|kv| (kv.key.clone(), value(&kv.value))).collect()
}

/// Flattens an export request into spans.
pub fn flatten(req: &ExportTraceServiceRequest) -> Vec<Span> {
    let mut out = Vec::new();
    for rs in &req.resource_spans {
        let resource = rs.resource.as_ref().map(|r| attrs(&r.attributes)).unwrap_or_default();
        let service = resource.get("service.name").cloned().unwrap_or_default();
        for ss in &rs.scope_spans {
            for s in &ss.spans {
                out.push(Span {
                    service: service.clone(),
                    trace_id: hex(&s.trace_id),
                    span_id: hex(&s.span_id),
                    parent_span_id: hex(&s.parent_span_id),
                    name: s.name.clone(),
                    start_ns: s.start_time_unix_nano,
                    end_ns: s.end_time_unix_nano,
                    attributes: attrs(&s.attributes),
                    resource: resource.clone(),
                    status_code: s.status.as_ref().map(|st| st.code).unwrap_or(0),
                    status_message: s.status.as_ref().map(|st| st.message.clone()).unwrap_or_default(),
                });
            }
        }
    }
    out
}

#[derive(Default)]
struct Store {
    requests: Vec<ExportTraceServiceRequest>,
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
        self.store.lock().unwrap().requests.iter().flat_map(flatten).collect()
    }

    /// Every request received, as OTLP JSON-ready messages.
    pub fn requests(&self) -> Vec<ExportTraceServiceRequest> {
        self.store.lock().unwrap().requests.clone()
    }

    /// Waits until `cond` holds for the received spans.
    pub async fn wait_for(&self, timeout: Duration, cond: impl Fn(&[Span]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if cond(&self.spans()) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// HTTP/1.1 with keep-alive: request line, headers, a Content-Length or
/// chunked body; every request gets 200 and an empty protobuf response.
async fn serve(conn: TcpStream, store: Arc<Mutex<Store>>) {
    let mut conn = BufReader::new(conn);
    loop {
        let mut line = String::new();
        if conn.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0usize;
        let mut chunked = false;
        loop {
            let mut h = String::new();
            if conn.read_line(&mut h).await.unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                match k.trim().to_ascii_lowercase().as_str() {
                    "content-length" => length = v.trim().parse().unwrap_or(0),
                    "transfer-encoding" => chunked = v.trim().eq_ignore_ascii_case("chunked"),
                    _ => {}
                }
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                let mut size = String::new();
                conn.read_line(&mut size).await.ok();
                let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
                let mut chunk = vec![0u8; n + 2];
                if conn.read_exact(&mut chunk).await.is_err() {
                    return;
                }
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
        } else {
            body.resize(length, 0);
            if conn.read_exact(&mut body).await.is_err() {
                return;
            }
        }
        let status = match ExportTraceServiceRequest::decode(body.as_slice()) {
            Ok(req) if line.starts_with("POST") => {
                store.lock().unwrap().requests.push(req);
                "200 OK"
            }
            _ => "400 Bad Request",
        };
        let reply = format!("HTTP/1.1 {status}\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n");
        if conn.get_mut().write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// OTLP/JSON lines: one `ExportTraceServiceRequest` a line, as the
/// OpenTelemetry Collector's file exporter writes them.
pub fn to_json_lines(requests: &[ExportTraceServiceRequest]) -> String {
    requests
        .iter()
        .map(|r| serde_json::to_string(r).expect("OTLP request serializes"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reads OTLP/JSON: JSON lines, or one request document.
pub fn from_json(text: &str) -> Result<Vec<Span>, String> {
    let mut spans = Vec::new();
    let parse =
        |doc: &str| serde_json::from_str::<ExportTraceServiceRequest>(doc).map_err(|e| format!("not OTLP JSON: {e}"));
    match parse(text) {
        Ok(req) => spans.extend(flatten(&req)),
        Err(_) => {
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                spans.extend(flatten(&parse(line)?));
            }
        }
    }
    Ok(spans)
}

/// Spans of the first trace in a Jaeger HTTP API answer (`/api/traces`).
pub fn from_jaeger(text: &str) -> Result<Vec<Span>, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("Jaeger answer is not JSON: {e}"))?;
    let trace = v["data"].get(0).ok_or("Jaeger returned no trace")?;
    let services: HashMap<String, String> = trace["processes"]
        .as_object()
        .map(|p| {
            p.iter()
                .map(|(id, proc)| (id.clone(), proc["serviceName"].as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();
    let spans = trace["spans"].as_array().ok_or("Jaeger trace without spans")?;
    Ok(spans
        .iter()
        .map(|s| {
            let start_us = s["startTime"].as_u64().unwrap_or(0);
            let parent = s["references"]
                .as_array()
                .and_then(|r| r.iter().find(|r| r["refType"] == "CHILD_OF"))
                .and_then(|r| r["spanID"].as_str())
                .unwrap_or_default();
            let attributes = s["tags"]
                .as_array()
                .map(|t| {
                    t.iter()
                        .map(|t| {
                            (
                                t["key"].as_str().unwrap_or_default().to_string(),
                                t["value"].to_string(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            Span {
                service: services
                    .get(s["processID"].as_str().unwrap_or_default())
                    .cloned()
                    .unwrap_or_default(),
                trace_id: s["traceID"].as_str().unwrap_or_default().to_string(),
                span_id: s["spanID"].as_str().unwrap_or_default().to_string(),
                parent_span_id: parent.to_string(),
                name: s["operationName"].as_str().unwrap_or_default().to_string(),
                start_ns: start_us * 1000,
                end_ns: (start_us + s["duration"].as_u64().unwrap_or(0)) * 1000,
                attributes,
                resource: HashMap::new(),
                status_code: 0,
                status_message: String::new(),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_jaeger_answers() {
        let answer = r#"{"data":[{"traceID":"ab","spans":[
            {"traceID":"ab","spanID":"01","operationName":"Create","references":[],"startTime":1000,"duration":500,"processID":"p1","tags":[]},
            {"traceID":"ab","spanID":"02","operationName":"crun.create","references":[{"refType":"CHILD_OF","traceID":"ab","spanID":"01"}],"startTime":1100,"duration":100,"processID":"p2","tags":[{"key":"crun.args","type":"string","value":"create"}]}
        ],"processes":{"p1":{"serviceName":"voidbox"},"p2":{"serviceName":"voidbox-vm"}}}]}"#;
        let spans = from_jaeger(answer).unwrap();
        assert_eq!(spans[1].parent_span_id, "01");
        assert_eq!(spans[1].service, "voidbox-vm");
        assert_eq!(spans[1].start_ns, 1_100_000);
        assert_eq!(spans[0].end_ns, 1_500_000);
    }
}

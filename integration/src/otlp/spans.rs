//! Spans: flattened from OTLP export requests, OTLP/JSON files and Jaeger's
//! HTTP API answers.

use std::collections::HashMap;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

use super::{attrs, hex};

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
    pub events: Vec<Event>,
}

/// A span's event, flattened as the span's attributes are.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub name: String,
    pub time_ns: u64,
    pub attributes: HashMap<String, String>,
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
                    events: s
                        .events
                        .iter()
                        .map(|e| Event {
                            name: e.name.clone(),
                            time_ns: e.time_unix_nano,
                            attributes: attrs(&e.attributes),
                        })
                        .collect(),
                });
            }
        }
    }
    out
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
                events: Vec::new(),
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

//! Log records, flattened from `ExportLogsServiceRequest`s.

use std::collections::HashMap;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;

use super::{attrs, hex, value};

#[derive(Debug, Clone)]
pub struct Record {
    pub body: String,
    pub severity: String,
    /// Empty when the record carries no trace context.
    pub trace_id: String,
    pub span_id: String,
    pub time_ns: u64,
    pub attributes: HashMap<String, String>,
    pub resource: HashMap<String, String>,
}

pub fn flatten(req: &ExportLogsServiceRequest) -> Vec<Record> {
    let mut out = Vec::new();
    for rl in &req.resource_logs {
        let resource = rl.resource.as_ref().map(|r| attrs(&r.attributes)).unwrap_or_default();
        for r in rl.scope_logs.iter().flat_map(|s| &s.log_records) {
            out.push(Record {
                body: value(&r.body),
                severity: r.severity_text.clone(),
                trace_id: hex(&r.trace_id),
                span_id: hex(&r.span_id),
                time_ns: r.time_unix_nano.max(r.observed_time_unix_nano),
                attributes: attrs(&r.attributes),
                resource: resource.clone(),
            });
        }
    }
    out
}

//! Faults the receiver plays on trace exports over OTLP/HTTP, to provoke the
//! shim's export failures and its full host queue: refuse a service's next
//! N trace requests with 500 (which OTLP exporters do not retry), counting the spans
//! refused by service; or hold one service's trace requests, unanswered,
//! until released.

use std::collections::HashMap;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

#[derive(Debug, Default)]
pub struct Faults {
    /// Trace requests still to refuse, by the service they carry.
    pub fail_next: HashMap<String, usize>,
    /// Spans in the trace requests refused so far, by service.
    pub refused_spans: HashMap<String, usize>,
    pub refused_requests: usize,
    /// Trace requests waiting on a hold now.
    pub held: usize,
}

impl Faults {
    /// Whether to refuse this trace request (counting its spans if so).
    pub fn refuse(&mut self, body: &[u8]) -> bool {
        let services = spans_by_service(body);
        let Some(service) = services
            .iter()
            .map(|(s, _)| s)
            .find(|s| self.fail_next.get(*s).is_some_and(|n| *n > 0))
        else {
            return false;
        };
        *self.fail_next.get_mut(service).expect("found above") -= 1;
        self.refused_requests += 1;
        for (service, n) in services {
            *self.refused_spans.entry(service).or_default() += n;
        }
        true
    }
}

/// (service.name, spans) of each resource in a trace request.
pub fn spans_by_service(body: &[u8]) -> Vec<(String, usize)> {
    let Ok(req) = ExportTraceServiceRequest::decode(body) else {
        return Vec::new();
    };
    req.resource_spans
        .iter()
        .map(|rs| {
            let resource = rs
                .resource
                .as_ref()
                .map(|r| super::attrs(&r.attributes))
                .unwrap_or_default();
            let service = resource.get("service.name").cloned().unwrap_or_default();
            (service, rs.scope_spans.iter().map(|ss| ss.spans.len()).sum())
        })
        .collect()
}

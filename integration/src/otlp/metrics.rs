//! Metric points, flattened from `ExportMetricsServiceRequest`s.

use std::collections::HashMap;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value;

use super::attrs;

/// One data point: a gauge's or sum's value, or a histogram's count and sum.
#[derive(Debug, Clone)]
pub struct Point {
    pub name: String,
    pub unit: String,
    /// gauge, sum (a counter when monotonic) or histogram.
    pub kind: &'static str,
    /// Sums only: a counter, as opposed to an up-down counter.
    pub monotonic: bool,
    pub value: f64,
    /// Histograms only.
    pub count: u64,
    /// Histograms only: each explicit upper bound with the count of its
    /// bucket (not cumulative, as OTLP has it); the last, +Inf, bucket is
    /// `count` less their sum.
    pub buckets: Vec<(f64, u64)>,
    pub time_ns: u64,
    pub attributes: HashMap<String, String>,
    pub resource: HashMap<String, String>,
}

pub fn flatten(req: &ExportMetricsServiceRequest) -> Vec<Point> {
    let mut out = Vec::new();
    for rm in &req.resource_metrics {
        let resource = rm.resource.as_ref().map(|r| attrs(&r.attributes)).unwrap_or_default();
        for m in rm.scope_metrics.iter().flat_map(|s| &s.metrics) {
            let point = |kind, value, count, buckets, time_ns, attributes| Point {
                name: m.name.clone(),
                unit: m.unit.clone(),
                kind,
                monotonic: matches!(&m.data, Some(Data::Sum(s)) if s.is_monotonic),
                value,
                count,
                buckets,
                time_ns,
                attributes,
                resource: resource.clone(),
            };
            let number = |v: &Option<Value>| match v {
                Some(Value::AsDouble(d)) => *d,
                Some(Value::AsInt(i)) => *i as f64,
                None => 0.0,
            };
            match &m.data {
                Some(Data::Gauge(g)) => out.extend(g.data_points.iter().map(|p| {
                    point(
                        "gauge",
                        number(&p.value),
                        0,
                        vec![],
                        p.time_unix_nano,
                        attrs(&p.attributes),
                    )
                })),
                Some(Data::Sum(s)) => out.extend(s.data_points.iter().map(|p| {
                    point(
                        "sum",
                        number(&p.value),
                        0,
                        vec![],
                        p.time_unix_nano,
                        attrs(&p.attributes),
                    )
                })),
                Some(Data::Histogram(h)) => out.extend(h.data_points.iter().map(|p| {
                    point(
                        "histogram",
                        p.sum.unwrap_or(0.0),
                        p.count,
                        p.explicit_bounds
                            .iter()
                            .copied()
                            .zip(p.bucket_counts.iter().copied())
                            .collect(),
                        p.time_unix_nano,
                        attrs(&p.attributes),
                    )
                })),
                _ => {}
            }
        }
    }
    out
}

//! OTLP metric points into Prometheus through its remote-write receiver
//! (which Debian's build keeps, unlike the OTLP one): each point becomes the
//! series Prometheus 3's OTLP receiver would make of it (names and labels by
//! `prometheus::otlp_series_names` and `otlp_label_name`; `job` and
//! `instance` from the resource; promoted resource attributes), so the
//! dashboard's queries run on real data in a real Prometheus.

use std::collections::BTreeMap;

use prost::Message;

use crate::otlp::Point;
use crate::prometheus::{otlp_label_name, otlp_series_names};

/// Remote write 1.0 (prometheus/prompb/types.proto), the fields used.
#[derive(Clone, PartialEq, Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

#[derive(Clone, PartialEq, Message)]
pub struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Milliseconds since the epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// The series of `points`: label sets (sorted, `__name__` included) to
/// samples in time order, one per timestamp.
pub fn series(points: &[Point], promoted: &[&str]) -> WriteRequest {
    let mut all: BTreeMap<Vec<(String, String)>, BTreeMap<i64, f64>> = BTreeMap::new();
    for p in points {
        let mut base: BTreeMap<String, String> = BTreeMap::new();
        for key in promoted {
            if let Some(v) = p.resource.get(*key) {
                base.insert(otlp_label_name(key), v.clone());
            }
        }
        base.insert(
            "job".into(),
            p.resource.get("service.name").cloned().unwrap_or_default(),
        );
        base.insert(
            "instance".into(),
            p.resource.get("service.instance.id").cloned().unwrap_or_default(),
        );
        for (k, v) in &p.attributes {
            base.insert(otlp_label_name(k), v.clone());
        }
        let time = (p.time_ns / 1_000_000) as i64;
        let mut add = |name: &str, extra: Option<(&str, String)>, value: f64| {
            let mut labels = base.clone();
            labels.insert("__name__".into(), name.to_string());
            if let Some((k, v)) = extra {
                labels.insert(k.into(), v);
            }
            all.entry(labels.into_iter().collect()).or_default().insert(time, value);
        };
        let names = otlp_series_names(&p.name, &p.unit, p.kind, p.monotonic);
        if p.kind == "histogram" {
            let (bucket, sum, count) = (&names[0], &names[1], &names[2]);
            let mut cumulative = 0;
            for (bound, n) in &p.buckets {
                cumulative += n;
                add(bucket, Some(("le", format!("{bound}"))), cumulative as f64);
            }
            add(bucket, Some(("le", "+Inf".into())), p.count as f64);
            add(sum, None, p.value);
            add(count, None, p.count as f64);
        } else {
            add(&names[0], None, p.value);
        }
    }
    WriteRequest {
        timeseries: all
            .into_iter()
            .map(|(labels, samples)| TimeSeries {
                labels: labels.into_iter().map(|(name, value)| Label { name, value }).collect(),
                samples: samples
                    .into_iter()
                    .map(|(timestamp, value)| Sample { value, timestamp })
                    .collect(),
            })
            .collect(),
    }
}

/// `data` as a snappy block of literals only: valid snappy, uncompressed,
/// which is all the receiver needs (its Content-Encoding is snappy).
pub fn snappy_literal(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 60_000 * 5 + 10);
    let mut n = data.len() as u64;
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    for chunk in data.chunks(65_536) {
        // Literal tag: length - 1 in the two bytes after tag 61 << 2.
        let len = chunk.len() - 1;
        out.extend_from_slice(&[61 << 2, len as u8, (len >> 8) as u8]);
        out.extend_from_slice(chunk);
    }
    out
}

pub fn encode(request: &WriteRequest) -> Vec<u8> {
    snappy_literal(&request.encode_to_vec())
}

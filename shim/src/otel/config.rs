//! Where telemetry goes: the standard OpenTelemetry environment.
//!
//! Each signal's endpoint and protocol follow the OTLP rules in `endpoint`
//! (http/protobuf or grpc; a signal's own variables win over the general
//! ones). A signal with no endpoint is off; `OTEL_SDK_DISABLED=true` turns
//! every signal off and reads nothing else about them.

use std::time::Duration;

use super::endpoint::{Endpoint, LOGS, METRICS, TRACES};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtelConfig {
    pub traces: Option<Endpoint>,
    pub metrics: Option<Endpoint>,
    pub logs: Option<Endpoint>,
    pub service_name: String,
    /// Guest span buffer capacity (`VOIDBOX_TRACE_BUFFER`), if set.
    pub guest_buffer: Option<usize>,
    /// Spans in flight per host span pipeline (`VOIDBOX_SPAN_QUEUE`).
    pub span_queue: usize,
    /// How often metrics are exported (`OTEL_METRIC_EXPORT_INTERVAL`, ms).
    pub metric_interval: Duration,
    /// How often the guest is sampled (`VOIDBOX_TELEMETRY_INTERVAL`, ms).
    pub sample_interval: Duration,
    /// The log filter (`VOIDBOX_LOG`, tracing's directive syntax), if set.
    pub log_filter: Option<String>,
}

pub const DEFAULT_SERVICE: &str = "voidbox";
pub const GUEST_SERVICE: &str = "voidbox-vm";
const DEFAULT_METRIC_INTERVAL: Duration = Duration::from_secs(60);
const DEFAULT_SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

fn millis(name: &str, value: Option<String>, default: Duration) -> Result<Duration, String> {
    match value {
        None => Ok(default),
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|&ms| ms > 0)
            .map(Duration::from_millis)
            .ok_or_else(|| format!("{name}={v:?} is not a number of milliseconds")),
    }
}

impl OtelConfig {
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<OtelConfig, String> {
        let disabled = var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let signal = |s: &super::endpoint::Signal| if disabled { Ok(None) } else { s.endpoint(&var) };
        let guest_buffer = match var("VOIDBOX_TRACE_BUFFER") {
            Some(v) => Some(
                v.parse()
                    .map_err(|_| format!("VOIDBOX_TRACE_BUFFER={v:?} is not a number"))?,
            ),
            None => None,
        };
        let span_queue = match var("VOIDBOX_SPAN_QUEUE") {
            Some(v) => v
                .parse()
                .ok()
                .filter(|&n: &usize| n > 0)
                .ok_or_else(|| format!("VOIDBOX_SPAN_QUEUE={v:?} is not a positive number of spans"))?,
            None => super::queue::DEFAULT_BOUND,
        };
        Ok(OtelConfig {
            traces: signal(&TRACES)?,
            metrics: signal(&METRICS)?,
            logs: signal(&LOGS)?,
            // Not OTEL_SERVICE_NAME: a shim inherits containerd's environment,
            // and containerd's own name would hide which spans are whose.
            service_name: var("VOIDBOX_SERVICE_NAME").unwrap_or_else(|| DEFAULT_SERVICE.into()),
            guest_buffer,
            span_queue,
            metric_interval: millis(
                "OTEL_METRIC_EXPORT_INTERVAL",
                var("OTEL_METRIC_EXPORT_INTERVAL"),
                DEFAULT_METRIC_INTERVAL,
            )?,
            sample_interval: millis(
                "VOIDBOX_TELEMETRY_INTERVAL",
                var("VOIDBOX_TELEMETRY_INTERVAL"),
                DEFAULT_SAMPLE_INTERVAL,
            )?,
            log_filter: var("VOIDBOX_LOG"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otel::endpoint::Protocol;
    use std::collections::HashMap;

    fn cfg(pairs: &[(&str, &str)]) -> Result<OtelConfig, String> {
        let m: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        OtelConfig::from_vars(|k| m.get(k).cloned())
    }

    fn url(e: &Option<Endpoint>) -> Option<&str> {
        e.as_ref().map(|e| e.url.as_str())
    }

    #[test]
    fn endpoints_follow_the_otel_rules() {
        let c = cfg(&[]).unwrap();
        assert_eq!((c.traces, c.metrics, c.logs), (None, None, None));
        let c = cfg(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4318/")]).unwrap();
        assert_eq!(url(&c.traces), Some("https://collector:4318/v1/traces"));
        assert_eq!(url(&c.metrics), Some("https://collector:4318/v1/metrics"));
        assert_eq!(url(&c.logs), Some("https://collector:4318/v1/logs"));
        assert_eq!(c.service_name, "voidbox");
        let c = cfg(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://b:9999/custom"),
            ("OTEL_METRICS_EXPORTER", "none"),
            ("OTEL_SERVICE_NAME", "containerd"),
            ("VOIDBOX_SERVICE_NAME", "mine"),
        ])
        .unwrap();
        assert_eq!(
            url(&c.traces),
            Some("http://b:9999/custom"),
            "a signal endpoint is used as given"
        );
        assert_eq!(c.metrics, None);
        assert_eq!(url(&c.logs), Some("http://a:4318/v1/logs"));
        assert_eq!(c.service_name, "mine", "the shim's own name, not containerd's");
        let inherited = cfg(&[("OTEL_SERVICE_NAME", "containerd")]).unwrap();
        assert_eq!(inherited.service_name, "voidbox", "containerd's name is not the shim's");
        let only_metrics = cfg(&[("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://m:1/v1/metrics")]).unwrap();
        assert_eq!((only_metrics.traces, only_metrics.logs), (None, None));
        assert!(cfg(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318")]).is_err());
        let off = cfg(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a"),
            ("OTEL_SDK_DISABLED", "true"),
        ])
        .unwrap();
        assert_eq!((off.traces, off.metrics, off.logs), (None, None, None));
        assert_eq!(
            cfg(&[("OTEL_METRIC_EXPORT_INTERVAL", "500")]).unwrap().metric_interval,
            Duration::from_millis(500)
        );
        assert!(cfg(&[("VOIDBOX_TELEMETRY_INTERVAL", "soon")]).is_err());
    }

    #[test]
    fn grpc_sends_every_signal_to_the_endpoint_as_given() {
        let c = cfg(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ])
        .unwrap();
        let grpc = Some(Endpoint {
            url: "http://collector:4317".into(),
            protocol: Protocol::Grpc,
        });
        assert_eq!((&c.traces, &c.metrics, &c.logs), (&grpc, &grpc, &grpc));
    }

    #[test]
    fn mixed_protocols_per_signal() {
        let c = cfg(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://collector:4317"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/protobuf"),
        ])
        .unwrap();
        let protocols = [&c.traces, &c.metrics, &c.logs].map(|e| e.as_ref().unwrap().protocol);
        assert_eq!(
            protocols,
            [Protocol::Grpc, Protocol::HttpProtobuf, Protocol::HttpProtobuf]
        );
        assert_eq!(url(&c.traces), Some("http://collector:4317"));
        assert_eq!(url(&c.metrics), Some("http://collector:4318/v1/metrics"));
    }

    #[test]
    fn a_bad_protocol_refuses_the_whole_config() {
        let err = cfg(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ])
        .unwrap_err();
        assert_eq!(
            err,
            "OTEL_EXPORTER_OTLP_PROTOCOL=\"http/json\" is not a supported OTLP protocol: use grpc or http/protobuf"
        );
        let err = cfg(&[("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "foo")]).unwrap_err();
        assert!(err.starts_with("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL=\"foo\""), "{err}");
        // With the SDK disabled nothing about the signals is read.
        let off = cfg(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "foo"), ("OTEL_SDK_DISABLED", "true")]).unwrap();
        assert_eq!((off.traces, off.metrics, off.logs), (None, None, None));
    }

    #[test]
    fn the_span_queue_bound_is_a_positive_number() {
        assert_eq!(cfg(&[]).unwrap().span_queue, crate::otel::queue::DEFAULT_BOUND);
        assert_eq!(cfg(&[("VOIDBOX_SPAN_QUEUE", "100")]).unwrap().span_queue, 100);
        for bad in ["0", "-1", "lots"] {
            let err = cfg(&[("VOIDBOX_SPAN_QUEUE", bad)]).unwrap_err();
            assert!(err.starts_with("VOIDBOX_SPAN_QUEUE="), "{err}");
        }
    }
}

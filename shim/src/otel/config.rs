//! Where telemetry goes: the standard OpenTelemetry environment.
//!
//! A signal's own endpoint (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`,
//! `..._METRICS_ENDPOINT`, `..._LOGS_ENDPOINT`) is used as given (a full URL,
//! http or https); `OTEL_EXPORTER_OTLP_ENDPOINT` is a base that gets
//! `/v1/traces`, `/v1/metrics` or `/v1/logs`. A signal with no endpoint is off.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtelConfig {
    pub traces: Option<String>,
    pub metrics: Option<String>,
    pub logs: Option<String>,
    pub service_name: String,
    /// Guest span buffer capacity (`VOIDBOX_TRACE_BUFFER`), if set.
    pub guest_buffer: Option<usize>,
    /// How often metrics are exported (`OTEL_METRIC_EXPORT_INTERVAL`, ms).
    pub metric_interval: Duration,
    /// How often the guest is sampled (`VOIDBOX_TELEMETRY_INTERVAL`, ms).
    pub sample_interval: Duration,
}

pub const DEFAULT_SERVICE: &str = "voidbox";
pub const GUEST_SERVICE: &str = "voidbox-vm";
const DEFAULT_METRIC_INTERVAL: Duration = Duration::from_secs(60);
const DEFAULT_SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

fn url(name: &str, value: String) -> Result<String, String> {
    if value.starts_with("http://") || value.starts_with("https://") {
        Ok(value)
    } else {
        Err(format!("{name}={value:?} is not an http:// or https:// URL"))
    }
}

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
    pub fn from_env() -> Result<OtelConfig, String> {
        Self::from_vars(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))
    }

    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<OtelConfig, String> {
        let disabled = var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let base = var("OTEL_EXPORTER_OTLP_ENDPOINT");
        let signal = |own: &str, exporter: &str, path: &str| -> Result<Option<String>, String> {
            if disabled || var(exporter).is_some_and(|v| v == "none") {
                return Ok(None);
            }
            match (var(own), &base) {
                (Some(u), _) => url(own, u).map(Some),
                (None, Some(b)) => url(
                    "OTEL_EXPORTER_OTLP_ENDPOINT",
                    format!("{}{path}", b.trim_end_matches('/')),
                )
                .map(Some),
                (None, None) => Ok(None),
            }
        };
        let guest_buffer = match var("VOIDBOX_TRACE_BUFFER") {
            Some(v) => Some(
                v.parse()
                    .map_err(|_| format!("VOIDBOX_TRACE_BUFFER={v:?} is not a number"))?,
            ),
            None => None,
        };
        Ok(OtelConfig {
            traces: signal(
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "OTEL_TRACES_EXPORTER",
                "/v1/traces",
            )?,
            metrics: signal(
                "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
                "OTEL_METRICS_EXPORTER",
                "/v1/metrics",
            )?,
            logs: signal("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "OTEL_LOGS_EXPORTER", "/v1/logs")?,
            // Not OTEL_SERVICE_NAME: a shim inherits containerd's environment,
            // and containerd's own name would hide which spans are whose.
            service_name: var("VOIDBOX_SERVICE_NAME").unwrap_or_else(|| DEFAULT_SERVICE.into()),
            guest_buffer,
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
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(pairs: &[(&str, &str)]) -> Result<OtelConfig, String> {
        let m: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        OtelConfig::from_vars(|k| m.get(k).cloned())
    }

    #[test]
    fn endpoints_follow_the_otel_rules() {
        let c = cfg(&[]).unwrap();
        assert_eq!((c.traces, c.metrics, c.logs), (None, None, None));
        let c = cfg(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4318/")]).unwrap();
        assert_eq!(c.traces.as_deref(), Some("https://collector:4318/v1/traces"));
        assert_eq!(c.metrics.as_deref(), Some("https://collector:4318/v1/metrics"));
        assert_eq!(c.logs.as_deref(), Some("https://collector:4318/v1/logs"));
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
            c.traces.as_deref(),
            Some("http://b:9999/custom"),
            "a signal endpoint is used as given"
        );
        assert_eq!(c.metrics, None);
        assert_eq!(c.logs.as_deref(), Some("http://a:4318/v1/logs"));
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
}

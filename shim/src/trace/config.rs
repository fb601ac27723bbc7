//! Where spans go: the standard OpenTelemetry environment.
//!
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is used as given (a full URL, http or
//! https); `OTEL_EXPORTER_OTLP_ENDPOINT` is a base that gets `/v1/traces`.
//! With neither, tracing is off.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceConfig {
    pub endpoint: String,
    pub service_name: String,
    /// Guest span buffer capacity (`VOIDBOX_TRACE_BUFFER`), if set.
    pub guest_buffer: Option<usize>,
}

pub const DEFAULT_SERVICE: &str = "voidbox";
pub const GUEST_SERVICE: &str = "voidbox-vm";

impl TraceConfig {
    pub fn from_env() -> Result<Option<TraceConfig>, String> {
        Self::from_vars(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))
    }

    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<TraceConfig>, String> {
        if var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
            || var("OTEL_TRACES_EXPORTER").is_some_and(|v| v == "none")
        {
            return Ok(None);
        }
        let endpoint = match (
            var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
            var("OTEL_EXPORTER_OTLP_ENDPOINT"),
        ) {
            (Some(url), _) => url,
            (None, Some(base)) => format!("{}/v1/traces", base.trim_end_matches('/')),
            (None, None) => return Ok(None),
        };
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(format!("OTLP endpoint {endpoint:?} is not an http:// or https:// URL"));
        }
        let guest_buffer = match var("VOIDBOX_TRACE_BUFFER") {
            Some(v) => Some(
                v.parse()
                    .map_err(|_| format!("VOIDBOX_TRACE_BUFFER={v:?} is not a number"))?,
            ),
            None => None,
        };
        Ok(Some(TraceConfig {
            endpoint,
            service_name: var("OTEL_SERVICE_NAME").unwrap_or_else(|| DEFAULT_SERVICE.into()),
            guest_buffer,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Option<TraceConfig>, String> {
        let m: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        TraceConfig::from_vars(|k| m.get(k).cloned())
    }

    #[test]
    fn endpoints_follow_the_otel_rules() {
        assert_eq!(cfg(&[]).unwrap(), None);
        let c = cfg(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4318/")])
            .unwrap()
            .unwrap();
        assert_eq!(c.endpoint, "https://collector:4318/v1/traces");
        assert_eq!(c.service_name, "voidbox");
        let c = cfg(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://b:9999/custom"),
            ("OTEL_SERVICE_NAME", "mine"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            c.endpoint, "http://b:9999/custom",
            "the signal endpoint is used as given"
        );
        assert_eq!(c.service_name, "mine");
        assert!(cfg(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318")]).is_err());
        assert_eq!(
            cfg(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a"),
                ("OTEL_SDK_DISABLED", "true")
            ])
            .unwrap(),
            None
        );
    }
}

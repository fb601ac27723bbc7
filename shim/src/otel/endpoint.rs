//! Where one signal goes, and over which OTLP protocol: the endpoint and
//! protocol rules of the OpenTelemetry specification.
//!
//! - The protocol is the signal's own `OTEL_EXPORTER_OTLP_<SIGNAL>_PROTOCOL`,
//!   else `OTEL_EXPORTER_OTLP_PROTOCOL`, else `http/protobuf`. Only `grpc`
//!   and `http/protobuf` are spoken; any other value (`http/json` too) is
//!   refused rather than silently sent as something the collector may not
//!   expect.
//! - The signal's own `OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT` is used as given.
//! - `OTEL_EXPORTER_OTLP_ENDPOINT` is a base: over http/protobuf it gets
//!   `/v1/traces`, `/v1/metrics` or `/v1/logs`; over gRPC the service path
//!   comes from the protobuf service, so nothing is appended.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    HttpProtobuf,
    Grpc,
}

pub const PROTOCOL_VAR: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
pub const ENDPOINT_VAR: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

impl Protocol {
    /// `value` of variable `var`, or an error naming both and what would do.
    pub fn parse(var: &str, value: &str) -> Result<Protocol, String> {
        match value.trim() {
            "http/protobuf" => Ok(Protocol::HttpProtobuf),
            "grpc" => Ok(Protocol::Grpc),
            other => Err(format!(
                "{var}={other:?} is not a supported OTLP protocol: use grpc or http/protobuf"
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::HttpProtobuf => "http/protobuf",
            Protocol::Grpc => "grpc",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One signal's destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub url: String,
    pub protocol: Protocol,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.url, self.protocol)
    }
}

/// The variables of one signal.
pub struct Signal {
    pub endpoint_var: &'static str,
    pub protocol_var: &'static str,
    pub exporter_var: &'static str,
    /// What http/protobuf appends to the base endpoint.
    pub path: &'static str,
}

pub const TRACES: Signal = Signal {
    endpoint_var: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    protocol_var: "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    exporter_var: "OTEL_TRACES_EXPORTER",
    path: "/v1/traces",
};
pub const METRICS: Signal = Signal {
    endpoint_var: "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    protocol_var: "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
    exporter_var: "OTEL_METRICS_EXPORTER",
    path: "/v1/metrics",
};
pub const LOGS: Signal = Signal {
    endpoint_var: "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
    protocol_var: "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL",
    exporter_var: "OTEL_LOGS_EXPORTER",
    path: "/v1/logs",
};

fn url(var: &str, value: String) -> Result<String, String> {
    if value.starts_with("http://") || value.starts_with("https://") {
        Ok(value)
    } else {
        Err(format!("{var}={value:?} is not an http:// or https:// URL"))
    }
}

impl Signal {
    /// The signal's protocol. Checked even when the signal has no endpoint,
    /// so a typo is refused when it is made, not when an endpoint is added.
    pub fn protocol(&self, var: &impl Fn(&str) -> Option<String>) -> Result<Protocol, String> {
        match (var(self.protocol_var), var(PROTOCOL_VAR)) {
            (Some(own), _) => Protocol::parse(self.protocol_var, &own),
            (None, Some(all)) => Protocol::parse(PROTOCOL_VAR, &all),
            (None, None) => Ok(Protocol::HttpProtobuf),
        }
    }

    /// Where the signal goes; None when it is off (no endpoint, or its
    /// exporter is `none`).
    pub fn endpoint(&self, var: &impl Fn(&str) -> Option<String>) -> Result<Option<Endpoint>, String> {
        let protocol = self.protocol(var)?;
        if var(self.exporter_var).is_some_and(|v| v == "none") {
            return Ok(None);
        }
        let url = match (var(self.endpoint_var), var(ENDPOINT_VAR)) {
            (Some(own), _) => url(self.endpoint_var, own)?,
            (None, Some(base)) => {
                let base = base.trim_end_matches('/');
                match protocol {
                    Protocol::HttpProtobuf => url(ENDPOINT_VAR, format!("{base}{}", self.path))?,
                    Protocol::Grpc => url(ENDPOINT_VAR, base.to_string())?,
                }
            }
            (None, None) => return Ok(None),
        };
        Ok(Some(Endpoint { url, protocol }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| m.get(k).cloned()
    }

    fn at(url: &str, protocol: Protocol) -> Option<Endpoint> {
        Some(Endpoint {
            url: url.into(),
            protocol,
        })
    }

    #[test]
    fn http_protobuf_is_the_default_and_appends_the_signal_path() {
        let e = env(&[(ENDPOINT_VAR, "http://c:4318/")]);
        assert_eq!(
            TRACES.endpoint(&e),
            Ok(at("http://c:4318/v1/traces", Protocol::HttpProtobuf))
        );
        assert_eq!(
            METRICS.endpoint(&e),
            Ok(at("http://c:4318/v1/metrics", Protocol::HttpProtobuf))
        );
        assert_eq!(
            LOGS.endpoint(&e),
            Ok(at("http://c:4318/v1/logs", Protocol::HttpProtobuf))
        );
        let e = env(&[(ENDPOINT_VAR, "http://c:4318"), (PROTOCOL_VAR, "http/protobuf")]);
        assert_eq!(
            LOGS.endpoint(&e),
            Ok(at("http://c:4318/v1/logs", Protocol::HttpProtobuf))
        );
    }

    #[test]
    fn grpc_uses_the_base_endpoint_as_given() {
        let e = env(&[(ENDPOINT_VAR, "http://c:4317"), (PROTOCOL_VAR, "grpc")]);
        for s in [&TRACES, &METRICS, &LOGS] {
            assert_eq!(s.endpoint(&e), Ok(at("http://c:4317", Protocol::Grpc)));
        }
        // A trailing slash is no path of its own.
        let e = env(&[(ENDPOINT_VAR, "https://c:4317/"), (PROTOCOL_VAR, "grpc")]);
        assert_eq!(TRACES.endpoint(&e), Ok(at("https://c:4317", Protocol::Grpc)));
    }

    #[test]
    fn signal_endpoints_are_used_as_given_over_either_protocol() {
        let e = env(&[
            (ENDPOINT_VAR, "http://base:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t:4317"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
            (
                "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
                "http://m:9090/api/v1/otlp/v1/metrics",
            ),
        ]);
        assert_eq!(TRACES.endpoint(&e), Ok(at("http://t:4317", Protocol::Grpc)));
        assert_eq!(
            METRICS.endpoint(&e),
            Ok(at("http://m:9090/api/v1/otlp/v1/metrics", Protocol::HttpProtobuf))
        );
        assert_eq!(
            LOGS.endpoint(&e),
            Ok(at("http://base:4318/v1/logs", Protocol::HttpProtobuf))
        );
    }

    #[test]
    fn a_signal_protocol_wins_over_the_general_one() {
        let e = env(&[
            (ENDPOINT_VAR, "http://c:4317"),
            (PROTOCOL_VAR, "grpc"),
            ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/protobuf"),
        ]);
        assert_eq!(TRACES.endpoint(&e), Ok(at("http://c:4317", Protocol::Grpc)));
        assert_eq!(
            METRICS.endpoint(&e),
            Ok(at("http://c:4317/v1/metrics", Protocol::HttpProtobuf))
        );
        assert_eq!(LOGS.endpoint(&e), Ok(at("http://c:4317", Protocol::Grpc)));
    }

    #[test]
    fn unsupported_protocols_are_refused_naming_variable_value_and_choices() {
        for (var, value) in [
            (PROTOCOL_VAR, "http/json"),
            (PROTOCOL_VAR, "foo"),
            (PROTOCOL_VAR, "GRPC"),
            ("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "http/json"),
        ] {
            let e = env(&[(ENDPOINT_VAR, "http://c:4318"), (var, value)]);
            let signal = if var == PROTOCOL_VAR { &TRACES } else { &LOGS };
            let err = signal.endpoint(&e).unwrap_err();
            assert_eq!(
                err,
                format!("{var}={value:?} is not a supported OTLP protocol: use grpc or http/protobuf")
            );
        }
        // Refused before any endpoint is set, and for a signal that is off.
        assert!(TRACES.endpoint(&env(&[(PROTOCOL_VAR, "foo")])).is_err());
        let off = env(&[
            ("OTEL_TRACES_EXPORTER", "none"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json"),
        ]);
        assert!(TRACES.endpoint(&off).is_err());
        // A good signal protocol does not excuse a bad general one for the
        // signals it does not cover.
        let e = env(&[(PROTOCOL_VAR, "foo"), ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc")]);
        assert_eq!(TRACES.protocol(&e), Ok(Protocol::Grpc));
        assert!(METRICS.protocol(&e).is_err());
    }

    #[test]
    fn grpc_endpoints_must_be_urls_too() {
        let e = env(&[(ENDPOINT_VAR, "collector:4317"), (PROTOCOL_VAR, "grpc")]);
        assert_eq!(
            TRACES.endpoint(&e).unwrap_err(),
            "OTEL_EXPORTER_OTLP_ENDPOINT=\"collector:4317\" is not an http:// or https:// URL"
        );
    }

    #[test]
    fn no_endpoint_or_exporter_none_is_off_whatever_the_protocol() {
        assert_eq!(TRACES.endpoint(&env(&[(PROTOCOL_VAR, "grpc")])), Ok(None));
        let e = env(&[
            (ENDPOINT_VAR, "http://c:4317"),
            (PROTOCOL_VAR, "grpc"),
            ("OTEL_LOGS_EXPORTER", "none"),
        ]);
        assert_eq!(LOGS.endpoint(&e), Ok(None));
    }

    #[test]
    fn endpoints_print_with_their_protocol() {
        let e = at("http://c:4317", Protocol::Grpc).unwrap();
        assert_eq!(e.to_string(), "http://c:4317 (grpc)");
    }
}

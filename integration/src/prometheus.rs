//! A private Prometheus 3 (the unpacked Debian package in
//! VOIDBOX_PROMETHEUS_DIR, fetched by hack/fetch-debs.sh) and the bits of
//! its HTTP API the tests read; and the names Prometheus 3's OTLP receiver
//! gives OTLP metrics.
//!
//! Debian builds Prometheus without its OTLP receiver (its changelog:
//! "Disable OTLP Ingestion endpoint", until the Collector's libraries are
//! packaged; `--web.enable-otlp-receiver` is an unknown flag there), so the
//! naming is modelled here after Prometheus's rules instead of observed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct Prometheus {
    child: Child,
    dir: PathBuf,
    pub addr: String,
}

/// The Prometheus binary hack/with-assets.sh points at.
pub fn binary() -> PathBuf {
    let dir = std::env::var_os("VOIDBOX_PROMETHEUS_DIR")
        .expect("VOIDBOX_PROMETHEUS_DIR unset: run the tests through hack/with-assets.sh (make test)");
    Path::new(&dir).join("usr/bin/prometheus")
}

impl Prometheus {
    /// Starts Prometheus with `config` on a free loopback port, its TSDB in a
    /// fresh directory, and waits until it is ready (or fails with its log
    /// if it exits).
    pub async fn start(name: &str, config: &Path) -> Prometheus {
        let dir = std::env::temp_dir().join(format!("voidbox-prometheus-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // A port the kernel just handed out and took back: free, barring a race.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new(binary())
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--web.enable-remote-write-receiver")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", binary().display()));
        let mut prometheus = Prometheus { child, dir, addr };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok((200, _)) = prometheus.get("/-/ready").await {
                break;
            }
            if let Ok(Some(status)) = prometheus.child.try_wait() {
                panic!("Prometheus exited ({status}):\n{}", prometheus.log());
            }
            assert!(
                Instant::now() < deadline,
                "Prometheus not ready in 30 s:\n{}",
                prometheus.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        prometheus
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// GET `path` (with its query): status and body. HTTP/1.0, so the
    /// answer is never chunked and ends when the connection does.
    pub async fn get(&self, path: &str) -> std::io::Result<(u16, String)> {
        let mut conn = TcpStream::connect(&self.addr).await?;
        conn.write_all(format!("GET {path} HTTP/1.0\r\nHost: {}\r\n\r\n", self.addr).as_bytes())
            .await?;
        let mut answer = Vec::new();
        conn.read_to_end(&mut answer).await?;
        let answer = String::from_utf8_lossy(&answer);
        let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
        let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        Ok((status, body.to_string()))
    }

    /// Writes `request` through the remote-write receiver.
    pub async fn remote_write(&self, request: &crate::remote_write::WriteRequest) -> Result<(), String> {
        let body = crate::remote_write::encode(request);
        let mut conn = TcpStream::connect(&self.addr).await.map_err(|e| e.to_string())?;
        let head = format!(
            "POST /api/v1/write HTTP/1.0\r\nHost: {}\r\nContent-Type: application/x-protobuf\r\n\
             Content-Encoding: snappy\r\nX-Prometheus-Remote-Write-Version: 0.1.0\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        );
        conn.write_all(head.as_bytes()).await.map_err(|e| e.to_string())?;
        conn.write_all(&body).await.map_err(|e| e.to_string())?;
        let mut answer = Vec::new();
        conn.read_to_end(&mut answer).await.map_err(|e| e.to_string())?;
        let answer = String::from_utf8_lossy(&answer);
        match answer.split(' ').nth(1) {
            Some("204") | Some("200") => Ok(()),
            _ => Err(format!("remote write: {answer}")),
        }
    }

    /// An API call's `data`, or the error Prometheus gave.
    pub async fn api(&self, path: &str) -> Result<serde_json::Value, String> {
        let (status, body) = self.get(path).await.map_err(|e| format!("GET {path}: {e}"))?;
        let v: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| format!("GET {path}: {status}, not JSON ({e}): {body}"))?;
        if v["status"] != "success" {
            return Err(format!("GET {path}: {status} {}: {}", v["errorType"], v["error"]));
        }
        Ok(v["data"].clone())
    }

    /// An instant query, now: its result vector.
    pub async fn query(&self, expr: &str) -> Result<Vec<serde_json::Value>, String> {
        let data = self.api(&format!("/api/v1/query?query={}", urlencode(expr))).await?;
        if data["resultType"] != "vector" {
            return Err(format!("{expr}: result type {}", data["resultType"]));
        }
        Ok(data["result"].as_array().cloned().unwrap_or_default())
    }

    /// The metric names Prometheus has.
    pub async fn metric_names(&self) -> Vec<String> {
        let data = self.api("/api/v1/label/__name__/values").await.unwrap();
        data.as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap().to_string())
            .collect()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Percent-encoding for a query-string value (RFC 3986 unreserved kept).
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The series names Prometheus 3's OTLP receiver makes of an OTLP metric,
/// with its default translation (UnderscoreEscapingWithSuffixes): each run
/// of characters other than letters and digits becomes one `_`; the unit,
/// without `{annotations}`, is spelled out and appended unless the name
/// holds it already (`1` only for gauges, as `ratio`); counters (monotonic
/// sums) end in `_total`; a histogram is `_bucket`, `_sum` and `_count`.
pub fn otlp_series_names(name: &str, unit: &str, kind: &str, monotonic: bool) -> Vec<String> {
    let tokens: Vec<&str> = name
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|t| !t.is_empty())
        .collect();
    let mut out = tokens.join("_");
    let unit = match unit.split('{').next().unwrap_or_default() {
        "By" => "bytes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "%" => "percent",
        "1" if kind == "gauge" => "ratio",
        _ => "",
    };
    if !unit.is_empty() && !tokens.contains(&unit) {
        out = format!("{out}_{unit}");
    }
    match kind {
        "sum" if monotonic => vec![format!("{out}_total")],
        "histogram" => ["bucket", "sum", "count"]
            .iter()
            .map(|s| format!("{out}_{s}"))
            .collect(),
        _ => vec![out],
    }
}

/// A label name as Prometheus makes it of an attribute key.
pub fn otlp_label_name(key: &str) -> String {
    let name: String = key
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        format!("key_{name}")
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The examples of Prometheus's and OpenTelemetry's compatibility docs.
    #[test]
    fn names_as_prometheus_makes_them() {
        assert_eq!(
            otlp_series_names("http.server.duration", "s", "histogram", false)[0],
            "http_server_duration_seconds_bucket"
        );
        assert_eq!(
            otlp_series_names("system.memory.usage", "By", "gauge", false),
            ["system_memory_usage_bytes"]
        );
        assert_eq!(
            otlp_series_names("process.cpu.time", "s", "sum", true),
            ["process_cpu_time_seconds_total"]
        );
        assert_eq!(
            otlp_series_names("system.cpu.utilization", "1", "gauge", false),
            ["system_cpu_utilization_ratio"]
        );
        assert_eq!(otlp_series_names("vms.live", "{vm}", "sum", false), ["vms_live"]);
        assert_eq!(
            otlp_series_names("spans.dropped", "{span}", "sum", true),
            ["spans_dropped_total"]
        );
        assert_eq!(
            otlp_series_names("request.duration_seconds", "s", "gauge", false),
            ["request_duration_seconds"]
        );
        assert_eq!(otlp_label_name("rpc.method"), "rpc_method");
        assert_eq!(otlp_label_name("2xx.count"), "key_2xx_count");
    }
}

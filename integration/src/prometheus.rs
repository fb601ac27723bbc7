//! A private Prometheus 3.5.3 with its OTLP receiver on (built from
//! Debian's source by hack/build-prometheus.sh, in VOIDBOX_PROMETHEUS_DIR)
//! and the bits of its HTTP API the tests read.

use std::collections::{BTreeMap, BTreeSet};
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
            .arg("--web.enable-otlp-receiver")
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

    /// Where an OTLP/HTTP exporter sends metrics to this Prometheus
    /// (`OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`).
    pub fn otlp_metrics_endpoint(&self) -> String {
        format!("http://{}/api/v1/otlp/v1/metrics", self.addr)
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

    /// Every `voidbox_*` metric and the label names its series carry
    /// (`__name__` left out), from one series listing.
    pub async fn voidbox_labels(&self) -> Result<BTreeMap<String, BTreeSet<String>>, String> {
        let path = format!("/api/v1/series?match[]={}", urlencode("{__name__=~\"voidbox_.+\"}"));
        let data = self.api(&path).await?;
        let series = data
            .as_array()
            .ok_or_else(|| format!("GET {path}: not a list: {data}"))?;
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for labels in series.iter().filter_map(|s| s.as_object()) {
            let Some(name) = labels.get("__name__").and_then(|n| n.as_str()) else {
                return Err(format!("GET {path}: a series without __name__: {labels:?}"));
            };
            out.entry(name.to_string())
                .or_default()
                .extend(labels.keys().filter(|k| *k != "__name__").cloned());
        }
        Ok(out)
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

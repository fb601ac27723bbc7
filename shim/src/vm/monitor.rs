//! QEMU's QMP monitor, for the one thing the shim asks of it: to drop TCG's
//! translations and give the translation cache's pages back to the host
//! (`tb_flush`, an HMP command of voidbox's QEMU build, hack/build-qemu.sh).
//!
//! QMP speaks JSON, one object per line: a greeting, then a reply to each
//! command, with events interleaved.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// The whole exchange, connect to last reply: QEMU's monitor runs in its
/// main loop, which answers within milliseconds unless the VMM is stuck.
const BOUND: Duration = Duration::from_secs(5);
/// A reply line at most: QEMU's are short; a VMM sending more is broken.
const MAX_LINE: usize = 64 * 1024;

/// What asking for the release came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Release {
    /// The translations are dropped; their pages go back to the host.
    Done,
    /// This QEMU has no `tb_flush` (not voidbox's build): the cache stays.
    Unsupported,
}

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("QEMU's monitor at {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("QEMU's monitor at {path} gave no answer within {BOUND:?}")]
    Timeout { path: String },
    #[error("QEMU's monitor at {path}: {what}")]
    Protocol { path: String, what: String },
}

impl MonitorError {
    /// An I/O error on the monitor at `shown`, for `map_err`.
    fn io(shown: &str) -> impl Fn(std::io::Error) -> MonitorError + '_ {
        move |source| MonitorError::Io {
            path: shown.to_string(),
            source,
        }
    }
}

/// Asks the QEMU serving QMP at `path` to release its translation cache.
pub async fn release_translations(path: &Path) -> Result<Release, MonitorError> {
    let shown = path.display().to_string();
    match tokio::time::timeout(BOUND, exchange(path, &shown)).await {
        Ok(r) => r,
        Err(_) => Err(MonitorError::Timeout { path: shown }),
    }
}

async fn exchange(path: &Path, shown: &str) -> Result<Release, MonitorError> {
    let io = MonitorError::io(shown);
    let stream = UnixStream::connect(path).await.map_err(&io)?;
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    // The greeting, then capabilities negotiation, then the command.
    reply(&mut lines, shown, "QMP").await?;
    for command in [
        json!({"execute": "qmp_capabilities"}),
        json!({"execute": "human-monitor-command", "arguments": {"command-line": "tb_flush"}}),
    ] {
        let mut line = command.to_string();
        line.push('\n');
        write.write_all(line.as_bytes()).await.map_err(&io)?;
        let answer = reply(&mut lines, shown, "return").await?;
        if let Some(text) = answer.get("return").and_then(Value::as_str) {
            // HMP answers an unknown command in text, not as an error.
            if text.contains("unknown command") {
                return Ok(Release::Unsupported);
            }
        }
    }
    Ok(Release::Done)
}

/// The next line holding `key` (events are skipped); an `error` reply is an
/// error.
async fn reply<R>(lines: &mut BufReader<R>, shown: &str, key: &str) -> Result<Value, MonitorError>
where
    R: tokio::io::AsyncRead + Unpin,
{
    let protocol = |what: String| MonitorError::Protocol {
        path: shown.to_string(),
        what,
    };
    loop {
        let mut line = String::new();
        let n = AsyncReadExt::take(&mut *lines, MAX_LINE as u64)
            .read_line(&mut line)
            .await
            .map_err(MonitorError::io(shown))?;
        if n == 0 {
            return Err(protocol("closed".into()));
        }
        if !line.ends_with('\n') {
            return Err(protocol(format!("a line longer than {MAX_LINE} bytes")));
        }
        let value: Value = serde_json::from_str(&line).map_err(|e| protocol(format!("not JSON: {e}")))?;
        if let Some(error) = value.get("error") {
            return Err(protocol(format!("error {error}")));
        }
        if value.get(key).is_some() {
            return Ok(value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::UnixListener;

    /// A QMP peer that answers the release with `hmp_answer`.
    async fn peer(hmp_answer: &'static str) -> (tempfile::TempDir, tokio::task::JoinHandle<()>) {
        let dir = tempfile::tempdir().unwrap();
        let listener = UnixListener::bind(dir.path().join("qmp.sock")).unwrap();
        let task = tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            let (r, mut w) = s.into_split();
            let mut r = BufReader::new(r).lines();
            w.write_all(b"{\"QMP\": {\"version\": {}}}\n").await.unwrap();
            r.next_line().await.unwrap();
            w.write_all(b"{\"return\": {}}\n").await.unwrap();
            r.next_line().await.unwrap();
            w.write_all(b"{\"event\": \"RESUME\"}\n").await.unwrap();
            w.write_all(format!("{{\"return\": {}}}\n", serde_json::to_string(hmp_answer).unwrap()).as_bytes())
                .await
                .unwrap();
        });
        (dir, task)
    }

    #[tokio::test]
    async fn an_empty_answer_is_done_and_an_unknown_command_unsupported() {
        let (dir, task) = peer("").await;
        assert_eq!(
            release_translations(&dir.path().join("qmp.sock")).await.unwrap(),
            Release::Done
        );
        task.await.unwrap();
        let (dir, task) = peer("unknown command: 'tb_flush'\r\n").await;
        assert_eq!(
            release_translations(&dir.path().join("qmp.sock")).await.unwrap(),
            Release::Unsupported
        );
        task.await.unwrap();
    }
}

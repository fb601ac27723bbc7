//! kubelet's side of the CRI streaming server: what `kubectl exec -it`,
//! `kubectl attach` and `kubectl port-forward` become on a node. The
//! runtime's Exec, Attach and PortForward answer with a URL on containerd's
//! streaming server; kubelet proxies the client's stream to it. This client
//! speaks the server's WebSocket protocol (`v4.channel.k8s.io`): each binary
//! message starts with its channel's number.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const PROTOCOL: &str = "v4.channel.k8s.io";

/// remotecommand's channels.
pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
pub const ERROR: u8 = 3;
pub const RESIZE: u8 = 4;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// One stream session on the streaming server.
pub struct Session {
    ws: Ws,
}

/// What an exec session produced by the time the server closed it.
#[derive(Debug, Default, Clone)]
pub struct Transcript {
    pub stdout: String,
    pub stderr: String,
    /// The error channel's status (JSON): `"status":"Success"` on exit 0.
    pub status: String,
}

impl Session {
    /// Opens the stream at `url` (as Exec, Attach or PortForward returned it).
    pub async fn open(url: &str) -> Result<Session, String> {
        let url = url.replacen("http://", "ws://", 1).replacen("https://", "wss://", 1);
        let mut req = url.as_str().into_client_request().map_err(|e| e.to_string())?;
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", PROTOCOL.parse().expect("a header value"));
        let (ws, _) = tokio_tungstenite::connect_async(req)
            .await
            .map_err(|e| format!("open {url}: {e}"))?;
        Ok(Session { ws })
    }

    /// Sends `data` on `channel`.
    pub async fn send(&mut self, channel: u8, data: &[u8]) -> Result<(), String> {
        let mut frame = Vec::with_capacity(data.len() + 1);
        frame.push(channel);
        frame.extend_from_slice(data);
        self.ws
            .send(Message::Binary(frame.into()))
            .await
            .map_err(|e| format!("send on channel {channel}: {e}"))
    }

    /// Tells the process its terminal's size.
    pub async fn resize(&mut self, width: u16, height: u16) -> Result<(), String> {
        let size = format!(r#"{{"Width":{width},"Height":{height}}}"#);
        self.send(RESIZE, size.as_bytes()).await
    }

    /// The next (channel, data) message, `None` when the server closed the
    /// stream, an error after `timeout`.
    pub async fn recv(&mut self, timeout: Duration) -> Result<Option<(u8, Vec<u8>)>, String> {
        loop {
            let next = tokio::time::timeout(timeout, self.ws.next())
                .await
                .map_err(|_| format!("nothing from the streaming server in {timeout:?}"))?;
            match next {
                None | Some(Ok(Message::Close(_))) => return Ok(None),
                Some(Ok(Message::Binary(b))) if !b.is_empty() => return Ok(Some((b[0], b[1..].to_vec()))),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(format!("streaming server: {e}")),
            }
        }
    }

    /// Reads until stdout holds `needle` (and returns all stdout so far).
    pub async fn read_until(&mut self, needle: &str, timeout: Duration) -> Result<String, String> {
        let deadline = tokio::time::Instant::now() + timeout;
        let (mut out, mut other) = (String::new(), String::new());
        while !out.contains(needle) {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.recv(left).await? {
                Some((STDOUT, data)) => out.push_str(&String::from_utf8_lossy(&data)),
                Some((channel, data)) => other.push_str(&format!("[{channel}] {}", String::from_utf8_lossy(&data))),
                None => return Err(format!("the stream ended before {needle:?}; stdout: {out:?}; {other}")),
            }
        }
        Ok(out)
    }

    /// Reads everything until the server closes the stream.
    pub async fn finish(mut self, timeout: Duration) -> Result<Transcript, String> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut t = Transcript::default();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.recv(left).await? {
                Some((STDOUT, d)) => t.stdout.push_str(&String::from_utf8_lossy(&d)),
                Some((STDERR, d)) => t.stderr.push_str(&String::from_utf8_lossy(&d)),
                Some((ERROR, d)) => t.status.push_str(&String::from_utf8_lossy(&d)),
                Some(_) => {}
                None => return Ok(t),
            }
        }
    }
}

/// One port-forward connection (`kubectl port-forward`, one port): sends
/// `request` to `port` in the pod and returns what came back once it holds
/// `until`, or all that came within `wait`. Like kubectl, it then closes
/// the stream: the server keeps it open while the client's side is.
/// What the error channel says is an error.
pub async fn forward_once(
    url: &str,
    port: u16,
    request: &[u8],
    until: &str,
    wait: Duration,
) -> Result<Vec<u8>, String> {
    let sep = if url.contains('?') { '&' } else { '?' };
    let mut s = Session::open(&format!("{url}{sep}port={port}")).await?;
    // Channel 0 carries the data, 1 the errors; each starts with the port.
    s.send(0, request).await?;
    let deadline = tokio::time::Instant::now() + wait;
    let (mut data, mut error) = (Vec::new(), Vec::new());
    let (mut data_port, mut error_port) = (false, false);
    while !String::from_utf8_lossy(&data).contains(until) {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match s.recv(left).await {
            Ok(Some((0, mut d))) => {
                if !data_port {
                    d.drain(..2.min(d.len()));
                    data_port = true;
                }
                data.extend(d);
            }
            Ok(Some((1, mut d))) => {
                if !error_port {
                    d.drain(..2.min(d.len()));
                    error_port = true;
                }
                error.extend(d);
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    let _ = s.ws.close(None).await;
    if error.is_empty() {
        Ok(data)
    } else {
        Err(String::from_utf8_lossy(&error).into_owned())
    }
}

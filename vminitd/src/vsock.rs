//! The guest dials the host; TTRPC is served on the dialed connection.
//!
//! Guest-initiated connections look the same to the host under every backend
//! (a unix socket per port), and the host learns the guest is ready the
//! moment it accepts, without polling.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::oneshot;
use tokio_vsock::{VsockAddr, VsockStream, VMADDR_CID_HOST};
use tracing::{info, warn};
use ttrpc::r#async::transport::Listener;

const FIRST_RETRY: Duration = Duration::from_millis(5);
const MAX_RETRY: Duration = Duration::from_secs(1);

/// A "listener" whose connections are made by dialing the host on `port`.
/// When a connection closes, the next one is dialed, so a host that drops the
/// connection can accept again.
pub fn dial_listener(port: u32, on_connect: Arc<dyn Fn() + Send + Sync>) -> Listener {
    let connections = futures::stream::unfold(None, move |previous: Option<oneshot::Receiver<()>>| {
        let on_connect = on_connect.clone();
        async move {
            if let Some(closed) = previous {
                let _ = closed.await;
                info!("host connection closed; dialing again");
            }
            let stream = dial(port).await;
            on_connect();
            let (closed_tx, closed_rx) = oneshot::channel();
            let conn = Tracked {
                inner: stream,
                _closed: closed_tx,
            };
            Some((Ok::<_, io::Error>(conn), Some(closed_rx)))
        }
    });
    Listener::new(connections)
}

async fn dial(port: u32) -> VsockStream {
    let mut delay = FIRST_RETRY;
    let mut warned = false;
    loop {
        match VsockStream::connect(VsockAddr::new(VMADDR_CID_HOST, port)).await {
            Ok(stream) => return stream,
            Err(e) => {
                if !warned {
                    warn!("dialing host vsock port {port}: {e}; retrying");
                    warned = true;
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_RETRY);
            }
        }
    }
}

/// A connection that tells the dialer when the server drops it.
struct Tracked {
    inner: VsockStream,
    _closed: oneshot::Sender<()>,
}

impl AsyncRead for Tracked {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

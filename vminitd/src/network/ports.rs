//! A pod's port-forward, guest end: a connection to the port on the
//! guest's loopback (where the pod's containers listen), joined to a stream
//! dialed to the host's stdio port. The host relays it to the connection
//! containerd made in the pod's network namespace.

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_vsock::{VsockAddr, VsockStream, VMADDR_CID_HOST};
use tracing::debug;

use crate::error::Error;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects to 127.0.0.1:`port`, then to the host as stream `stream`, and
/// copies between the two until either side closes.
pub async fn connect(port: u32, stream: u64) -> Result<(), Error> {
    let port = u16::try_from(port)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| Error::Invalid(format!("port {port} is not a TCP port")))?;
    let refused = |e: std::io::Error| Error::Port {
        port,
        reason: e.to_string(),
    };
    let mut tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(("127.0.0.1", port)))
        .await
        .map_err(|_| Error::Port {
            port,
            reason: format!("no answer within {CONNECT_TIMEOUT:?}"),
        })?
        .map_err(refused)?;
    let mut host = VsockStream::connect(VsockAddr::new(VMADDR_CID_HOST, voidbox_api::STDIO_PORT))
        .await
        .map_err(|e| Error::io("dial the host for port-forward stream", "vsock", e))?;
    host.write_all(&stream.to_le_bytes())
        .await
        .map_err(|e| Error::io("name port-forward stream", "vsock", e))?;
    tokio::spawn(async move {
        match tokio::io::copy_bidirectional(&mut tcp, &mut host).await {
            Ok((up, down)) => debug!(port, up, down, "port-forward connection closed"),
            Err(e) => debug!(port, "port-forward connection: {e}"),
        }
    });
    Ok(())
}

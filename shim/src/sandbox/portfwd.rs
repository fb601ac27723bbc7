//! A pod's port-forward: the connections containerd makes to the pod's
//! loopback on the host (captured by `net::LoopbackCapture`), each relayed
//! to the same port on the guest's loopback, where the pod's containers
//! listen. vminitd connects there and dials the connection back as a
//! stream of the stdio mux (`System.ConnectPort`).

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};
use voidbox_api::system::ConnectPortRequest;

use crate::guest::GuestClient;
use crate::io::StreamMux;
use crate::net::loopback::original_port;

/// How long the guest may take to dial a connected port back.
const STREAM_TIMEOUT: Duration = Duration::from_secs(10);

/// Relays every connection `listener` accepts, for as long as the task runs.
pub fn start(
    listener: std::net::TcpListener,
    guest: GuestClient,
    mux: Arc<StreamMux>,
) -> std::io::Result<JoinHandle<()>> {
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    Ok(tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((conn, _)) => {
                    tokio::spawn(relay(conn, guest.clone(), mux.clone()));
                }
                Err(e) => return warn!("port-forward listener: {e}"),
            }
        }
    }))
}

async fn relay(mut conn: TcpStream, guest: GuestClient, mux: Arc<StreamMux>) {
    let port = match original_port(&conn) {
        Ok(p) => p,
        Err(e) => return warn!("a port-forward connection without its port: {e}"),
    };
    let (stream, connected) = mux.allocate();
    let req = ConnectPortRequest {
        port: port.into(),
        stream,
        ..Default::default()
    };
    // Refused, the connection closes: containerd reports the pod's port
    // as it would a runc pod's with nothing listening.
    if let Err(e) = guest.connect_port(&req).await {
        mux.cancel(stream);
        return info!(port, "port-forward: {e}");
    }
    let mut guest_end = match tokio::time::timeout(STREAM_TIMEOUT, connected).await {
        Ok(Ok(s)) => s,
        _ => {
            mux.cancel(stream);
            return warn!(port, "port-forward: the guest did not dial its end back");
        }
    };
    match tokio::io::copy_bidirectional(&mut conn, &mut guest_end).await {
        Ok((to_guest, from_guest)) => debug!(port, to_guest, from_guest, "port-forward connection closed"),
        Err(e) => debug!(port, "port-forward connection: {e}"),
    }
}

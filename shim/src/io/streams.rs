//! Stdio streams from the guest. vminitd dials the host's stdio port once per
//! stream and sends the stream's id (8 bytes, little endian); the mux hands
//! each connection to whoever allocated that id.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::UnixStream;
use tokio::sync::oneshot;
use tracing::warn;

use crate::vm::MicroVm;

const ID_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Default)]
pub struct StreamMux {
    next: AtomicU64,
    waiting: Mutex<HashMap<u64, oneshot::Sender<UnixStream>>>,
}

impl StreamMux {
    pub fn new() -> Arc<Self> {
        Arc::new(StreamMux {
            next: AtomicU64::new(1),
            waiting: Mutex::new(HashMap::new()),
        })
    }

    /// A fresh stream id and the receiver of its connection.
    pub fn allocate(&self) -> (u64, oneshot::Receiver<UnixStream>) {
        let id = self.next.fetch_add(1, Ordering::SeqCst);
        let (tx, rx) = oneshot::channel();
        self.waiting.lock().expect("mux lock").insert(id, tx);
        (id, rx)
    }

    /// Forgets an id whose stream will never come.
    pub fn cancel(&self, id: u64) {
        self.waiting.lock().expect("mux lock").remove(&id);
    }

    /// Accepts the guest's stdio connections until the VM ends.
    pub async fn serve(self: Arc<Self>, vm: Arc<MicroVm>) {
        while let Ok(mut stream) = vm.accept(voidbox_api::STDIO_PORT).await {
            let mux = self.clone();
            tokio::spawn(async move {
                let mut id = [0u8; 8];
                match tokio::time::timeout(ID_TIMEOUT, stream.read_exact(&mut id)).await {
                    Ok(Ok(_)) => {}
                    _ => return warn!("a stdio stream from the guest sent no id"),
                }
                let id = u64::from_le_bytes(id);
                let waiter = mux.waiting.lock().expect("mux lock").remove(&id);
                match waiter {
                    Some(tx) => {
                        let _ = tx.send(stream);
                    }
                    None => warn!("the guest opened unknown stdio stream {id}"),
                }
            });
        }
    }
}

//! Stdio streams from the guest. vminitd dials the host's stdio port once per
//! stream and sends the stream's id (8 bytes, little endian); the mux hands
//! each connection to whoever allocated that id.
//!
//! The guest is untrusted: a connection that sends no id in time, an id no
//! one allocated, or one more than [`MAX_PENDING_STREAMS`] connections still
//! owing their id, is closed and reported through the mux's `on_reject`
//! (this room stands below `otel`: the sandbox counts them).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::UnixStream;
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};
use tracing::warn;

use crate::vm::MicroVm;

/// How long a new connection has to send its id.
const ID_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections that may wait for their id at once; more are closed at
/// once, so a guest cannot pile up the host's tasks and sockets.
pub const MAX_PENDING_STREAMS: usize = 64;

/// Why the mux closed a stream from the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamRejection {
    /// Fewer than 8 bytes before EOF or the timeout.
    NoId,
    /// An id the host never allocated, or already connected.
    UnknownId,
    /// Over [`MAX_PENDING_STREAMS`] connections owing their id.
    TooManyPending,
}

impl StreamRejection {
    /// The `reason` of `voidbox.guest.rejected`.
    pub fn reason(self) -> &'static str {
        match self {
            StreamRejection::NoId => "stream_no_id",
            StreamRejection::UnknownId => "stream_unknown_id",
            StreamRejection::TooManyPending => "stream_too_many_pending",
        }
    }
}

/// Told of each stream the mux closes unrouted.
pub type OnReject = Box<dyn Fn(StreamRejection) + Send + Sync>;

pub struct StreamMux {
    next: AtomicU64,
    waiting: Mutex<HashMap<u64, oneshot::Sender<UnixStream>>>,
    /// Permits for connections still owing their id.
    pending: Arc<Semaphore>,
    on_reject: OnReject,
}

/// Reads a stream's id: None when the guest sends fewer than 8 bytes
/// before EOF or `timeout`.
async fn read_id<R: AsyncRead + Unpin>(stream: &mut R, timeout: Duration) -> Option<u64> {
    let mut id = [0u8; 8];
    match tokio::time::timeout(timeout, stream.read_exact(&mut id)).await {
        Ok(Ok(_)) => Some(u64::from_le_bytes(id)),
        _ => None,
    }
}

impl StreamMux {
    /// A mux that tells `on_reject` of each stream it closes unrouted.
    pub fn new(on_reject: OnReject) -> Arc<Self> {
        Arc::new(StreamMux {
            next: AtomicU64::new(1),
            waiting: Mutex::new(HashMap::new()),
            pending: Arc::new(Semaphore::new(MAX_PENDING_STREAMS)),
            on_reject,
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

    fn reject(&self, why: StreamRejection) {
        (self.on_reject)(why);
    }

    /// A place for one more connection owing its id, if there is one.
    fn admit(&self) -> Option<OwnedSemaphorePermit> {
        let permit = self.pending.clone().try_acquire_owned().ok();
        if permit.is_none() {
            self.reject(StreamRejection::TooManyPending);
        }
        permit
    }

    /// Reads a connection's id and hands it to whoever allocated that id.
    async fn route(&self, mut stream: UnixStream, timeout: Duration) {
        let Some(id) = read_id(&mut stream, timeout).await else {
            self.reject(StreamRejection::NoId);
            return warn!("a stdio stream from the guest sent no id");
        };
        let waiter = self.waiting.lock().expect("mux lock").remove(&id);
        match waiter {
            Some(tx) => {
                let _ = tx.send(stream);
            }
            None => {
                self.reject(StreamRejection::UnknownId);
                warn!("the guest opened unknown stdio stream {id}");
            }
        }
    }

    /// Accepts the guest's stdio connections until the VM ends.
    pub async fn serve(self: Arc<Self>, vm: Arc<MicroVm>) {
        while let Ok(stream) = vm.accept(voidbox_api::STDIO_PORT).await {
            // Dropping the stream closes it.
            let Some(permit) = self.admit() else { continue };
            let mux = self.clone();
            tokio::spawn(async move {
                mux.route(stream, ID_TIMEOUT).await;
                drop(permit);
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    /// A mux that records what it rejects.
    fn mux() -> (Arc<StreamMux>, Arc<Mutex<Vec<StreamRejection>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        (StreamMux::new(Box::new(move |r| log.lock().unwrap().push(r))), seen)
    }

    /// Routes a connection whose guest end writes `bytes` and closes.
    async fn route(mux: &StreamMux, bytes: &[u8]) {
        let (host, mut guest) = UnixStream::pair().unwrap();
        guest.write_all(bytes).await.unwrap();
        guest.shutdown().await.unwrap();
        mux.route(host, Duration::from_secs(1)).await;
    }

    #[tokio::test]
    async fn streams_without_an_id_or_with_an_unknown_one_are_rejected() {
        let (mux, seen) = mux();
        let (id, mut rx) = mux.allocate();
        route(&mux, &[1, 2, 3]).await;
        route(&mux, &(id + 1).to_le_bytes()).await;
        assert_eq!(
            *seen.lock().unwrap(),
            [StreamRejection::NoId, StreamRejection::UnknownId]
        );
        assert!(rx.try_recv().is_err(), "nothing routed");
        route(&mux, &id.to_le_bytes()).await;
        assert!(rx.try_recv().is_ok(), "routed to its allocator");
        // An id connects once.
        route(&mux, &id.to_le_bytes()).await;
        assert_eq!(seen.lock().unwrap().last(), Some(&StreamRejection::UnknownId));
    }

    #[tokio::test]
    async fn a_silent_stream_times_out() {
        let (mux, seen) = mux();
        let (host, _guest) = UnixStream::pair().unwrap();
        mux.route(host, Duration::from_millis(20)).await;
        assert_eq!(*seen.lock().unwrap(), [StreamRejection::NoId]);
    }

    #[test]
    fn connections_owing_their_id_are_bounded() {
        let (mux, seen) = mux();
        let permits: Vec<_> = (0..MAX_PENDING_STREAMS).map_while(|_| mux.admit()).collect();
        assert_eq!(permits.len(), MAX_PENDING_STREAMS);
        assert!(mux.admit().is_none());
        assert_eq!(*seen.lock().unwrap(), [StreamRejection::TooManyPending]);
        drop(permits);
        assert!(mux.admit().is_some(), "a permit comes back with its connection's end");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]

        #[test]
        fn any_first_bytes_in_any_pieces_route_or_reject(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..16),
            split in 0usize..16,
            use_real_id in proptest::bool::ANY,
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                // The id, arriving in two reads.
                let split = split.min(bytes.len());
                let mut pieces = (&bytes[..split]).chain(&bytes[split..]);
                let id = read_id(&mut pieces, Duration::from_secs(1)).await;
                let expected = bytes.get(..8).map(|b| u64::from_le_bytes(b.try_into().unwrap()));
                assert_eq!(id, expected);

                let (mux, seen) = mux();
                let (allocated, mut rx) = mux.allocate();
                let mut bytes = bytes;
                if use_real_id && bytes.len() >= 8 {
                    bytes[..8].copy_from_slice(&allocated.to_le_bytes());
                }
                route(&mux, &bytes).await;
                let routed = rx.try_recv().is_ok();
                let seen = seen.lock().unwrap().clone();
                match bytes.get(..8).map(|b| u64::from_le_bytes(b.try_into().unwrap())) {
                    None => assert_eq!(seen, [StreamRejection::NoId]),
                    Some(id) if id == allocated => assert!(routed && seen.is_empty()),
                    Some(_) => assert!(!routed && seen == [StreamRejection::UnknownId]),
                }
            });
        }
    }
}

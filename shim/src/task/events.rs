//! Publishing task events to containerd.

use async_trait::async_trait;
use containerd_shim::publisher::RemotePublisher;
use protobuf::MessageDyn;
use tracing::{debug, warn};

#[async_trait]
pub trait Publisher: Send + Sync {
    async fn publish(&self, topic: &'static str, event: Box<dyn MessageDyn>);
}

/// containerd's TTRPC events service (`TTRPC_ADDRESS`). The publisher queues
/// and retries, so a slow containerd never blocks a task operation.
pub struct Containerd {
    publisher: RemotePublisher,
    namespace: String,
}

impl Containerd {
    pub async fn connect(address: &str, namespace: &str) -> Result<Self, String> {
        let publisher = RemotePublisher::new(address)
            .await
            .map_err(|e| format!("connect to containerd's events at {address}: {e}"))?;
        Ok(Containerd {
            publisher,
            namespace: namespace.to_string(),
        })
    }
}

#[async_trait]
impl Publisher for Containerd {
    async fn publish(&self, topic: &'static str, event: Box<dyn MessageDyn>) {
        debug!(topic, "publish {event}");
        if let Err(e) = self
            .publisher
            .publish(Default::default(), topic, &self.namespace, event)
            .await
        {
            warn!(topic, "publishing event: {e}");
        }
    }
}

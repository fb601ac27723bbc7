//! `voidbox.telemetry.v1.Telemetry`: samples streamed to the host. Nothing
//! is sampled unless a stream is open.

pub mod sample;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tracing::{info, Span};
use ttrpc::r#async::{ServerStreamSender, TtrpcContext};
use voidbox_api::telemetry::{Sample, StreamRequest};
use voidbox_api::telemetry_ttrpc::Telemetry;

use crate::services::handler::handle;

const DEFAULT_INTERVAL: Duration = Duration::from_millis(1000);

pub struct TelemetryService {
    /// Streams opened since boot; System.Info reports it.
    pub streams: Arc<AtomicU64>,
}

#[async_trait]
impl Telemetry for TelemetryService {
    async fn stream(
        &self,
        ctx: &TtrpcContext,
        req: StreamRequest,
        sender: ServerStreamSender<Sample>,
    ) -> ttrpc::Result<()> {
        handle(ctx, Span::none(), async move {
            let n = self.streams.fetch_add(1, Ordering::SeqCst) + 1;
            let interval = match req.interval_ms {
                0 => DEFAULT_INTERVAL,
                ms => Duration::from_millis(ms.max(50)),
            };
            // The first sample at once: the host opens this stream one
            // interval after the VM is up, not while the container's start
            // is under way and every guest cycle counts.
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // On the console, which the host logs: whether the guest ever
            // sampled is visible from the outside. With the first sample, for
            // the same reason: a line, its formatting's first run above all,
            // costs this emulated guest (docs/performance-tracing.md).
            info!("telemetry stream sampling ({n} since boot): a sample every {interval:?}");
            let mut sent = 0;
            while req.max_samples == 0 || sent < req.max_samples {
                tick.tick().await;
                // A failed send means the host hung up: stop sampling.
                sender.send(&sample::take()).await?;
                sent += 1;
            }
            Ok::<_, ttrpc::Error>(())
        })
        .await
    }
}

//! `voidbox.debug.v1.Debug`: test-only requests, compiled in only with the
//! `debug-rpcs` feature (the test image). A release guest has no handler for
//! any of them.

use std::io::Read;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tracing::{info, info_span, Span};
use ttrpc::r#async::TtrpcContext;
use voidbox_api::debug::*;
use voidbox_api::debug_ttrpc::Debug;

use crate::error::Error;
use crate::mounts;
use crate::services::handler::handle;

const DEFAULT_READ_LIMIT: u64 = 1 << 20;
/// TTRPC messages are capped at 4 MiB; stay well under it.
const MAX_READ_LIMIT: u64 = 3 << 20;

pub struct DebugService;

#[async_trait]
impl Debug for DebugService {
    async fn read_file(&self, ctx: &TtrpcContext, req: ReadFileRequest) -> ttrpc::Result<ReadFileResponse> {
        handle(ctx, Span::none(), async {
            let limit = match req.max_bytes {
                0 => DEFAULT_READ_LIMIT,
                n => n.min(MAX_READ_LIMIT),
            };
            let file = std::fs::File::open(&req.path).map_err(|e| Error::io("open", &req.path, e))?;
            let mut data = Vec::new();
            // Read one byte past the limit to learn whether the file is longer.
            file.take(limit + 1)
                .read_to_end(&mut data)
                .map_err(|e| Error::io("read", &req.path, e))?;
            let truncated = data.len() as u64 > limit;
            data.truncate(limit as usize);
            Ok::<_, Error>(ReadFileResponse {
                data,
                truncated,
                ..Default::default()
            })
        })
        .await
    }

    async fn mount(&self, ctx: &TtrpcContext, req: MountRequest) -> ttrpc::Result<MountResponse> {
        let span = info_span!("mount", fstype = %req.fstype, source = %req.source, target = %req.target);
        handle(ctx, span, async {
            mounts::mount_requested(&req.fstype, &req.source, &req.target, &req.options)?;
            info!("mounted {} ({}) on {}", req.source, req.fstype, req.target);
            Ok::<_, Error>(MountResponse::default())
        })
        .await
    }

    async fn flood(&self, ctx: &TtrpcContext, req: FloodRequest) -> ttrpc::Result<FloodResponse> {
        let span = info_span!("traces.flood", count = req.count, per_second = req.per_second);
        handle(ctx, span, async move {
            let span = Span::current();
            // A tight (or paced) loop: on a blocking thread, so it starves no other task.
            let elapsed = tokio::task::spawn_blocking(move || {
                span.in_scope(|| {
                    let start = Instant::now();
                    for i in 0..req.count {
                        if req.per_second > 0 {
                            // Span i is due at i / per_second: no catching up in bursts.
                            let due = start + Duration::from_secs_f64(i as f64 / req.per_second as f64);
                            std::thread::sleep(due.saturating_duration_since(Instant::now()));
                        }
                        let _s = info_span!("flood.span", i).entered();
                    }
                    start.elapsed()
                })
            })
            .await
            .map_err(|e| ttrpc::Error::Others(e.to_string()))?;
            Ok::<_, ttrpc::Error>(FloodResponse {
                elapsed_ns: elapsed.as_nanos() as u64,
                ..Default::default()
            })
        })
        .await
    }

    async fn sample(&self, ctx: &TtrpcContext, _req: SampleRequest) -> ttrpc::Result<SampleResponse> {
        use voidbox_api::otel::sample;
        // Built as the guest builds every span, but with value types
        // tracing's fields cannot carry.
        let mut span = crate::trace::building::Building::new(sample::NAME);
        if let Some(parent) = crate::trace::parent(ctx) {
            span.adopt(&parent);
        }
        for kv in sample::wire_attributes() {
            span.set(&kv.key, kv.value.into_option().unwrap_or_default());
        }
        for (name, attributes) in sample::wire_events() {
            span.push_event(voidbox_api::traces::Event {
                name: name.to_string(),
                time_unix_nano: voidbox_api::otel::unix_nanos(std::time::SystemTime::now()),
                attributes,
                ..Default::default()
            });
        }
        span.fail(sample::STATUS_MESSAGE.to_string());
        let hex = |b: &[u8]| b.iter().map(|b| format!("{b:02x}")).collect::<String>();
        let (trace_id, span_id) = (hex(span.trace_id()), hex(span.span_id()));
        if let (Some(sink), Some(done)) = (crate::trace::sink(), span.finish()) {
            sink.send(done);
        }
        Ok(SampleResponse {
            trace_id,
            span_id,
            ..Default::default()
        })
    }
}

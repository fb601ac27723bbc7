//! `lies`: a guest that boots like vminitd, answering the host's boot RPCs
//! correctly, then lies in well-formed messages. Its span stream sends a
//! batch over the host's limit, spans with zero ids, absurd timestamps and
//! too many attributes, plus spans that are fine (`lie.ok`); and it refuses
//! to create the container.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use ttrpc::r#async::transport::Listener;
use ttrpc::r#async::{ServerStreamSender, TtrpcContext};
use voidbox_api::system::*;
use voidbox_api::system_ttrpc::{create_system, System};
use voidbox_api::task::*;
use voidbox_api::task_ttrpc::{create_tasks, Tasks};
use voidbox_api::traces::{KeyValue, Span, SpanBatch, StreamRequest, Value};
use voidbox_api::traces_ttrpc::{create_traces, Traces};

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

struct Sys;

#[async_trait]
impl System for Sys {
    async fn info(&self, _: &TtrpcContext, _: InfoRequest) -> ttrpc::Result<InfoResponse> {
        Ok(InfoResponse::new())
    }
    async fn clock(&self, _: &TtrpcContext, _: ClockRequest) -> ttrpc::Result<ClockResponse> {
        Ok(ClockResponse {
            realtime_unix_nano: now_ns(),
            ..Default::default()
        })
    }
    async fn set_time(&self, _: &TtrpcContext, _: SetTimeRequest) -> ttrpc::Result<SetTimeResponse> {
        Ok(SetTimeResponse::new())
    }
    async fn shutdown(&self, _: &TtrpcContext, _: ShutdownRequest) -> ttrpc::Result<ShutdownResponse> {
        tokio::spawn(async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            super::power_off();
        });
        Ok(ShutdownResponse::new())
    }
}

struct NoTasks;

#[async_trait]
impl Tasks for NoTasks {
    async fn put_bundle(&self, _: &TtrpcContext, _: PutBundleRequest) -> ttrpc::Result<PutBundleResponse> {
        Ok(PutBundleResponse::new())
    }
    async fn create(&self, _: &TtrpcContext, _: CreateRequest) -> ttrpc::Result<CreateResponse> {
        Err(ttrpc::Error::RpcStatus(ttrpc::get_status(
            ttrpc::Code::INTERNAL,
            "a hostile guest creates nothing",
        )))
    }
}

fn span(name: &str, trace: u8, id: u8, start: i64, end: i64, attributes: usize) -> Span {
    Span {
        trace_id: vec![trace; 16],
        span_id: vec![id; 8],
        // Sampled: the SDK drops unsampled spans at export anyway.
        trace_flags: 1,
        name: name.into(),
        start_unix_nano: start,
        end_unix_nano: end,
        attributes: (0..attributes)
            .map(|i| KeyValue {
                key: format!("k{i}"),
                value: Some(Value {
                    kind: Some(voidbox_api::traces::value::Kind::String("v".repeat(64))),
                    ..Default::default()
                })
                .into(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

struct Lies;

#[async_trait]
impl Traces for Lies {
    async fn stream(&self, _: &TtrpcContext, _: StreamRequest, tx: ServerStreamSender<SpanBatch>) -> ttrpc::Result<()> {
        let now = now_ns();
        let ok = |i: u8| span("lie.ok", 7, i.max(1), now - 1_000_000, now, 1);
        // Over the host's limit on spans per batch.
        let bulk = SpanBatch {
            spans: (0..2000)
                .map(|i| span("lie.bulk", 9, (i % 250 + 1) as u8, now - 1000, now, 0))
                .collect(),
            ..Default::default()
        };
        tx.send(&bulk).await?;
        let lies = SpanBatch {
            spans: vec![
                ok(1),
                span("lie.zero-ids", 0, 0, now - 1000, now, 0),
                span("lie.from-1970", 7, 2, 1, 2, 0),
                span("lie.from-the-far-future", 7, 3, i64::MAX - 10, i64::MAX, 0),
                span("lie.attributes", 7, 4, now - 1000, now, 5000),
                ok(5),
            ],
            ..Default::default()
        };
        tx.send(&lies).await?;
        // And keeps the stream open, as vminitd does.
        futures::future::pending::<()>().await;
        Ok(())
    }
}

pub fn run() -> ! {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let stream = loop {
            match tokio_vsock::VsockStream::connect(tokio_vsock::VsockAddr::new(2, super::TTRPC_PORT)).await {
                Ok(s) => break s,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        use futures::StreamExt;
        let connections =
            futures::stream::once(async { Ok::<_, std::io::Error>(stream) }).chain(futures::stream::pending());
        let mut server = ttrpc::r#async::Server::new()
            .add_listener(Listener::new(connections))
            .register_service(create_system(Arc::new(Sys)))
            .register_service(create_tasks(Arc::new(NoTasks)))
            .register_service(create_traces(Arc::new(Lies)));
        if server.start().await.is_err() {
            super::log("cannot serve TTRPC");
        }
        futures::future::pending::<()>().await;
    });
    super::forever()
}

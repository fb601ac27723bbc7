//! The one shape of every TTRPC handler in vminitd:
//!
//! ```ignore
//! handle(ctx, info_span!("task.start", container.id = %req.id), async move {
//!     // typed code: `?` on Result<_, TaskError>, Result<_, Error>, ...
//! })
//! .await
//! ```
//!
//! `handle` runs the body in the RPC's span (a child of the context the host
//! sent), records a failure on that span once (status error and
//! `error.kind`), and turns the typed error into the TTRPC status once.

use std::future::Future;

use tracing::{Instrument, Span};
use ttrpc::r#async::TtrpcContext;
use ttrpc::Code;

use crate::trace;

/// An error a handler can return: the gRPC code and message the host gets.
pub trait RpcError {
    fn code(&self) -> Code;
    fn message(&self) -> String;

    /// The TTRPC status the host receives.
    fn into_ttrpc(self) -> ttrpc::Error
    where
        Self: Sized,
    {
        ttrpc::Error::RpcStatus(ttrpc::get_status(self.code(), self.message()))
    }
}

/// What a stream's sender fails with (the host hung up): passed on as it is.
impl RpcError for ttrpc::Error {
    fn code(&self) -> Code {
        match self {
            ttrpc::Error::RpcStatus(s) => s.code(),
            _ => Code::INTERNAL,
        }
    }

    fn message(&self) -> String {
        match self {
            ttrpc::Error::RpcStatus(s) => s.message().to_string(),
            other => other.to_string(),
        }
    }

    fn into_ttrpc(self) -> ttrpc::Error {
        self
    }
}

/// Runs a handler's body in `span` (`Span::none()` for an RPC that has no
/// span of its own). The span ends on every return path, when the body's
/// future completes or is dropped.
pub async fn handle<T, E: RpcError>(
    ctx: &TtrpcContext,
    span: Span,
    body: impl Future<Output = Result<T, E>>,
) -> ttrpc::Result<T> {
    if span.is_disabled() {
        return body.await.map_err(E::into_ttrpc);
    }
    trace::adopt(&span, trace::parent(ctx).as_ref());
    let result = body.instrument(span.clone()).await;
    result.map_err(|e| {
        // snake_case, as the shim's kinds: `not_found`, `invalid_argument`...
        trace::fail(&span, e.message(), format!("{:?}", e.code()).to_lowercase());
        e.into_ttrpc()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Boom;

    impl RpcError for Boom {
        fn code(&self) -> Code {
            Code::NOT_FOUND
        }
        fn message(&self) -> String {
            "no such thing".into()
        }
    }

    fn status(e: ttrpc::Error) -> (Code, String) {
        match e {
            ttrpc::Error::RpcStatus(s) => (s.code(), s.message().to_string()),
            other => panic!("not a status: {other:?}"),
        }
    }

    #[tokio::test]
    async fn the_typed_error_becomes_its_status() {
        let ctx = TtrpcContext {
            mh: Default::default(),
            metadata: Default::default(),
            timeout_nano: 0,
            connection_data: Default::default(),
        };
        let err = handle(&ctx, tracing::info_span!("t"), async { Err::<(), _>(Boom) }).await;
        assert_eq!(status(err.unwrap_err()), (Code::NOT_FOUND, "no such thing".into()));
        let ok = handle(&ctx, Span::none(), async { Ok::<_, Boom>(7) }).await;
        assert_eq!(ok.unwrap(), 7);
        // A stream's own errors pass through untouched.
        let eof = handle(&ctx, Span::none(), async { Err::<(), _>(ttrpc::Error::Eof) }).await;
        assert!(matches!(eof, Err(ttrpc::Error::Eof)));
    }
}

//! The shim's errors, as containerd receives them: a gRPC code it maps onto
//! its own error kinds, and a message that says what to fix.

use ttrpc::Code;

use crate::guest::GuestError;
use crate::io::IoError;
use crate::otel::spans::SpanError;
use crate::vm::VmError;

#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    Unimplemented(String),
    #[error("{0}")]
    Internal(String),
    #[error(transparent)]
    Vm(#[from] VmError),
    #[error(transparent)]
    Guest(#[from] GuestError),
}

/// A stdio destination the shim cannot use is the caller's to fix; one it
/// could not open or start is a failed precondition on the host.
impl From<IoError> for ShimError {
    fn from(e: IoError) -> Self {
        match e {
            IoError::Uri(_) => ShimError::InvalidArgument(e.to_string()),
            IoError::Logger(_) | IoError::File { .. } => ShimError::FailedPrecondition(e.to_string()),
        }
    }
}

impl ShimError {
    pub fn code(&self) -> Code {
        match self {
            ShimError::NotFound(_) => Code::NOT_FOUND,
            ShimError::AlreadyExists(_) => Code::ALREADY_EXISTS,
            ShimError::InvalidArgument(_) => Code::INVALID_ARGUMENT,
            ShimError::FailedPrecondition(_) => Code::FAILED_PRECONDITION,
            ShimError::Unimplemented(_) => Code::UNIMPLEMENTED,
            ShimError::Internal(_) => Code::INTERNAL,
            ShimError::Vm(e) => match e {
                VmError::KernelMissing { .. }
                | VmError::BadImage { .. }
                | VmError::ToolMissing(_)
                | VmError::NoKvm(_)
                | VmError::SocketPathTooLong { .. } => Code::FAILED_PRECONDITION,
                VmError::Invalid(_) | VmError::ShareMissing { .. } => Code::INVALID_ARGUMENT,
                _ => Code::INTERNAL,
            },
            // The guest's own verdict (NOT_FOUND, FAILED_PRECONDITION...) passes through.
            ShimError::Guest(e) => e.code().unwrap_or(Code::INTERNAL),
        }
    }

    /// A short, stable name of the failure, for the `error.kind` span attribute.
    pub fn kind(&self) -> &'static str {
        match self {
            ShimError::NotFound(_) => "not_found",
            ShimError::AlreadyExists(_) => "already_exists",
            ShimError::InvalidArgument(_) => "invalid_argument",
            ShimError::FailedPrecondition(_) => "failed_precondition",
            ShimError::Unimplemented(_) => "unimplemented",
            ShimError::Internal(_) => "internal",
            ShimError::Vm(e) => e.kind(),
            ShimError::Guest(e) => e.kind(),
        }
    }

    pub fn into_ttrpc(self) -> ttrpc::Error {
        ttrpc::Error::RpcStatus(ttrpc::get_status(self.code(), self.to_string()))
    }
}

pub type Result<T> = std::result::Result<T, ShimError>;

/// Converts a result for a TTRPC handler.
pub fn ttrpc<T>(r: Result<T>) -> ttrpc::Result<T> {
    r.map_err(ShimError::into_ttrpc)
}

impl SpanError for ShimError {
    fn kind(&self) -> &'static str {
        ShimError::kind(self)
    }
}

/// Runs `fut` in `span`, marking the span with a failure: the shim's errors
/// (`otel::spans::traced`, its error type fixed for inference).
pub async fn traced<T>(span: tracing::Span, fut: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    crate::otel::spans::traced(span, fut).await
}

//! What can go wrong talking to vminitd: it answered with an error, the
//! connection failed, or it did not answer in time.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    #[error("guest RPC {method}: {}", rpc_message(source))]
    Rpc { method: &'static str, source: ttrpc::Error },

    #[error("guest RPC {method}: no answer within {after:?}")]
    Timeout { method: &'static str, after: Duration },
}

/// A guest error status as "CODE: message"; other errors as they display.
fn rpc_message(e: &ttrpc::Error) -> String {
    match e {
        ttrpc::Error::RpcStatus(s) => format!("{:?}: {}", s.code(), s.message()),
        other => other.to_string(),
    }
}

impl GuestError {
    /// A short, stable name of the failure, for the `error.kind` span attribute.
    pub fn kind(&self) -> &'static str {
        match self {
            GuestError::Rpc { .. } => "guest_rpc",
            GuestError::Timeout { .. } => "guest_timeout",
        }
    }

    /// The guest's own status code, when the guest answered with an error.
    pub fn code(&self) -> Option<ttrpc::Code> {
        match self {
            GuestError::Rpc {
                source: ttrpc::Error::RpcStatus(s),
                ..
            } => Some(s.code()),
            _ => None,
        }
    }

    /// The RPC that failed.
    pub fn method(&self) -> &'static str {
        match self {
            GuestError::Rpc { method, .. } | GuestError::Timeout { method, .. } => method,
        }
    }
}

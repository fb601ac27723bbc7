//! vminitd's error type: every failure names what was being done.

use std::path::PathBuf;

use ttrpc::Code;

use crate::services::handler::RpcError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("mount {fstype} on {target}: {source}")]
    Mount {
        fstype: String,
        target: PathBuf,
        source: nix::Error,
    },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Sys { what: &'static str, source: nix::Error },
    #[error("{what}: {source}")]
    Net { what: String, source: nix::Error },
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("port {port} in the pod: {reason}")]
    Port { port: u16, reason: String },
}

impl Error {
    pub fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            what,
            path: path.into(),
            source,
        }
    }
}

/// Codes the host can act on.
impl RpcError for Error {
    fn code(&self) -> Code {
        match self {
            Error::Invalid(_) => Code::INVALID_ARGUMENT,
            // Nothing listens there: the client's to fix, as with runc.
            Error::Port { .. } => Code::FAILED_PRECONDITION,
            Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => Code::NOT_FOUND,
            Error::Mount { source, .. } | Error::Sys { source, .. } if *source == nix::Error::ENOENT => Code::NOT_FOUND,
            _ => Code::INTERNAL,
        }
    }

    fn message(&self) -> String {
        self.to_string()
    }
}

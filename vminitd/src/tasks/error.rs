//! Errors of container operations, mapped onto TTRPC codes containerd understands.

use std::path::PathBuf;

use ttrpc::Code;

use crate::services::handler::RpcError;

#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("container {0} not found")]
    NoContainer(String),
    #[error("process {exec_id} of container {id} not found")]
    NoProcess { id: String, exec_id: String },
    #[error("container {0} already exists")]
    Exists(String),
    #[error("{0}")]
    Precondition(String),
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("crun {op}: {message}")]
    Crun { op: &'static str, message: String },
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("stdio: {0}")]
    Stdio(String),
    #[error(transparent)]
    Guest(#[from] crate::error::Error),
}

impl TaskError {
    pub fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TaskError::Io {
            what,
            path: path.into(),
            source,
        }
    }
}

/// Codes containerd understands.
impl RpcError for TaskError {
    fn code(&self) -> Code {
        match self {
            TaskError::NoContainer(_) | TaskError::NoProcess { .. } => Code::NOT_FOUND,
            TaskError::Exists(_) => Code::ALREADY_EXISTS,
            TaskError::Precondition(_) => Code::FAILED_PRECONDITION,
            TaskError::Invalid(_) => Code::INVALID_ARGUMENT,
            TaskError::Crun { message, .. } if message.contains("not found") || message.contains("No such file") => {
                Code::NOT_FOUND
            }
            _ => Code::UNKNOWN,
        }
    }

    fn message(&self) -> String {
        self.to_string()
    }
}

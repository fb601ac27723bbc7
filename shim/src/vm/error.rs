//! Errors from starting and running a VM. Each message names the fix.

use std::path::PathBuf;
use std::time::Duration;

use super::VmExit;

#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error("pod network: {0}")]
    Network(#[from] Box<crate::net::NetError>),

    #[error("guest kernel not found at {}: build it with `make kernel`, install it with `make install`, or point VOIDBOX_KERNEL at a vmlinux", path.display())]
    KernelMissing { path: PathBuf },

    #[error("guest image {}: {reason}; build it with `make image`, install it with `make install`, or point VOIDBOX_IMAGE at one", path.display())]
    BadImage { path: PathBuf, reason: String },

    #[error(transparent)]
    ToolMissing(#[from] crate::assets::ToolMissing),

    #[error("unix socket path {} is {len} bytes, over the {max}-byte limit for unix socket paths: use a shorter state directory (VOIDBOX_STATE_DIR; now {})", path.display(), state_dir.display())]
    SocketPathTooLong {
        path: PathBuf,
        len: usize,
        max: usize,
        state_dir: PathBuf,
    },

    #[error("share {tag:?}: host directory {} does not exist", path.display())]
    ShareMissing { tag: String, path: PathBuf },

    #[error("invalid VM configuration: {0}")]
    Invalid(String),

    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("starting {process}: {source}")]
    Spawn { process: String, source: std::io::Error },

    #[error("{process} exited during startup ({status}): {log}")]
    HelperDied {
        process: String,
        status: String,
        log: String,
    },

    #[error("{process} did not create {} within {timeout:?}", socket.display())]
    HelperTimeout {
        process: String,
        socket: PathBuf,
        timeout: Duration,
    },

    #[error("the guest did not become ready within {timeout:?}; last console lines:\n{console}")]
    ReadyTimeout { timeout: Duration, console: String },

    #[error("the VM ended before the guest was ready: {exit}")]
    EndedBeforeReady { exit: VmExit },

    #[error("VMMs run as the unprivileged user {user:?}, which cannot be used ({reason}): {fix}")]
    VmmUser {
        user: &'static str,
        reason: String,
        fix: &'static str,
    },

    #[error("hardware virtualization unavailable: {0}")]
    NoKvm(String),
}

impl VmError {
    /// A short, stable name of the failure, for the `error.kind` span attribute.
    pub fn kind(&self) -> &'static str {
        match self {
            VmError::KernelMissing { .. } => "kernel_missing",
            VmError::BadImage { .. } => "bad_image",
            VmError::ToolMissing(_) => "tool_missing",
            VmError::SocketPathTooLong { .. } => "socket_path_too_long",
            VmError::ShareMissing { .. } => "share_missing",
            VmError::Invalid(_) => "invalid_vm_config",
            VmError::Io { .. } => "io",
            VmError::Spawn { .. } => "spawn",
            VmError::HelperDied { .. } => "helper_died",
            VmError::HelperTimeout { .. } => "helper_timeout",
            VmError::ReadyTimeout { .. } => "ready_timeout",
            VmError::EndedBeforeReady { .. } => "vm_ended",
            VmError::NoKvm(_) => "no_kvm",
            VmError::VmmUser { .. } => "vmm_user",
            VmError::Network(_) => "network",
        }
    }

    pub fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        VmError::Io {
            what,
            path: path.into(),
            source,
        }
    }
}

impl From<crate::net::NetError> for VmError {
    fn from(e: crate::net::NetError) -> Self {
        VmError::Network(Box::new(e))
    }
}

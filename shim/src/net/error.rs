//! Errors from reading and wiring a pod's network. Each names the namespace
//! and, for a command, the command, how it ended and what it said.

use std::path::PathBuf;
use std::time::Duration;

use crate::assets::ToolMissing;

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("network namespace {}: {source}", path.display())]
    OpenNetns { path: PathBuf, source: std::io::Error },

    #[error("{} is not a network namespace ({reason}): was it unmounted, or the pod deleted?", path.display())]
    NotNetns { path: PathBuf, reason: String },

    #[error(transparent)]
    ToolMissing(#[from] ToolMissing),

    #[error("starting `{command}` in network namespace {}: {source}", netns.display())]
    Spawn {
        command: String,
        netns: PathBuf,
        source: std::io::Error,
    },

    #[error("`{command}` in network namespace {} failed ({status}): {}", netns.display(), stderr.trim())]
    Command {
        command: String,
        netns: PathBuf,
        status: String,
        stderr: String,
    },

    #[error("`{command}` in network namespace {} did not finish within {timeout:?} and was killed", netns.display())]
    Timeout {
        command: String,
        netns: PathBuf,
        timeout: Duration,
    },

    #[error("`{command}` in network namespace {}: unexpected output: {reason}", netns.display())]
    Parse {
        command: String,
        netns: PathBuf,
        reason: String,
    },

    #[error("network namespace {} has no Ethernet interface (besides loopback) that is up or has an IPv4 address; found: {found}", netns.display())]
    NoInterface { netns: PathBuf, found: String },

    #[error("network namespace {} has no interface {name}", netns.display())]
    NoSuchInterface { netns: PathBuf, name: String },

    #[error("network namespace {} already has a device {name}: left by an earlier run? (`Redirect::existing(..).teardown()` removes it)", netns.display())]
    TapExists { netns: PathBuf, name: String },

    #[error("preparing the descriptor the VMM gets tap {tap} on: {source}")]
    TapDescriptor { tap: String, source: std::io::Error },

    #[error("invalid interface name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
}

impl NetError {
    /// A short, stable name of the failure, for the `error.kind` span attribute.
    pub fn kind(&self) -> &'static str {
        match self {
            NetError::OpenNetns { .. } => "netns_open",
            NetError::NotNetns { .. } => "not_netns",
            NetError::ToolMissing(_) => "tool_missing",
            NetError::Spawn { .. } => "net_spawn",
            NetError::Command { .. } => "net_command",
            NetError::Timeout { .. } => "net_timeout",
            NetError::Parse { .. } => "net_parse",
            NetError::NoInterface { .. } => "no_interface",
            NetError::NoSuchInterface { .. } => "no_such_interface",
            NetError::TapExists { .. } => "tap_exists",
            NetError::InvalidName { .. } => "invalid_name",
            NetError::TapDescriptor { .. } => "tap_descriptor",
        }
    }
}

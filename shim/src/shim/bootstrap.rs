//! `start`: spawn the shim server and tell containerd where it listens.
//!
//! Two protocols. containerd ≥ 2.3 writes `BootstrapParams` (protobuf) on
//! stdin and reads a `BootstrapResult`; older ones pass flags and
//! `TTRPC_ADDRESS`, optionally runtime options (a protobuf `Any`) on stdin,
//! and read the answer from stdout: bootstrap JSON choosing task API v3 for
//! containerd 2.0–2.2, a plain address (task API v2) for 1.6 and 1.7 (see
//! `legacy_reply`). The server answers v2 and v3 alike.

use std::io::{IsTerminal, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use containerd_shim::Flags;
use containerd_shim_protos::bootstrap_api::{BootstrapParams, BootstrapResult};
use containerd_shim_protos::protobuf::Message;
use sha2::{Digest, Sha256};

use super::legacy_reply;
use crate::config::HostConfig;
use crate::spec::pod;

/// The descriptor the server finds its listening socket on.
pub const LISTENER_FD: i32 = 3;
const MAX_INPUT: u64 = 10 << 20;

/// What containerd said, whichever protocol it used.
struct Start {
    params: BootstrapParams,
    bootstrap: bool,
    /// Whether GRPC_ADDRESS was set (containerd ≥ 1.7).
    grpc_address_env: bool,
}

fn read_stdin() -> Result<Vec<u8>, String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Ok(Vec::new());
    }
    let mut input = Vec::new();
    stdin
        .lock()
        .take(MAX_INPUT)
        .read_to_end(&mut input)
        .map_err(|e| format!("read start parameters: {e}"))?;
    Ok(input)
}

fn parse(input: &[u8], flags: &Flags, host: &HostConfig) -> Result<Start, String> {
    if !input.is_empty() {
        if let Ok(params) = BootstrapParams::parse_from_bytes(input) {
            if params.instance_id == flags.id && params.namespace == flags.namespace {
                return Ok(Start {
                    params,
                    bootstrap: true,
                    grpc_address_env: false,
                });
            }
        }
    }
    // Legacy: flags and environment. What stdin may hold (runtime options)
    // is read again by Create, which receives them too.
    let params = BootstrapParams {
        instance_id: flags.id.clone(),
        namespace: flags.namespace.clone(),
        containerd_ttrpc_address: host.ttrpc_address.clone().unwrap_or_default(),
        containerd_grpc_address: flags.address.clone(),
        containerd_binary: flags.publish_binary.clone(),
        ..Default::default()
    };
    Ok(Start {
        params,
        bootstrap: false,
        grpc_address_env: host.grpc_address_set,
    })
}

/// The socket of a legacy-protocol shim (which gets no socket_dir) serving
/// `group`.
pub fn default_socket(flags: &Flags, host: &HostConfig, group: &str) -> PathBuf {
    let params = BootstrapParams {
        instance_id: flags.id.clone(),
        namespace: flags.namespace.clone(),
        containerd_grpc_address: flags.address.clone(),
        ..Default::default()
    };
    socket_path(&host.socket_dir, &params, group)
}

/// One socket per (containerd, namespace, group), short enough for
/// sun_path. The group is the container's id, or its pod sandbox's: a pod's
/// containers share their sandbox's shim.
fn socket_path(dir: &Path, params: &BootstrapParams, group: &str) -> PathBuf {
    let key = format!("{}/{}/{}", params.containerd_grpc_address, params.namespace, group);
    let digest = Sha256::digest(key.as_bytes());
    dir.join(digest.iter().take(16).map(|b| format!("{b:02x}")).collect::<String>())
}

pub fn start(flags: &Flags, host: Result<HostConfig, String>) -> Result<(), String> {
    // Read first: a writer of the start parameters must not meet a closed pipe.
    let input = read_stdin()?;
    // The server inherits this environment and would refuse a bad setting
    // (OTEL_*, for one) too, but only into containerd's log, leaving the
    // client a dead socket. Refused here, the message reaches the client:
    // containerd puts start's stderr in its error.
    let host = host?;
    let start = parse(&input, flags, &host)?;
    let p = &start.params;
    if p.containerd_ttrpc_address.is_empty() {
        return Err("containerd's TTRPC address is unknown (TTRPC_ADDRESS unset): cannot publish events".into());
    }
    let dir = p
        .socket_dir
        .clone()
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| host.socket_dir.clone());
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    // containerd runs `start` in the bundle.
    let group = pod::group(&p.instance_id, &pod::annotations(Path::new(".")));
    let socket = socket_path(&dir, p, &group);
    let address = format!("unix://{}", socket.display());

    if socket.exists() {
        if super::liveness::serves(&socket) {
            // The pod's shim, or this task's if containerd retries start.
            std::fs::write("address", &address).map_err(|e| format!("write address file: {e}"))?;
            return reply(&start, &address);
        }
        let _ = std::fs::remove_file(&socket);
    }
    if group != p.instance_id {
        return Err(format!(
            "container {} belongs to pod sandbox {group}, which has no running shim",
            p.instance_id
        ));
    }
    let listener = UnixListener::bind(&socket).map_err(|e| format!("bind {}: {e}", socket.display()))?;

    let exe = std::env::current_exe().map_err(|e| format!("find own binary: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.args([
        "-namespace",
        &p.namespace,
        "-id",
        &p.instance_id,
        "-address",
        &p.containerd_grpc_address,
    ])
    .args(["-publish-binary", &p.containerd_binary, "-socket", &address])
    .env("TTRPC_ADDRESS", &p.containerd_ttrpc_address)
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    // Whatever the server writes to stderr (a panic, say) reaches containerd's log.
    .stderr(super::logging::open_fifo().map(Stdio::from).unwrap_or(Stdio::null()));
    // LOG_LEVEL_DEBUG is -4, TRACE -8.
    if flags.debug || p.log_level.value() <= -4 {
        cmd.arg("-debug");
    }
    let fd = listener.as_raw_fd();
    // SAFETY: between fork and exec, only async-signal-safe calls: setsid
    // detaches the server from containerd's session; the listener goes to
    // fd 3 without close-on-exec (dup2 clears it on a new descriptor, but is
    // a no-op when the listener already is fd 3).
    unsafe {
        cmd.pre_exec(move || {
            let placed = if fd == LISTENER_FD {
                libc::fcntl(fd, libc::F_SETFD, 0)
            } else {
                libc::dup2(fd, LISTENER_FD)
            };
            if libc::setsid() < 0 || placed < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn().map_err(|e| format!("spawn the shim server: {e}"))?;
    drop(listener);
    std::fs::write("address", &address).map_err(|e| format!("write address file: {e}"))?;
    reply(&start, &address)
}

fn reply(start: &Start, address: &str) -> Result<(), String> {
    let bytes = if start.bootstrap {
        BootstrapResult {
            version: containerd_shim_protos::TASK_API_VERSION,
            address: address.into(),
            protocol: "ttrpc".into(),
            ..Default::default()
        }
        .write_to_bytes()
        .map_err(|e| e.to_string())?
    } else {
        match legacy_reply::choose(start.grpc_address_env, &start.params.containerd_binary) {
            legacy_reply::LegacyReply::TaskV3Json => legacy_reply::task_v3_json(address),
            legacy_reply::LegacyReply::Address => address.as_bytes().to_vec(),
        }
    };
    let mut out = std::io::stdout();
    out.write_all(&bytes)
        .and_then(|_| out.flush())
        .map_err(|e| format!("write reply: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> HostConfig {
        HostConfig::from_vars(|_| None).unwrap()
    }

    fn flags() -> Flags {
        Flags {
            id: "c1".into(),
            namespace: "default".into(),
            address: "/run/containerd/containerd.sock".into(),
            ..Default::default()
        }
    }

    #[test]
    fn tells_the_protocols_apart() {
        let params = BootstrapParams {
            instance_id: "c1".into(),
            namespace: "default".into(),
            containerd_ttrpc_address: "/run/c.sock.ttrpc".into(),
            ..Default::default()
        };
        let s = parse(&params.write_to_bytes().unwrap(), &flags(), &host()).unwrap();
        assert!(s.bootstrap);
        assert_eq!(s.params.containerd_ttrpc_address, "/run/c.sock.ttrpc");
        // Runtime options (an Any) are not bootstrap params.
        let any = containerd_shim_protos::protobuf::well_known_types::any::Any {
            type_url: "runtimeoptions.v1.Options".into(),
            ..Default::default()
        };
        assert!(
            !parse(&any.write_to_bytes().unwrap(), &flags(), &host())
                .unwrap()
                .bootstrap
        );
        assert!(!parse(b"", &flags(), &host()).unwrap().bootstrap);
    }

    #[test]
    fn socket_paths_are_short() {
        let p = BootstrapParams {
            instance_id: "x".repeat(76),
            ..Default::default()
        };
        let path = socket_path(Path::new("/run/voidbox/s"), &p, &p.instance_id);
        assert!(path.as_os_str().len() < 60, "{}", path.display());
    }
}

//! The `containerd-shim-voidbox-v2` binary: containerd's shim protocol.
//!
//! containerd runs the binary with an action: `start` (spawn the long-lived
//! server and print its address), `delete` (clean up after a dead shim), or
//! no action with `-socket` (be the server). `-info` describes the runtime.

mod bootstrap;
mod delete;
mod legacy_reply;
mod liveness;
mod logging;
mod serve;

use std::ffi::OsString;

use containerd_shim_protos::protobuf::Message;
use containerd_shim_protos::types::introspection::{RuntimeInfo, RuntimeVersion};

use crate::config::HostConfig;

/// The runtime name containerd uses for this shim.
pub const RUNTIME: &str = "io.containerd.voidbox.v2";

pub fn main() -> ! {
    let args: Vec<OsString> = std::env::args_os().collect();
    let flags = match containerd_shim::parse(&args[1..]) {
        Ok(f) => f,
        Err(e) => fail(&format!("bad arguments: {e}")),
    };
    if flags.version {
        println!("containerd-shim-voidbox-v2 {}", env!("CARGO_PKG_VERSION"));
        std::process::exit(0);
    }
    let result = if flags.info {
        info()
    } else {
        // The one read of the environment. A bad setting is refused by
        // start, whose stderr containerd puts in its error to the client.
        let host = HostConfig::from_env();
        match flags.action.as_str() {
            "start" => bootstrap::start(&flags, host),
            "delete" => host.and_then(|h| delete::delete(&flags, &h)),
            "" if !flags.socket.is_empty() => host.and_then(|h| serve::serve(&flags, h)),
            "" => Err("no action and no -socket: containerd runs this binary with start, delete or -socket".into()),
            other => Err(format!("unknown action {other:?}")),
        }
    };
    match result {
        Ok(()) => std::process::exit(0),
        Err(e) => fail(&e),
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("containerd-shim-voidbox-v2: {msg}");
    std::process::exit(1)
}

/// `-info`: what containerd 2.x asks before any shim instance exists.
fn info() -> Result<(), String> {
    let info = RuntimeInfo {
        name: RUNTIME.into(),
        version: Some(RuntimeVersion {
            version: env!("CARGO_PKG_VERSION").into(),
            ..Default::default()
        })
        .into(),
        ..Default::default()
    };
    let bytes = info.write_to_bytes().map_err(|e| e.to_string())?;
    std::io::Write::write_all(&mut std::io::stdout(), &bytes).map_err(|e| e.to_string())
}

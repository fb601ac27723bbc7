//! The TTRPC services vminitd serves and the shim calls, shared by both sides.

// Generated code: its warnings are not ours to fix.
#![allow(warnings, clippy::all)]

pub use protobuf;
pub use ttrpc;

/// Guest port vminitd dials on the host (CID 2) to offer its TTRPC server.
pub const TTRPC_PORT: u32 = 1024;

/// `voidbox.system.v1`: guest identity, boot times, clock, network, power.
pub mod system {
    include!(concat!(env!("OUT_DIR"), "/gen/system.rs"));
}
/// Async TTRPC stubs of the System service.
pub mod system_ttrpc {
    include!(concat!(env!("OUT_DIR"), "/gen/system_ttrpc.rs"));
}

/// Where the guest mounts each virtio-fs share, by tag: the host rewrites
/// the paths of containers' volumes to point under it.
pub const SHARES_DIR: &str = "/run/voidbox/shares";

/// Guest port vminitd dials on the host for stdio streams.
pub const STDIO_PORT: u32 = 1025;

/// `voidbox.task.v1`: containers in the guest.
pub mod task {
    include!(concat!(env!("OUT_DIR"), "/gen/task.rs"));
}
/// Async TTRPC stubs of the Tasks service.
pub mod task_ttrpc {
    include!(concat!(env!("OUT_DIR"), "/gen/task_ttrpc.rs"));
}

/// containerd's `runtimeoptions.v1.Options`, which carries the runtime config path.
pub mod runtimeoptions {
    include!(concat!(env!("OUT_DIR"), "/gen/runtimeoptions.rs"));
}

/// `voidbox.traces.v1`: the guest's spans, streamed to the host.
pub mod traces {
    include!(concat!(env!("OUT_DIR"), "/gen/traces.rs"));
}
/// Async TTRPC stubs of the Traces service.
pub mod traces_ttrpc {
    include!(concat!(env!("OUT_DIR"), "/gen/traces_ttrpc.rs"));
}

/// `voidbox.debug.v1`: test-only requests (read a file, mount, flood the
/// span buffer). Only a vminitd built with its `debug-rpcs` feature (the
/// test image's) serves them; a release guest answers them as unknown.
#[cfg(feature = "debug")]
pub mod debug {
    include!(concat!(env!("OUT_DIR"), "/gen/debug.rs"));
}
/// Async TTRPC stubs of the Debug service.
#[cfg(feature = "debug")]
pub mod debug_ttrpc {
    include!(concat!(env!("OUT_DIR"), "/gen/debug_ttrpc.rs"));
}

/// Container id rules, shared by the shim and vminitd.
pub mod ids;

/// Conversions between the wire spans and the OpenTelemetry SDK's (feature
/// `otel`), and the limits on a span both sides keep.
pub mod otel;

/// `voidbox.telemetry.v1`: guest CPU, memory, pressure and cgroup samples.
pub mod telemetry {
    include!(concat!(env!("OUT_DIR"), "/gen/telemetry.rs"));
}
/// Async TTRPC stubs of the Telemetry service.
pub mod telemetry_ttrpc {
    include!(concat!(env!("OUT_DIR"), "/gen/telemetry_ttrpc.rs"));
}

//! voidbox: a containerd runtime that runs every container in its own micro-VM.
//!
//! The rooms, bottom first (each imports only from those below it; checked
//! by `tests/layers.rs`):
//! - [`assets`], [`mounts`]: where the kernel, guest image and helper binaries are found; unmounting.
//! - [`net`]: a VM on a pod's network: a tap in the pod namespace, spliced to its veth.
//! - [`vm`]: VMM backends behind one trait, and the backend-agnostic [`vm::MicroVm`].
//! - [`guest`]: the one door to vminitd; [`io`]: stdio; [`otel`]: telemetry.
//! - [`config`]: the environment, read once; [`error`]: the shim's errors,
//!   as containerd receives them.
//! - [`spec`]: the bundle, read once.
//! - [`sandbox`]: one VM and what lives as long as it.
//! - [`container`]: a container in a sandbox, and its processes.
//! - [`task`]: containerd's task API, adapted onto the rooms below.
//! - [`shim`]: the binary's commands (start, delete, serve).

pub mod assets;
pub mod config;
pub mod container;
pub mod error;
pub mod guest;
pub mod io;
pub mod mounts;
pub mod net;
pub mod otel;
pub mod sandbox;
pub mod shim;
pub mod spec;
pub mod task;
pub mod vm;

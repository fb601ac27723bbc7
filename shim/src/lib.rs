//! voidbox: a containerd runtime that runs every container in its own micro-VM.
//!
//! - [`vm`]: VMM backends behind one trait, and the backend-agnostic [`vm::MicroVm`].
//! - [`guest`]: the TTRPC client of vminitd.
//! - [`assets`]: where the kernel, guest image and helper binaries are found.
//! - [`net`]: a VM on a pod's network: a tap in the pod namespace, spliced to its veth.

pub mod assets;
pub mod guest;
pub mod io;
pub mod net;
pub mod otel;
pub mod shim;
pub mod task;
pub mod vm;

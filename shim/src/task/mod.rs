//! The task service: containerd's task API mapped onto a VM per container.

mod bundle;
mod container;
mod create;
mod error;
pub mod events;
mod exits;
mod metrics;
mod naming;
pub mod options;
pub mod pod;
pub mod podnet;
mod process;
mod registry;
mod rootfs;
mod sandbox;
mod service;
mod shared;
mod spec_fields;

pub use container::Container;
pub use create::create;
pub use error::ShimError;
pub use exits::VM_GONE_STATUS;
pub use naming::{shared_dir, state_dir, vm_id};
pub use registry::Sandboxes;
pub use rootfs::unmount_all;
pub use sandbox::{Observability, Sandbox};
pub use service::TaskService;

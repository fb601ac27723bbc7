//! The task service: containerd's task API mapped onto a VM per container.

mod bundle;
mod container;
mod create;
mod error;
pub mod events;
mod exits;
mod metrics;
pub mod options;
mod process;
mod rootfs;
mod service;

pub use create::{state_dir, vm_id, TraceOptions};
pub use error::ShimError;
pub use exits::VM_GONE_STATUS;
pub use rootfs::unmount_all;
pub use service::TaskService;

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

pub use container::Container;
pub use create::{create, state_dir, teardown, vm_id, Observability};
pub use error::ShimError;
pub use exits::VM_GONE_STATUS;
pub use rootfs::unmount_all;
pub use service::TaskService;

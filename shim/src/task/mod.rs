//! containerd's task API, adapted onto containers in sandboxes: each
//! handler decodes a request, calls the container or sandbox, publishes the
//! event, and encodes the reply.

mod control;
pub mod events;
mod exits;
mod lifecycle;
mod metrics;
mod registry;
mod roots;
mod service;

pub use exits::VM_GONE_STATUS;
pub use service::TaskService;

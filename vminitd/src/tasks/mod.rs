//! Containers in the guest, run with crun: the `voidbox.task.v1.Tasks` service.

mod cgroup;
mod container;
mod crun;
mod error;
mod exec_fifo;
mod process;
mod service;
mod shares;
mod spec;
mod stdio;

pub use service::TaskService;

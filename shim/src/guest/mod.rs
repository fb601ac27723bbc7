//! The shim's side of the conversation with vminitd.

mod client;

pub use client::{rpc_context, GuestClient};

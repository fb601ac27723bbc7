//! The shim's side of the conversation with vminitd: one typed method per
//! RPC, each with its own time bound, all failing with a [`GuestError`].

mod client;
#[cfg(feature = "debug-rpcs")]
mod debug;
mod error;

pub use client::GuestClient;
#[cfg(feature = "debug-rpcs")]
pub use debug::DebugClient;
pub use error::GuestError;

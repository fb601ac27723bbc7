//! The container's bundle, read once: its spec, its pod role and the VM it
//! asks for, checked against what a VM can honour, and the spec the guest
//! runs it with.

mod bundle;
mod fields;
mod guest_spec;
pub mod options;
pub mod pod;
mod volumes;

pub use bundle::Bundle;
pub use options::VmSettings;
pub use pod::Role;
pub use volumes::Propagation;

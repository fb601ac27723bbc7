//! The TTRPC services vminitd serves to the host.

pub mod system;

//! Shared pieces of the developer tools.

pub mod stats;

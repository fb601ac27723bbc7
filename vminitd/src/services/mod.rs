//! The TTRPC services vminitd serves to the host.

#[cfg(feature = "debug-rpcs")]
pub mod debug;
pub mod handler;
pub mod system;

use ttrpc::r#async::Server;

/// Adds the test-only Debug service when vminitd is built with the
/// `debug-rpcs` feature (the test image); a release build serves no such thing.
pub fn with_debug(server: Server) -> Server {
    #[cfg(feature = "debug-rpcs")]
    let server = server.register_service(voidbox_api::debug_ttrpc::create_debug(std::sync::Arc::new(
        debug::DebugService,
    )));
    server
}

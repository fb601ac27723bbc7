//! Whether a shim serves a socket. Taking connections is not enough: a
//! listening socket can outlive its server for a moment in a process that
//! holds a copy of it (a shim that was killed while it spawned a child, say),
//! and such a socket accepts into its backlog but never answers.

use std::path::Path;
use std::time::Duration;

/// How long a serving shim has to answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(1);

/// True when a TTRPC server at `socket` answers. It is asked for a service
/// no server has, which it refuses without running a handler: a probe must
/// not show in the shim's traces as a request of its own.
pub fn serves(socket: &Path) -> bool {
    let Ok(client) = ttrpc::Client::connect(&format!("unix://{}", socket.display())) else {
        return false;
    };
    let mut req = ttrpc::Request::new();
    req.set_service("voidbox.Liveness".into());
    req.set_method("Probe".into());
    req.set_timeout_nano(ANSWER_WITHIN.as_nanos() as i64);
    matches!(client.request(req), Ok(_) | Err(ttrpc::Error::RpcStatus(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_that_takes_connections_but_never_answers_is_not_served() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        assert!(!serves(&path), "no socket at all");
        let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let t = std::time::Instant::now();
        assert!(!serves(&path), "a listener nobody accepts on");
        assert!(t.elapsed() < ANSWER_WITHIN * 3, "{:?}", t.elapsed());
    }

    #[test]
    fn a_ttrpc_server_is_served_though_it_has_no_such_service() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let addr = format!("unix://{}", path.display());
        let mut server = ttrpc::Server::new().bind(&addr).unwrap();
        server.start().unwrap();
        assert!(serves(&path));
        server.shutdown();
    }
}

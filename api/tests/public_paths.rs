//! The paths the shim, vminitd and the test suites import from voidbox-api.
//! Moving an item must keep these compiling.

#[cfg(feature = "otel")]
#[test]
fn otel_paths() {
    use std::time::SystemTime;

    use voidbox_api::otel::propagation::{extract, inject, Metadata};
    use voidbox_api::otel::{from_wire, system_time, to_wire, unix_nanos, Rejection};

    let md = Metadata::new();
    let mut out = Metadata::new();
    inject(&extract(&md), &mut out);
    assert_eq!(system_time(unix_nanos(SystemTime::UNIX_EPOCH)), SystemTime::UNIX_EPOCH);
    let wire = voidbox_api::traces::Span::default();
    assert_eq!(from_wire(&wire, Some).err(), Some(Rejection::MalformedId), "no ids");
    let _ = to_wire;
}

#[cfg(feature = "debug")]
#[test]
fn debug_paths() {
    use voidbox_api::debug::{
        FloodRequest, FloodResponse, MountRequest, MountResponse, ReadFileRequest, ReadFileResponse,
    };
    use voidbox_api::debug_ttrpc::{create_debug, Debug, DebugClient};

    let _ = (
        FloodRequest::default(),
        FloodResponse::default(),
        MountRequest::default(),
        MountResponse::default(),
        ReadFileRequest::default(),
        ReadFileResponse::default(),
    );
    let _ = DebugClient::new;
    let _: fn(std::sync::Arc<dyn Debug + Send + Sync>) -> _ = create_debug;
}

#[test]
fn ids_paths() {
    use voidbox_api::ids::{check_container_id, check_exec_id, guest_cgroup_path, GUEST_CGROUP_PARENT};

    assert!(check_container_id("c1").is_ok());
    assert!(check_exec_id("e1").is_ok());
    assert_eq!(guest_cgroup_path("c1"), format!("{GUEST_CGROUP_PARENT}/c1"));
}

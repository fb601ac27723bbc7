//! Task API v3 and the bootstrap protocol, through a client that behaves as
//! containerd 2.x does.

use std::io::Read;
use std::time::Duration;

use containerd_shim_protos::api::*;
use voidbox_integration::mounts_mentioning;
use voidbox_integration::shim_client::{spec, ShimUnderTest};

fn read_all(mut f: std::fs::File) -> String {
    let mut buf = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut chunk = [0u8; 4096];
        match f.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => panic!("read fifo: {e}"),
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_start_wait_delete_over_task_api_v3() {
    let shim = ShimUnderTest::start("lifecycle", &spec(&["sh", "-c", "echo hello from v3; exit 5"])).await;
    assert_eq!(shim.result.version, 3, "the bootstrap result announces task API v3");
    assert_eq!(shim.result.protocol, "ttrpc");

    let (stdout, reader) = shim.fifo("stdout");
    let create = CreateTaskRequest {
        id: shim.id.clone(),
        bundle: shim.bundle.display().to_string(),
        stdout,
        ..Default::default()
    };
    let created = shim.client.create(shim.ctx(&[]), &create).await.expect("Create");
    assert!(created.pid > 0);
    // With neither spans nor metrics, nothing uses the clock's offset once
    // the guest's clock is set: the boot spares the exchanges measuring it.
    assert!(
        shim.log()
            .contains("guest clock set (not measured after: no spans or metrics use it)"),
        "{}",
        shim.log()
    );
    let start = StartRequest {
        id: shim.id.clone(),
        ..Default::default()
    };
    shim.client.start(shim.ctx(&[]), &start).await.expect("Start");
    let wait = WaitRequest {
        id: shim.id.clone(),
        ..Default::default()
    };
    let exited = shim.client.wait(shim.ctx(&[]), &wait).await.expect("Wait");
    assert_eq!(exited.exit_status, 5);
    assert_eq!(
        read_all(reader),
        "hello from v3\n",
        "all output is in the FIFO when Wait answers"
    );

    let state = shim
        .client
        .state(
            shim.ctx(&[]),
            &StateRequest {
                id: shim.id.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(state.status.enum_value(), Ok(Status::STOPPED));
    let deleted = shim
        .client
        .delete(
            shim.ctx(&[]),
            &DeleteRequest {
                id: shim.id.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(deleted.exit_status, 5);
    let connect = shim
        .client
        .connect(
            shim.ctx(&[]),
            &ConnectRequest {
                id: shim.id.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(connect.shim_pid > 0);
    shim.shutdown(&[]).await;

    let topics = shim.events.topics();
    assert_eq!(
        topics,
        ["/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete"],
        "events in order"
    );
    shim.assert_gone_clean(Duration::from_secs(5)).await;
    let socket = shim.result.address.trim_start_matches("unix://").to_string();
    assert!(!std::path::Path::new(&socket).exists(), "the shim removed its socket");
}

/// containerd hands the rootfs over as mounts for the shim to mount on the
/// bundle; Delete unmounts them, as the runc shim does. (containerd mops up
/// a rootfs a shim left mounted, so its own suites would not see the leak.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_unmounts_the_overlay_rootfs_it_mounted() {
    let shim = ShimUnderTest::start("overlay", &spec(&["sh", "-c", "test -x /bin/busybox"])).await;
    shim.create_overlay_and_start().await;
    let rootfs = shim.bundle.join("rootfs");
    assert!(
        !mounts_mentioning(&rootfs).is_empty(),
        "the shim mounted the overlay on the bundle's rootfs"
    );
    assert_eq!(shim.wait(&[]).await.exit_status, 0, "the container runs on it");
    shim.delete_and_shutdown(&[]).await;
    assert_eq!(mounts_mentioning(&rootfs), Vec::<String>::new(), "Delete unmounted it");
}

/// The status of an RPC that had to fail with one.
fn rpc_status(err: ttrpc::Error) -> ttrpc::proto::Status {
    let ttrpc::Error::RpcStatus(status) = err else {
        panic!("{err:?}")
    };
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_config_json_is_an_invalid_argument() {
    let shim = ShimUnderTest::start("badspec", &spec(&["true"])).await;
    std::fs::write(
        shim.bundle.join("config.json"),
        b"{\"ociVersion\": \"1.0.2\", \"process\": [",
    )
    .unwrap();
    let create = CreateTaskRequest {
        id: shim.id.clone(),
        bundle: shim.bundle.display().to_string(),
        ..Default::default()
    };
    let err = shim.client.create(shim.ctx(&[]), &create).await.unwrap_err();
    let status = rpc_status(err);
    assert_eq!(status.code(), ttrpc::Code::INVALID_ARGUMENT);
    assert!(
        status.message().starts_with("invalid config.json in"),
        "{}",
        status.message()
    );
    assert!(shim.events.topics().is_empty(), "nothing was created");
    shim.shutdown(&[]).await;
    shim.assert_gone_clean(Duration::from_secs(5)).await;
}

/// Two Creates of one id at once: one creates, the other is refused at
/// once, and only one VM boots.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_creates_of_one_id_at_once_give_one_container_and_one_already_exists() {
    let shim = ShimUnderTest::start("twice", &spec(&["sleep", "300"])).await;
    let create = CreateTaskRequest {
        id: shim.id.clone(),
        bundle: shim.bundle.display().to_string(),
        ..Default::default()
    };
    let (a, b) = tokio::join!(
        shim.client.create(shim.ctx(&[]), &create),
        shim.client.create(shim.ctx(&[]), &create)
    );
    let (created, refused) = match (a, b) {
        (Ok(c), Err(e)) | (Err(e), Ok(c)) => (c, rpc_status(e)),
        (a, b) => panic!("one Create succeeds and one fails: {a:?}, {b:?}"),
    };
    assert!(created.pid > 0);
    assert_eq!(refused.code(), ttrpc::Code::ALREADY_EXISTS);
    assert_eq!(refused.message(), format!("container {} already exists", shim.id));
    let boots = shim.log().matches("VMM backend:").count();
    assert_eq!(boots, 1, "one VM booted:\n{}", shim.log());
    // Never started: containerd deletes it as it is.
    shim.delete_and_shutdown(&[]).await;
    shim.assert_gone_clean(Duration::from_secs(10)).await;
}

/// A Kill whose process dies at once can still be in flight when the exit
/// reaches the client, which may Delete the task before the guest has
/// answered the Kill (`ctr task kill` beside `ctr run --rm` did, under load).
/// Delete waits for the answer, so the Kill that worked says so. The test
/// image's guest holds Kill's answer back (`voidbox.test.kill_answer_delay_ms`)
/// so that the exit and the Delete always come first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_waits_for_the_answer_of_a_kill_in_flight() {
    let (killed, deleted, log) = kill_overtaken_by_delete("killrace", 2000).await;
    killed.expect("the Kill that sent the signal succeeds");
    assert_eq!(deleted.exit_status, 137);
    assert!(!log.contains("deleting without it"), "{log}");
}

/// A guest that never answers a Kill holds Delete no longer than its bound:
/// the VM then ends, and the Kill answers as for a finished process
/// (NotFound), never with the VM's lost connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_answer_held_past_the_bound_does_not_hold_delete() {
    let (killed, deleted, log) = kill_overtaken_by_delete("killheld", 60_000).await;
    assert_eq!(deleted.exit_status, 137);
    let status = rpc_status(killed.expect_err("the VM ended before the Kill's answer"));
    assert_eq!(status.code(), ttrpc::Code::NOT_FOUND, "{status:?}");
    assert_eq!(status.message(), "process init already finished");
    assert!(
        log.contains("a Kill's answer took more than 5s: deleting without it"),
        "{log}"
    );
}

/// Sends KILL to a `sleep` whose guest holds Kill's answer `delay_ms`, and
/// Deletes the task once it has exited: the Kill's result, the Delete's
/// answer and the shim's log, after the shim is gone and left nothing.
async fn kill_overtaken_by_delete(id: &str, delay_ms: u64) -> (Result<(), ttrpc::Error>, DeleteResponse, String) {
    let cmdline = format!("voidbox.test.kill_answer_delay_ms={delay_ms}");
    let env = [("VOIDBOX_GUEST_CMDLINE", cmdline.as_str())];
    let shim = ShimUnderTest::start_with_env(id, &spec(&["sleep", "300"]), &env).await;
    shim.create_and_start(&[]).await;
    let kill = KillRequest {
        id: shim.id.clone(),
        signal: 9,
        ..Default::default()
    };
    let delete = DeleteRequest {
        id: shim.id.clone(),
        ..Default::default()
    };
    let (killed, deleted) = tokio::join!(shim.client.kill(shim.ctx(&[]), &kill), async {
        shim.wait(&[]).await;
        shim.client.delete(shim.ctx(&[]), &delete).await
    });
    let deleted = deleted.expect("Delete");
    let log = shim.log();
    let killed = killed.map(|_| ());
    shim.shutdown(&[]).await;
    shim.assert_gone_clean(Duration::from_secs(10)).await;
    (killed, deleted, log)
}

/// A spec field the guest cannot honour, or one voidbox does not know, is
/// refused by name before any VM boots, never dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spec_fields_the_guest_cannot_honour_are_refused_by_name() {
    for (field, value, message) in [
        (
            "intelRdt",
            serde_json::json!({"closID": "gold"}),
            "config.json: linux.intelRdt cannot be honoured in a VM: the guest has no Intel RDT (resctrl)",
        ),
        (
            "futureKnob",
            serde_json::json!(true),
            "config.json: linux.futureKnob is not a field of OCI runtime-spec 1.2 that voidbox knows; refusing rather than ignoring it",
        ),
    ] {
        let mut config = spec(&["true"]);
        config["linux"][field] = value;
        let shim = ShimUnderTest::start(&format!("field-{}", field.to_lowercase()), &config).await;
        let create = CreateTaskRequest {
            id: shim.id.clone(),
            bundle: shim.bundle.display().to_string(),
            ..Default::default()
        };
        let status = rpc_status(shim.client.create(shim.ctx(&[]), &create).await.unwrap_err());
        assert_eq!(status.code(), ttrpc::Code::INVALID_ARGUMENT);
        assert_eq!(status.message(), message);
        assert!(shim.events.topics().is_empty(), "nothing was created");
        assert!(!shim.log().contains("VMM backend"), "no VM was chosen, let alone booted");
        shim.shutdown(&[]).await;
        shim.assert_gone_clean(Duration::from_secs(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_that_is_not_a_path_component_is_refused_before_any_vm_boots() {
    let shim = ShimUnderTest::start("badid", &spec(&["true"])).await;
    let create = CreateTaskRequest {
        id: "../escape".into(),
        bundle: shim.bundle.display().to_string(),
        ..Default::default()
    };
    let err = shim.client.create(shim.ctx(&[]), &create).await.unwrap_err();
    let status = rpc_status(err);
    assert_eq!(status.code(), ttrpc::Code::INVALID_ARGUMENT);
    assert_eq!(
        status.message(),
        "container id \"../escape\": use 1-128 of [A-Za-z0-9_.-]"
    );
    let log = shim.log();
    assert!(!log.contains("VM started"), "no VM for a refused id:\n{log}");
    assert!(shim.events.topics().is_empty(), "nothing was created");
    shim.shutdown(&[]).await;
    shim.assert_gone_clean(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoint_is_not_implemented() {
    let shim = ShimUnderTest::start("ckpt", &spec(&["true"])).await;
    let err = shim
        .client
        .checkpoint(
            shim.ctx(&[]),
            &CheckpointTaskRequest {
                id: shim.id.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    let status = rpc_status(err);
    assert_eq!(status.code(), ttrpc::Code::UNIMPLEMENTED);
    assert!(status.message().contains("not implemented"), "{}", status.message());
    shim.shutdown(&[]).await;
}

/// The container's memory limit, as Stats reports it.
async fn memory_limit(shim: &ShimUnderTest) -> u64 {
    use containerd_shim_protos::cgroups_v2::metrics::Metrics;
    use containerd_shim_protos::protobuf::Message;
    let req = StatsRequest {
        id: shim.id.clone(),
        ..Default::default()
    };
    let stats = shim
        .client
        .stats(shim.ctx(&[]), &req)
        .await
        .expect("Stats")
        .stats
        .unwrap();
    Metrics::parse_from_bytes(&stats.value).unwrap().memory.usage_limit
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_changes_the_resources_of_a_running_container() {
    use containerd_shim_protos::protobuf::well_known_types::any::Any;

    let shim = ShimUnderTest::start("update", &spec(&["sleep", "300"])).await;
    shim.create_and_start(&[]).await;
    assert_eq!(memory_limit(&shim).await, u64::MAX, "no limit at first");

    let resources = Any {
        type_url: "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources".into(),
        value: br#"{"memory":{"limit":67108864}}"#.to_vec(),
        ..Default::default()
    };
    let update = UpdateTaskRequest {
        id: shim.id.clone(),
        resources: Some(resources).into(),
        ..Default::default()
    };
    shim.client.update(shim.ctx(&[]), &update).await.expect("Update");
    assert_eq!(
        memory_limit(&shim).await,
        64 << 20,
        "the guest cgroup has the new limit"
    );

    shim.kill(9, &[]).await;
    assert_eq!(shim.wait(&[]).await.exit_status, 137);
    shim.delete_and_shutdown(&[]).await;
    shim.assert_gone_clean(Duration::from_secs(10)).await;
}

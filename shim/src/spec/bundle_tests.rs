//! The bundle's checks and the guest's spec made from it.

use super::*;

/// A bundle directory holding `config`, removed when dropped.
fn bundle_with(config: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix("voidbox-bundle-").tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), config).unwrap();
    dir
}

/// The bundle as if its annotations gave it `role`.
fn as_role(mut b: Bundle, role: Role) -> Bundle {
    b.role = role;
    b
}

fn spec_with(extra: &str) -> String {
    format!(
        r#"{{"ociVersion":"1.0.2","process":{{"user":{{"uid":0,"gid":0}},"cwd":"/","args":["sh"],"apparmorProfile":"p"}},"root":{{"path":"rootfs"}}{extra}}}"#
    )
}

#[test]
fn invalid_json_is_named() {
    let dir = bundle_with("{\"ociVersion\": ");
    let msg = Bundle::load(dir.path()).err().unwrap().to_string();
    assert!(msg.starts_with("invalid config.json in"), "{msg}");
}

#[test]
fn labels_go_and_binds_come_through_the_share() {
    let b = Bundle::load(bundle_with(&spec_with(
        r#","hooks":{"createRuntime":[{"path":"/usr/local/bin/nerdctl"}]},"linux":{"mountLabel":"x"},"mounts":[{"destination":"/proc","type":"proc","source":"proc"},{"destination":"/data","type":"bind","source":"/srv","options":["rbind","ro"]}]"#,
    )).path())
    .unwrap();
    let mut seen = Vec::new();
    let g: Value = serde_json::from_slice(
        &b.guest_spec("c", |p, _| {
            seen.push(p.to_path_buf());
            Ok("/run/voidbox/shares/shared/c/volumes/0".into())
        })
        .unwrap(),
    )
    .unwrap();
    assert!(g["process"].get("apparmorProfile").is_none());
    assert!(g["linux"].get("mountLabel").is_none());
    assert!(g.get("hooks").is_none(), "host hooks do not reach the guest");
    assert_eq!(seen, vec![PathBuf::from("/srv")]);
    assert_eq!(g["mounts"][1]["source"], "/run/voidbox/shares/shared/c/volumes/0");
    assert_eq!(g["mounts"][1]["options"][1], "ro");
    assert_eq!(g["mounts"][0]["source"], "proc");
    assert!(b.rootfs().ends_with("rootfs"));
}

#[test]
fn the_guest_spec_has_its_own_cgroup2() {
    // As ctr writes it on a cgroup v1 host: a v1-style mount, no cgroup namespace.
    let b = Bundle::load(bundle_with(&spec_with(
        r#","linux":{"namespaces":[{"type":"pid"},{"type":"mount"}]},"mounts":[{"destination":"/sys","type":"sysfs","source":"sysfs"},{"destination":"/sys/fs/cgroup","type":"cgroup","source":"cgroup","options":["ro","nosuid"]}]"#,
    )).path())
    .unwrap();
    let g: Value = serde_json::from_slice(&b.guest_spec("c", |_, _| unreachable!()).unwrap()).unwrap();
    assert_eq!(g["linux"]["namespaces"][2], serde_json::json!({"type": "cgroup"}));
    let cgroup: Vec<&Value> = g["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["destination"] == "/sys/fs/cgroup")
        .collect();
    assert_eq!(cgroup.len(), 1);
    assert_eq!(
        cgroup[0]["options"],
        serde_json::json!(["ro", "nosuid"]),
        "the client's options stay"
    );

    // No cgroup mount at all: one is added, read-only, after /sys.
    let b = Bundle::load(bundle_with(&spec_with(
        r#","linux":{"namespaces":[{"type":"cgroup"}]},"mounts":[{"destination":"/sys","type":"sysfs","source":"sysfs"}]"#,
    )).path())
    .unwrap();
    let g: Value = serde_json::from_slice(&b.guest_spec("c", |_, _| unreachable!()).unwrap()).unwrap();
    assert_eq!(
        g["linux"]["namespaces"],
        serde_json::json!([{"type": "cgroup"}]),
        "one cgroup namespace"
    );
    assert_eq!(g["mounts"][1]["destination"], "/sys/fs/cgroup");
    assert_eq!(g["mounts"][1]["type"], "cgroup");
    assert!(g["mounts"][1]["options"].as_array().unwrap().contains(&"ro".into()));
}

#[test]
fn a_pods_network_sysctls_are_the_pods_not_its_containers() {
    let b = Bundle::load(bundle_with(&spec_with(
        r#","linux":{"namespaces":[{"type":"network","path":"/var/run/netns/cni-1"},{"type":"pid"},{"type":"ipc"}],"sysctl":{"net.ipv4.ip_unprivileged_port_start":"0","kernel.shm_rmid_forced":"1"}}"#,
    )).path())
    .unwrap();
    assert_eq!(
        b.pod_net_sysctls().into_iter().collect::<Vec<_>>(),
        [("net.ipv4.ip_unprivileged_port_start".to_string(), "0".to_string())]
    );
    let b = as_role(b, Role::Sandbox);
    let g: Value = serde_json::from_slice(&b.guest_spec("c", |_, _| unreachable!()).unwrap()).unwrap();
    assert_eq!(g["linux"]["sysctl"], serde_json::json!({"kernel.shm_rmid_forced": "1"}));
    // A container on its own keeps its network namespace, and its sysctls.
    let g: Value = serde_json::from_slice(
        &Bundle::load(
            bundle_with(&spec_with(
                r#","linux":{"namespaces":[{"type":"network"}],"sysctl":{"net.ipv4.ip_forward":"1"}}"#,
            ))
            .path(),
        )
        .unwrap()
        .guest_spec("c", |_, _| unreachable!())
        .unwrap(),
    )
    .unwrap();
    assert_eq!(g["linux"]["sysctl"], serde_json::json!({"net.ipv4.ip_forward": "1"}));
}

#[test]
fn fields_the_guest_cannot_honour_are_refused_by_name() {
    let b = Bundle::load(bundle_with(&spec_with(r#","linux":{"intelRdt":{"closID":"gold"}}"#)).path()).unwrap();
    let msg = b.check().unwrap_err().to_string();
    assert!(msg.contains("linux.intelRdt cannot be honoured in a VM"), "{msg}");
}

#[test]
fn pods_use_the_vm_network_and_the_sandbox_namespaces() {
    let sandbox = Bundle::load(bundle_with(&spec_with(
        r#","linux":{"namespaces":[{"type":"pid"},{"type":"network","path":"/var/run/netns/cni-1"},{"type":"ipc"}]}"#,
    )).path())
    .unwrap();
    assert_eq!(sandbox.netns_path(), Some(PathBuf::from("/var/run/netns/cni-1")));
    let sandbox = as_role(sandbox, Role::Sandbox);
    let g: Value = serde_json::from_slice(&sandbox.guest_spec("c", |_, _| unreachable!()).unwrap()).unwrap();
    assert_eq!(
        g["linux"]["namespaces"],
        serde_json::json!([{"type":"pid"},{"type":"ipc"},{"type":"cgroup"}])
    );
    let msg = as_role(sandbox, Role::Standalone).check().unwrap_err().to_string();
    assert!(msg.contains("joining a host namespace is impossible"), "{msg}");

    let member = Bundle::load(bundle_with(&spec_with(
        r#","linux":{"namespaces":[{"type":"network","path":"/proc/7/ns/net"},{"type":"ipc","path":"/proc/7/ns/ipc"},{"type":"mount"}]}"#,
    )).path())
    .unwrap();
    let role = Role::Member { sandbox_id: "p".into() };
    let member = as_role(member, role.clone());
    let g: Value = serde_json::from_slice(&member.guest_spec("c", |_, _| unreachable!()).unwrap()).unwrap();
    assert_eq!(
        g["linux"]["namespaces"],
        serde_json::json!([{"type":"ipc","path":"/proc/7/ns/ipc"},{"type":"mount"},{"type":"cgroup"}])
    );
    let host = Bundle::load(
        bundle_with(&spec_with(
            r#","linux":{"namespaces":[{"type":"ipc","path":"/var/run/ipc/x"}]}"#,
        ))
        .path(),
    )
    .unwrap();
    assert!(as_role(host, role).check().is_err());

    for (namespaces, field) in [
        (
            r#"[{"type":"network","path":"/var/run/netns/n"},{"type":"ipc"}]"#,
            "hostPID",
        ),
        (
            r#"[{"type":"network","path":"/var/run/netns/n"},{"type":"pid"}]"#,
            "hostIPC",
        ),
    ] {
        let spec = spec_with(&format!(r#","linux":{{"namespaces":{namespaces}}}"#));
        let b = as_role(Bundle::load(bundle_with(&spec).path()).unwrap(), Role::Sandbox);
        let msg = b.check().unwrap_err().to_string();
        assert!(msg.contains(&format!("a pod with {field} cannot run in a VM")), "{msg}");
    }

    let host_network =
        Bundle::load(bundle_with(&spec_with(r#","linux":{"namespaces":[{"type":"pid"}]}"#)).path()).unwrap();
    let msg = as_role(host_network, Role::Sandbox).check().unwrap_err().to_string();
    assert!(msg.contains("hostNetwork"), "{msg}");
}

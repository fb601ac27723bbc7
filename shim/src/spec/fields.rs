//! Which fields of a container's OCI spec the guest can honour. A field
//! voidbox does not know is refused by name rather than passed to crun,
//! which would ignore it: a spec is never run with part of it silently
//! dropped. Fields are those of runtime-spec 1.2 (Linux).

use serde_json::Value;

/// Fields of runtime-spec 1.2 the guest honours, by JSON path prefix. A
/// map (annotations, sysctl, unified) is opaque: its keys are the user's.
const KNOWN: &[(&str, &[&str])] = &[
    (
        "",
        &[
            "ociVersion",
            "process",
            "root",
            "hostname",
            "domainname",
            "mounts",
            "hooks",
            "annotations",
            "linux",
        ],
    ),
    (
        "process",
        &[
            "terminal",
            "consoleSize",
            "cwd",
            "env",
            "args",
            "rlimits",
            "apparmorProfile",
            "capabilities",
            "noNewPrivileges",
            "oomScoreAdj",
            "scheduler",
            "selinuxLabel",
            "ioPriority",
            "execCPUAffinity",
            "user",
        ],
    ),
    ("process.user", &["uid", "gid", "umask", "additionalGids", "username"]),
    ("root", &["path", "readonly"]),
    (
        "linux",
        &[
            "namespaces",
            "uidMappings",
            "gidMappings",
            "timeOffsets",
            "devices",
            "cgroupsPath",
            "rootfsPropagation",
            "resources",
            "sysctl",
            "seccomp",
            "maskedPaths",
            "readonlyPaths",
            "mountLabel",
            "personality",
        ],
    ),
    (
        "linux.resources",
        &[
            "devices",
            "memory",
            "cpu",
            "blockIO",
            "hugepageLimits",
            "network",
            "pids",
            "unified",
        ],
    ),
];

/// Fields voidbox knows and a VM cannot give, with the reason.
const UNSUPPORTED: &[(&str, &str)] = &[
    ("linux.netDevices", "a host network device cannot move into a VM"),
    ("linux.intelRdt", "the guest has no Intel RDT (resctrl)"),
    ("linux.resources.rdma", "the guest has no RDMA devices or rdma cgroup"),
    ("linux.memoryPolicy", "the guest has one NUMA node"),
    ("solaris", "voidbox runs Linux containers"),
    ("windows", "voidbox runs Linux containers"),
    ("vm", "voidbox chooses the VM itself"),
    ("zos", "voidbox runs Linux containers"),
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FieldError {
    #[error("config.json: {field} cannot be honoured in a VM: {why}")]
    Unsupported { field: String, why: &'static str },
    #[error("config.json: {field} is not a field of OCI runtime-spec 1.2 that voidbox knows; refusing rather than ignoring it")]
    Unknown { field: String },
}

/// Checks every object the table covers, and only those with a set value:
/// a null or empty field asks for nothing.
pub fn check(spec: &Value) -> Result<(), FieldError> {
    for (path, known) in KNOWN {
        let obj = if path.is_empty() {
            spec.as_object()
        } else {
            spec.pointer(&format!("/{}", path.replace('.', "/")))
                .and_then(Value::as_object)
        };
        let Some(obj) = obj else { continue };
        for (key, value) in obj {
            let field = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            if known.contains(&key.as_str()) || asks_nothing(value) {
                continue;
            }
            return Err(match UNSUPPORTED.iter().find(|(f, _)| *f == field) {
                Some((_, why)) => FieldError::Unsupported { field, why },
                None => FieldError::Unknown { field },
            });
        }
    }
    Ok(())
}

fn asks_nothing(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(o) => o.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn what_clients_send_passes() {
        // The shape of containerd 2.1's and Docker 28's default specs.
        let spec = json!({
            "ociVersion": "1.2.1",
            "process": {"user": {"uid": 0, "gid": 0, "additionalGids": [10]}, "args": ["sh"], "cwd": "/",
                        "capabilities": {"bounding": ["CAP_CHOWN"]}, "rlimits": [], "noNewPrivileges": true,
                        "apparmorProfile": "docker-default", "oomScoreAdj": 0},
            "root": {"path": "rootfs", "readonly": false},
            "hostname": "c", "mounts": [], "annotations": {"io.kubernetes.cri.container-type": "container"},
            "linux": {"resources": {"devices": [], "memory": {"limit": 1}, "cpu": {"shares": 2}, "blockIO": {"weight": 0},
                                    "pids": {"limit": 0}, "unified": {"memory.high": "max"}},
                      "cgroupsPath": "/default/c", "namespaces": [{"type": "pid"}], "maskedPaths": ["/proc/kcore"],
                      "readonlyPaths": [], "sysctl": {"net.ipv4.ip_unprivileged_port_start": "0"},
                      "seccomp": {"defaultAction": "SCMP_ACT_ERRNO"}, "netDevices": {}}
        });
        assert_eq!(check(&spec), Ok(()));
    }

    #[test]
    fn unsupported_and_unknown_fields_are_named() {
        let e = check(&json!({"linux": {"intelRdt": {"closID": "x"}}})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "config.json: linux.intelRdt cannot be honoured in a VM: the guest has no Intel RDT (resctrl)"
        );
        let e = check(&json!({"linux": {"netDevices": {"eth1": {}}}})).unwrap_err();
        assert!(matches!(e, FieldError::Unsupported { ref field, .. } if field == "linux.netDevices"));
        let e = check(&json!({"process": {"args": ["sh"], "futureKnob": true}})).unwrap_err();
        assert_eq!(
            e,
            FieldError::Unknown {
                field: "process.futureKnob".into()
            }
        );
        let e = check(&json!({"linux": {"resources": {"rdma": {"mlx5_0": {"hcaHandles": 1}}}}})).unwrap_err();
        assert!(e.to_string().contains("linux.resources.rdma"));
        assert!(check(&json!({"windows": {"layerFolders": ["c:\\"]}})).is_err());
    }
}

//! Builders for the minimal pod and container configs a test needs, with
//! kubelet's defaults where a test does not say otherwise.

use std::path::Path;

use k8s_cri::v1::*;

use super::{strings, BUSYBOX};

/// kubelet's defaults for containers that are not privileged.
const KUBELET_MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
];
const KUBELET_READONLY_PATHS: &[&str] = &["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// Network and ipc shared by the pod, pid per container: kubelet's default,
/// which it sets on the pod and on each container alike.
fn pod_namespaces() -> NamespaceOption {
    NamespaceOption {
        network: NamespaceMode::Pod as i32,
        pid: NamespaceMode::Container as i32,
        ipc: NamespaceMode::Pod as i32,
        ..Default::default()
    }
}

/// A minimal pod: metadata, hostname, log directory, `pod_namespaces`.
pub struct PodBuilder(PodSandboxConfig);

impl PodBuilder {
    /// Pod `name` (also its hostname and uid stem), logging under `log_directory`.
    pub fn new(name: &str, log_directory: &Path) -> PodBuilder {
        PodBuilder(PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: name.into(),
                uid: format!("{name}-uid"),
                namespace: "voidbox-test".into(),
                attempt: 0,
            }),
            hostname: name.into(),
            log_directory: log_directory.to_string_lossy().into_owned(),
            linux: Some(LinuxPodSandboxConfig {
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(pod_namespaces()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    pub fn hostname(mut self, hostname: &str) -> Self {
        self.0.hostname = hostname.into();
        self
    }

    /// The pod's cgroup, parent of its containers' (cgroupfs path, e.g. "/vbt-x").
    pub fn cgroup_parent(mut self, parent: &str) -> Self {
        self.linux().cgroup_parent = parent.into();
        self
    }

    /// Written to the pod's /etc/resolv.conf (without it, the host's is copied).
    pub fn dns(mut self, servers: &[&str], searches: &[&str]) -> Self {
        self.0.dns_config = Some(DnsConfig {
            servers: strings(servers),
            searches: strings(searches),
            options: vec![],
        });
        self
    }

    pub fn annotation(mut self, key: &str, value: &str) -> Self {
        self.0.annotations.insert(key.into(), value.into());
        self
    }

    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.0.labels.insert(key.into(), value.into());
        self
    }

    /// The sum of the containers' memory limits, as kubelet passes it
    /// (`LinuxPodSandboxConfig.resources`).
    pub fn memory_limit(mut self, bytes: i64) -> Self {
        let resources = self.linux().resources.get_or_insert_with(Default::default);
        resources.memory_limit_in_bytes = bytes;
        self
    }

    /// `hostPID` and `hostIPC`, as kubelet passes them.
    pub fn host_pid_ipc(mut self, pid: bool, ipc: bool) -> Self {
        let mode = |host: bool, otherwise: NamespaceMode| if host { NamespaceMode::Node } else { otherwise } as i32;
        let options = self
            .linux()
            .security_context
            .get_or_insert_with(Default::default)
            .namespace_options
            .get_or_insert_with(pod_namespaces);
        options.pid = mode(pid, NamespaceMode::Container);
        options.ipc = mode(ipc, NamespaceMode::Pod);
        self
    }

    fn linux(&mut self) -> &mut LinuxPodSandboxConfig {
        self.0.linux.get_or_insert_with(Default::default)
    }

    pub fn build(self) -> PodSandboxConfig {
        self.0
    }
}

/// A container of the busybox image, logging to `<name>.log` in the pod's log directory.
pub struct ContainerBuilder(ContainerConfig);

impl ContainerBuilder {
    /// Container `name` running `command` (replaces the image's entrypoint).
    pub fn new(name: &str, command: &[&str]) -> ContainerBuilder {
        ContainerBuilder(ContainerConfig {
            metadata: Some(ContainerMetadata {
                name: name.into(),
                attempt: 0,
            }),
            image: Some(ImageSpec {
                image: BUSYBOX.into(),
                ..Default::default()
            }),
            command: strings(command),
            log_path: format!("{name}.log"),
            linux: Some(LinuxContainerConfig {
                security_context: Some(LinuxContainerSecurityContext {
                    namespace_options: Some(pod_namespaces()),
                    // CRI masks nothing in containers by itself: kubelet sends these.
                    masked_paths: strings(KUBELET_MASKED_PATHS),
                    readonly_paths: strings(KUBELET_READONLY_PATHS),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    pub fn args(mut self, args: &[&str]) -> Self {
        self.0.args = strings(args);
        self
    }

    pub fn image(mut self, image: &str) -> Self {
        self.0.image = Some(ImageSpec {
            image: image.into(),
            ..Default::default()
        });
        self
    }

    /// Relative to the pod's log directory.
    pub fn log_path(mut self, path: &str) -> Self {
        self.0.log_path = path.into();
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.0.envs.push(KeyValue {
            key: key.into(),
            value: value.into(),
        });
        self
    }

    pub fn mount(mut self, host_path: &Path, container_path: &str, readonly: bool) -> Self {
        self.0.mounts.push(Mount {
            host_path: host_path.to_string_lossy().into_owned(),
            container_path: container_path.into(),
            readonly,
            ..Default::default()
        });
        self
    }

    /// A volume with a propagation mode, as a pod's `mountPropagation` asks.
    pub fn mount_propagating(mut self, host_path: &Path, container_path: &str, propagation: MountPropagation) -> Self {
        self.0.mounts.push(Mount {
            host_path: host_path.to_string_lossy().into_owned(),
            container_path: container_path.into(),
            propagation: propagation as i32,
            ..Default::default()
        });
        self
    }

    pub fn memory_limit(mut self, bytes: i64) -> Self {
        let linux = self.0.linux.get_or_insert_with(Default::default);
        linux
            .resources
            .get_or_insert_with(Default::default)
            .memory_limit_in_bytes = bytes;
        self
    }

    pub fn annotation(mut self, key: &str, value: &str) -> Self {
        self.0.annotations.insert(key.into(), value.into());
        self
    }

    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.0.labels.insert(key.into(), value.into());
        self
    }

    pub fn build(self) -> ContainerConfig {
        self.0
    }
}

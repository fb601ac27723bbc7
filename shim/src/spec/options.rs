//! How big a container's VM is: annotations, then a pod's limits, then
//! runtime options, then defaults.
//!
//! Annotations (`io.containerd.voidbox.*`) win over a pod's limits (CRI's
//! `io.kubernetes.cri.sandbox-*`, plus an overhead), which win over the
//! runtime options (containerd's `runtimeoptions.v1.Options`, whose
//! `config_path` names a TOML file), which win over the defaults of 1 vCPU
//! and 512 MiB. No VM may have more memory than the host, and vCPUs are
//! capped at the host's CPUs.

use std::collections::HashMap;

use protobuf::well_known_types::any::Any;
use protobuf::Message;
use serde::Deserialize;
use voidbox_api::runtimeoptions::Options as RuntimeOptions;

use super::pod::{PodSize, OVERHEAD_MIB};
use crate::error::{Result, ShimError};
use crate::vm::select::BackendChoice;

pub const ANNOTATION_PREFIX: &str = "io.containerd.voidbox.";
pub const CPUS: &str = "io.containerd.voidbox.vm.cpus";
pub const MEMORY: &str = "io.containerd.voidbox.vm.memory";
pub const BACKEND: &str = "io.containerd.voidbox.vm.backend";
const KNOWN: &[&str] = &[CPUS, MEMORY, BACKEND];
/// The backend, when neither annotation nor runtime options choose one.
pub const BACKEND_ENV: &str = "VOIDBOX_VMM";

pub const DEFAULT_CPUS: u32 = 1;
pub const DEFAULT_MEMORY_MIB: u32 = 512;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmSettings {
    pub cpus: u32,
    pub memory_mib: u32,
    pub backend: BackendChoice,
    /// Where memory_mib came from, for messages.
    pub memory_from: String,
}

/// What the host can give a VM.
#[derive(Debug, Clone, Copy)]
pub struct HostLimits {
    pub memory_mib: u64,
    pub cpus: u32,
}

impl HostLimits {
    pub fn of_this_host() -> HostLimits {
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let kib: u64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(u64::MAX / 1024);
        HostLimits {
            memory_mib: kib / 1024,
            cpus: std::thread::available_parallelism()
                .map(|n| n.get() as u32)
                .unwrap_or(1),
        }
    }
}

/// The runtime options file (TOML).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    vm: VmSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct VmSection {
    cpus: Option<u32>,
    /// MiB.
    memory: Option<u32>,
    /// auto, qemu or libkrun.
    backend: Option<String>,
}

/// Annotations, then runtime options, then `VOIDBOX_VMM` (for the backend),
/// then defaults.
pub fn resolve(annotations: &HashMap<String, String>, options: Option<&Any>, env: Option<&str>) -> Result<VmSettings> {
    let settings = resolve_with_env(annotations, options, env)?;
    fit(settings, HostLimits::of_this_host())
}

/// Refuses a container whose memory limit is more than the host has: no
/// VM could honour it.
pub fn check_container_limit(id: &str, limit_bytes: Option<i64>, host: HostLimits) -> Result<()> {
    match limit_bytes {
        Some(b) if b > 0 && (b as u64) >> 20 > host.memory_mib => Err(ShimError::InvalidArgument(format!(
            "container {id} asks for {} MiB of memory (its limit), but this host has {} MiB",
            b >> 20,
            host.memory_mib
        ))),
        _ => Ok(()),
    }
}

/// Refuses a VM bigger than the host's memory; caps vCPUs at its CPUs.
pub fn fit(mut settings: VmSettings, host: HostLimits) -> Result<VmSettings> {
    if u64::from(settings.memory_mib) > host.memory_mib {
        return Err(ShimError::InvalidArgument(format!(
            "the VM would need {} MiB of memory ({}), but this host has {} MiB",
            settings.memory_mib, settings.memory_from, host.memory_mib
        )));
    }
    if settings.cpus > host.cpus {
        tracing::info!(
            asked = settings.cpus,
            host = host.cpus,
            "vCPUs capped at the host's CPUs"
        );
        settings.cpus = host.cpus;
    }
    Ok(settings)
}

fn backend(value: &str, source: &str) -> Result<BackendChoice> {
    value
        .parse()
        .map_err(|e| ShimError::InvalidArgument(format!("{source}: {e}")))
}

pub fn resolve_with_env(
    annotations: &HashMap<String, String>,
    options: Option<&Any>,
    env: Option<&str>,
) -> Result<VmSettings> {
    let mut settings = VmSettings {
        cpus: DEFAULT_CPUS,
        memory_mib: DEFAULT_MEMORY_MIB,
        backend: BackendChoice::Auto,
        memory_from: "the default".into(),
    };
    if let Some(v) = env.filter(|v| !v.is_empty()) {
        settings.backend = backend(v, BACKEND_ENV)?;
    }
    if let Some(file) = config_file(options)? {
        settings.cpus = file.vm.cpus.unwrap_or(settings.cpus);
        if let Some(m) = file.vm.memory {
            settings.memory_mib = m;
            settings.memory_from = "runtime config [vm] memory".into();
        }
        if let Some(b) = &file.vm.backend {
            settings.backend = backend(b, "runtime config [vm] backend")?;
        }
    }
    let pod = PodSize::of(annotations)?;
    if let Some(m) = pod.memory_mib {
        settings.memory_mib = m;
        settings.memory_from = format!(
            "the pod's memory limits, {} MiB, plus {OVERHEAD_MIB} MiB of VM overhead",
            m - OVERHEAD_MIB
        );
    }
    settings.cpus = pod.cpus.unwrap_or(settings.cpus);
    for (key, value) in annotations {
        if !key.starts_with(ANNOTATION_PREFIX) {
            continue;
        }
        let number = || {
            value
                .trim()
                .parse::<u32>()
                .map_err(|_| ShimError::InvalidArgument(format!("annotation {key}={value:?}: not a number")))
        };
        match key.as_str() {
            CPUS => settings.cpus = number()?,
            MEMORY => {
                settings.memory_mib = number()?;
                settings.memory_from = format!("annotation {MEMORY}");
            }
            BACKEND => settings.backend = backend(value, &format!("annotation {key}"))?,
            _ => {
                return Err(ShimError::InvalidArgument(format!(
                    "unknown annotation {key} (known: {})",
                    KNOWN.join(", ")
                )))
            }
        }
    }
    if settings.cpus == 0 {
        return Err(ShimError::InvalidArgument("a VM needs at least 1 vCPU".into()));
    }
    if settings.memory_mib < 128 {
        return Err(ShimError::InvalidArgument(format!(
            "{} MiB is too little memory for a VM: use at least 128",
            settings.memory_mib
        )));
    }
    Ok(settings)
}

fn config_file(options: Option<&Any>) -> Result<Option<ConfigFile>> {
    let Some(any) = options else { return Ok(None) };
    if !any.type_url.ends_with("runtimeoptions.v1.Options") {
        // containerd sends its runc options to runtimes it does not know;
        // they say nothing about VMs.
        return Ok(None);
    }
    let opts = RuntimeOptions::parse_from_bytes(&any.value)
        .map_err(|e| ShimError::InvalidArgument(format!("runtime options: {e}")))?;
    let text = if !opts.config_body.is_empty() {
        opts.config_body.clone()
    } else if !opts.config_path.is_empty() {
        std::fs::read_to_string(&opts.config_path)
            .map_err(|e| ShimError::InvalidArgument(format!("runtime config {}: {e}", opts.config_path)))?
    } else {
        return Ok(None);
    };
    toml::from_str(&text)
        .map(Some)
        .map_err(|e| ShimError::InvalidArgument(format!("runtime config {}: {e}", opts.config_path)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn size(a: &HashMap<String, String>, o: Option<&Any>) -> (u32, u32) {
        let s = resolve_with_env(a, o, None).unwrap();
        (s.cpus, s.memory_mib)
    }

    #[test]
    fn defaults_then_options_then_pod_limits_then_annotations() {
        assert_eq!(size(&ann(&[]), None), (1, 512));
        let opts = RuntimeOptions {
            config_body: "[vm]\ncpus = 2\nmemory = 1024\n".into(),
            ..Default::default()
        };
        let any = Any {
            type_url: "runtimeoptions.v1.Options".into(),
            value: opts.write_to_bytes().unwrap(),
            ..Default::default()
        };
        assert_eq!(size(&ann(&[]), Some(&any)), (2, 1024));
        let pod = [
            ("io.kubernetes.cri.sandbox-memory", "134217728"),
            ("io.kubernetes.cri.sandbox-cpu-quota", "300000"),
            ("io.kubernetes.cri.sandbox-cpu-period", "100000"),
        ];
        assert_eq!(size(&ann(&pod), Some(&any)), (3, 128 + OVERHEAD_MIB));
        let mut a = pod.to_vec();
        a.extend([(MEMORY, "768"), ("other.annotation", "x")]);
        assert_eq!(size(&ann(&a), Some(&any)), (3, 768));
    }

    #[test]
    fn a_vm_never_outgrows_the_host() {
        let host = HostLimits {
            memory_mib: 4096,
            cpus: 2,
        };
        let pod = ann(&[("io.kubernetes.cri.sandbox-memory", "1099511627776")]);
        let msg = fit(resolve_with_env(&pod, None, None).unwrap(), host)
            .unwrap_err()
            .to_string();
        assert_eq!(
            msg,
            "the VM would need 1048736 MiB of memory (the pod's memory limits, 1048576 MiB, plus 160 MiB of VM overhead), but this host has 4096 MiB"
        );
        assert!(check_container_limit("c", Some(1 << 30), host).is_ok());
        let msg = check_container_limit("c", Some(1 << 40), host).unwrap_err().to_string();
        assert_eq!(
            msg,
            "container c asks for 1048576 MiB of memory (its limit), but this host has 4096 MiB"
        );
        let big = resolve_with_env(&ann(&[(CPUS, "8"), (MEMORY, "1024")]), None, None).unwrap();
        assert_eq!(fit(big, host).unwrap().cpus, 2, "vCPUs are capped");
    }

    #[test]
    fn the_backend_comes_from_annotation_then_options_then_env() {
        let opts = |b: &str| Any {
            type_url: "runtimeoptions.v1.Options".into(),
            value: RuntimeOptions {
                config_body: format!("[vm]\nbackend = \"{b}\"\n"),
                ..Default::default()
            }
            .write_to_bytes()
            .unwrap(),
            ..Default::default()
        };
        let pick =
            |a: &[(&str, &str)], o: Option<&Any>, e: Option<&str>| resolve_with_env(&ann(a), o, e).unwrap().backend;
        assert_eq!(pick(&[], None, Some("libkrun")), BackendChoice::Libkrun);
        assert_eq!(pick(&[], Some(&opts("qemu")), Some("libkrun")), BackendChoice::Qemu);
        assert_eq!(
            pick(&[(BACKEND, "libkrun")], Some(&opts("qemu")), None),
            BackendChoice::Libkrun
        );
        let msg = resolve_with_env(&ann(&[(BACKEND, "xen")]), None, None)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("annotation io.containerd.voidbox.vm.backend") && msg.contains("use auto, qemu or libkrun"),
            "{msg}"
        );
        let msg = resolve_with_env(&ann(&[]), None, Some("kvm")).unwrap_err().to_string();
        assert!(msg.starts_with("VOIDBOX_VMM: unknown VMM backend"), "{msg}");
    }

    #[test]
    fn bad_values_are_refused_by_name() {
        let msg = resolve(&ann(&[(CPUS, "two")]), None, None).unwrap_err().to_string();
        assert_eq!(msg, "annotation io.containerd.voidbox.vm.cpus=\"two\": not a number");
        let msg = resolve(&ann(&[("io.containerd.voidbox.vm.gpus", "1")]), None, None)
            .unwrap_err()
            .to_string();
        assert!(
            msg.starts_with("unknown annotation io.containerd.voidbox.vm.gpus"),
            "{msg}"
        );
    }
}

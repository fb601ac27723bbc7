//! How big a container's VM is: annotations, then runtime options, then defaults.
//!
//! Annotations (`io.containerd.voidbox.*`) win over the runtime options
//! (containerd's `runtimeoptions.v1.Options`, whose `config_path` names a TOML
//! file), which win over the defaults of 1 vCPU and 512 MiB.

use std::collections::HashMap;

use protobuf::well_known_types::any::Any;
use protobuf::Message;
use serde::Deserialize;
use voidbox_api::runtimeoptions::Options as RuntimeOptions;

use super::error::{Result, ShimError};
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
pub fn resolve(annotations: &HashMap<String, String>, options: Option<&Any>) -> Result<VmSettings> {
    resolve_with_env(annotations, options, std::env::var(BACKEND_ENV).ok().as_deref())
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
    };
    if let Some(v) = env.filter(|v| !v.is_empty()) {
        settings.backend = backend(v, BACKEND_ENV)?;
    }
    if let Some(file) = config_file(options)? {
        settings.cpus = file.vm.cpus.unwrap_or(settings.cpus);
        settings.memory_mib = file.vm.memory.unwrap_or(settings.memory_mib);
        if let Some(b) = &file.vm.backend {
            settings.backend = backend(b, "runtime config [vm] backend")?;
        }
    }
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
            MEMORY => settings.memory_mib = number()?,
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

    #[test]
    fn defaults_then_options_then_annotations() {
        let settings = |cpus, memory_mib| VmSettings {
            cpus,
            memory_mib,
            backend: BackendChoice::Auto,
        };
        assert_eq!(resolve_with_env(&ann(&[]), None, None).unwrap(), settings(1, 512));
        let opts = RuntimeOptions {
            config_body: "[vm]\ncpus = 2\nmemory = 1024\n".into(),
            ..Default::default()
        };
        let any = Any {
            type_url: "runtimeoptions.v1.Options".into(),
            value: opts.write_to_bytes().unwrap(),
            ..Default::default()
        };
        assert_eq!(
            resolve_with_env(&ann(&[]), Some(&any), None).unwrap(),
            settings(2, 1024)
        );
        let a = ann(&[(MEMORY, "768"), ("other.annotation", "x")]);
        assert_eq!(resolve_with_env(&a, Some(&any), None).unwrap(), settings(2, 768));
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
        let msg = resolve(&ann(&[(CPUS, "two")]), None).unwrap_err().to_string();
        assert_eq!(msg, "annotation io.containerd.voidbox.vm.cpus=\"two\": not a number");
        let msg = resolve(&ann(&[("io.containerd.voidbox.vm.gpus", "1")]), None)
            .unwrap_err()
            .to_string();
        assert!(
            msg.starts_with("unknown annotation io.containerd.voidbox.vm.gpus"),
            "{msg}"
        );
    }
}

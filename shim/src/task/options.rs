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

pub const ANNOTATION_PREFIX: &str = "io.containerd.voidbox.";
pub const CPUS: &str = "io.containerd.voidbox.vm.cpus";
pub const MEMORY: &str = "io.containerd.voidbox.vm.memory";
const KNOWN: &[&str] = &[CPUS, MEMORY];

pub const DEFAULT_CPUS: u32 = 1;
pub const DEFAULT_MEMORY_MIB: u32 = 512;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmSettings {
    pub cpus: u32,
    pub memory_mib: u32,
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
}

pub fn resolve(annotations: &HashMap<String, String>, options: Option<&Any>) -> Result<VmSettings> {
    let mut settings = VmSettings {
        cpus: DEFAULT_CPUS,
        memory_mib: DEFAULT_MEMORY_MIB,
    };
    if let Some(file) = config_file(options)? {
        settings.cpus = file.vm.cpus.unwrap_or(settings.cpus);
        settings.memory_mib = file.vm.memory.unwrap_or(settings.memory_mib);
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
        assert_eq!(
            resolve(&ann(&[]), None).unwrap(),
            VmSettings {
                cpus: 1,
                memory_mib: 512
            }
        );
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
            resolve(&ann(&[]), Some(&any)).unwrap(),
            VmSettings {
                cpus: 2,
                memory_mib: 1024
            }
        );
        let a = ann(&[(MEMORY, "768"), ("other.annotation", "x")]);
        assert_eq!(
            resolve(&a, Some(&any)).unwrap(),
            VmSettings {
                cpus: 2,
                memory_mib: 768
            }
        );
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

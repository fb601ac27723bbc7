//! The shim's configuration, read from its environment once, when a shim
//! command starts. Everything below takes it as a value; nothing else reads
//! the environment (except helper binaries' own overrides, which
//! `assets::Tool` resolves with PATH at use).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::assets::DATA_DIR;
use crate::otel::OtelConfig;
use crate::vm::qemu::Accel;

/// Where shim sockets go unless containerd names a directory (≥ 2.3).
const DEFAULT_SOCKET_DIR: &str = "/run/voidbox/s";
const DEFAULT_STATE_ROOT: &str = "/run/voidbox";
/// How long a VM that was busy must stay quiet before TCG's translation
/// cache is given back (sandbox/release.rs): about as soon as free page
/// reporting hands back freed guest memory (docs/performance.md).
pub const DEFAULT_TCG_RELEASE: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub struct HostConfig {
    /// The guest kernel: `VOIDBOX_KERNEL`, else the installed one.
    pub kernel: PathBuf,
    /// The guest root image: `VOIDBOX_IMAGE`, else the installed erofs image.
    pub image: PathBuf,
    /// Where per-VM state directories go: `VOIDBOX_STATE_DIR`.
    pub state_root: PathBuf,
    /// Where shim sockets go: `VOIDBOX_SOCKET_DIR`.
    pub socket_dir: PathBuf,
    /// Extra guest kernel arguments, for debugging (`VOIDBOX_GUEST_CMDLINE`,
    /// `voidbox.log=debug` for instance).
    pub guest_cmdline: Vec<String>,
    /// The VMM backend when neither annotation nor runtime options choose
    /// one (`VOIDBOX_VMM`); checked at Create, where a bad one is refused.
    pub backend: Option<String>,
    /// QEMU's accelerator (`VOIDBOX_ACCEL=kvm|tcg`), else what the host has.
    pub accel: Option<Accel>,
    /// QEMU under TCG: the translation cache per VM, MiB
    /// (`VOIDBOX_TCG_CACHE_MIB`), else QEMU's default. Smaller is denser
    /// and slower (docs/performance.md).
    pub tcg_cache_mib: Option<u32>,
    /// QEMU under TCG: how long a VM that was busy must stay quiet before
    /// its translation cache is given back (`VOIDBOX_TCG_RELEASE_MS`, 0 for
    /// never), else [`DEFAULT_TCG_RELEASE`] (docs/performance.md).
    pub tcg_release_after: Option<Duration>,
    /// How long a guest has to dial in after the VMM starts
    /// (`VOIDBOX_READY_TIMEOUT`, whole seconds), else the VM's default.
    pub ready_timeout: Option<Duration>,
    /// The bound on the guest's quick RPCs (`VOIDBOX_RPC_TIMEOUT`, whole
    /// seconds); those that run crun get three times it. Else the guest
    /// client's default.
    pub rpc_timeout: Option<Duration>,
    /// containerd's TTRPC address, for events (`TTRPC_ADDRESS`).
    pub ttrpc_address: Option<String>,
    /// Whether `GRPC_ADDRESS` was set (containerd ≥ 1.7).
    pub grpc_address_set: bool,
    /// OpenTelemetry export (`OTEL_*`, `VOIDBOX_TRACE_BUFFER`, ...).
    pub otel: OtelConfig,
}

impl HostConfig {
    pub fn from_env() -> Result<HostConfig, String> {
        Self::from_vars(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))
    }

    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<HostConfig, String> {
        let path = |name: &str, default: &Path| var(name).map(PathBuf::from).unwrap_or_else(|| default.to_path_buf());
        let accel = match var("VOIDBOX_ACCEL").as_deref() {
            None => None,
            Some("kvm") => Some(Accel::Kvm),
            Some("tcg") => Some(Accel::Tcg),
            Some(other) => return Err(format!("VOIDBOX_ACCEL={other:?}: use kvm or tcg")),
        };
        let whole = |name: &str, range: std::ops::RangeInclusive<u64>, what: &str| -> Result<Option<u64>, String> {
            let Some(v) = var(name) else { return Ok(None) };
            match v.trim().parse::<u64>() {
                Ok(n) if range.contains(&n) => Ok(Some(n)),
                _ => Err(format!("{name}={v:?}: a whole number of {what}")),
            }
        };
        let ready_timeout =
            whole("VOIDBOX_READY_TIMEOUT", 1..=u64::MAX, "seconds, at least 1")?.map(Duration::from_secs);
        let rpc_timeout = whole("VOIDBOX_RPC_TIMEOUT", 1..=3600, "seconds, 1 to 3600")?.map(Duration::from_secs);
        let tcg_cache_mib = whole("VOIDBOX_TCG_CACHE_MIB", 1..=4096, "MiB, 1 to 4096")?.map(|n| n as u32);
        let tcg_release_after = match whole("VOIDBOX_TCG_RELEASE_MS", 0..=3_600_000, "ms, 0 to 3600000")? {
            None => Some(DEFAULT_TCG_RELEASE),
            Some(0) => None,
            Some(ms) => Some(Duration::from_millis(ms)),
        };
        Ok(HostConfig {
            kernel: path("VOIDBOX_KERNEL", &Path::new(DATA_DIR).join("vmlinux")),
            image: path("VOIDBOX_IMAGE", &Path::new(DATA_DIR).join("guest.erofs")),
            state_root: path("VOIDBOX_STATE_DIR", Path::new(DEFAULT_STATE_ROOT)),
            socket_dir: path("VOIDBOX_SOCKET_DIR", Path::new(DEFAULT_SOCKET_DIR)),
            guest_cmdline: var("VOIDBOX_GUEST_CMDLINE")
                .map(|v| v.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default(),
            backend: var("VOIDBOX_VMM"),
            accel,
            tcg_cache_mib,
            tcg_release_after,
            ready_timeout,
            rpc_timeout,
            ttrpc_address: var("TTRPC_ADDRESS"),
            grpc_address_set: var("GRPC_ADDRESS").is_some(),
            otel: OtelConfig::from_vars(var)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let c = HostConfig::from_vars(|_| None).unwrap();
        assert_eq!(c.kernel, Path::new(DATA_DIR).join("vmlinux"));
        assert_eq!(c.state_root, Path::new("/run/voidbox"));
        assert!(c.guest_cmdline.is_empty() && c.accel.is_none() && c.backend.is_none());
        let c = HostConfig::from_vars(|k| match k {
            "VOIDBOX_GUEST_CMDLINE" => Some("voidbox.log=debug  quiet".into()),
            "VOIDBOX_ACCEL" => Some("tcg".into()),
            "VOIDBOX_STATE_DIR" => Some("/tmp/s".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.guest_cmdline, ["voidbox.log=debug", "quiet"]);
        assert_eq!(c.accel, Some(Accel::Tcg));
        assert_eq!(c.state_root, Path::new("/tmp/s"));
        let c = HostConfig::from_vars(|k| (k == "VOIDBOX_TCG_CACHE_MIB").then(|| "16".into())).unwrap();
        assert_eq!(c.tcg_cache_mib, Some(16));
        for bad in ["0", "16M", "5000"] {
            let e = HostConfig::from_vars(|k| (k == "VOIDBOX_TCG_CACHE_MIB").then(|| bad.into())).unwrap_err();
            assert!(e.contains("VOIDBOX_TCG_CACHE_MIB") && e.contains("1 to 4096"), "{e}");
        }
        assert_eq!(
            HostConfig::from_vars(|_| None).unwrap().tcg_release_after,
            Some(DEFAULT_TCG_RELEASE)
        );
        let release =
            |v: &'static str| HostConfig::from_vars(move |k| (k == "VOIDBOX_TCG_RELEASE_MS").then(|| v.into()));
        assert_eq!(release("0").unwrap().tcg_release_after, None, "0: never");
        assert_eq!(
            release("500").unwrap().tcg_release_after,
            Some(Duration::from_millis(500))
        );
        assert!(release("2s").unwrap_err().contains("VOIDBOX_TCG_RELEASE_MS"));
        let c = HostConfig::from_vars(|k| (k == "VOIDBOX_RPC_TIMEOUT").then(|| "3".into())).unwrap();
        assert_eq!(c.rpc_timeout, Some(Duration::from_secs(3)));
        for bad in ["0", "2.5", "3601"] {
            let e = HostConfig::from_vars(|k| (k == "VOIDBOX_RPC_TIMEOUT").then(|| bad.into())).unwrap_err();
            assert!(e.contains("VOIDBOX_RPC_TIMEOUT") && e.contains("1 to 3600"), "{e}");
        }
        let bad = HostConfig::from_vars(|k| (k == "VOIDBOX_ACCEL").then(|| "hvf".into()));
        assert!(bad.unwrap_err().contains("use kvm or tcg"));
        let c = HostConfig::from_vars(|k| (k == "VOIDBOX_READY_TIMEOUT").then(|| "5".into())).unwrap();
        assert_eq!(c.ready_timeout, Some(Duration::from_secs(5)));
        for bad in ["0", "5s", "-1"] {
            let e = HostConfig::from_vars(|k| (k == "VOIDBOX_READY_TIMEOUT").then(|| bad.into())).unwrap_err();
            assert!(e.contains("whole number of seconds"), "{e}");
        }
    }
}

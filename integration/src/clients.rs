//! The containerd releases the suites run against: Debian 12's 1.6.20
//! (task API v2, the system's), and 2.1.9 from Debian's unstable suite
//! (task API v3, the bootstrap protocol, trace context to shims), unpacked
//! into the cache by `make deps` and found through `VOIDBOX_CONTAINERD2_DIR`.
//! Docker Engine 28 comes the same way (`VOIDBOX_DOCKER_DIR`).

use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerdVersion {
    /// The system's: `containerd` and `ctr` on PATH.
    V1_6,
    /// The cached 2.1 release.
    V2_1,
}

/// The root of an unpacked client (`usr/bin/...` below it), from `var`.
fn unpacked(var: &str) -> PathBuf {
    let dir = std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| {
        panic!("{var} is not set: run the suite through `make test` (hack/with-assets.sh sets it after `make deps`)")
    });
    assert!(
        dir.is_dir(),
        "{var}={} is not a directory: run `make deps`",
        dir.display()
    );
    dir
}

impl ContainerdVersion {
    pub const ALL: [ContainerdVersion; 2] = [ContainerdVersion::V1_6, ContainerdVersion::V2_1];

    /// The directory holding `containerd` and `ctr`, or None for PATH's.
    pub fn bin_dir(self) -> Option<PathBuf> {
        match self {
            ContainerdVersion::V1_6 => None,
            ContainerdVersion::V2_1 => Some(unpacked("VOIDBOX_CONTAINERD2_DIR").join("usr/bin")),
        }
    }

    pub fn binary(self, name: &str) -> PathBuf {
        self.bin_dir().map(|d| d.join(name)).unwrap_or_else(|| name.into())
    }

    /// A short tag for names that must differ between releases.
    pub fn tag(self) -> &'static str {
        match self {
            ContainerdVersion::V1_6 => "16",
            ContainerdVersion::V2_1 => "21",
        }
    }

    /// Whether it sends W3C trace context to shims (containerd ≥ 2.0).
    pub fn propagates_trace_context(self) -> bool {
        self == ContainerdVersion::V2_1
    }
}

impl std::fmt::Display for ContainerdVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ContainerdVersion::V1_6 => "containerd 1.6 (task API v2)",
            ContainerdVersion::V2_1 => "containerd 2.1 (task API v3)",
        })
    }
}

/// Docker Engine's unpacked root (`usr/bin/docker`, `usr/sbin/dockerd`).
pub fn docker_dir() -> PathBuf {
    unpacked("VOIDBOX_DOCKER_DIR")
}

//! Where voidbox finds the guest kernel, the guest image and helper binaries.
//!
//! The kernel and image come from the configuration (`config`), else from
//! the fixed install locations `make install` uses; helper binaries from
//! their own override variable, else those locations, else PATH.

use std::path::{Path, PathBuf};

/// `make install` puts the kernel and guest image here.
pub const DATA_DIR: &str = "/usr/local/share/voidbox";
/// `make install` puts helper binaries (vhost-device-vsock) here.
pub const LIBEXEC_DIR: &str = "/usr/local/libexec/voidbox";

/// A helper binary that is nowhere to be found, and what to do about it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{tool} not found (looked in {searched}): {fix}")]
pub struct ToolMissing {
    pub tool: &'static str,
    pub searched: String,
    pub fix: &'static str,
}

/// A helper binary and how to get it.
pub struct Tool {
    pub name: &'static str,
    pub env: &'static str,
    pub dirs: &'static [&'static str],
    pub fix: &'static str,
}

impl Tool {
    /// `$env` if set (it must exist), else the first of `dirs`, else PATH.
    pub fn locate(&self) -> Result<PathBuf, ToolMissing> {
        if let Some(path) = std::env::var_os(self.env) {
            let path = PathBuf::from(path);
            return if is_executable(&path) {
                Ok(path)
            } else {
                Err(self.missing(format!("{}={}", self.env, path.display())))
            };
        }
        let path_var = std::env::var_os("PATH").unwrap_or_default();
        let candidates = self
            .dirs
            .iter()
            .map(PathBuf::from)
            .chain(std::env::split_paths(&path_var))
            .map(|d| d.join(self.name));
        for candidate in candidates {
            if is_executable(&candidate) {
                return Ok(candidate);
            }
        }
        let mut searched: Vec<String> = vec![format!("${}", self.env)];
        searched.extend(self.dirs.iter().map(|d| d.to_string()));
        searched.push("PATH".into());
        Err(self.missing(searched.join(", ")))
    }

    fn missing(&self, searched: String) -> ToolMissing {
        ToolMissing {
            tool: self.name,
            searched,
            fix: self.fix,
        }
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_tool_names_the_fix() {
        let tool = Tool {
            name: "voidbox-no-such-tool",
            env: "VOIDBOX_TEST_NO_SUCH_TOOL",
            dirs: &["/nonexistent"],
            fix: "install it",
        };
        let msg = tool.locate().unwrap_err().to_string();
        assert!(
            msg.contains("voidbox-no-such-tool not found") && msg.contains("install it"),
            "{msg}"
        );
    }
}

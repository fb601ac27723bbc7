//! A container's bind mounts (volumes, and CRI's /etc files) as the guest
//! gets them: each source goes through the VM's shared directory, with the
//! propagation the client asked for where a VM can honour it, and a refusal
//! that names the mode where it cannot.
//!
//! - `rprivate` (Kubernetes' None, the default): what the host mounts under
//!   the source later does not reach the container.
//! - `rslave` (HostToContainer): it does.
//! - `rshared` (Bidirectional): refused. Mounts made in the guest cannot
//!   reach the host.
//! - `ro` without `rro`: like runc, only the volume itself is read-only; the
//!   host's mounts under it keep their own mode, so each gets a bind of its
//!   own in the guest (through virtio-fs the guest sees one filesystem).

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{Result, ShimError};

/// How host mounts made under a shared source later reach the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    /// They do not.
    Private,
    /// They do.
    HostToGuest,
}

impl Propagation {
    fn option(self) -> &'static str {
        match self {
            Propagation::Private => "rprivate",
            Propagation::HostToGuest => "rslave",
        }
    }
}

fn options(m: &Value) -> Vec<&str> {
    m.get("options")
        .and_then(Value::as_array)
        .map(|o| o.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn is_bind(m: &Value) -> bool {
    m.get("type").and_then(Value::as_str) == Some("bind") || options(m).iter().any(|o| *o == "bind" || *o == "rbind")
}

/// The propagation mount `m` asks for, or why the guest cannot give it.
fn propagation(m: &Value) -> Result<Propagation> {
    let destination = m.get("destination").and_then(Value::as_str).unwrap_or_default();
    let mut mode = Propagation::Private;
    for o in options(m) {
        match o {
            "rshared" | "shared" => {
                return Err(ShimError::InvalidArgument(format!(
                    "mount {destination}: propagation {o} (Kubernetes' Bidirectional) cannot be honoured \
                     in a VM: mounts made in the guest cannot reach the host; use HostToContainer (rslave) \
                     or None (rprivate)"
                )))
            }
            "rslave" | "slave" => mode = Propagation::HostToGuest,
            "rprivate" | "private" => mode = Propagation::Private,
            _ => {}
        }
    }
    Ok(mode)
}

/// Rewrites the bind mounts in `mounts` to their guest paths: `share`
/// binds a host source into the shared directory and says where the guest
/// sees it; `submounts` lists the host's mount points under a source.
pub fn share_binds(
    mounts: &mut Vec<Value>,
    mut share: impl FnMut(&Path, Propagation) -> Result<String>,
    submounts: impl Fn(&Path) -> Vec<PathBuf>,
) -> Result<()> {
    let mut out = Vec::with_capacity(mounts.len());
    for mut m in mounts.drain(..) {
        let source = m.get("source").and_then(Value::as_str).map(PathBuf::from);
        let Some(source) = source.filter(|_| is_bind(&m)) else {
            out.push(m);
            continue;
        };
        let mode = propagation(&m)?;
        m["source"] = Value::String(share(&source, mode)?);
        let opts = options(&m);
        let top_only_readonly = opts.contains(&"ro") && !opts.contains(&"rro");
        let destination = m
            .get("destination")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        out.push(m);
        if !top_only_readonly {
            continue;
        }
        for sub in submounts(&source) {
            let rel = sub.strip_prefix(&source).expect("a submount is under its source");
            let guest = share(&sub, mode)?;
            out.push(serde_json::json!({
                "destination": Path::new(&destination).join(rel),
                "type": "bind",
                "source": guest,
                "options": ["rbind", mode.option()],
            }));
        }
    }
    *mounts = out;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    type Shared = Vec<(PathBuf, Propagation)>;

    fn run(mounts: Value, subs: &[&str]) -> Result<(Vec<Value>, Shared)> {
        let mut mounts: Vec<Value> = serde_json::from_value(mounts).unwrap();
        let mut shared = Vec::new();
        let subs: Vec<PathBuf> = subs.iter().map(PathBuf::from).collect();
        share_binds(
            &mut mounts,
            |p, mode| {
                shared.push((p.to_path_buf(), mode));
                Ok(format!("/g/{}", shared.len() - 1))
            },
            |p| subs.iter().filter(|s| s.starts_with(p) && *s != p).cloned().collect(),
        )?;
        Ok((mounts, shared))
    }

    #[test]
    fn propagation_is_honoured_or_refused_by_name() {
        let (m, shared) = run(
            json!([
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/a", "type": "bind", "source": "/h/a", "options": ["rbind", "rprivate", "rw"]},
                {"destination": "/b", "type": "bind", "source": "/h/b", "options": ["rbind", "rslave"]},
                {"destination": "/c", "source": "/h/c", "options": ["bind"]}
            ]),
            &[],
        )
        .unwrap();
        assert_eq!(m.len(), 4);
        assert_eq!(m[0]["source"], "proc");
        assert_eq!(
            shared,
            [
                (PathBuf::from("/h/a"), Propagation::Private),
                (PathBuf::from("/h/b"), Propagation::HostToGuest),
                (PathBuf::from("/h/c"), Propagation::Private),
            ]
        );
        assert_eq!(
            (m[1]["source"].as_str(), m[3]["source"].as_str()),
            (Some("/g/0"), Some("/g/2"))
        );

        let err = run(
            json!([{"destination": "/s", "type": "bind", "source": "/h/s", "options": ["rbind", "rshared"]}]),
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("mount /s: propagation rshared (Kubernetes' Bidirectional) cannot be honoured"),
            "{err}"
        );
    }

    #[test]
    fn a_read_only_volumes_submounts_keep_their_own_mode() {
        let (m, shared) = run(
            json!([
                {"destination": "/ro", "type": "bind", "source": "/h/v", "options": ["rbind", "ro", "rprivate"]},
                {"destination": "/rro", "type": "bind", "source": "/h/w", "options": ["rbind", "ro", "rro"]}
            ]),
            &["/h/v/sub", "/h/v/sub/deeper", "/h/w/sub"],
        )
        .unwrap();
        let dests: Vec<&str> = m.iter().map(|m| m["destination"].as_str().unwrap()).collect();
        assert_eq!(dests, ["/ro", "/ro/sub", "/ro/sub/deeper", "/rro"]);
        assert_eq!(
            m[1]["options"],
            json!(["rbind", "rprivate"]),
            "writable, as on the host"
        );
        assert_eq!(shared.len(), 4, "{shared:?}");
    }
}

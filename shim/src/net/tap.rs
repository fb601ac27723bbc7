//! The tap a VM's NIC is backed by, and the tc redirect that splices it to
//! the pod's interface (Kata's "tcfilter" mode).
//!
//! Both devices get an ingress qdisc with one u32 filter matching every
//! frame, whose action is `mirred egress redirect` to the other device:
//! what arrives on the veth leaves through the tap (into the VM), what the
//! VM sends arrives on the tap and leaves through the veth. Redirected
//! frames are stolen: the namespace's own stack no longer sees them.

use std::path::{Path, PathBuf};

use super::inspect::links;
use super::{Interface, NetError, Netns};

/// A tap spliced to a pod interface. Nothing is undone on drop: call
/// [`Redirect::teardown`] (the namespace's deletion also removes it all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    netns: PathBuf,
    interface: String,
    tap: String,
}

/// What setup has done so far, for undoing it when a later step fails.
#[derive(Default)]
struct Done {
    tap: bool,
    interface_qdisc: bool,
}

impl Redirect {
    /// Creates the persistent tap `tap_name` in the namespace at `netns`
    /// with `iface`'s MTU, brings it up and redirects all traffic between
    /// it and `iface` both ways. On failure, what was done is undone.
    pub fn setup(netns: &Path, iface: &Interface, tap_name: &str) -> Result<Redirect, NetError> {
        validate_name(&iface.name)?;
        validate_name(tap_name)?;
        let ns = Netns::open(netns)?;
        let redirect = Redirect::existing(netns, &iface.name, tap_name);

        let present = links(&ns)?;
        if !present.iter().any(|l| l.ifname.as_deref() == Some(&iface.name)) {
            return Err(NetError::NoSuchInterface {
                netns: netns.to_path_buf(),
                name: iface.name.clone(),
            });
        }
        if present.iter().any(|l| l.ifname.as_deref() == Some(tap_name)) {
            return Err(NetError::TapExists {
                netns: netns.to_path_buf(),
                name: tap_name.to_string(),
            });
        }

        let mut done = Done::default();
        match redirect.wire(&ns, iface.mtu, &mut done) {
            Ok(()) => Ok(redirect),
            Err(e) => {
                redirect.unwind(&ns, &done);
                Err(e)
            }
        }
    }

    /// A handle on a redirect set up earlier (by a shim that has since
    /// restarted), to tear it down. Does nothing by itself.
    pub fn existing(netns: &Path, interface: &str, tap: &str) -> Redirect {
        Redirect {
            netns: netns.to_path_buf(),
            interface: interface.to_string(),
            tap: tap.to_string(),
        }
    }

    /// The tap's name, for `-netdev tap,ifname=` or `krun_add_net_tap`.
    pub fn tap(&self) -> &str {
        &self.tap
    }

    /// The pod interface the tap is spliced to.
    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// The namespace both live in.
    pub fn netns(&self) -> &Path {
        &self.netns
    }

    /// Removes the redirect and the tap. Idempotent: what is already gone,
    /// the namespace included, is fine. Every step is tried; the first
    /// failure is returned.
    pub fn teardown(&self) -> Result<(), NetError> {
        let ns = match Netns::open(&self.netns) {
            Ok(ns) => ns,
            // The namespace is gone, and its devices with it.
            Err(NetError::OpenNetns { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(NetError::NotNetns { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        let present = links(&ns)?;
        let find = |name: &str| present.iter().find(|l| l.ifname.as_deref() == Some(name));
        let mut result = Ok(());
        if find(&self.interface).is_some() {
            // Deleting the qdisc deletes its filters.
            let step = has_ingress(&ns, &self.interface).and_then(|has| {
                if has {
                    ns.tc(&["qdisc", "del", "dev", &self.interface, "ingress"]).map(drop)
                } else {
                    Ok(())
                }
            });
            result = result.and(step);
        }
        // Only a tun/tap of that name is ours to delete.
        if find(&self.tap).is_some_and(|l| l.kind() == Some("tun")) {
            // Its qdisc and filter go with it.
            result = result.and(ns.ip(&["link", "del", "dev", &self.tap]).map(drop));
        }
        result
    }

    fn wire(&self, ns: &Netns, mtu: u32, done: &mut Done) -> Result<(), NetError> {
        let (iface, tap) = (self.interface.as_str(), self.tap.as_str());
        ns.ip(&["tuntap", "add", "dev", tap, "mode", "tap"])?;
        done.tap = true;
        ns.ip(&["link", "set", "dev", tap, "mtu", &mtu.to_string(), "up"])?;
        ns.tc(&["qdisc", "add", "dev", iface, "ingress"])?;
        done.interface_qdisc = true;
        ns.tc(&redirect_filter(iface, tap))?;
        ns.tc(&["qdisc", "add", "dev", tap, "ingress"])?;
        ns.tc(&redirect_filter(tap, iface))?;
        Ok(())
    }

    /// Undoes a partial setup, only what setup itself did.
    fn unwind(&self, ns: &Netns, done: &Done) {
        if done.interface_qdisc {
            if let Err(e) = ns.tc(&["qdisc", "del", "dev", &self.interface, "ingress"]) {
                tracing::warn!("undoing a failed tc redirect: {e}");
            }
        }
        if done.tap {
            if let Err(e) = ns.ip(&["link", "del", "dev", &self.tap]) {
                tracing::warn!("undoing a failed tc redirect: {e}");
            }
        }
    }
}

/// `tc filter add` arguments: every frame arriving on `from` leaves through `to`.
fn redirect_filter<'a>(from: &'a str, to: &'a str) -> [&'a str; 19] {
    [
        "filter", "add", "dev", from, "parent", "ffff:", "protocol", "all", "u32", "match", "u8", "0", "0", "action",
        "mirred", "egress", "redirect", "dev", to,
    ]
}

/// Whether `dev` has an ingress qdisc.
fn has_ingress(ns: &Netns, dev: &str) -> Result<bool, NetError> {
    let out = ns.tc(&["-j", "qdisc", "show", "dev", dev, "ingress"])?;
    let qdiscs: Vec<serde_json::Value> = serde_json::from_str(&out)
        .map_err(|e| ns.parse_error(&format!("tc -j qdisc show dev {dev} ingress"), e.to_string()))?;
    Ok(qdiscs.iter().any(|q| q["kind"] == "ingress"))
}

/// The kernel's rules for interface names (dev_valid_name), and no leading
/// `-`, which `ip` and `tc` would take for an option.
pub(super) fn validate_name(name: &str) -> Result<(), NetError> {
    let invalid = |reason| {
        Err(NetError::InvalidName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return invalid("empty");
    }
    if name.len() > 15 {
        return invalid("longer than 15 bytes");
    }
    if name == "." || name == ".." {
        return invalid("reserved");
    }
    if name.starts_with('-') {
        return invalid("starts with '-'");
    }
    if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
    {
        return invalid("contains '/', ':', whitespace or a control character");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_kernel_rules() {
        for good in ["vbtap0", "eth0", "a", "tap-with-15byt"] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in ["", "sixteen-bytes-xx", ".", "..", "-j", "a/b", "a:b", "a b", "a\n"] {
            let err = validate_name(bad).unwrap_err();
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }
}

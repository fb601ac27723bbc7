//! A pod's VM on the pod's network: the host side (the tap spliced to
//! CNI's veth, in the pod's network namespace) before the VM boots, and the
//! guest side (the NIC takes the veth's name, MAC, MTU, addresses and
//! routes) once vminitd answers.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use tracing::{info, warn};
use voidbox_api::system::{ConfigureNetworkRequest, Interface as GuestInterface, IpAddress, Route as GuestRoute};

use crate::error::{Result, ShimError};
use crate::guest::GuestClient;
use crate::net::{Interface, LoopbackCapture, Netns, PodNetwork, Redirect};
use crate::vm::{VmError, VmNetwork};

/// The VM's tap in the pod namespace (one VM per namespace).
const TAP: &str = "vbtap0";

/// What a pod's sandbox asks of its network: CNI's namespace on the host,
/// and the pod's network sysctls.
pub struct PodNetSpec {
    pub netns: PathBuf,
    pub sysctls: BTreeMap<String, String>,
}

pub struct PodNet {
    pub netns: PathBuf,
    sysctls: BTreeMap<String, String>,
    iface: Interface,
    network: PodNetwork,
    redirect: Redirect,
    /// containerd's port-forward connections, when iptables is there.
    capture: Option<Arc<LoopbackCapture>>,
}

fn blocking_err(e: tokio::task::JoinError) -> ShimError {
    ShimError::Internal(format!("pod network setup did not finish: {e}"))
}

impl PodNet {
    /// Reads what CNI set up in the pod's namespace and splices a tap to
    /// its interface.
    pub async fn attach(spec: PodNetSpec) -> Result<PodNet> {
        let PodNetSpec { netns: path, sysctls } = spec;
        tokio::task::spawn_blocking(move || {
            let network = PodNetwork::inspect(&path).map_err(VmError::from)?;
            let iface = network.primary().clone();
            let redirect = Redirect::setup(&path, &iface, TAP).map_err(VmError::from)?;
            // Port-forward is the only thing that needs it: a pod runs without.
            let capture = match Netns::open(&path).and_then(|ns| LoopbackCapture::setup(&ns)) {
                Ok(c) => Some(Arc::new(c)),
                Err(e) => {
                    warn!("kubectl port-forward will not reach this pod: {e}");
                    None
                }
            };
            info!(
                netns = %path.display(),
                interface = %iface.name,
                mac = %iface.mac,
                addresses = ?iface.ipv4,
                "pod network attached"
            );
            Ok(PodNet {
                netns: path,
                sysctls,
                iface,
                network,
                redirect,
                capture,
            })
        })
        .await
        .map_err(blocking_err)?
    }

    /// The VM's NIC: the tap, with the veth's MAC.
    pub fn vm_network(&self) -> VmNetwork {
        VmNetwork {
            netns: self.netns.clone(),
            tap: TAP.into(),
            mac: self.iface.mac.to_string(),
        }
    }

    /// What the guest takes over: the interface and its routes, but the
    /// subnet routes the kernel adds with each address.
    pub fn guest_config(&self) -> ConfigureNetworkRequest {
        let iface = &self.iface;
        let interface = GuestInterface {
            mac: iface.mac.0.to_vec(),
            name: iface.name.clone(),
            mtu: iface.mtu,
            addresses: iface
                .ipv4
                .iter()
                .map(|(a, p)| IpAddress {
                    address: a.to_string(),
                    prefix_len: u32::from(*p),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        let routes = self
            .network
            .routes
            .iter()
            .filter(|r| r.device == iface.name && r.protocol != "kernel")
            .map(|r| GuestRoute {
                destination: r.dst.map(|(a, _)| a.to_string()).unwrap_or_default(),
                prefix_len: r.dst.map(|(_, p)| u32::from(p)).unwrap_or(0),
                gateway: r.gateway.map(|g| g.to_string()).unwrap_or_default(),
                device: r.device.clone(),
                ..Default::default()
            })
            .collect();
        ConfigureNetworkRequest {
            interfaces: vec![interface],
            routes,
            sysctls: self.sysctls.clone().into_iter().collect(),
            ..Default::default()
        }
    }

    /// Hands the network to the guest.
    pub async fn configure_guest(&self, guest: &GuestClient) -> Result<()> {
        Ok(guest.configure_network(&self.guest_config()).await?)
    }

    /// The listener that containerd's port-forward connections reach.
    pub fn port_forward_listener(&self) -> Option<std::net::TcpListener> {
        let capture = self.capture.as_ref()?;
        capture
            .listener()
            .inspect_err(|e| warn!("port-forward listener: {e}"))
            .ok()
    }

    /// Removes the tap, the redirect and the loopback capture (the
    /// namespace may be gone already, and they with it).
    pub async fn detach(&self) {
        let redirect = Redirect::existing(self.redirect.netns(), self.redirect.interface(), self.redirect.tap());
        let capture = self.capture.clone();
        let netns = self.netns.clone();
        let removed = move || {
            if let Some(c) = capture {
                if let Err(e) = Netns::open(&netns).and_then(|ns| c.remove(&ns)) {
                    tracing::debug!("port-forward capture: {e}");
                }
            }
            redirect.teardown()
        };
        match tokio::task::spawn_blocking(removed).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!("pod network teardown: {e}"),
            Err(e) => warn!("pod network teardown: {e}"),
        }
    }
}

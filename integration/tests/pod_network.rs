//! A VM on a pod's network, without containerd: a network namespace set up
//! the way CNI's bridge plugin does (a veth pair, the pod end named eth0
//! with an address and a default route), the VM's tap spliced to it, and
//! the guest taking the pod's address. The host then reaches the guest at
//! the pod IP.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use voidbox_integration::fake_cni::FakeCni;
use voidbox_integration::{leftovers, test_backend, vm_config};
use voidbox_shim::guest::GuestClient;
use voidbox_shim::sandbox::podnet::{PodNet, PodNetSpec};
use voidbox_shim::vm::MicroVm;

/// A TCP connect to a closed port: refused means the guest's kernel
/// answered (a reset), so the pod IP reaches the VM.
fn guest_answers(addr: Ipv4Addr) -> Result<(), String> {
    match TcpStream::connect_timeout(&SocketAddr::from((addr, 9)), Duration::from_secs(3)) {
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Ok(()),
        Ok(_) => Err("something listens on port 9".into()),
        Err(e) => Err(e.to_string()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guest_takes_the_pods_address_and_answers_at_it() {
    let cni = FakeCni::new();
    // The sysctl containerd 2.x gives every pod (enable_unprivileged_ports).
    let spec = PodNetSpec {
        netns: cni.path(),
        sysctls: [("net.ipv4.ip_unprivileged_port_start".to_string(), "0".to_string())].into(),
    };
    let net = PodNet::attach(spec).await.expect("attach to the pod network");
    let mut config = vm_config("podnet");
    let state = config.state_dir.clone();
    config.network = Some(net.vm_network());
    let vm = MicroVm::start(test_backend().as_ref(), config).await.expect("start VM");
    let guest = GuestClient::connect(&vm).await.expect("guest");
    net.configure_guest(&guest).await.expect("configure the guest network");
    // The guest's NIC has the veth's MAC and name.
    let (mac, _) = guest
        .debug()
        .read_file("/sys/class/net/eth0/address", 0)
        .await
        .expect("guest eth0");
    assert_eq!(String::from_utf8_lossy(&mac).trim(), "02:42:0a:d5:00:02");
    let (mtu, _) = guest.debug().read_file("/sys/class/net/eth0/mtu", 0).await.unwrap();
    assert_eq!(String::from_utf8_lossy(&mtu).trim(), "1400");
    let (routes, _) = guest.debug().read_file("/proc/net/route", 0).await.unwrap();
    let routes = String::from_utf8_lossy(&routes).into_owned();
    // The default route (destination 0) through the gateway 10.213.N.1.
    let gw = format!("{:08X}", u32::from(Ipv4Addr::new(10, 213, cni.subnet, 1)).swap_bytes());
    assert!(
        routes
            .lines()
            .any(|l| l.starts_with("eth0\t00000000\t") && l.contains(&gw)),
        "guest routes:\n{routes}"
    );
    // The pod's network sysctls are the guest's: its namespace is the pod's.
    let (port, _) = guest
        .debug()
        .read_file("/proc/sys/net/ipv4/ip_unprivileged_port_start", 0)
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&port).trim(), "0", "the default is 1024");
    // The host reaches the guest at the pod's address.
    let addr = cni.pod_ip();
    tokio::task::spawn_blocking(move || guest_answers(addr))
        .await
        .unwrap()
        .expect("the pod IP reaches the VM");

    let exit = guest.power_off(&vm, Duration::from_secs(10)).await;
    assert!(exit.is_clean(), "{exit}");
    net.detach().await;
    assert!(
        !cni.links_in_netns().contains("vbtap0"),
        "the tap is gone: {}",
        cni.links_in_netns()
    );
    assert_eq!(leftovers(&state), Vec::<String>::new());
}

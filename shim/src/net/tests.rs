//! Real namespaces, veths and taps (the tests run as root): what CNI's bridge
//! plugin leaves, read back, spliced to a tap, traffic through it, torn down.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, UdpSocket};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sched::{setns, CloneFlags};
use serde_json::Value;

use super::*;

const POD_MAC: MacAddr = MacAddr([0x02, 0x11, 0x22, 0x33, 0x44, 0x55]);
const POD_IP: Ipv4Addr = Ipv4Addr::new(10, 88, 0, 5);
const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 88, 0, 1);

/// Runs a command that must succeed; returns its output.
fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json(program: &str, args: &[&str]) -> Value {
    serde_json::from_str(&run(program, args)).unwrap()
}

/// A pod namespace and, beside it, a "node" namespace holding the veth's
/// other end (the bridge side), so nothing touches the host's own network.
/// Both are deleted on drop, the veth with them, even when a test fails.
struct Pod {
    name: String,
    node: String,
}

impl Pod {
    /// Just the namespaces: only loopback in the pod.
    fn empty(tag: &str) -> Pod {
        let name = format!("vbxtest-{}-{tag}", std::process::id());
        let pod = Pod {
            node: format!("{name}-node"),
            name,
        };
        let _ = Command::new("ip").args(["netns", "del", &pod.name]).output();
        let _ = Command::new("ip").args(["netns", "del", &pod.node]).output();
        run("ip", &["netns", "add", &pod.name]);
        run("ip", &["netns", "add", &pod.node]);
        run("ip", &["-n", &pod.name, "link", "set", "lo", "up"]);
        pod
    }

    /// What the bridge plugin leaves: eth0 with a MAC, MTU 1400, an address
    /// in 10.88.0.0/24 and a default route via 10.88.0.1.
    fn with_veth(tag: &str) -> Pod {
        let pod = Pod::empty(tag);
        let mac = POD_MAC.to_string();
        #[rustfmt::skip]
        run("ip", &["-n", &pod.name, "link", "add", "eth0", "address", &mac, "mtu", "1400", "type", "veth",
            "peer", "name", "peer0", "mtu", "1400", "netns", &pod.node]);
        run("ip", &["-n", &pod.name, "addr", "add", "10.88.0.5/24", "dev", "eth0"]);
        run("ip", &["-n", &pod.name, "link", "set", "eth0", "up"]);
        run(
            "ip",
            &[
                "-n",
                &pod.name,
                "route",
                "add",
                "default",
                "via",
                "10.88.0.1",
                "dev",
                "eth0",
            ],
        );
        run("ip", &["-n", &pod.node, "addr", "add", "10.88.0.1/24", "dev", "peer0"]);
        run("ip", &["-n", &pod.node, "link", "set", "peer0", "up"]);
        pod
    }

    fn path(&self) -> PathBuf {
        Path::new("/var/run/netns").join(&self.name)
    }

    fn node_path(&self) -> PathBuf {
        Path::new("/var/run/netns").join(&self.node)
    }

    /// The ingress filters of `dev`, as `tc -j` prints them.
    fn filters(&self, dev: &str) -> Vec<Value> {
        let v = json("tc", &["-n", &self.name, "-j", "filter", "show", "dev", dev, "ingress"]);
        v.as_array().unwrap().clone()
    }

    fn links(&self) -> Vec<String> {
        let v = json("ip", &["-n", &self.name, "-j", "link", "show"]);
        v.as_array()
            .unwrap()
            .iter()
            .map(|l| l["ifname"].as_str().unwrap().to_string())
            .collect()
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
        let _ = Command::new("ip").args(["netns", "del", &self.node]).output();
    }
}

/// The devices every mirred redirect among `filters` sends to.
fn redirect_targets(filters: &[Value]) -> Vec<String> {
    filters
        .iter()
        .filter_map(|f| f["options"]["actions"].as_array())
        .flatten()
        .filter(|a| a["kind"] == "mirred" && a["mirred_action"] == "redirect" && a["direction"] == "egress")
        .map(|a| a["to_dev"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn inspect_reads_what_cni_left() {
    let pod = Pod::with_veth("inspect");
    let net = PodNetwork::inspect(&pod.path()).unwrap();
    let eth0 = Interface {
        name: "eth0".into(),
        mac: POD_MAC,
        mtu: 1400,
        up: true,
        kind: Some("veth".into()),
        ipv4: vec![(POD_IP, 24)],
        ipv6: vec![],
    };
    assert_eq!(net.interfaces, vec![eth0.clone()]);
    assert_eq!(
        net.routes,
        vec![
            Route {
                dst: None,
                gateway: Some(GATEWAY),
                device: "eth0".into(),
                scope: RouteScope::Global,
                onlink: false,
                protocol: "boot".into(),
                source: None,
                metric: None,
            },
            Route {
                dst: Some((Ipv4Addr::new(10, 88, 0, 0), 24)),
                gateway: None,
                device: "eth0".into(),
                scope: RouteScope::Link,
                onlink: false,
                protocol: "kernel".into(),
                source: Some(POD_IP),
                metric: None,
            },
        ]
    );
    // Only the link-local fe80::/64, which is left out.
    assert_eq!(net.routes6, vec![]);
    assert_eq!(net.primary(), &eth0);
}

#[test]
fn inspect_of_a_missing_namespace_names_it() {
    let path = Path::new("/var/run/netns/vbxtest-no-such-netns");
    let err = PodNetwork::inspect(path).unwrap_err();
    assert!(matches!(err, NetError::OpenNetns { .. }), "{err:?}");
    assert!(
        err.to_string().contains("/var/run/netns/vbxtest-no-such-netns"),
        "{err}"
    );
}

#[test]
fn inspect_of_a_namespace_without_interfaces_says_so() {
    let pod = Pod::empty("noiface");
    let err = PodNetwork::inspect(&pod.path()).unwrap_err();
    assert!(matches!(err, NetError::NoInterface { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(&*pod.path().to_string_lossy()) && msg.contains("no Ethernet interface") && msg.contains("lo ("),
        "{msg}"
    );
}

#[test]
fn redirect_splices_a_tap_and_teardown_removes_it() {
    let pod = Pod::with_veth("redirect");
    let net = PodNetwork::inspect(&pod.path()).unwrap();
    let redirect = Redirect::setup(&pod.path(), net.primary(), "vbtap0").unwrap();
    assert_eq!((redirect.tap(), redirect.interface()), ("vbtap0", "eth0"));

    let tap = json("ip", &["-n", &pod.name, "-j", "-d", "link", "show", "dev", "vbtap0"]);
    let tap = &tap[0];
    assert_eq!(tap["mtu"], 1400, "{tap}");
    assert!(tap["flags"].as_array().unwrap().iter().any(|f| f == "UP"), "{tap}");
    assert_eq!(tap["linkinfo"]["info_kind"], "tun", "{tap}");
    assert_eq!(tap["linkinfo"]["info_data"]["type"], "tap", "{tap}");
    assert_eq!(tap["linkinfo"]["info_data"]["persist"], true, "{tap}");
    assert_eq!(redirect_targets(&pod.filters("eth0")), vec!["vbtap0"]);
    assert_eq!(redirect_targets(&pod.filters("vbtap0")), vec!["eth0"]);
    // The tap is ours: inspect does not offer it as a pod interface.
    assert_eq!(PodNetwork::inspect(&pod.path()).unwrap().interfaces, net.interfaces);

    redirect.teardown().unwrap();
    assert!(!pod.links().contains(&"vbtap0".to_string()), "{:?}", pod.links());
    assert!(pod.filters("eth0").is_empty());
    let qdiscs = json(
        "tc",
        &["-n", &pod.name, "-j", "qdisc", "show", "dev", "eth0", "ingress"],
    );
    assert_eq!(qdiscs, serde_json::json!([]));
    // Idempotent, and fine once the namespace is gone.
    redirect.teardown().unwrap();
    drop(pod);
    redirect.teardown().unwrap();
}

#[test]
fn setup_refuses_a_missing_interface_or_an_existing_tap() {
    let pod = Pod::with_veth("refuse");
    let net = PodNetwork::inspect(&pod.path()).unwrap();
    let mut ghost = net.primary().clone();
    ghost.name = "eth9".into();
    let err = Redirect::setup(&pod.path(), &ghost, "vbtap0").unwrap_err();
    assert!(matches!(err, NetError::NoSuchInterface { .. }), "{err:?}");
    assert!(err.to_string().contains("eth9"), "{err}");

    run(
        "ip",
        &["-n", &pod.name, "tuntap", "add", "dev", "vbtap0", "mode", "tap"],
    );
    let err = Redirect::setup(&pod.path(), net.primary(), "vbtap0").unwrap_err();
    assert!(matches!(err, NetError::TapExists { .. }), "{err:?}");
    // A shim that lost its handle removes the leftover.
    Redirect::existing(&pod.path(), "eth0", "vbtap0").teardown().unwrap();
    assert!(!pod.links().contains(&"vbtap0".to_string()));

    let err = Redirect::setup(&pod.path(), net.primary(), "vbtap0/x").unwrap_err();
    assert!(matches!(err, NetError::InvalidName { .. }), "{err:?}");
}

#[test]
fn a_failed_setup_says_which_command_failed_and_undoes_itself() {
    let pod = Pod::with_veth("unwind");
    let net = PodNetwork::inspect(&pod.path()).unwrap();
    // Someone else's ingress qdisc: ours cannot be added.
    run("tc", &["-n", &pod.name, "qdisc", "add", "dev", "eth0", "ingress"]);
    let err = Redirect::setup(&pod.path(), net.primary(), "vbtap0").unwrap_err();
    let NetError::Command {
        command,
        netns,
        status,
        stderr,
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(command, "tc qdisc add dev eth0 ingress");
    assert_eq!(netns, &pod.path());
    assert!(status.contains("exit status: 2"), "{status}");
    assert!(!stderr.is_empty());
    assert!(err.to_string().contains(&*pod.path().to_string_lossy()), "{err}");
    // The tap setup created is gone; the qdisc it did not create is not.
    assert!(!pod.links().contains(&"vbtap0".to_string()), "{:?}", pod.links());
    let qdiscs = json(
        "tc",
        &["-n", &pod.name, "-j", "qdisc", "show", "dev", "eth0", "ingress"],
    );
    assert_eq!(qdiscs.as_array().unwrap().len(), 1, "{qdiscs}");
}

/// Enters the namespace at `path` on a thread of its own, runs `f` there.
fn in_netns<T: Send + 'static>(path: PathBuf, f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        setns(File::open(&path).unwrap(), CloneFlags::CLONE_NEWNET).unwrap();
        f()
    })
    .join()
    .unwrap()
}

/// Attaches to the tap `name` of the current thread's namespace, as a VMM
/// does (without the virtio-net header).
fn open_tap(name: &str) -> File {
    #[repr(C)]
    struct IfReq {
        name: [u8; libc::IFNAMSIZ],
        flags: libc::c_short,
        _pad: [u8; 22],
    }
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        flags: (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short,
        _pad: [0; 22],
    };
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    let tun = File::options().read(true).write(true).open("/dev/net/tun").unwrap();
    // SAFETY: TUNSETIFF reads and writes a struct ifreq, which IfReq lays
    // out (40 bytes); both it and the descriptor outlive the call.
    let rc = unsafe { libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(&tun), libc::TUNSETIFF, &mut req) };
    assert_eq!(rc, 0, "TUNSETIFF {name}: {}", std::io::Error::last_os_error());
    tun
}

/// The next frame from the tap that `pick` accepts, within 5 s.
fn next_frame(tap: &mut File, pick: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = vec![0u8; 2048];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no matching frame on the tap");
        let mut fds = [PollFd::new(tap.as_fd(), PollFlags::POLLIN)];
        let ms = PollTimeout::from(left.as_millis().min(1000) as u16);
        if poll(&mut fds, ms).unwrap() == 0 {
            continue;
        }
        let n = tap.read(&mut buf).unwrap();
        if pick(&buf[..n]) {
            return buf[..n].to_vec();
        }
    }
}

const ETH_ARP: [u8; 2] = [0x08, 0x06];
const ETH_IPV4: [u8; 2] = [0x08, 0x00];

/// Traffic crosses the splice both ways: the node's ARP request for the pod
/// address comes out of the tap (the pod's own stack never answers it), and
/// an answer written into the tap, from a MAC only the "VM" uses, reaches
/// the node, whose datagram then arrives on the tap addressed to that MAC.
#[test]
fn frames_cross_between_the_veth_and_the_tap() {
    const VM_MAC: [u8; 6] = [0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee];
    let pod = Pod::with_veth("traffic");
    let net = PodNetwork::inspect(&pod.path()).unwrap();
    let redirect = Redirect::setup(&pod.path(), net.primary(), "vbtap0").unwrap();
    let mut tap = in_netns(pod.path(), || open_tap("vbtap0"));
    let socket = in_netns(pod.node_path(), || UdpSocket::bind("0.0.0.0:0").unwrap());
    socket.send_to(b"hello vm", (POD_IP, 9)).unwrap();

    let request = next_frame(&mut tap, |f| {
        f.len() >= 42 && f[12..14] == ETH_ARP && f[20..22] == [0, 1] && f[38..42] == POD_IP.octets()
    });
    let (node_mac, node_ip) = (&request[22..28], &request[28..32]);
    let mut reply = Vec::new();
    reply.extend_from_slice(node_mac);
    reply.extend_from_slice(&VM_MAC);
    reply.extend_from_slice(&ETH_ARP);
    reply.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 2]); // Ethernet, IPv4, reply
    reply.extend_from_slice(&VM_MAC);
    reply.extend_from_slice(&POD_IP.octets());
    reply.extend_from_slice(node_mac);
    reply.extend_from_slice(node_ip);
    tap.write_all(&reply).unwrap();

    let datagram = next_frame(&mut tap, |f| f.len() >= 42 && f[12..14] == ETH_IPV4 && f[23] == 17);
    assert_eq!(&datagram[0..6], &VM_MAC);
    assert_eq!(&datagram[30..34], &POD_IP.octets());
    assert!(datagram.windows(8).any(|w| w == b"hello vm"));

    drop(tap);
    redirect.teardown().unwrap();
}

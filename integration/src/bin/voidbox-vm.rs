//! voidbox-vm: boots one micro-VM, prints what vminitd reports, and holds the
//! VM until stdin closes or SIGINT/SIGTERM arrives, then powers it off.
//!
//!   voidbox-vm [--cpus N] [--memory MIB] [--share TAG=DIR]... [--state-dir DIR]
//!   voidbox-vm --check-kvm      (exit 0 where hardware KVM, and so libkrun, works)
//!
//! The kernel and image come from VOIDBOX_KERNEL / VOIDBOX_IMAGE or the
//! installed assets. Tests use it to check what dies with its host process.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::signal::unix::{signal, SignalKind};

use voidbox_shim::guest::GuestClient;
use voidbox_shim::vm::{MicroVm, Share, VmConfig};

fn usage(msg: &str) -> ! {
    eprintln!("voidbox-vm: {msg}\nusage: voidbox-vm [--cpus N] [--memory MIB] [--share TAG=DIR]... [--state-dir DIR]");
    std::process::exit(2)
}

/// `--check-kvm`: whether libkrun can run here, and if not, why.
fn check_kvm() -> ! {
    match voidbox_shim::vm::kvm::hardware_kvm() {
        Ok(()) => {
            println!("hardware KVM: available");
            std::process::exit(0)
        }
        Err(why) => {
            println!("{why}");
            std::process::exit(1)
        }
    }
}

fn parse() -> VmConfig {
    let id = format!("vm-{}", std::process::id());
    let host = voidbox_integration::host_config();
    let mut config = VmConfig::new(
        &id,
        host.kernel.clone(),
        voidbox_shim::vm::GuestRoot::from_image(host.image),
        host.state_root.join(&id),
    );
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage(&format!("{arg} needs a value")));
        match arg.as_str() {
            "--cpus" => config.vcpus = value().parse().unwrap_or_else(|_| usage("--cpus takes a number")),
            "--memory" => config.memory_mib = value().parse().unwrap_or_else(|_| usage("--memory takes MiB")),
            "--state-dir" => config.state_dir = PathBuf::from(value()),
            "--check-kvm" => check_kvm(),
            "--share" => {
                let v = value();
                let (tag, dir) = v.split_once('=').unwrap_or_else(|| usage("--share takes TAG=DIR"));
                config.shares.push(Share {
                    tag: tag.into(),
                    host_path: dir.into(),
                });
            }
            other => usage(&format!("unknown argument {other}")),
        }
    }
    config
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let config = parse();
    let shares = config.shares.clone();
    let start = Instant::now();
    let vm = match MicroVm::start(voidbox_integration::test_backend().as_ref(), config).await {
        Ok(vm) => vm,
        Err(e) => {
            eprintln!("voidbox-vm: {e}");
            std::process::exit(1);
        }
    };
    let guest = match GuestClient::connect(&vm).await {
        Ok(g) => g,
        Err(e) => {
            eprintln!("voidbox-vm: {e}");
            std::process::exit(1);
        }
    };
    let ready = start.elapsed();
    let info = guest.info().await.unwrap_or_else(|e| {
        eprintln!("voidbox-vm: {e}");
        std::process::exit(1)
    });
    for share in &shares {
        let target = format!("/mnt/{}", share.tag);
        if let Err(e) = guest.debug().mount("virtiofs", &share.tag, &target, &[]).await {
            eprintln!("voidbox-vm: {e}");
        }
    }
    let boot = info.boot.clone().unwrap_or_default();
    println!(
        "vm        {} (qemu pid {}, state {})",
        vm.config().id,
        vm.vmm_pid(),
        vm.config().state_dir.display()
    );
    println!("kernel    {} {}", info.kernel_release, info.kernel_version);
    println!("vminitd   {}", info.vminitd_version);
    println!("cpus      {}, memory {} MiB", info.cpus, info.memory_total_bytes >> 20);
    println!(
        "boot      /init at {:.3}s, ready at {:.3}s guest uptime; spawn to ready {:.3}s on the host",
        boot.init_start_ns as f64 / 1e9,
        boot.ready_ns as f64 / 1e9,
        ready.as_secs_f64()
    );
    println!("ready     (close stdin or send SIGTERM to power off)");

    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    let mut stdin = tokio::io::stdin();
    let mut buf = [0u8; 64];
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
        _ = async { while stdin.read(&mut buf).await.map(|n| n > 0).unwrap_or(false) {} } => {}
        exit = vm.wait() => {
            eprintln!("voidbox-vm: VM ended: {exit}");
            std::process::exit(1);
        }
    }
    let exit = guest.power_off(&vm, Duration::from_secs(10)).await;
    println!("stopped   {exit}");
}

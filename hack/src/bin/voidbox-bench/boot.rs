//! VM boot: spawn to vminitd ready, against the bare kernel's spawn to /init.
//!
//! Both boot the same kernel on the same QEMU machine. The bare run has only
//! a trivial static /init in an initramfs and no devices; its time ends when
//! that init's line reaches the host over the serial console. The voidbox run
//! is a full `MicroVm` (vhost-device-vsock, erofs root, vminitd) and ends
//! when vminitd's vsock connection is accepted. Runs alternate, so drift in
//! the machine's load affects both alike.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use voidbox_hack::stats::{ms, ratio, Samples};
use voidbox_shim::config::HostConfig;
use voidbox_shim::guest::GuestClient;
use voidbox_shim::vm::qemu::{accel_cmdline, machine_args, Qemu, BASE_CMDLINE, QEMU};
use voidbox_shim::vm::NO_UP_PATCHING;
use voidbox_shim::vm::{Backend, GuestRoot, MicroVm, VmConfig};

const MARKER: &str = "VOIDBOX-BARE-INIT uptime_ns=";
const GOAL: f64 = 1.3;

#[derive(Default)]
struct Series {
    host: Samples,
    guest_init: Samples,
    guest_ready: Samples,
}

pub async fn run(boots: usize) -> Result<(), String> {
    let host = HostConfig::from_env()?;
    let kernel = host.kernel.clone();
    let bare_initrd = std::env::var_os("VOIDBOX_BARE_INITRD")
        .map(PathBuf::from)
        .ok_or("VOIDBOX_BARE_INITRD is not set: run through `make bench`, which builds the bare init")?;
    let erofs = GuestRoot::from_image(host.image.clone());
    // The same staging tree also exists as an initramfs beside the erofs image.
    let cpio = GuestRoot::Initramfs(erofs.path().with_extension("cpio"));
    let qemu = Qemu::choosing(host.accel);
    let accel = qemu.accel();

    let mut bare = Series::default();
    let mut with_erofs = Series::default();
    let mut with_cpio = Series::default();
    println!("boot: {boots} boots of each, alternating; kernel {}", kernel.display());
    println!("      qemu accel {accel:?}, 1 vCPU, 512 MiB");
    for i in 0..boots {
        boot_bare(&kernel, &bare_initrd, accel, &mut bare).await?;
        boot_voidbox(
            &qemu,
            &kernel,
            erofs.clone(),
            &format!("bench-erofs-{i}"),
            &mut with_erofs,
        )
        .await?;
        if cpio.path().exists() {
            boot_voidbox(&qemu, &kernel, cpio.clone(), &format!("bench-cpio-{i}"), &mut with_cpio).await?;
        }
    }

    println!();
    println!("  bare kernel, spawn to /init        {}", bare.host.summary());
    println!("    guest uptime at /init            {}", bare.guest_init.summary());
    println!("  voidbox (erofs root), spawn to ready {}", with_erofs.host.summary());
    println!(
        "    guest uptime at /init            {}",
        with_erofs.guest_init.summary()
    );
    println!(
        "    guest uptime at ready            {}",
        with_erofs.guest_ready.summary()
    );
    if !with_cpio.host.is_empty() {
        println!("  voidbox (initramfs), spawn to ready {}", with_cpio.host.summary());
        println!(
            "    guest uptime at ready            {}",
            with_cpio.guest_ready.summary()
        );
    }
    println!();
    let r = ratio(&with_erofs.host, &bare.host);
    println!(
        "  ratio voidbox ready / bare /init (median, erofs): {r:.3}  (goal ≤ {GOAL}: {})",
        if r <= GOAL { "met" } else { "NOT met" }
    );
    if !with_cpio.host.is_empty() {
        println!(
            "  ratio voidbox ready / bare /init (median, initramfs): {:.3}",
            ratio(&with_cpio.host, &bare.host)
        );
    }
    println!(
        "  added by voidbox over the bare kernel: {:.1} ms",
        ms(with_erofs.host.median()) - ms(bare.host.median())
    );
    Ok(())
}

async fn boot_bare(
    kernel: &Path,
    initrd: &Path,
    accel: voidbox_shim::vm::qemu::Accel,
    s: &mut Series,
) -> Result<(), String> {
    // The kernel parameters voidbox's QEMU VMs get for the accelerator, so
    // that the difference is voidbox's own work.
    let cmdline = format!("{BASE_CMDLINE}{} {NO_UP_PATCHING}", accel_cmdline(accel));
    let mut args = machine_args(accel, None, 1, 512, kernel, &cmdline);
    args.extend([
        "-initrd".into(),
        initrd.display().to_string(),
        "-serial".into(),
        "stdio".into(),
    ]);
    let qemu = QEMU.locate().map_err(|e| e.to_string())?;
    let start = Instant::now();
    let mut child = tokio::process::Command::new(qemu)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("spawn qemu: {e}"))?;
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    let found = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(ns) = line.split(MARKER).nth(1) {
                return ns.trim().parse::<u64>().ok();
            }
        }
        None
    })
    .await
    .map_err(|_| "bare kernel did not reach /init within 60 s".to_string())?;
    let host = start.elapsed();
    let ns = found.ok_or("bare init's line never appeared on the console")?;
    let _ = child.wait().await;
    s.host.push(host);
    s.guest_init.push(Duration::from_nanos(ns));
    Ok(())
}

async fn boot_voidbox(qemu: &Qemu, kernel: &Path, root: GuestRoot, id: &str, s: &mut Series) -> Result<(), String> {
    let state = HostConfig::from_env()?.state_root.join(id);
    let config = VmConfig::new(id, kernel.to_path_buf(), root, state);
    qemu.preflight().map_err(|e| e.to_string())?;
    let start = Instant::now();
    let vm = MicroVm::start(qemu, config).await.map_err(|e| e.to_string())?;
    let guest = GuestClient::connect(&vm).await.map_err(|e| e.to_string())?;
    let host = start.elapsed();
    let info = guest.info().await.map_err(|e| e.to_string())?;
    let exit = guest.power_off(&vm, Duration::from_secs(10)).await;
    if !exit.is_clean() {
        return Err(format!("benchmark VM did not power off cleanly: {exit}"));
    }
    let boot = info.boot.into_option().unwrap_or_default();
    s.host.push(host);
    s.guest_init.push(Duration::from_nanos(boot.init_start_ns));
    s.guest_ready.push(Duration::from_nanos(boot.ready_ns));
    Ok(())
}

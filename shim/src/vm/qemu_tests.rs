//! Tests of QEMU's command line and kernel parameters.

use super::*;

#[test]
fn command_line_has_every_device() {
    let mut cfg = VmConfig::new(
        "t",
        "/k/vmlinux".into(),
        GuestRoot::Erofs("/k/guest.erofs".into()),
        "/run/voidbox/t".into(),
    );
    cfg.vcpus = 2;
    cfg.memory_mib = 256;
    let fs = vec![(PathBuf::from("/run/voidbox/t/fs0.sock"), "rootfs".to_string())];
    let args = qemu_args(
        &cfg,
        Accel::Tcg,
        "console=ttyS0",
        Path::new("/run/voidbox/t/vhost-vsock.sock"),
        &fs,
        None,
        None,
    )
    .join(" ");
    for want in [
        "-accel tcg -cpu max",
        "-smp 2 -m 256M",
        "memory-backend-memfd,id=mem,size=256M,share=on",
        "-kernel /k/vmlinux -append console=ttyS0",
        "file=/k/guest.erofs,format=raw,if=none,readonly=on",
        "virtio-blk-device,drive=root,opt_io_size=4194304",
        "vhost-user-vsock-device,chardev=vsock",
        "virtio-rng-device,rng=rng",
        "vhost-user-fs-device,chardev=fs0,tag=rootfs",
        "path=/run/voidbox/t/console.log",
        "-no-reboot",
        "-sandbox on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
    ] {
        assert!(args.contains(want), "missing {want:?} in {args}");
    }
    cfg.tcg_cache_mib = Some(16);
    let args = qemu_args(&cfg, Accel::Tcg, "", Path::new("/v.sock"), &fs, None, None).join(" ");
    assert!(args.contains("-accel tcg,tb-size=16 -cpu max"), "{args}");
    let args = qemu_args(&cfg, Accel::Kvm, "", Path::new("/v.sock"), &fs, None, None).join(" ");
    assert!(
        args.contains("-accel kvm -cpu host"),
        "a KVM VM has no translation cache: {args}"
    );
}

#[test]
fn tcg_guests_skip_the_apic_timer_calibration_and_the_timer_check() {
    let words: Vec<String> = accel_cmdline(Accel::Tcg).split(' ').map(String::from).collect();
    for w in ["noapictimer", "no_timer_check"] {
        assert!(words.iter().any(|x| x == w), "{w} missing from {words:?}");
    }
    assert_eq!(
        accel_cmdline(Accel::Kvm),
        "",
        "hardware virtualization: the kernel's own choice"
    );
}

#[test]
fn only_tcg_serves_a_monitor_for_the_translation_cache() {
    let cfg = VmConfig::new(
        "t",
        "/k/vmlinux".into(),
        GuestRoot::Erofs("/k/guest.erofs".into()),
        "/run/voidbox/t".into(),
    );
    let tcg = Qemu::choosing(Some(Accel::Tcg));
    assert_eq!(tcg.monitor(&cfg), Some(PathBuf::from("/run/voidbox/t/qmp.sock")));
    let args = qemu_args(
        &cfg,
        Accel::Tcg,
        "",
        Path::new("/v.sock"),
        &[],
        None,
        tcg.monitor(&cfg).as_deref(),
    )
    .join(" ");
    assert!(
        args.contains("-qmp unix:/run/voidbox/t/qmp.sock,server=on,wait=off"),
        "{args}"
    );
    assert_eq!(
        Qemu::choosing(Some(Accel::Kvm)).monitor(&cfg),
        None,
        "KVM has no translation cache"
    );
}

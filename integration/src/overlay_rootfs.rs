//! A container's rootfs as containerd's overlayfs snapshotter hands it to a
//! shim: an `overlay` mount for the shim to mount on the bundle's empty
//! `rootfs` (and to unmount at Delete).

use std::path::Path;

use containerd_shim_protos::types::mount::Mount;

/// Turns the bundle's unpacked rootfs into the overlay's lower layer, with
/// its upper and work directories in `dir`, and leaves `rootfs` empty.
pub fn prepare(dir: &Path, bundle: &Path) -> Mount {
    let (lower, upper, work) = (dir.join("lower"), dir.join("upper"), dir.join("work"));
    std::fs::rename(bundle.join("rootfs"), &lower).expect("move the rootfs aside as the lower layer");
    for d in [&upper, &work, &bundle.join("rootfs")] {
        std::fs::create_dir_all(d).expect("an overlay directory");
    }
    let mut overlay = Mount::new();
    overlay.type_ = "overlay".into();
    overlay.source = "overlay".into();
    overlay.options = vec![
        "index=off".into(),
        format!("workdir={}", work.display()),
        format!("upperdir={}", upper.display()),
        format!("lowerdir={}", lower.display()),
    ];
    overlay
}

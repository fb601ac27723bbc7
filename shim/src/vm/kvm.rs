//! Telling hardware KVM apart from PVM or no KVM at all.

use std::path::Path;

/// Ok when hardware KVM (VT-x or AMD-V) is usable; otherwise why not.
///
/// `/dev/kvm` alone proves nothing: a PVM host exposes it too, but PVM only
/// runs specially built guest kernels.
pub fn hardware_kvm() -> Result<(), String> {
    hardware_kvm_at(Path::new("/sys/module"), Path::new("/dev/kvm"))
}

fn hardware_kvm_at(modules: &Path, dev: &Path) -> Result<(), String> {
    let hw = modules.join("kvm_intel").exists() || modules.join("kvm_amd").exists();
    if !hw {
        if modules.join("kvm_pvm").exists() {
            return Err("/dev/kvm is provided by PVM (kvm_pvm), which cannot run a standard guest kernel; no hardware KVM (kvm_intel/kvm_amd)".into());
        }
        return Err("no hardware KVM: neither kvm_intel nor kvm_amd is loaded".into());
    }
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dev)
        .map(drop)
        .map_err(|e| format!("{} cannot be opened: {e}", dev.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pvm_is_not_hardware_kvm() {
        let root = std::env::temp_dir().join(format!("voidbox-kvm-{}", std::process::id()));
        std::fs::create_dir_all(root.join("kvm_pvm")).unwrap();
        let err = hardware_kvm_at(&root, Path::new("/nonexistent")).unwrap_err();
        assert!(err.contains("PVM"), "{err}");
        std::fs::create_dir_all(root.join("kvm_intel")).unwrap();
        let err = hardware_kvm_at(&root, Path::new("/nonexistent")).unwrap_err();
        assert!(err.contains("cannot be opened"), "{err}");
        std::fs::remove_dir_all(root).unwrap();
    }
}

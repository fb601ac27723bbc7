//! What a VM is made of, and the checks that run before anything starts.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::VmError;

/// `sun_path` holds 108 bytes including the terminating NUL.
pub const MAX_UNIX_PATH: usize = 107;
/// virtio-fs tags are at most 36 bytes.
const MAX_TAG: usize = 36;

/// Kernel argument of every guest, either backend. A kernel that boots with
/// one CPU otherwise rewrites the LOCK prefix of each atomic instruction
/// (about 4,000) one `text_poke` at a time, each switching page tables
/// twice: under TCG 40 ms of a 380 ms boot (docs/performance-start.md). With the
/// prefixes left, atomics on one CPU cost what they cost on several.
pub const NO_UP_PATCHING: &str = "noreplace-smp";
/// Kernel argument of every guest: the balloon hands the host free blocks
/// of any size (from order 0), not only whole 2 MiB pageblocks, so memory a
/// container frees in pieces leaves the host too (docs/performance.md,
/// "Giving freed memory back"). Linux 6.1 drops the argument when the
/// balloon driver registers; vminitd applies it again.
pub const PAGE_REPORTING_ORDER: &str = "page_reporting.page_reporting_order=0";
const EROFS_MAGIC: [u8; 4] = 0xE0F5_E1E2u32.to_le_bytes();
const EROFS_SUPER_OFFSET: usize = 1024;

/// The guest's root filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestRoot {
    /// An erofs image attached read-only as the first virtio-blk disk.
    Erofs(PathBuf),
    /// An uncompressed cpio archive unpacked by the kernel.
    Initramfs(PathBuf),
}

impl GuestRoot {
    /// The root in `path`: an erofs image, or a cpio archive when it ends
    /// in `.cpio`.
    pub fn from_image(path: PathBuf) -> GuestRoot {
        if path.extension().is_some_and(|e| e == "cpio") {
            GuestRoot::Initramfs(path)
        } else {
            GuestRoot::Erofs(path)
        }
    }

    pub fn path(&self) -> &Path {
        match self {
            GuestRoot::Erofs(p) | GuestRoot::Initramfs(p) => p,
        }
    }

    /// Kernel arguments that make this root the guest's `/`, with vminitd as init.
    fn cmdline(&self) -> &'static str {
        match self {
            GuestRoot::Erofs(_) => "root=/dev/vda rootfstype=erofs ro init=/init",
            GuestRoot::Initramfs(_) => "rdinit=/init",
        }
    }
}

/// A host directory shared into the guest over virtio-fs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    pub tag: String,
    pub host_path: PathBuf,
}

/// The VM's NIC on a pod's network: a tap in the pod's network namespace,
/// which the VMM runs in to open it by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmNetwork {
    pub netns: PathBuf,
    pub tap: String,
    /// The NIC's MAC, `02:11:22:33:44:55`: the pod veth's.
    pub mac: String,
}

#[derive(Debug, Clone)]
pub struct VmConfig {
    pub id: String,
    pub vcpus: u32,
    pub memory_mib: u32,
    pub kernel: PathBuf,
    pub root: GuestRoot,
    /// Holds the VM's sockets, console log and helper logs; removed when the VM ends.
    pub state_dir: PathBuf,
    /// Host ports the guest dials; each gets a listening unix socket.
    pub vsock_ports: Vec<u32>,
    pub shares: Vec<Share>,
    pub network: Option<VmNetwork>,
    pub extra_cmdline: Vec<String>,
    /// How long the guest may take from spawn to its first connection.
    pub ready_timeout: Duration,
    /// QEMU under TCG: its translation cache, MiB (QEMU's default if None).
    pub tcg_cache_mib: Option<u32>,
}

impl VmConfig {
    /// A 1-vCPU, 512 MiB VM whose guest dials the TTRPC port.
    pub fn new(id: impl Into<String>, kernel: PathBuf, root: GuestRoot, state_dir: PathBuf) -> Self {
        VmConfig {
            id: id.into(),
            vcpus: 1,
            memory_mib: 512,
            kernel,
            root,
            state_dir,
            vsock_ports: vec![voidbox_api::TTRPC_PORT],
            shares: Vec::new(),
            network: None,
            extra_cmdline: Vec::new(),
            ready_timeout: Duration::from_secs(30),
            tcg_cache_mib: None,
        }
    }

    /// Where guest connections to host vsock port `port` arrive.
    pub fn vsock_path(&self, port: u32) -> PathBuf {
        self.state_dir.join(format!("vsock_{port}"))
    }

    pub fn console_log(&self) -> PathBuf {
        self.state_dir.join("console.log")
    }

    /// A socket in the state directory, refused if its path is too long to bind.
    pub fn socket_path(&self, name: &str) -> Result<PathBuf, VmError> {
        let path = self.state_dir.join(name);
        let len = path.as_os_str().len();
        if len > MAX_UNIX_PATH {
            return Err(VmError::SocketPathTooLong {
                path,
                len,
                max: MAX_UNIX_PATH,
                state_dir: self.state_dir.clone(),
            });
        }
        Ok(path)
    }

    /// Kernel arguments every backend passes: the root and vminitd's settings.
    pub fn common_cmdline(&self) -> String {
        let mut args = vec![
            self.root.cmdline().to_string(),
            // Seed the CRNG from the CPU's RDRAND at boot: otherwise
            // getrandom() in the guest (span ids, and whatever containers
            // run) blocks until an idle VM gathers entropy, which can take
            // minutes under emulation.
            "random.trust_cpu=on".to_string(),
            NO_UP_PATCHING.to_string(),
            PAGE_REPORTING_ORDER.to_string(),
            format!("voidbox.port={}", voidbox_api::TTRPC_PORT),
        ];
        args.extend(self.extra_cmdline.iter().cloned());
        args.join(" ")
    }

    /// Checks everything that can be checked before spawning.
    pub fn validate(&self) -> Result<(), VmError> {
        if self.id.is_empty() {
            return Err(VmError::Invalid("empty VM id".into()));
        }
        if !(1..=64).contains(&self.vcpus) {
            return Err(VmError::Invalid(format!("{} vCPUs: must be 1 to 64", self.vcpus)));
        }
        if self.memory_mib < 64 {
            return Err(VmError::Invalid(format!(
                "{} MiB of memory: at least 64 are needed",
                self.memory_mib
            )));
        }
        check_kernel(&self.kernel)?;
        check_root(&self.root)?;
        for port in &self.vsock_ports {
            self.socket_path(&format!("vsock_{port}"))?;
        }
        for (i, share) in self.shares.iter().enumerate() {
            if share.tag.is_empty() || share.tag.len() > MAX_TAG {
                return Err(VmError::Invalid(format!(
                    "share tag {:?}: must be 1 to {MAX_TAG} bytes",
                    share.tag
                )));
            }
            if self.shares[..i].iter().any(|s| s.tag == share.tag) {
                return Err(VmError::Invalid(format!("share tag {:?} used twice", share.tag)));
            }
            if !share.host_path.is_dir() {
                return Err(VmError::ShareMissing {
                    tag: share.tag.clone(),
                    path: share.host_path.clone(),
                });
            }
        }
        Ok(())
    }
}

fn read_prefix(path: &Path, len: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(len);
    std::fs::File::open(path)?.take(len as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

fn check_kernel(path: &Path) -> Result<(), VmError> {
    if !path.is_file() {
        return Err(VmError::KernelMissing { path: path.into() });
    }
    let head = read_prefix(path, 4).map_err(|e| VmError::io("read kernel", path, e))?;
    if head != b"\x7fELF" {
        return Err(VmError::Invalid(format!(
            "kernel {} is not an ELF vmlinux (both backends boot the ELF image)",
            path.display()
        )));
    }
    Ok(())
}

fn check_root(root: &GuestRoot) -> Result<(), VmError> {
    let path = root.path();
    let bad = |reason: &str| VmError::BadImage {
        path: path.into(),
        reason: reason.into(),
    };
    if !path.exists() {
        return Err(bad("no such file"));
    }
    if !path.is_file() {
        return Err(bad("not a regular file"));
    }
    match root {
        GuestRoot::Erofs(_) => {
            let head =
                read_prefix(path, EROFS_SUPER_OFFSET + 4).map_err(|e| VmError::io("read guest image", path, e))?;
            if head.get(EROFS_SUPER_OFFSET..) != Some(&EROFS_MAGIC[..]) {
                return Err(bad("not an erofs image (no erofs superblock at offset 1024)"));
            }
        }
        GuestRoot::Initramfs(_) => {
            let head = read_prefix(path, 6).map_err(|e| VmError::io("read guest image", path, e))?;
            if head != b"070701" {
                return Err(bad("not an uncompressed newc cpio archive"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch directory, removed when dropped.
    fn scratch(name: &str) -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix(&format!("voidbox-config-{name}-"))
            .tempdir()
            .unwrap()
    }

    #[test]
    fn every_guest_keeps_its_lock_prefixes() {
        let cfg = VmConfig::new("t", "k".into(), GuestRoot::Erofs("i".into()), "/s".into());
        let cmdline = cfg.common_cmdline();
        assert!(cmdline.split(' ').any(|w| w == "noreplace-smp"), "{cmdline}");
    }

    #[test]
    fn missing_kernel_names_the_fix() {
        let scratch = scratch("kernel");
        let dir = scratch.path().to_path_buf();
        let cfg = VmConfig::new("t", dir.join("nope"), GuestRoot::Erofs(dir.join("img")), dir.clone());
        let msg = cfg.validate().unwrap_err().to_string();
        assert!(
            msg.contains("guest kernel not found") && msg.contains("make kernel"),
            "{msg}"
        );
    }

    #[test]
    fn bad_image_and_long_socket_paths_are_refused() {
        let scratch = scratch("image");
        let dir = scratch.path().to_path_buf();
        let kernel = dir.join("vmlinux");
        std::fs::write(&kernel, b"\x7fELFrest").unwrap();
        let junk = dir.join("junk");
        std::fs::write(&junk, vec![0u8; 2048]).unwrap();
        let cfg = VmConfig::new("t", kernel.clone(), GuestRoot::Erofs(junk), dir.clone());
        let msg = cfg.validate().unwrap_err().to_string();
        assert!(
            msg.contains("not an erofs image") && msg.contains("make image"),
            "{msg}"
        );

        let mut img = vec![0u8; 2048];
        img[1024..1028].copy_from_slice(&EROFS_MAGIC);
        let good = dir.join("good");
        std::fs::write(&good, img).unwrap();
        let long = PathBuf::from(format!("/run/{}", "x".repeat(100)));
        let cfg = VmConfig::new("t", kernel, GuestRoot::Erofs(good), long);
        let msg = cfg.validate().unwrap_err().to_string();
        assert!(
            msg.contains("over the 107-byte limit") && msg.contains("VOIDBOX_STATE_DIR"),
            "{msg}"
        );
    }
}

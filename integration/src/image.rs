//! A busybox OCI image built locally from Debian's busybox-static, written as
//! an OCI layout tarball that `ctr image import` takes, and the pause image CRI
//! needs, made from the same layer. Nothing is pulled.

use std::path::{Path, PathBuf};

use serde_json::json;
use sha2::{Digest, Sha256};

const BUSYBOX: &str = "/bin/busybox";

fn digest(bytes: &[u8]) -> String {
    format!(
        "sha256:{}",
        Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

fn header(path: &str, kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_path(path).expect("tar path");
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h
}

/// One uncompressed layer: /bin/busybox, a link per applet, and the usual dirs.
fn layer() -> Vec<u8> {
    let busybox = std::fs::read(BUSYBOX).expect("busybox-static is installed (make deps)");
    let applets = std::process::Command::new(BUSYBOX)
        .arg("--list")
        .output()
        .expect("busybox --list");
    let mut tar = tar::Builder::new(Vec::new());
    for dir in [
        "bin/", "dev/", "etc/", "proc/", "root/", "sys/", "tmp/", "usr/", "usr/bin/", "var/",
    ] {
        let mut h = header(
            dir,
            tar::EntryType::Directory,
            if dir == "tmp/" { 0o1777 } else { 0o755 },
            0,
        );
        h.set_cksum();
        tar.append(&h, std::io::empty()).expect("tar dir");
    }
    let mut h = header("bin/busybox", tar::EntryType::Regular, 0o755, busybox.len() as u64);
    h.set_cksum();
    tar.append(&h, busybox.as_slice()).expect("tar busybox");
    for applet in String::from_utf8_lossy(&applets.stdout).lines() {
        if applet == "busybox" {
            continue;
        }
        let mut h = header(&format!("bin/{applet}"), tar::EntryType::Symlink, 0o777, 0);
        h.set_link_name("busybox").expect("link");
        h.set_cksum();
        tar.append(&h, std::io::empty()).expect("tar link");
    }
    for (path, body) in [
        (
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
        ),
        ("etc/group", "root:x:0:\nnogroup:x:65534:\n"),
    ] {
        let mut h = header(path, tar::EntryType::Regular, 0o644, body.len() as u64);
        h.set_cksum();
        tar.append(&h, body.as_bytes()).expect("tar file");
    }
    tar.into_inner().expect("tar finish")
}

/// Unpacks the busybox layer into `dir`, a rootfs for bundles made by hand.
pub fn unpack_busybox(dir: &Path) {
    tar::Archive::new(layer().as_slice())
        .unpack(dir)
        .expect("unpack busybox layer");
}

/// Writes the busybox layer alone as a tarball into `dir`: what
/// `docker import` takes (its classic store cannot load an OCI layout).
pub fn busybox_layer_tarball(dir: &Path) -> PathBuf {
    let path = dir.join("busybox-layer.tar");
    std::fs::write(&path, layer()).expect("write the busybox layer");
    path
}

/// The pause image CRI runs as each pod's sandbox: a shell that sleeps until
/// told to stop, and exits 0 on SIGTERM/SIGINT (as PID 1 it needs the trap).
pub const PAUSE_ENTRYPOINT: &[&str] = &[
    "/bin/sh",
    "-c",
    "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done",
];

/// Writes the OCI layout tarball of the busybox image into `dir`.
pub fn busybox_tarball(dir: &Path) -> PathBuf {
    busybox_image_tarball(dir, "busybox-oci.tar", &[], &["sh"])
}

/// Writes the pause image (busybox with `PAUSE_ENTRYPOINT`) into `dir`.
pub fn pause_tarball(dir: &Path) -> PathBuf {
    busybox_image_tarball(dir, "pause-oci.tar", PAUSE_ENTRYPOINT, &[])
}

/// Writes an OCI layout tarball `dir/file` of the busybox layer with the given
/// Entrypoint and Cmd (either may be empty, and is then left out).
pub fn busybox_image_tarball(dir: &Path, file: &str, entrypoint: &[&str], cmd: &[&str]) -> PathBuf {
    let layer = layer();
    // Keys in sorted order: the busybox image's bytes (and digest) stay as they were.
    let mut image_config = serde_json::Map::new();
    if !cmd.is_empty() {
        image_config.insert("Cmd".into(), json!(cmd));
    }
    if !entrypoint.is_empty() {
        image_config.insert("Entrypoint".into(), json!(entrypoint));
    }
    image_config.insert("Env".into(), json!(["PATH=/usr/bin:/bin"]));
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": image_config,
        "rootfs": {"type": "layers", "diff_ids": [digest(&layer)]},
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest(&layer), "size": layer.len()}],
    }))
    .unwrap();
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest(&manifest),
            "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": "latest"},
        }],
    }))
    .unwrap();

    let path = dir.join(file);
    let mut tar = tar::Builder::new(std::fs::File::create(&path).expect("create image tarball"));
    let mut add = |name: &str, body: &[u8]| {
        let mut h = header(name, tar::EntryType::Regular, 0o644, body.len() as u64);
        h.set_cksum();
        tar.append(&h, body).expect("tar image file");
    };
    add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    add("index.json", &index);
    for blob in [&layer, &config, &manifest] {
        add(&format!("blobs/sha256/{}", &digest(blob)[7..]), blob);
    }
    tar.finish().expect("finish image tarball");
    path
}

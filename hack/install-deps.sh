#!/usr/bin/env bash
# Installs what voidbox needs on Debian 12: the apt packages that are missing,
# the system user `voidbox` VMMs run as, and vhost-device-vsock (cargo install, cached under $VOIDBOX_CACHE). Then
# fetches into that cache, without installing them, the guest's crun 1.21,
# the newer clients containerd 2.1 and Docker 28 (hack/fetch-debs.sh) and
# mermaid-cli (hack/fetch-mermaid.sh). Prometheus, which only the tests use,
# is built on their first run (hack/with-assets.sh, hack/build-prometheus.sh).
# A second run finds everything present and installs nothing.
# Prints only the vhost-device-vsock path on stdout (hack/with-assets.sh reads it).
set -euo pipefail

cache=${VOIDBOX_CACHE:-/var/cache/voidbox}
VHOST_VSOCK_VERSION=0.3.0

packages=(
    # VMs: QEMU (microvm, TCG or KVM) and virtiofsd (in qemu-system-common on Debian 12)
    qemu-system-x86 qemu-system-common
    # voidbox's QEMU, built from the installed one's source (hack/build-qemu.sh)
    dpkg-dev ninja-build meson libglib2.0-dev libpixman-1-dev libfdt-dev zlib1g-dev
    # containers: the daemon that drives the shim, runtimes, and the test image's busybox
    containerd crun runc busybox-static
    # kubectl port-forward: the pod namespace's loopback redirected to the shim
    iptables
    # guest kernel: the source and what building it takes
    linux-source-6.1 bc bison flex libelf-dev libssl-dev xz-utils make gcc
    # guest image
    cpio erofs-utils
    # the guest's crun 1.21, built static from trixie's source (hack/fetch-debs.sh crun)
    gperf pkg-config libseccomp-dev libcap-dev
    # the tests' Prometheus with its OTLP receiver (hack/build-prometheus.sh)
    patch
    # tests and tools
    iproute2 procps
    # rendering voidbox-trace's Mermaid chart in the tests: mermaid-cli drives Chromium
    chromium
    # CRI tests: the CNI plugins containerd's CRI plugin networks pods with
    # (/usr/lib/cni), and protoc, which the k8s-cri crate's build script runs
    containernetworking-plugins protobuf-compiler
)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# npm installs mermaid-cli (hack/fetch-mermaid.sh). Any npm will do: one that
# came with another Node.js package is not replaced by Debian's.
command -v npm >/dev/null || missing+=(npm)
if (( ${#missing[@]} )); then
    if [[ $(id -u) != 0 ]]; then
        echo "install-deps: missing packages ${missing[*]}; run as root (or: sudo apt-get install ${missing[*]})" >&2
        exit 1
    fi
    echo "install-deps: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2
    apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
fi

# The unprivileged user VMMs and their helpers run as (docs/security.md).
"$(dirname "$0")/vmm-user.sh" >&2

vsock=$cache/vhost-device-vsock-$VHOST_VSOCK_VERSION/bin/vhost-device-vsock
if [[ ! -x $vsock ]]; then
    command -v cargo >/dev/null || { echo "install-deps: cargo missing; install Rust (rustup)" >&2; exit 1; }
    echo "install-deps: cargo install vhost-device-vsock $VHOST_VSOCK_VERSION" >&2
    mkdir -p "$cache"
    cargo install --locked --quiet vhost-device-vsock --version "$VHOST_VSOCK_VERSION" \
        --root "$cache/vhost-device-vsock-$VHOST_VSOCK_VERSION" >&2
fi
# The caller reads only the vsock path: the fetched paths stay off stdout.
here=$(cd "$(dirname "$0")" && pwd)
"$here/fetch-debs.sh" crun >/dev/null
"$here/fetch-debs.sh" client containerd >/dev/null
"$here/fetch-debs.sh" client docker >/dev/null
"$here/fetch-mermaid.sh" >/dev/null

echo "$vsock"

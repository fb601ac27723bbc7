#!/usr/bin/env bash
# Runs a command with the guest assets built (or found in the cache) and
# pointed at by the environment the tests, the bench and the demo read:
#   VOIDBOX_KERNEL, VOIDBOX_IMAGE, VOIDBOX_RELEASE_IMAGE, VOIDBOX_BARE_INITRD,
#   VOIDBOX_VHOST_VSOCK, VOIDBOX_QEMU (voidbox's QEMU build, hack/build-qemu.sh),
#   VOIDBOX_CONTAINERD2_DIR (unpacked containerd 2.1: usr/bin/containerd, ctr)
#   VOIDBOX_DOCKER_DIR (unpacked Docker 28: usr/sbin/dockerd, usr/bin/docker),
#   VOIDBOX_PROMETHEUS_DIR (Prometheus 3.5 with its OTLP receiver: usr/bin/prometheus;
#   not with --release)
#   and VOIDBOX_MMDC (mermaid-cli's mmdc)
#
# VOIDBOX_IMAGE is the test image: its vminitd (vminitd-debug, built with the
# `debug-rpcs` feature) serves the Debug service the suites use.
# VOIDBOX_RELEASE_IMAGE is the image without it, the one `make install` ships;
# with --release, VOIDBOX_IMAGE is that one too (the demo, the bench).
# VOIDBOX_TEST_IMAGE is always the test image (the bench's relay suite
# makes its spans with the Debug service).
#
#   hack/with-assets.sh [--release] COMMAND [ARGS...]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$top/target}/x86_64-unknown-linux-gnu/guest
release=
if [[ ${1:-} == --release ]]; then
    release=1
    shift
fi

VOIDBOX_VHOST_VSOCK=$("$top/hack/install-deps.sh")
VOIDBOX_KERNEL=$("$top/guest/build-kernel.sh")
VOIDBOX_BARE_INITRD=$("$top/guest/build-image.sh" --bare "$target/bare-init")
# Its build boots the bare kernel for a profile (hack/build-qemu.sh).
VOIDBOX_QEMU=$("$top/hack/build-qemu.sh" "$VOIDBOX_KERNEL" "$VOIDBOX_BARE_INITRD")
VOIDBOX_RELEASE_IMAGE=$("$top/guest/build-image.sh" "$target/vminitd")/guest.erofs
VOIDBOX_TEST_IMAGE=$("$top/guest/build-image.sh" "$target/vminitd-debug")/guest.erofs
if [[ -n $release ]]; then
    VOIDBOX_IMAGE=$VOIDBOX_RELEASE_IMAGE
else
    VOIDBOX_IMAGE=$VOIDBOX_TEST_IMAGE
fi
# install-deps.sh has fetched these already: here they are only looked up.
VOIDBOX_CONTAINERD2_DIR=$("$top/hack/fetch-debs.sh" client containerd)
VOIDBOX_DOCKER_DIR=$("$top/hack/fetch-debs.sh" client docker)
# Only the tests use Prometheus: the demo and the bench (--release) do not
# wait for its first build (about 3 minutes).
if [[ -z $release ]]; then
    VOIDBOX_PROMETHEUS_DIR=$("$top/hack/build-prometheus.sh")
    export VOIDBOX_PROMETHEUS_DIR
fi
VOIDBOX_MMDC=$("$top/hack/fetch-mermaid.sh")
export VOIDBOX_VHOST_VSOCK VOIDBOX_QEMU VOIDBOX_KERNEL VOIDBOX_IMAGE VOIDBOX_RELEASE_IMAGE VOIDBOX_TEST_IMAGE VOIDBOX_BARE_INITRD \
    VOIDBOX_CONTAINERD2_DIR VOIDBOX_DOCKER_DIR VOIDBOX_MMDC
exec "$@"

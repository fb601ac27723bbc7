#!/usr/bin/env bash
# Runs a command with the guest assets built (or found in the cache) and
# pointed at by the environment the tests, the bench and the demo read:
#   VOIDBOX_KERNEL, VOIDBOX_IMAGE, VOIDBOX_BARE_INITRD, VOIDBOX_VHOST_VSOCK
#
#   hack/with-assets.sh COMMAND [ARGS...]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$top/target}/x86_64-unknown-linux-gnu/release

VOIDBOX_VHOST_VSOCK=$("$top/hack/install-deps.sh")
VOIDBOX_KERNEL=$("$top/guest/build-kernel.sh")
image_dir=$("$top/guest/build-image.sh" "$target/vminitd")
VOIDBOX_IMAGE=$image_dir/guest.erofs
VOIDBOX_BARE_INITRD=$("$top/guest/build-image.sh" --bare "$target/bare-init")
export VOIDBOX_VHOST_VSOCK VOIDBOX_KERNEL VOIDBOX_IMAGE VOIDBOX_BARE_INITRD
exec "$@"

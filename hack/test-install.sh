#!/usr/bin/env bash
# After `make install`: containerd finds the shim on its PATH, and the shim
# finds its kernel, image and helpers in the install locations, with no
# VOIDBOX_* variable set. Runs one container through a private containerd.
set -euo pipefail
for v in $(env | grep -o '^VOIDBOX_[A-Z_]*'); do unset "$v"; done
top=$(cd "$(dirname "$0")/.." && pwd)
dir=$(mktemp -d /tmp/voidbox-install.XXXXXX)
state=/run/vbi-$$
ctr="ctr --address $state/c.sock --namespace install"
cleanup() {
    for c in inst inst-vmm; do $ctr task kill -s KILL $c 2>/dev/null || true; done
    sleep 1
    $ctr task delete inst-vmm 2>/dev/null || true
    [[ -n ${pid:-} ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    grep -o "$dir[^ ]*" /proc/mounts | xargs -r -n1 umount -l 2>/dev/null || true
    rm -rf "$dir" "$state"
}
trap cleanup EXIT
mkdir -p "$dir/root" "$state"
cat > "$dir/config.toml" <<TOML
version = 2
root = "$dir/root"
state = "$state/ctd"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$state/c.sock"
TOML
env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin containerd --config "$dir/config.toml" > "$dir/containerd.log" 2>&1 &
pid=$!
for _ in $(seq 100); do [[ -S $state/c.sock ]] && break; sleep 0.05; done
$ctr image import --base-name localhost/busybox "$("$top/target/debug/voidbox-busybox-image" "$dir")" >/dev/null
out=$($ctr run --rm --runtime io.containerd.voidbox.v2 --fifo-dir "$dir/fifo" localhost/busybox:latest inst sh -c 'echo installed voidbox works')
if [[ $out != "installed voidbox works" ]]; then
    echo "test-install: unexpected output: $out" >&2
    tail -20 "$dir/containerd.log" >&2
    exit 1
fi
echo "test-install: a container ran with the installed shim, kernel and image"
# Its VMM is the installed QEMU build (hack/build-qemu.sh), not the system's.
$ctr run -d --runtime io.containerd.voidbox.v2 localhost/busybox:latest inst-vmm sleep 60 >/dev/null
vmm=
for _ in $(seq 100); do
    vmm=$(for p in $(pgrep -x qemu-system-x86); do readlink "/proc/$p/exe"; done)
    [[ -n $vmm ]] && break
    sleep 0.1
done
if [[ $vmm != /usr/local/libexec/voidbox/qemu-system-x86_64 ]]; then
    echo "test-install: the VMM is ${vmm:-not running}, not the installed QEMU build" >&2
    exit 1
fi
echo "test-install: its VMM is the installed QEMU build"

#!/usr/bin/env bash
# make demo: a private containerd runs one container in a voidbox micro-VM.
# Uses the assets in the environment (hack/with-assets.sh sets them).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
bin=$top/target/debug
dir=$(mktemp -d /tmp/voidbox-demo.XXXXXX)
state=/run/vbd-$$
ctr="ctr --address $state/c.sock --namespace demo"
cleanup() {
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
echo "==> a private containerd $(containerd --version | awk '{print $3}') in $dir"
PATH=$bin:$PATH VOIDBOX_STATE_DIR=$state/vms VOIDBOX_SOCKET_DIR=$state/s \
    containerd --config "$dir/config.toml" > "$dir/containerd.log" 2>&1 &
pid=$!
for _ in $(seq 100); do [[ -S $state/c.sock ]] && break; sleep 0.05; done
echo "==> importing a busybox image built from Debian's busybox-static"
$ctr image import --base-name localhost/busybox "$("$bin/voidbox-busybox-image" "$dir")" | tail -1
echo "==> ctr run --rm --runtime io.containerd.voidbox.v2 localhost/busybox:latest demo ..."
start=$(date +%s.%N)
$ctr run --rm --runtime io.containerd.voidbox.v2 --fifo-dir "$dir/fifo" localhost/busybox:latest demo \
    sh -c 'echo "hello from a container in a micro-VM"; echo "kernel: $(uname -r), cpus: $(nproc)"; grep MemTotal /proc/meminfo'
end=$(date +%s.%N)
printf '==> done in %.2f s (VM boot, container, power-off)\n' "$(echo "$end - $start" | bc)"
echo "==> what the shim logged:"
grep -E 'voidbox_shim' "$dir/containerd.log" | sed -E 's/^[0-9T:.-]+Z +//' | grep -vE 'DEBUG' | cut -c1-160

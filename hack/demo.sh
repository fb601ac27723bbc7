#!/usr/bin/env bash
# make demo: a private containerd runs one container in a voidbox micro-VM,
# with tracing on, and shows the container's trace as a waterfall. No Jaeger
# needed: a local OTLP receiver (voidbox-trace receive) collects the trace.
# Uses the assets in the environment (hack/with-assets.sh sets them).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
bin=$top/target/debug
dir=$(mktemp -d /tmp/voidbox-demo.XXXXXX)
state=/run/vbd-$$
ctr="ctr --address $state/c.sock --namespace demo"
cleanup() {
    [[ -n ${pid:-} ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    [[ -n ${otlp:-} ]] && kill "$otlp" 2>/dev/null || true
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
if [[ -n ${DEMO_OTLP_ENDPOINT:-} ]]; then
    # Export to an existing collector (Jaeger) instead of a local receiver.
    endpoint=$DEMO_OTLP_ENDPOINT
else
"$bin/voidbox-trace" receive --listen 127.0.0.1:0 --out "$dir/trace.json" --until Container --timeout 120 \
    2> "$dir/otlp.log" &
otlp=$!
for _ in $(seq 100); do grep -q "receiving" "$dir/otlp.log" 2>/dev/null && break; sleep 0.05; done
endpoint=$(grep -o 'http://[0-9.:]*' "$dir/otlp.log")
echo "==> an OTLP/HTTP receiver at $endpoint"
fi
echo "==> a private containerd $(containerd --version | awk '{print $3}') in $dir, OTEL_EXPORTER_OTLP_ENDPOINT=$endpoint"
PATH=$bin:$PATH VOIDBOX_STATE_DIR=$state/vms VOIDBOX_SOCKET_DIR=$state/s OTEL_EXPORTER_OTLP_ENDPOINT=$endpoint \
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
if [[ -n ${otlp:-} ]]; then
    wait "$otlp" 2>/dev/null || true
    otlp=
    echo "==> the container's trace (host spans, and the guest's marked vm, on the host clock):"
    "$bin/voidbox-trace" show --file "$dir/trace.json" --waterfall
else
    # Let the shim flush to the collector before containerd goes.
    sleep 2
fi

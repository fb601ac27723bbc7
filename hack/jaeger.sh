#!/usr/bin/env bash
# Jaeger all-in-one for looking at voidbox traces: OTLP/HTTP on 4318, the UI
# on 16686. Runs through docker or podman, whichever has a working engine.
#
#   hack/jaeger.sh start|stop|open|status
set -euo pipefail
NAME=voidbox-jaeger
IMAGE=${JAEGER_IMAGE:-jaegertracing/all-in-one:latest}
UI=http://localhost:16686

engine() {
    local tried=()
    for e in docker podman; do
        if command -v "$e" >/dev/null; then
            if "$e" info >/dev/null 2>&1; then
                echo "$e"
                return
            fi
            tried+=("$e is installed but its engine does not answer ('$e info' fails)")
        fi
    done
    if (( ${#tried[@]} )); then
        printf 'jaeger: no container engine can run Jaeger: %s.\n' "$(IFS=';'; echo "${tried[*]}")" >&2
    else
        echo "jaeger: neither docker nor podman is installed, so Jaeger cannot run here." >&2
    fi
    echo "jaeger: point OTEL_EXPORTER_OTLP_ENDPOINT at any OTLP/HTTP collector instead, or use 'make demo' and 'make jaeger-gantt TRACE_FILE=...', which need no Jaeger." >&2
    exit 1
}

case ${1:-} in
start)
    e=$(engine)
    "$e" rm -f "$NAME" >/dev/null 2>&1 || true
    "$e" run -d --name "$NAME" -e COLLECTOR_OTLP_ENABLED=true -p 4318:4318 -p 16686:16686 "$IMAGE" >/dev/null
    echo "jaeger: running ($e). OTLP/HTTP: http://localhost:4318  UI: $UI"
    echo "jaeger: export OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 for containerd (and so the shim)"
    ;;
stop)
    e=$(engine)
    "$e" rm -f "$NAME" >/dev/null 2>&1 && echo "jaeger: stopped" || echo "jaeger: was not running"
    ;;
open)
    if command -v xdg-open >/dev/null && [[ -n ${DISPLAY:-}${WAYLAND_DISPLAY:-} ]]; then
        xdg-open "$UI"
    else
        echo "jaeger: open $UI in a browser (service: voidbox)"
    fi
    ;;
status)
    curl -fsS -o /dev/null "$UI/api/services" 2>/dev/null && echo "jaeger: up at $UI" || { echo "jaeger: not reachable at $UI"; exit 1; }
    ;;
*)
    echo "usage: hack/jaeger.sh start|stop|open|status" >&2
    exit 2
    ;;
esac

#!/usr/bin/env bash
# Installs mermaid-cli (`mmdc`, which renders Mermaid to SVG) into
# $VOIDBOX_CACHE (default /var/cache/voidbox) with npm, without its bundled
# browser: it drives Debian's Chromium (hack/install-deps.sh installs both).
# The tests render voidbox-trace's gantt chart with it (hack/tests/mermaid.rs).
#
#   hack/fetch-mermaid.sh   -> path of mmdc
#
# Only the path goes to stdout; progress goes to stderr. Once cached, a run
# fetches nothing.
set -euo pipefail

cache=${VOIDBOX_CACHE:-/var/cache/voidbox}
# 11.x still runs on Debian 12's Node.js 18 (12.x wants Node 22).
MERMAID_CLI_VERSION=11.12.0
dir=$cache/mermaid-cli-$MERMAID_CLI_VERSION
mmdc=$dir/node_modules/.bin/mmdc

die() { echo "fetch-mermaid: $*" >&2; exit 1; }

[[ -x $mmdc ]] && { echo "$mmdc"; exit 0; }
command -v npm >/dev/null || die "npm missing; run 'make deps'"
mkdir -p "$cache"
exec 9> "$cache/.mermaid-cli.lock"
flock 9
if [[ ! -x $mmdc ]]; then
    echo "fetch-mermaid: npm install @mermaid-js/mermaid-cli@$MERMAID_CLI_VERSION" >&2
    rm -rf "$dir.tmp"
    # No browser download: puppeteer is pointed at /usr/bin/chromium when run.
    PUPPETEER_SKIP_DOWNLOAD=1 npm install --prefix "$dir.tmp" --no-audit --no-fund --loglevel=error \
        "@mermaid-js/mermaid-cli@$MERMAID_CLI_VERSION" >&2 ||
        die "npm install @mermaid-js/mermaid-cli@$MERMAID_CLI_VERSION failed (output above)"
    [[ -x $dir.tmp/node_modules/.bin/mmdc ]] || die "npm installed no mmdc"
    mv "$dir.tmp" "$dir"
fi
echo "$mmdc"

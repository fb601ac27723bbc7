#!/usr/bin/env bash
# Fetches newer clients and the guest's crun from Debian's newer suites into
# $VOIDBOX_CACHE (default /var/cache/voidbox), without installing anything:
# a private apt configuration leaves the host's sources, lists, package cache
# and dpkg status as they are, and the system's containerd 1.6 stays default.
#
#   hack/fetch-debs.sh client containerd   -> dir holding usr/bin/containerd (2.1.9, sid)
#   hack/fetch-debs.sh client docker       -> dir holding usr/sbin/dockerd, usr/bin/docker (28.5.2, sid)
#   hack/fetch-debs.sh crun                -> path of crun 1.21 built from trixie's source
#
# Only the path goes to stdout; progress goes to stderr. Once cached, a run
# fetches and builds nothing.
set -euo pipefail

CRUN_VERSION=1.21
CRUN_DEB_VERSION=1.21-1

die() { echo "fetch-debs: $*" >&2; exit 1; }
log() { echo "fetch-debs: $*" >&2; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/papt.sh
. "$here/papt.sh"

client() {
    local name=${1:?usage: fetch-debs.sh client containerd|docker} pin pkgs
    case $name in
    containerd) pkgs=(containerd) pin=2.1.9+ds1-5 ;;
    docker) pkgs=(docker.io docker-cli) pin=28.5.2+dfsg4-5 ;;
    *) die "unknown client $name (containerd or docker)" ;;
    esac
    cached "$name" "$pin" . && return
    lock
    cached "$name" "$pin" . && return
    apt_update
    local pkg want=() ver
    for pkg in "${pkgs[@]}"; do
        ver=$(pick_version "$pkg" "$pin")
        want+=("$pkg=$ver")
    done
    ver=${want[0]#*=}
    local dir
    dir=$(client_dir "$name" "$ver")
    if [[ ! -d $dir ]]; then
        local deb
        make_work
        log "apt-get download ${want[*]}"
        (cd "$work" && papt_get download "${want[@]}" >&2)
        mkdir -p "$cache/clients"
        rm -rf "$dir.tmp"
        for deb in "$work"/*.deb; do
            dpkg-deb -x "$deb" "$dir.tmp"
        done
        mv "$dir.tmp" "$dir"
    fi
    remember_fallback "$name" "$pin" "$ver" "$dir"
    echo "$dir"
}

build_crun() {
    # Static: every exec of a dynamic crun (create, start, exec, kill...)
    # costs the guest ~40 ms of ld.so under TCG (docs/performance.md).
    local out=$cache/crun-$CRUN_VERSION-static/crun
    [[ -x $out ]] && { echo "$out"; return; }
    local tool
    for tool in gcc make gperf pkg-config; do
        command -v "$tool" >/dev/null || die "$tool missing; run 'make deps'"
    done
    pkg-config --exists libseccomp libcap ||
        die "crun's build libraries missing; run 'make deps' (libseccomp-dev libcap-dev)"

    lock
    [[ -x $out ]] && { echo "$out"; return; }
    apt_update
    local orig=crun_$CRUN_VERSION.orig.tar.gz
    make_work
    # The upstream tarball carries the release's configure and is all the
    # build needs.
    fetch_source_file crun "$CRUN_DEB_VERSION" "$orig"

    log "building crun $CRUN_VERSION"
    tar -xzf "$work/$orig" -C "$work"
    (
        cd "$work/crun-$CRUN_VERSION"
        # yajl is crun's own copy: Debian's static one is libyajl_s.a, which
        # -lyajl does not find. No dlopen'ed handlers (krun, wasm) in the guest.
        ./configure --disable-systemd --enable-static --disable-shared \
            --enable-embedded-yajl --disable-dl --disable-criu >&2
        make -j"$(nproc)" LDFLAGS=-all-static >&2
    ) || die "building crun $CRUN_VERSION failed (output above)"
    local built=$work/crun-$CRUN_VERSION/crun
    [[ $("$built" --version) == "crun version $CRUN_VERSION"$'\n'* ]] ||
        die "built crun does not say version $CRUN_VERSION"
    readelf -lW "$built" | grep -q INTERP && die "built crun is not static"
    rm -rf "$(dirname "$out").tmp"
    mkdir -p "$(dirname "$out").tmp"
    install -s -m 0755 "$built" "$(dirname "$out").tmp/crun"
    mv "$(dirname "$out").tmp" "$(dirname "$out")"
    echo "$out"
}

case ${1:-} in
client) client "${2:-}" ;;
crun) build_crun ;;
*) die "usage: fetch-debs.sh client containerd|docker | fetch-debs.sh crun" ;;
esac

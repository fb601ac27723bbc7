#!/usr/bin/env bash
# Builds the guest root filesystem: vminitd as /init, crun (1.21, built from
# Debian trixie's source by hack/fetch-debs.sh, static; or $VOIDBOX_CRUN, with
# exactly the shared libraries it loads), and the mount points vminitd uses.
# Both forms are produced from one staging tree: an erofs image (the default
# root, attached as /dev/vda) and an uncompressed initramfs (for comparison).
#
#   guest/build-image.sh VMINITD              -> prints the cached image directory
#   guest/build-image.sh --bare BARE_INIT     -> prints the cached bare.cpio (bench baseline)
#   guest/build-image.sh --verify VMINITD     -> builds twice, fails unless byte-identical
#
# VMINITD is the release vminitd or the test one (vminitd-debug, with the
# Debug service): `make image` builds both images. Each is cached under the
# hash of its own inputs, so the two never share an entry.
#
# Outputs are cached under $VOIDBOX_CACHE (default /var/cache/voidbox), keyed
# by the hash of every input; only the newest few entries are kept (enough
# for both images of a few builds).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${VOIDBOX_CACHE:-/var/cache/voidbox}
# Debian 12's crun 1.8.1 rejects the runtime-spec 1.2.x that containerd 2.1
# and Docker 28 write; the cached 1.21 build accepts it (docs/guest.md).
crun=${VOIDBOX_CRUN:-$("$here/../hack/fetch-debs.sh" crun)}
# A fixed identity for every file: same inputs, same bytes.
epoch=0
uuid=6f696476-786f-4200-8000-766f6964626f

die() { echo "build-image: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null || die "$1 missing; run 'make deps' (apt-get install $2)"; }

# The shared objects a dynamic binary loads, as absolute paths (none for a
# static one).
libs_of() {
    { ldd "$1" 2>/dev/null || true; } | awk '/=> \//{print $3} /^\t\/[^ ]+ \(/{print $1}' | sort -u
}

# Fills directory $1 with the guest tree.
stage() {
    local root=$1 init=$2
    mkdir -p "$root"/{dev,proc,sys,run,tmp,etc,root,mnt,usr/bin,usr/sbin,usr/lib/x86_64-linux-gnu,usr/lib64}
    ln -s usr/bin "$root/bin"
    ln -s usr/sbin "$root/sbin"
    ln -s usr/lib "$root/lib"
    ln -s usr/lib64 "$root/lib64"
    chmod 1777 "$root/tmp"
    install -m 0755 "$init" "$root/init"
    # The test image also carries the hostile guest (init=/hostile-init).
    if [[ -n ${3:-} ]]; then
        install -m 0755 "$3" "$root/hostile-init"
    fi
    install -m 0755 "$crun" "$root/usr/bin/crun"
    local lib name
    for lib in $(libs_of "$crun"); do
        name=$(basename "$lib")
        if [[ $name == ld-linux-x86-64.so.2 ]]; then
            install -m 0755 "$(readlink -f "$lib")" "$root/usr/lib/x86_64-linux-gnu/$name"
            ln -s ../lib/x86_64-linux-gnu/$name "$root/usr/lib64/$name"
        else
            install -m 0644 "$(readlink -f "$lib")" "$root/usr/lib/x86_64-linux-gnu/$name"
        fi
    done
    # The kernel opens /dev/console for init before devtmpfs is mounted.
    mknod -m 0600 "$root/dev/console" c 5 1
    mknod -m 0666 "$root/dev/null" c 1 3
    printf 'root:x:0:0:root:/root:/bin/sh\n' > "$root/etc/passwd"
    printf 'root:x:0:\ntty:x:5:\n' > "$root/etc/group"
}

# Archives directory $1 as a newc cpio at $2, in a fixed order with fixed metadata.
make_cpio() {
    (cd "$1" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet --reproducible -o -H newc -R 0:0) > "$2"
}

normalize_times() {
    find "$1" -exec touch -h -d "@$epoch" {} +
}

build_into() {
    local out=$1 init=$2 staging
    staging=$(mktemp -d)
    trap 'rm -rf "$staging"' RETURN
    stage "$staging/root" "$init" "$(hostile_of "$init")"
    normalize_times "$staging/root"
    mkdir -p "$out"
    mkfs.erofs --quiet -T"$epoch" -U"$uuid" --all-root "$out/guest.erofs" "$staging/root" >/dev/null
    make_cpio "$staging/root" "$out/guest.cpio"
}

# The hostile init beside a test vminitd (vminitd-debug), if built.
hostile_of() {
    local init=$1
    if [[ $init == *-debug && -x $(dirname "$init")/hostile-init ]]; then
        echo "$(dirname "$init")/hostile-init"
    fi
}

image_key() {
    local init=$1
    {
        sha256sum "$init" $(hostile_of "$init") "$crun" $(libs_of "$crun") | cut -d' ' -f1
        mkfs.erofs --help 2>&1 | head -1
        cpio --version | head -1
        cat "$0"
    } | sha256sum | cut -c1-16
}

# Keeps the newest $2 entries matching $1 in the cache.
prune() {
    ls -1dt "$cache"/$1 2>/dev/null | tail -n +$(( $2 + 1 )) | xargs -r rm -rf
}

need mkfs.erofs erofs-utils
need cpio cpio
[[ -x $crun ]] || die "crun $crun missing; run 'make deps' (or hack/fetch-debs.sh crun)"

case ${1:-} in
--bare)
    init=${2:?usage: build-image.sh --bare BARE_INIT}
    key=$(cat "$init" "$0" | sha256sum | cut -c1-16)
    out=$cache/bare-$key
    if [[ ! -f $out/bare.cpio ]]; then
        staging=$(mktemp -d)
        mkdir -p "$staging/dev"
        install -m 0755 "$init" "$staging/init"
        mknod -m 0600 "$staging/dev/console" c 5 1
        normalize_times "$staging"
        mkdir -p "$out.tmp"
        make_cpio "$staging" "$out.tmp/bare.cpio"
        rm -rf "$staging" "$out"
        mv "$out.tmp" "$out"
        prune 'bare-*' 3
    fi
    echo "$out/bare.cpio"
    ;;
--verify)
    init=${2:?usage: build-image.sh --verify VMINITD}
    a=$(mktemp -d) b=$(mktemp -d)
    trap 'rm -rf "$a" "$b"' EXIT
    build_into "$a" "$init"
    sleep 1 # a later wall clock must not change the bytes
    build_into "$b" "$init"
    for f in guest.erofs guest.cpio; do
        sa=$(sha256sum < "$a/$f" | cut -c1-64) sb=$(sha256sum < "$b/$f" | cut -c1-64)
        [[ $sa == "$sb" ]] || die "$f differs between two builds from the same inputs ($sa vs $sb)"
        echo "reproducible: $f sha256 $sa"
    done
    ;;
*)
    init=${1:?usage: build-image.sh VMINITD}
    [[ -x $init ]] || die "vminitd binary $init missing; build it with 'make guest-bins'"
    key=$(image_key "$init")
    out=$cache/image-$key
    if [[ ! -f $out/guest.erofs ]]; then
        rm -rf "$out.tmp"
        build_into "$out.tmp" "$init"
        rm -rf "$out"
        mv "$out.tmp" "$out"
        prune 'image-*' 6
    fi
    echo "$out"
    ;;
esac

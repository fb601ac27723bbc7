#!/usr/bin/env bash
# Builds the guest kernel (an ELF vmlinux) from Debian's linux-source-6.1 with
# guest/kernel.fragment merged onto tinyconfig. The result is cached outside the
# repo under a key made of every input; a warm call only prints the cached path.
#
#   guest/build-kernel.sh            -> prints the path of vmlinux
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${VOIDBOX_CACHE:-/var/cache/voidbox}
tarball=/usr/src/linux-source-6.1.tar.xz
fragment=$here/kernel.fragment

[[ -f $tarball ]] || { echo "build-kernel: $tarball missing; run 'make deps' (apt-get install linux-source-6.1)" >&2; exit 1; }

src_version=$(dpkg-query -W -f='${Version}' linux-source-6.1)
# voidbox's changes to the kernel source, each a patch that says why.
patches=("$here"/kernel-*.patch)
key=$( { echo "$src_version"; cat "$fragment" "${patches[@]}" "$0"; } | sha256sum | cut -c1-16)
out=$cache/kernel-$key
if [[ -f $out/vmlinux ]]; then
    echo "$out/vmlinux"
    exit 0
fi

# One build per key at a time: a second caller waits, then finds it cached.
mkdir -p "$cache/build"
exec 9>"$cache/build/kernel-$key.lock"
flock 9
if [[ -f $out/vmlinux ]]; then
    echo "$out/vmlinux"
    exit 0
fi

build=$cache/build/kernel-$key
rm -rf "$build"
mkdir -p "$build"
echo "build-kernel: building linux-source $src_version (key $key) in $build" >&2
tar -C "$build" -xf "$tarball" --strip-components=1
cd "$build"

for p in "${patches[@]}"; do
    patch -p1 --quiet --forward < "$p" >&2 || {
        echo "build-kernel: $p does not apply to linux-source $src_version" >&2
        exit 1
    }
done

# Fixed build identity so the same inputs give the same vmlinux.
export KBUILD_BUILD_TIMESTAMP="1970-01-01" KBUILD_BUILD_USER=voidbox KBUILD_BUILD_HOST=voidbox
make -s tinyconfig >&2
scripts/kconfig/merge_config.sh -m .config "$fragment" >/dev/null
make -s olddefconfig >&2

# Every option the fragment asks for must have survived olddefconfig: a
# dependency that silently dropped one would give a guest that fails later.
missing=()
while IFS= read -r line; do
    [[ $line =~ ^(CONFIG_[A-Z0-9_]+)=(.*)$ ]] || continue
    opt=${BASH_REMATCH[1]} val=${BASH_REMATCH[2]}
    if [[ $val == n ]]; then
        grep -q "^$opt=" .config && missing+=("$opt=n")
    else
        grep -qx "$opt=$val" .config || missing+=("$opt=$val")
    fi
done < "$fragment"
if (( ${#missing[@]} )); then
    echo "build-kernel: options lost by olddefconfig (missing dependencies?): ${missing[*]}" >&2
    exit 1
fi

make -s -j"$(nproc)" vmlinux >&2

mkdir -p "$out.tmp"
# Without its symbol table: QEMU reads the table of the kernel it loads and
# keeps it for its monitor, about 1.2 MiB of every VM's heap, and the guest
# never reads it. System.map keeps the names, for reading a profile.
objcopy --strip-all vmlinux "$out.tmp/vmlinux"
cp System.map "$out.tmp/System.map"
cp .config "$out.tmp/config"
rm -rf "$out"
mv "$out.tmp" "$out"
rm -rf "$build"
echo "$out/vmlinux"

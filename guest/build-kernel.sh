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
initmem_patch=$here/kernel-keep-initmem.patch
key=$( { echo "$src_version"; cat "$fragment" "$initmem_patch" "$0"; } | sha256sum | cut -c1-16)
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

# Freed boot memory (init sections, the initrd, alignment gaps: about 4 MiB)
# is poisoned page by page. The kernel's memset there compiles to a byte-wise
# `rep stosb`, which TCG emulates one byte per iteration: about 250 ms of a
# 850 ms boot. The same poison written 8 bytes at a time (`rep stosq`)
# costs an eighth of that (docs/performance.md).
poison_old='			memset(direct_map_addr, poison, PAGE_SIZE);'
poison_new='			memset64(direct_map_addr, 0x0101010101010101ULL * (u8)poison, PAGE_SIZE / 8);'
grep -qF "$poison_old" mm/page_alloc.c || {
    echo "build-kernel: mm/page_alloc.c has no '$poison_old' to patch" >&2
    exit 1
}
sed -i "s|$poison_old|$poison_new|" mm/page_alloc.c
grep -qF "$poison_new" mm/page_alloc.c

# The init sections are kept, not freed (the patch says why).
patch -p1 --quiet --forward < "$initmem_patch" >&2 || {
    echo "build-kernel: $initmem_patch does not apply to linux-source $src_version" >&2
    exit 1
}

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
cp vmlinux "$out.tmp/vmlinux"
cp .config "$out.tmp/config"
rm -rf "$out"
mv "$out.tmp" "$out"
rm -rf "$build"
echo "$out/vmlinux"

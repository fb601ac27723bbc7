#!/usr/bin/env bash
# Builds voidbox's QEMU: the installed Debian QEMU's own source (the same
# version, with Debian's patches), plus hack/qemu/*.patch, for x86_64 with
# the microvm machine and the devices hack/qemu/voidbox.mak names. What it
# adds: the HMP command `tb_flush`, after which TCG's translation cache gives
# its pages back to the host (docs/performance.md, "The translation cache
# given back"). It is built twice, the second time optimised with the profile
# the first, instrumented, build wrote while booting KERNEL with INITRD (the
# bench's bare init) under TCG: a start is mostly TCG translating the guest's
# code (docs/performance-start.md). The result is cached under a key made of
# every input to what the binary does; KERNEL and INITRD only steer how GCC
# lays it out, so they are not in the key. A warm call only prints the path.
#
#   hack/build-qemu.sh KERNEL INITRD   -> prints the path of qemu-system-x86_64
set -euo pipefail

die() { echo "build-qemu: $*" >&2; exit 1; }
log() { echo "build-qemu: $*" >&2; }

[[ $# -eq 2 ]] || die "usage: build-qemu.sh KERNEL INITRD (the profile's training boot)"
kernel=$(realpath -e "$1") || die "no kernel $1"
initrd=$(realpath -e "$2") || die "no initrd $2"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/papt.sh
. "$here/papt.sh"

# The source version of the QEMU Debian installed (make deps): its build is
# the one the tests and users already run, with its security fixes.
version=$(dpkg-query -W -f='${source:Version}' qemu-system-x86 2>/dev/null) ||
    die "qemu-system-x86 is not installed; run 'make deps'"
patches=("$here"/qemu/*.patch)
key=$( { echo "$version"; cat "${patches[@]}" "$here/qemu/voidbox.mak" "$0"; } | sha256sum | cut -c1-16)
out=$cache/qemu-$key
if [[ -x $out/qemu-system-x86_64 ]]; then
    echo "$out/qemu-system-x86_64"
    exit 0
fi

mkdir -p "$cache/build"
exec 8>"$cache/build/qemu-$key.lock"
flock 8
if [[ -x $out/qemu-system-x86_64 ]]; then
    echo "$out/qemu-system-x86_64"
    exit 0
fi

lock
apt_update
make_work
upstream_version=${version#*:}
upstream_version=${upstream_version%-*}
fetch_source_file qemu "$version" "qemu_$upstream_version.orig.tar.xz"
fetch_source_file qemu "$version" "qemu_${version#*:}.debian.tar.xz"
exec 9>&-

build=$cache/build/qemu-$key
rm -rf "$build"
mkdir -p "$build"
log "building QEMU $version (key $key) in $build"
# Unpacks and applies Debian's patches (its security fixes among them).
dpkg-source -x "$work"/qemu_"${version#*:}".dsc "$build/src" >&2
cd "$build/src"
for p in "${patches[@]}"; do
    patch -p1 --quiet --forward < "$p" >&2 || die "$p does not apply to QEMU $version"
done
cp "$here/qemu/voidbox.mak" configs/devices/x86_64-softmmu/voidbox.mak
mkdir build
cd build
# configure_and_build CFLAGS LDFLAGS
configure_and_build() {
    # Firmware (microvm's qboot) comes from Debian's qemu-system-data, under
    # /usr/share/qemu (qemu-bundle, below). Every optional library is off by
    # name, so that what a host happens to have installed does not change
    # the binary.
    ../configure --prefix=/usr --target-list=x86_64-softmmu \
        --without-default-devices --with-devices-x86_64=voidbox \
        --enable-tcg --enable-kvm --enable-seccomp --enable-vhost-user --enable-fdt=system \
        --audio-drv-list= --disable-docs --disable-tools --disable-guest-agent \
        --disable-gtk --disable-sdl --disable-vnc --disable-spice --disable-opengl \
        --disable-curl --disable-libusb --disable-usb-redir --disable-xen --disable-slirp \
        --disable-capstone --disable-curses --disable-png --disable-gnutls --disable-nettle \
        --disable-gcrypt --disable-bzip2 --disable-zstd --disable-lzo --disable-snappy \
        --disable-libudev --disable-linux-aio --disable-linux-io-uring --disable-attr \
        --disable-cap-ng --disable-selinux --disable-tpm --disable-l2tpv3 --disable-iconv \
        --disable-libssh --disable-libiscsi --disable-libnfs --disable-rbd --disable-glusterfs \
        --disable-numa --disable-rdma --disable-pvrdma --disable-libpmem --disable-libdaxctl \
        --disable-brlapi --disable-virglrenderer --disable-vde --disable-netmap --disable-u2f \
        --disable-canokey --disable-smartcard --disable-auth-pam --disable-dbus-display \
        --disable-fuse --disable-blkio --disable-bpf --disable-keyring --disable-mpath \
        --disable-debug-info --disable-install-blobs --disable-werror \
        --extra-cflags="$1" --extra-ldflags="$2" >&2
    ninja -j"$(nproc)" qemu-system-x86_64 >&2
}

# The profile: GCC's counters, written as each instrumented QEMU exits (the
# bare init resets the machine, and -no-reboot turns that into an exit).
# The machine and the kernel's arguments are close to a VM's
# (shim/src/vm/qemu.rs), without its devices: a profile needs the same hot
# code in QEMU, not the same command line.
profile=$build/profile
configure_and_build "-fprofile-generate=$profile -fprofile-update=atomic" "-fprofile-generate=$profile"
log "training: 5 boots of $kernel under TCG"
for i in 1 2 3 4 5; do
    console=$(timeout 120 ./qemu-system-x86_64 -L /usr/share/qemu -nodefaults -no-user-config \
        -display none -no-reboot -M microvm,x-option-roms=off,rtc=on,acpi=off \
        -accel tcg -cpu max -m 512M -kernel "$kernel" -initrd "$initrd" \
        -append "console=ttyS0 reboot=t panic=-1 quiet 8250.nr_uarts=1 noapictimer no_timer_check noreplace-smp" \
        -serial stdio < /dev/null) || die "training boot $i failed"
    grep -q '^VOIDBOX-BARE-INIT ' <<< "$console" || die "training boot $i did not reach the bare init: $console"
done
compgen -G "$profile/*tcg_tcg.c.gcda" > /dev/null || die "the training boots wrote no profile of TCG into $profile"
# The same tree rebuilt with the profile (every object, since the flags
# changed); objects no boot ran have none, which is not worth a warning.
configure_and_build "-fprofile-use=$profile -fprofile-correction -Wno-missing-profile" "-fprofile-use=$profile"

mkdir -p "$out.tmp"
cp qemu-system-x86_64 "$out.tmp/"
# QEMU looks for its data (microvm's qboot) relative to its binary, under
# qemu-bundle when there is one: there, Debian's (qemu-system-data).
mkdir -p "$out.tmp/qemu-bundle/usr/share"
ln -s /usr/share/qemu "$out.tmp/qemu-bundle/usr/share/qemu"
rm -rf "$out"
mv "$out.tmp" "$out"
rm -rf "$build"
echo "$out/qemu-system-x86_64"

#!/usr/bin/env bash
# Creates the system user `voidbox` that VMMs and their helpers run as
# (docs/security.md), and adds it to the `kvm` group where that group
# exists, for /dev/kvm. Run as root; a second run changes nothing.
set -euo pipefail

user=voidbox
if ! getent passwd "$user" >/dev/null; then
    if [[ $(id -u) != 0 ]]; then
        echo "vmm-user: the user $user is missing; run as root (or: sudo useradd --system --no-create-home --shell /usr/sbin/nologin $user)" >&2
        exit 1
    fi
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$user"
    echo "vmm-user: created the system user $user" >&2
fi
if getent group kvm >/dev/null && ! id -nG "$user" | tr ' ' '\n' | grep -qx kvm; then
    if [[ $(id -u) == 0 ]]; then
        usermod -aG kvm "$user"
        echo "vmm-user: added $user to the kvm group" >&2
    fi
fi

# voidbox's QEMU: the microvm machine and the virtio-mmio devices the shim
# attaches (shim/src/vm/qemu.rs), nothing else.
CONFIG_MICROVM=y
CONFIG_VIRTIO_MMIO=y
CONFIG_VIRTIO_BLK=y
CONFIG_VIRTIO_NET=y
CONFIG_VIRTIO_BALLOON=y
CONFIG_VHOST_USER_FS=y
CONFIG_VHOST_USER_VSOCK=y
CONFIG_VIRTIO_RNG=y

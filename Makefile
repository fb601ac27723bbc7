# voidbox: the entry points a person types. See README.md.

CARGO       ?= cargo
CACHE       ?= /var/cache/voidbox
PREFIX      ?= /usr/local
GUEST_TARGET = x86_64-unknown-linux-gnu
GUEST_BIN    = target/$(GUEST_TARGET)/release
# The guest's binaries are static (the image carries no libc for them) and
# independent of where the checkout lives, so the image is too.
GUEST_FLAGS  = RUSTFLAGS="-C target-feature=+crt-static --remap-path-prefix=$(CURDIR)=/voidbox"
WITH_ASSETS  = VOIDBOX_CACHE=$(CACHE) hack/with-assets.sh

export VOIDBOX_CACHE := $(CACHE)

.PHONY: all deps kernel guest-bins image image-verify build lint test test-unit test-vm \
        bench demo install uninstall clean

all: build image

## deps: apt packages and vhost-device-vsock (cached)
deps:
	@hack/install-deps.sh >/dev/null

## kernel: the guest vmlinux, from linux-source-6.1 + guest/kernel.fragment (cached)
kernel: deps
	@guest/build-kernel.sh

## guest-bins: vminitd and the bench's bare init, static
guest-bins:
	$(GUEST_FLAGS) $(CARGO) build --release --target $(GUEST_TARGET) -p vminitd -p bare-init

## image: the guest root (erofs, plus an initramfs twin), cached by input hash
image: deps guest-bins
	@guest/build-image.sh $(GUEST_BIN)/vminitd

## image-verify: two builds from the same inputs must be byte-identical
image-verify: deps guest-bins
	guest/build-image.sh --verify $(GUEST_BIN)/vminitd

## build: the host binaries
build:
	$(CARGO) build --workspace

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## test: the whole suite, after installing and building what it needs
test: deps kernel guest-bins image-verify lint
	$(WITH_ASSETS) $(CARGO) test --workspace

## bench: boot time against the bare kernel (medians of one run)
bench: deps kernel guest-bins
	$(CARGO) build --release -p voidbox-hack
	$(WITH_ASSETS) target/release/voidbox-bench

## demo: boot a micro-VM and show what its guest reports
demo: deps kernel guest-bins
	$(CARGO) build -p voidbox-integration --bin voidbox-vm
	$(WITH_ASSETS) sh -c 'echo | target/debug/voidbox-vm'

## install: kernel and guest image to $(PREFIX)/share/voidbox, helpers to $(PREFIX)/libexec/voidbox
install: deps kernel guest-bins
	$(WITH_ASSETS) sh -c 'install -D -m 0644 "$$VOIDBOX_KERNEL" $(DESTDIR)$(PREFIX)/share/voidbox/vmlinux && \
		install -D -m 0644 "$$VOIDBOX_IMAGE" $(DESTDIR)$(PREFIX)/share/voidbox/guest.erofs && \
		install -D -m 0755 "$$VOIDBOX_VHOST_VSOCK" $(DESTDIR)$(PREFIX)/libexec/voidbox/vhost-device-vsock'

uninstall:
	rm -rf $(DESTDIR)$(PREFIX)/share/voidbox $(DESTDIR)$(PREFIX)/libexec/voidbox

clean:
	$(CARGO) clean

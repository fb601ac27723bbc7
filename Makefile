# voidbox: the entry points a person types. See README.md.

CARGO       ?= cargo
CACHE       ?= /var/cache/voidbox
PREFIX      ?= /usr/local
GUEST_TARGET = x86_64-unknown-linux-gnu
# Where cargo puts the guest's binaries ($CARGO_TARGET_DIR, as hack/with-assets.sh reads it).
GUEST_BIN    = $(or $(CARGO_TARGET_DIR),target)/$(GUEST_TARGET)/guest
# The guest's binaries are static (the image carries no libc for them) and
# independent of where the checkout lives, so the image is too.
GUEST_FLAGS  = RUSTFLAGS="-C target-feature=+crt-static --remap-path-prefix=$(CURDIR)=/voidbox"
# The suites run on the test image (its vminitd serves the Debug service they use);
# the demo, the bench and what `make install` ships use the release image.
WITH_ASSETS  = VOIDBOX_CACHE=$(CACHE) hack/with-assets.sh
WITH_RELEASE = VOIDBOX_CACHE=$(CACHE) hack/with-assets.sh --release
# Where a checkout's cargo build directory is kept (hack/cargo-target.sh); empty: in the checkout.
CARGO_TARGET_CACHE ?= $(CACHE)/cargo-target

export VOIDBOX_CACHE := $(CACHE)

.PHONY: all deps cargo-target kernel guest-bins image image-verify build lint test test-install test-tracing test-libkrun \
        bench soak demo install uninstall clean jaeger-start jaeger-stop jaeger-open jaeger-gantt

all: build image

## deps: apt packages, vhost-device-vsock, mermaid-cli and the fetched clients (cached)
deps:
	@hack/install-deps.sh >/dev/null

## cargo-target: `target` as a link into $(CARGO_TARGET_CACHE), unless the checkout has one already
cargo-target:
	@hack/cargo-target.sh "$(CARGO_TARGET_CACHE)"

## kernel: the guest vmlinux, from linux-source-6.1 + guest/kernel.fragment (cached)
kernel: deps
	@guest/build-kernel.sh

## guest-bins: vminitd, the bench's bare init and the test image's hostile init, static. vminitd twice: with the
## test-only Debug service ($(GUEST_BIN)/vminitd-debug, the test image's) and
## without it ($(GUEST_BIN)/vminitd, the release image's). Cargo keeps both
## builds cached (features are part of its fingerprint); the release one is
## built last, so the plain `vminitd` is always the one without the feature. Both in the
## `guest` profile (Cargo.toml: release with fat LTO, one codegen unit).
guest-bins: cargo-target
	$(GUEST_FLAGS) $(CARGO) build --profile guest --target $(GUEST_TARGET) -p vminitd --features vminitd/debug-rpcs
	cp -f $(GUEST_BIN)/vminitd $(GUEST_BIN)/vminitd-debug
	$(GUEST_FLAGS) $(CARGO) build --profile guest --target $(GUEST_TARGET) -p vminitd -p bare-init -p hostile-init

## image: the guest roots (erofs, plus an initramfs twin), cached by input hash:
## the release image, then the test image (vminitd-debug)
image: deps guest-bins
	@guest/build-image.sh $(GUEST_BIN)/vminitd
	@guest/build-image.sh $(GUEST_BIN)/vminitd-debug

## image-verify: two builds from the same inputs must be byte-identical, for both images
image-verify: deps guest-bins
	guest/build-image.sh --verify $(GUEST_BIN)/vminitd
	guest/build-image.sh --verify $(GUEST_BIN)/vminitd-debug

## build: the host binaries
build: cargo-target
	$(CARGO) build --workspace

## lint: formatting, clippy, and the shim's house rules (shim/tests/layers.rs:
## no import up the module floors, no circle of imports between files).
## Host dev builds here pick packages with --workspace, not -p: cargo resolves
## features over the packages picked, so a -p build compiles its own variant of
## every dependency whose features differ (a minute of `make test` did that twice).
lint: cargo-target
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) test -q --workspace --test layers

## test: the whole suite, after installing and building what it needs.
## The suites run under cargo-nextest where it is installed (this machine's
## kind has it): as many tests at a time as cargo test runs (one per core),
## but from every test binary, where cargo test runs one binary after
## another and a binary's last, waiting test (a guest clock's drift, an
## RPC's 10 s bound) holds the rest up. Without nextest, cargo test runs them.
## (Three at a time on two cores was 80 s faster here, but slowed a shim's
## exit past the containerd suite's 500 ms bound, since replaced by a unit
## test of its cause; three at a time was not tried again.)
test: deps kernel guest-bins image-verify lint
	# The containerd tests run the shim binary: cargo test alone does not build it.
	# test-install installs the release build.
	$(CARGO) build --workspace --bins
	$(CARGO) build --release -p voidbox-shim -p voidbox-krun
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		echo "$(WITH_ASSETS) $(CARGO) nextest run --workspace --no-fail-fast"; \
		$(WITH_ASSETS) $(CARGO) nextest run --workspace --no-fail-fast && \
		$(WITH_ASSETS) $(CARGO) test --workspace --doc; \
	else \
		echo "test: cargo-nextest is not installed: cargo test runs the suites, one binary at a time"; \
		$(WITH_ASSETS) $(CARGO) test --workspace; \
	fi
	$(MAKE) --no-print-directory test-libkrun
	$(MAKE) --no-print-directory test-install

## test-libkrun: the VM and containerd suites again on libkrun, where hardware KVM exists
test-libkrun:
	@if why=$$(target/debug/voidbox-vm --check-kvm); then \
		VOIDBOX_TEST_BACKEND=libkrun $(WITH_ASSETS) $(CARGO) test -p voidbox-integration \
			--test vm --test containerd --test containerd_io --test containerd_bad_input \
			--test docker --test task_v3 \
			--test tracing --test tracing_containerd --test pod_churn --test confinement \
			--test pod_network --test cri_pod --test cri_kubelet --test vmm_wrapper; \
	else \
		echo "test-libkrun: SKIPPED, the suite on libkrun needs hardware KVM: $$why"; \
	fi

## soak: 300 container lifecycles in one pod through containerd's CRI; what could
## leak (fds, RSS, threads, mounts, sockets, VM state, cgroups, netns) before and after
soak: deps kernel guest-bins image
	$(CARGO) build --workspace --bins
	VOIDBOX_SOAK_LIFECYCLES=300 $(WITH_ASSETS) $(CARGO) test -p voidbox-integration --test soak -- --nocapture

## bench (release image): boot time against the bare kernel, container start against runc, tracing on against off,
## Delete and its phases, host memory per idle container, a dead OTLP endpoint against none,
## the guest-to-OTLP span relay (medians of one run; docs/performance.md)
bench: deps kernel guest-bins
	$(CARGO) build --release -p voidbox-hack -p voidbox-shim
	$(WITH_RELEASE) target/release/voidbox-bench

## demo: a real container in a micro-VM (the release image), through a private containerd, and its trace
demo: deps kernel guest-bins
	$(CARGO) build -p voidbox-shim -p voidbox-integration -p voidbox-hack --bins
	$(WITH_RELEASE) hack/demo.sh

## jaeger-start / jaeger-stop / jaeger-open: Jaeger all-in-one (docker or podman)
jaeger-start:
	@hack/jaeger.sh start
jaeger-stop:
	@hack/jaeger.sh stop
jaeger-open:
	@hack/jaeger.sh open

TRACE_OUT ?= target/voidbox-trace.json

## test-tracing: the tracing tests; the traced run is kept in $(TRACE_OUT), and
## sent to Jaeger too when one runs on localhost
test-tracing: deps kernel guest-bins
	$(CARGO) build --workspace --bins
	$(CARGO) build --release -p voidbox-shim
	VOIDBOX_TRACE_OUT=$(CURDIR)/$(TRACE_OUT) $(WITH_ASSETS) $(CARGO) test -p voidbox-integration \
		--test tracing --test tracing_containerd --test tracing_dead_endpoint --test trace_flood
	@if hack/jaeger.sh status >/dev/null 2>&1; then \
		$(WITH_RELEASE) env DEMO_OTLP_ENDPOINT=http://localhost:4318 hack/demo.sh >/dev/null && \
		echo "test-tracing: a traced container went to Jaeger: make jaeger-open (service voidbox), or make jaeger-gantt"; \
	fi
	@echo "test-tracing: the traced test run is in $(TRACE_OUT): make jaeger-gantt TRACE_FILE=$(TRACE_OUT)"
	@echo "test-tracing: the containerd 2.1 run is in $(dir $(TRACE_OUT))voidbox-trace-containerd.json (one trace per request: TRACE_ID=...)"

# Where cargo put it: $CARGO_TARGET_DIR too (hack/tests/trace_show.rs runs this target).
TRACE_BIN = $(or $(CARGO_TARGET_DIR),target)/debug/voidbox-trace

## jaeger-gantt: the latest voidbox trace (from Jaeger, or TRACE_FILE=OTLP JSON; TRACE_ID=... picks one) as Mermaid + waterfall
jaeger-gantt: cargo-target
	@$(CARGO) build -q --workspace --bin voidbox-trace
	@if [ -n "$(TRACE_FILE)" ]; then $(TRACE_BIN) show --file $(TRACE_FILE) $(if $(TRACE_ID),--trace $(TRACE_ID)); \
	else $(TRACE_BIN) show --jaeger $${JAEGER_URL:-http://localhost:16686}; fi

## install: the shim to $(PREFIX)/bin, kernel and the release guest image to $(PREFIX)/share/voidbox,
## vhost-device-vsock and voidbox's QEMU build to $(PREFIX)/libexec/voidbox; the shim finds them there by itself.
## Also the system user `voidbox` the VMMs run as (kept by uninstall: `userdel voidbox` removes it)
install: deps kernel guest-bins
	hack/vmm-user.sh
	$(CARGO) build --release -p voidbox-shim -p voidbox-krun
	$(WITH_RELEASE) sh -c 'install -D -m 0755 target/release/containerd-shim-voidbox-v2 $(DESTDIR)$(PREFIX)/bin/containerd-shim-voidbox-v2 && \
		install -D -m 0755 target/release/voidbox-krun $(DESTDIR)$(PREFIX)/libexec/voidbox/voidbox-krun && \
		install -D -m 0644 "$$VOIDBOX_KERNEL" $(DESTDIR)$(PREFIX)/share/voidbox/vmlinux && \
		install -D -m 0644 "$$VOIDBOX_RELEASE_IMAGE" $(DESTDIR)$(PREFIX)/share/voidbox/guest.erofs && \
		install -D -m 0755 "$$VOIDBOX_VHOST_VSOCK" $(DESTDIR)$(PREFIX)/libexec/voidbox/vhost-device-vsock && \
		install -D -m 0755 "$$VOIDBOX_QEMU" $(DESTDIR)$(PREFIX)/libexec/voidbox/qemu-system-x86_64 && \
		mkdir -p $(DESTDIR)$(PREFIX)/libexec/voidbox/qemu-bundle/usr/share && \
		ln -sfn /usr/share/qemu $(DESTDIR)$(PREFIX)/libexec/voidbox/qemu-bundle/usr/share/qemu'

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/containerd-shim-voidbox-v2
	rm -rf $(DESTDIR)$(PREFIX)/share/voidbox $(DESTDIR)$(PREFIX)/libexec/voidbox

## test-install: install, run a container with no voidbox configuration at all, uninstall
test-install: install
	hack/test-install.sh
	$(MAKE) --no-print-directory uninstall
	@test ! -e $(PREFIX)/bin/containerd-shim-voidbox-v2 && test ! -e $(PREFIX)/share/voidbox && \
		echo "test-install: uninstall removed everything"

## clean: cargo's build directory, and the cache's copy of it if `target` links there
clean:
	@if [ -L target ]; then echo "rm -rf $$(readlink target) target"; rm -rf "$$(readlink target)" target; fi
	$(CARGO) clean

#!/usr/bin/env bash
# Builds Prometheus 3.5.3 with its OTLP receiver into $VOIDBOX_CACHE and
# prints the directory holding usr/bin/prometheus.
#
# Debian's prometheus package (3.5.3+ds1-6, sid) is built with the OTLP
# receiver cut out ("Disable OTLP Ingestion endpoint" in its changelog, until
# the Collector's libraries were packaged; they now are). So this builds the
# same Debian source with the receiver put back:
#   - Go, and every library, as sid's golang packages (source, unpacked with
#     dpkg-deb -x into a scratch directory; nothing is installed);
#   - Debian's patched Prometheus tree (golang-github-prometheus-prometheus-dev);
#   - the receiver's translator (storage/remote/otlptranslator) from the
#     release tarball (Debian's orig, checked against the Sources index);
#   - hack/prometheus/otlp-receiver.patch: the receiver's handler, decoder,
#     route and flag that Debian's patches removed, and the translator ported
#     to sid's otlptranslator 1.0 and Collector libraries. The experimental
#     `otlp-deltatocumulative` feature stays out (its processor is not
#     packaged).
# Built with -tags remove_all_sd (static and file discovery only) in GOPATH
# mode, as Debian builds Go. About 5 minutes once; then cached.
#
# Only the path goes to stdout; progress goes to stderr.
set -euo pipefail

PIN=3.5.3+ds1-6

die() { echo "build-prometheus: $*" >&2; exit 1; }
log() { echo "build-prometheus: $*" >&2; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/papt.sh
. "$here/papt.sh"

cached prometheus-otlp "$PIN" usr/bin/prometheus && exit 0
lock
cached prometheus-otlp "$PIN" usr/bin/prometheus && exit 0
apt_update
ver=$(pick_version golang-github-prometheus-prometheus-dev "$PIN")
dir=$(client_dir prometheus-otlp "$ver")
make_work

# The Go toolchain and the libraries Prometheus, the Collector's pdata and
# otlptranslator import: their Depends closure, the golang packages of it.
roots=(golang-go golang-github-prometheus-prometheus-dev golang-opentelemetry-collector-dev
    golang-github-prometheus-otlptranslator-dev)
mapfile -t pkgs < <(papt_cache depends --recurse --no-recommends --no-suggests --no-conflicts \
    --no-breaks --no-replaces --no-enhances "${roots[@]}" |
    grep -E '^golang-(.*-dev|1\.[0-9]+-(go|src))$' | sort -u)
((${#pkgs[@]} > 100)) || die "the golang closure has only ${#pkgs[@]} packages"
log "apt-get download: ${#pkgs[@]} golang packages"
(cd "$work" && papt_get download "${pkgs[@]}" >&2)
log "unpacking"
mkdir "$work/root"
for deb in "$work"/*.deb; do
    dpkg-deb -x "$deb" "$work/root"
done
rm -f "$work"/*.deb

src=$work/root/usr/share/gocode/src/github.com/prometheus/prometheus
if grep -q NewOTLPWriteHandler "$src/storage/remote/write_handler.go"; then
    log "Debian's $ver has the OTLP receiver: built as it is"
else
    # The release tarball (Debian's orig: the version without its revision).
    orig=prometheus_${ver%-*}.orig.tar.xz
    fetch_source_file prometheus "$ver" "$orig"
    tar -xJf "$work/$orig" -C "$work" --wildcards '*/storage/remote/otlptranslator/*'
    cp -r "$work"/prometheus-*/storage/remote/otlptranslator "$src/storage/remote/"
    find "$src/storage/remote/otlptranslator" -name '*_test.go' -delete
    patch -d "$src" -p1 --forward --quiet < "$here/prometheus/otlp-receiver.patch" >&2 ||
        die "otlp-receiver.patch (written for $PIN) does not apply to sid's $ver"
fi

goroot=$(echo "$work"/root/usr/lib/go-1.*)
[[ -x $goroot/bin/go ]] || die "no Go toolchain unpacked"
log "building ($("$goroot/bin/go" version))"
rm -rf "$dir.tmp"
mkdir -p "$dir.tmp/usr/bin"
version=github.com/prometheus/common/version
(
    cd "$src"
    GOROOT=$goroot GOPATH=$work/root/usr/share/gocode GO111MODULE=off GOFLAGS= GOTOOLCHAIN=local \
        GOCACHE=$work/cache CGO_ENABLED=0 "$goroot/bin/go" build -trimpath -tags remove_all_sd \
        -ldflags "-s -w -X $version.Version=$(upstream "$ver") -X $version.Revision=debian-$ver+otlp \
            -X $version.Branch=debian -X $version.BuildUser=voidbox" \
        -o "$dir.tmp/usr/bin/prometheus" ./cmd/prometheus >&2
) || die "building Prometheus failed (output above)"
"$dir.tmp/usr/bin/prometheus" --help 2>&1 | grep -q web.enable-otlp-receiver ||
    die "the built Prometheus has no --web.enable-otlp-receiver"
rm -rf "$dir"
mv "$dir.tmp" "$dir"
remember_fallback prometheus-otlp "$PIN" "$ver" "$dir"
echo "$dir"

#!/usr/bin/env bash
# Fetches newer clients and the guest's crun from Debian's newer suites into
# $VOIDBOX_CACHE (default /var/cache/voidbox), without installing anything:
# a private apt configuration leaves the host's sources, lists, package cache
# and dpkg status as they are, and the system's containerd 1.6 stays default.
#
#   hack/fetch-debs.sh client containerd   -> dir holding usr/bin/containerd (2.1.9, sid)
#   hack/fetch-debs.sh client docker       -> dir holding usr/sbin/dockerd, usr/bin/docker (28.5.2, sid)
#   hack/fetch-debs.sh client prometheus   -> dir holding usr/bin/prometheus (3.5.3, sid)
#   hack/fetch-debs.sh crun                -> path of crun 1.21 built from trixie's source
#
# Only the path goes to stdout; progress goes to stderr. Once cached, a run
# fetches and builds nothing.
set -euo pipefail

cache=${VOIDBOX_CACHE:-/var/cache/voidbox}
aptdir=$cache/apt
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
CRUN_VERSION=1.21
CRUN_DEB_VERSION=1.21-1

die() { echo "fetch-debs: $*" >&2; exit 1; }
log() { echo "fetch-debs: $*" >&2; }

# The host's Debian mirror, read from its apt sources at run time (no host
# name is written down here): the first deb source for the bookworm suite.
mirror_uri() {
    local f uri
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -r $f ]] || continue
        # deb822: stanzas split by blank lines; field names are case-insensitive.
        uri=$(awk -v RS= -F '\n' '{
            deb = 0; suite = 0; uri = ""
            for (i = 1; i <= NF; i++) {
                if ($i ~ /^#/) continue
                key = tolower($i); sub(/:.*/, "", key)
                val = " " $i " "; sub(/^ [^:]*:/, " ", val)
                if (key == "types" && val ~ /[ \t]deb[ \t]/) deb = 1
                if (key == "suites" && val ~ /[ \t]bookworm[ \t]/) suite = 1
                if (key == "uris") { split(val, u, " "); uri = u[1] }
            }
            if (deb && suite && uri != "") { print uri; exit }
        }' "$f")
        [[ -n $uri ]] && { echo "${uri%/}"; return; }
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -r $f ]] || continue
        # One-line form: deb [options] URI SUITE COMPONENTS...
        uri=$(awk '$1 == "deb" {
            i = 2
            if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
            if ($(i + 1) == "bookworm") { print $i; exit }
        }' "$f")
        [[ -n $uri ]] && { echo "${uri%/}"; return; }
    done
    die "no deb source for bookworm in /etc/apt/sources.list{,.d}; cannot tell which mirror to use"
}

# Every path apt writes is redirected under $aptdir, and the host's sources,
# pins and dpkg status are not read: candidates are simply sid's (or
# trixie's, for sources) newest versions.
apt_opts=(
    -o "Dir::Etc::SourceList=$aptdir/sources.list"
    -o Dir::Etc::SourceParts=/dev/null
    -o Dir::Etc::Preferences=/dev/null
    -o Dir::Etc::PreferencesParts=/dev/null
    -o "Dir::State=$aptdir/state"
    -o "Dir::State::Lists=$aptdir/lists"
    -o "Dir::State::status=$aptdir/status"
    -o "Dir::Cache=$aptdir/cache"
    -o "Dir::Cache::archives=$aptdir/cache/archives"
    # Only Packages and Sources are needed: no translations, no AppStream data.
    -o Acquire::Languages=none
    -o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false
    -o Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false
    -o Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false
)
papt_get() { apt-get -q "${apt_opts[@]}" "$@"; }
papt_cache() { apt-cache "${apt_opts[@]}" "$@"; }

updated=
apt_update() {
    [[ -z $updated ]] || return 0
    [[ -r $keyring ]] || die "$keyring missing (apt-get install debian-archive-keyring)"
    local uri
    uri=$(mirror_uri)
    mkdir -p "$aptdir"/{lists/partial,state,cache/archives/partial}
    [[ -e $aptdir/status ]] || : > "$aptdir/status"
    # Binaries from sid (their only dependency, libc6 >= 2.34, Debian 12
    # meets); sources from trixie, whose crun 1.21 still builds on Debian 12.
    printf 'deb [signed-by=%s] %s sid main\ndeb-src [signed-by=%s] %s trixie main\n' \
        "$keyring" "$uri" "$keyring" "$uri" > "$aptdir/sources.list"
    log "apt-get update (private, $aptdir)"
    papt_get update >&2
    updated=1
}

# A scratch directory, removed on exit, that the _apt download sandbox can
# write to (else apt warns and downloads as root).
work=
trap 'rm -rf "$work"' EXIT
make_work() {
    work=$(mktemp -d "$aptdir/work.XXXXXX")
    chown _apt "$work" 2>/dev/null || true
}

# Serialises fetches: concurrent runs share the private apt state.
lock() {
    mkdir -p "$aptdir"
    exec 9> "$aptdir/lock"
    flock 9
}

# Upstream part of a Debian version: 1:2.1.9+ds1-5 -> 2.1.9.
upstream() { local v=${1#*:}; v=${v%-*}; echo "${v%%+*}"; }

# The version to fetch of $1: $2 while sid has it, else sid's candidate.
pick_version() {
    local pkg=$1 pin=$2 cand
    # (apt-cache show PKG=VER succeeds even when VER is missing; madison lists.)
    if papt_cache madison "$pkg" |
        awk -F ' [|] ' -v v="$pin" '$2 == v && $3 ~ / Packages$/ {f = 1} END {exit !f}'; then
        echo "$pin"; return
    fi
    cand=$(papt_cache policy "$pkg" | awk '/Candidate:/ {print $2}')
    [[ -n $cand && $cand != "(none)" ]] || die "$pkg is not in sid"
    log "warning: $pkg $pin is gone from sid; using sid's $cand instead"
    echo "$cand"
}

client() {
    local name=${1:?usage: fetch-debs.sh client containerd|docker|prometheus} pin pkgs
    case $name in
    containerd) pkgs=(containerd) pin=2.1.9+ds1-5 ;;
    docker) pkgs=(docker.io docker-cli) pin=28.5.2+dfsg4-5 ;;
    prometheus) pkgs=(prometheus) pin=3.5.3+ds1-6 ;;
    *) die "unknown client $name (containerd, docker or prometheus)" ;;
    esac
    local dir=$cache/clients/$name-$(upstream "$pin")
    # When sid dropped the pin, a note names the version fetched instead,
    # so later runs need no apt-get update to find it.
    local note=$cache/clients/$name-$pin.fallback
    [[ -d $dir ]] && { echo "$dir"; return; }
    [[ -f $note && -d $(< "$note") ]] && { cat "$note"; return; }

    lock
    [[ -d $dir ]] && { echo "$dir"; return; }
    apt_update
    local pkg want=() ver
    for pkg in "${pkgs[@]}"; do
        ver=$(pick_version "$pkg" "$pin")
        want+=("$pkg=$ver")
    done
    ver=${want[0]#*=}
    [[ $ver == "$pin" ]] || dir=$cache/clients/$name-$(upstream "$ver")
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
    [[ $ver == "$pin" ]] || echo "$dir" > "$note"
    echo "$dir"
}

build_crun() {
    local out=$cache/crun-$CRUN_VERSION/crun
    [[ -x $out ]] && { echo "$out"; return; }
    local tool
    for tool in gcc make gperf pkg-config; do
        command -v "$tool" >/dev/null || die "$tool missing; run 'make deps'"
    done
    pkg-config --exists libseccomp libcap yajl ||
        die "crun's build libraries missing; run 'make deps' (libseccomp-dev libcap-dev libyajl-dev)"

    lock
    [[ -x $out ]] && { echo "$out"; return; }
    apt_update
    local orig=crun_$CRUN_VERSION.orig.tar.gz
    make_work
    log "apt-get source --download-only crun=$CRUN_DEB_VERSION"
    # The upstream tarball carries the release's configure and is all the
    # build needs; the mirror may not serve the .debian.tar.xz, so that
    # failure alone is tolerated.
    (cd "$work" && papt_get source --download-only "crun=$CRUN_DEB_VERSION" >&2) ||
        log "apt-get source failed; going on if $orig arrived"
    [[ -f $work/$orig ]] || die "$orig was not downloaded"
    # Checked against the signed Sources index, whatever apt did on failure.
    local want got
    want=$(papt_cache showsrc crun | awk -v RS= -v v="$CRUN_DEB_VERSION" -v f="$orig" '
        $0 ~ "\nVersion: " v "\n" {
            n = split($0, l, "\n")
            for (i = 1; i <= n; i++) {
                if (l[i] ~ /^Checksums-Sha256:/) s = 1
                else if (l[i] !~ /^ /) s = 0
                else if (s) { split(l[i], w, " "); if (w[3] == f) { print w[1]; exit } }
            }
        }')
    got=$(sha256sum < "$work/$orig" | cut -c1-64)
    [[ -n $want && $got == "$want" ]] || die "$orig: sha256 $got, Sources index says ${want:-nothing}"

    log "building crun $CRUN_VERSION"
    tar -xzf "$work/$orig" -C "$work"
    (
        cd "$work/crun-$CRUN_VERSION"
        ./configure --disable-systemd --enable-static --disable-shared >&2
        make -j"$(nproc)" >&2
    ) || die "building crun $CRUN_VERSION failed (output above)"
    local built=$work/crun-$CRUN_VERSION/crun
    [[ $("$built" --version) == "crun version $CRUN_VERSION"$'\n'* ]] ||
        die "built crun does not say version $CRUN_VERSION"
    rm -rf "$(dirname "$out").tmp"
    mkdir -p "$(dirname "$out").tmp"
    install -m 0755 "$built" "$(dirname "$out").tmp/crun"
    mv "$(dirname "$out").tmp" "$(dirname "$out")"
    echo "$out"
}

case ${1:-} in
client) client "${2:-}" ;;
crun) build_crun ;;
*) die "usage: fetch-debs.sh client containerd|docker|prometheus | fetch-debs.sh crun" ;;
esac

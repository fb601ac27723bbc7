# The private apt machinery hack/fetch-debs.sh and hack/build-prometheus.sh
# share (sourced, not run): Debian's newer suites, read into $VOIDBOX_CACHE
# (default /var/cache/voidbox) without touching the host's sources, lists,
# package cache or dpkg status. The sourcing script defines die and log.

cache=${VOIDBOX_CACHE:-/var/cache/voidbox}
aptdir=$cache/apt
keyring=/usr/share/keyrings/debian-archive-keyring.gpg

# The host's Debian mirror for suite $1 (default bookworm), read from its apt
# sources at run time (no host name is written down here): the first deb
# source for that suite.
mirror_uri() {
    local suite=${1:-bookworm} f uri
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -r $f ]] || continue
        # deb822: stanzas split by blank lines; field names are case-insensitive.
        uri=$(awk -v RS= -F '\n' -v want="$suite" '{
            deb = 0; suite = 0; uri = ""
            for (i = 1; i <= NF; i++) {
                if ($i ~ /^#/) continue
                key = tolower($i); sub(/:.*/, "", key)
                val = " " $i " "; sub(/^ [^:]*:/, " ", val)
                if (key == "types" && val ~ /[ \t]deb[ \t]/) deb = 1
                if (key == "suites" && index(val " ", " " want " ")) suite = 1
                if (key == "uris") { split(val, u, " "); uri = u[1] }
            }
            if (deb && suite && uri != "") { print uri; exit }
        }' "$f")
        [[ -n $uri ]] && { echo "${uri%/}"; return; }
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -r $f ]] || continue
        # One-line form: deb [options] URI SUITE COMPONENTS...
        uri=$(awk -v want="$suite" '$1 == "deb" {
            i = 2
            if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
            if ($(i + 1) == want) { print $i; exit }
        }' "$f")
        [[ -n $uri ]] && { echo "${uri%/}"; return; }
    done
    die "no deb source for $suite in /etc/apt/sources.list{,.d}; cannot tell which mirror to use"
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
    local uri security suite
    uri=$(mirror_uri)
    # (A host without a security source gets bookworm's point releases only.)
    security=$(mirror_uri bookworm-security 2>/dev/null) || security=
    mkdir -p "$aptdir"/{lists/partial,state,cache/archives/partial}
    [[ -e $aptdir/status ]] || : > "$aptdir/status"
    # Binaries from sid (their only dependency, libc6 >= 2.34, Debian 12
    # meets); sources from trixie, whose crun 1.21 still builds on Debian 12,
    # from sid (Prometheus's), and from bookworm and its security updates
    # (the installed QEMU's, hack/build-qemu.sh).
    {
        printf 'deb [signed-by=%s] %s sid main\n' "$keyring" "$uri"
        for suite in trixie sid bookworm; do
            printf 'deb-src [signed-by=%s] %s %s main\n' "$keyring" "$uri" "$suite"
        done
        [[ -z $security ]] || printf 'deb-src [signed-by=%s] %s bookworm-security main\n' "$keyring" "$security"
    } > "$aptdir/sources.list"
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

# A client pinned at version PIN goes to $cache/clients/NAME-UPSTREAM. When
# sid moved past the pin, a note names the directory of the version used
# instead, so later runs find it without an apt-get update.
client_dir() { echo "$cache/clients/$1-$(upstream "$2")"; }
fallback_note() { echo "$cache/clients/$1-$2.fallback"; }

# cached NAME PIN FILE: prints NAME's directory if FILE is in it (the
# pinned version's, or the fallback's the note names).
cached() {
    local dir note
    dir=$(client_dir "$1" "$2")
    note=$(fallback_note "$1" "$2")
    [[ -e $dir/$3 ]] && { echo "$dir"; return 0; }
    [[ -f $note && -e $(< "$note")/$3 ]] && { cat "$note"; return 0; }
    return 1
}

# remember_fallback NAME PIN VERSION DIR: the note, when VERSION is not PIN.
remember_fallback() { [[ $3 == "$2" ]] || echo "$4" > "$(fallback_note "$1" "$2")"; }

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

# Downloads source package $1's file $3 (version $2) into $work, checked
# against the signed Sources index. The mirror may not serve the
# .debian.tar.xz, so apt's failure alone is tolerated.
fetch_source_file() {
    local pkg=$1 ver=$2 file=$3 want got
    log "apt-get source --download-only $pkg=$ver"
    (cd "$work" && papt_get source --download-only "$pkg=$ver" >&2) ||
        log "apt-get source failed; going on if $file arrived"
    [[ -f $work/$file ]] || die "$file was not downloaded"
    # awk reads to the end: leaving early would end apt-cache with SIGPIPE,
    # which pipefail makes this script's exit status.
    want=$(papt_cache showsrc "$pkg" | awk -v RS= -v v="$ver" -v f="$file" '
        !found && index($0, "\nVersion: " v "\n") {
            n = split($0, l, "\n")
            for (i = 1; i <= n; i++) {
                if (l[i] ~ /^Checksums-Sha256:/) s = 1
                else if (l[i] !~ /^ /) s = 0
                else if (s) { split(l[i], w, " "); if (w[3] == f) { print w[1]; found = 1; break } }
            }
        }')
    got=$(sha256sum < "$work/$file" | cut -c1-64)
    [[ -n $want && $got == "$want" ]] || die "$file: sha256 $got, Sources index says ${want:-nothing}"
}

#!/usr/bin/env bash
# Keeps a checkout's cargo build directory in the cache: `target` becomes a
# link to $CACHE_DIR/<hash of the checkout's path>, so a fresh clone at the
# same path (a CI machine's, or a worktree made again) builds only the
# workspace's own crates, not the ~320 dependencies (8 min of a release build
# on 2 cores). Cargo still rebuilds every crate whose sources are newer than
# its last build, which every file of a fresh clone is.
#
# Left alone: a checkout that already has `target` (a directory: its own),
# a $CARGO_TARGET_DIR, an empty $CACHE_DIR, or a cache it cannot write.
#   usage: hack/cargo-target.sh CACHE_DIR
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cache=${1:-}
[ -n "$cache" ] && [ -z "${CARGO_TARGET_DIR:-}" ] || exit 0

link=$top/target
if [ -L "$link" ]; then
	# A link whose directory was pruned (its checkout was gone a while): again.
	[ -e "$link" ] || mkdir -p "$(readlink "$link")"
	exit 0
fi
[ -e "$link" ] && exit 0
mkdir -p "$cache" 2>/dev/null && [ -w "$cache" ] || exit 0

# Directories of checkouts that no longer exist go, so the cache does not
# grow with every path ever built at (each is several GB).
for dir in "$cache"/*/; do
	[ -f "$dir/.checkout" ] || continue
	[ -d "$(cat "$dir/.checkout")" ] || rm -rf "$dir"
done

dir=$cache/$(printf %s "$top" | sha256sum | cut -c1-16)
mkdir -p "$dir"
printf '%s\n' "$top" >"$dir/.checkout"
ln -s "$dir" "$link"
echo "cargo-target: $link -> $dir (kept in the cache for the next clone here)"

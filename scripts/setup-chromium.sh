#!/usr/bin/env bash
# setup-chromium.sh installs the headless browser the dashboard's e2e test
# drives over the Chrome DevTools Protocol: Debian's `chromium` package.
#
# Idempotent: when chromium is on PATH it installs nothing. Otherwise, as
# root, it runs `apt-get update` once and installs the package. Messages go
# to stderr; stdout gets one line, the browser's path.
set -euo pipefail

log() { printf 'setup-chromium: %s\n' "$*" >&2; }

find_chromium() {
	local b
	for b in chromium chromium-browser; do
		if command -v "$b" >/dev/null 2>&1; then
			command -v "$b"
			return 0
		fi
	done
	return 1
}

if bin="$(find_chromium)"; then
	log "chromium already installed; nothing to do"
	printf '%s\n' "$bin"
	exit 0
fi

if [[ "$(id -u)" -ne 0 ]]; then
	log "error: chromium is missing; run as root, or install it with: sudo apt-get install --no-install-recommends chromium"
	exit 1
fi

log "installing chromium (apt-get update, then apt-get install)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >&2

if ! bin="$(find_chromium)"; then
	log "error: chromium is still missing after installing it"
	exit 1
fi
log "installed chromium"
printf '%s\n' "$bin"

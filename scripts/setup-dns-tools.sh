#!/usr/bin/env bash
# setup-dns-tools.sh installs the real DNS peers the dnsproxy tests and
# benchmarks use: unbound (the upstream resolver), dig (dnsutils, a real
# client) and dnsperf (load). They come from Debian packages.
#
# Idempotent: when unbound, dig and dnsperf are all on PATH it does nothing.
# Otherwise, as root, it runs `apt-get update` once and installs the missing
# packages. Messages go to stderr; stdout stays empty.
#
# Debian starts a freshly installed unbound as a system service on port 53.
# The tests run their own unbound instances on loopback, so this script keeps
# the service it installs from starting (a temporary policy-rc.d during the
# install), then disables it and stops it if it runs anyway. An unbound that
# was already installed is left alone.
set -euo pipefail

log() { printf 'setup-dns-tools: %s\n' "$*" >&2; }

declare -A pkg_of=([unbound]=unbound [dig]=dnsutils [dnsperf]=dnsperf)
missing=()
for tool in unbound dig dnsperf; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		missing+=("${pkg_of[$tool]}")
	fi
done

# quiet_service disables the unbound system service this script installed
# and stops it if it runs, so it never holds port 53.
quiet_service() {
	if command -v systemctl >/dev/null 2>&1; then
		systemctl disable unbound >/dev/null 2>&1 && log "disabled the unbound system service (tests run their own instances)"
		if systemctl is-active --quiet unbound 2>/dev/null; then
			log "stopping the unbound system service"
			systemctl stop unbound >&2 || true
		fi
	fi
	if command -v service >/dev/null 2>&1 && service unbound status >/dev/null 2>&1; then
		log "stopping the unbound system service"
		service unbound stop >&2 || true
	fi
}

if [[ ${#missing[@]} -eq 0 ]]; then
	log "unbound, dig and dnsperf already installed; nothing to do"
	exit 0
fi

if [[ "$(id -u)" -ne 0 ]]; then
	log "error: missing ${missing[*]}; run as root, or install them with: sudo apt-get install --no-install-recommends ${missing[*]}"
	exit 1
fi

# Keep maintainer scripts from starting the unbound service: exit code 101
# in policy-rc.d means "action not allowed". Restore any existing file.
policy=/usr/sbin/policy-rc.d
backup=""
if [[ -e "$policy" ]]; then
	backup="$(mktemp)"
	cp -p "$policy" "$backup"
fi
restore_policy() {
	if [[ -n "$backup" ]]; then
		mv -f "$backup" "$policy"
	else
		rm -f "$policy"
	fi
}
trap restore_policy EXIT
printf '#!/bin/sh\nexit 101\n' >"$policy"
chmod 0755 "$policy"

log "installing ${missing[*]} (apt-get update, then apt-get install)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2

for tool in unbound dig dnsperf; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		log "error: $tool is still missing after installing ${missing[*]}"
		exit 1
	fi
done
if [[ " ${missing[*]} " == *" unbound "* ]]; then
	quiet_service
fi
log "installed ${missing[*]}"

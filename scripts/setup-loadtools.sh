#!/usr/bin/env bash
# setup-loadtools.sh installs the real HTTP load generators the gateway
# overhead benchmark (e2e BenchmarkGatewayOverhead) uses: wrk (HTTP/1.1 with
# keep-alive) and h2load (package nghttp2-client; HTTP/2 over TLS). They come
# from Debian packages.
#
# Idempotent: when wrk and h2load are both on PATH it does nothing.
# Otherwise, as root, it runs `apt-get update` once and installs the missing
# packages. Messages go to stderr; stdout stays empty.
set -euo pipefail

log() { printf 'setup-loadtools: %s\n' "$*" >&2; }

declare -A pkg_of=([wrk]=wrk [h2load]=nghttp2-client)
missing=()
for tool in wrk h2load; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		missing+=("${pkg_of[$tool]}")
	fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
	log "wrk and h2load already installed; nothing to do"
	exit 0
fi

if [[ "$(id -u)" -ne 0 ]]; then
	log "error: missing ${missing[*]}; run as root, or install them with: sudo apt-get install --no-install-recommends ${missing[*]}"
	exit 1
fi

log "installing ${missing[*]} (apt-get update, then apt-get install)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2

for tool in wrk h2load; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		log "error: $tool is still missing after installing ${missing[*]}"
		exit 1
	fi
done
log "installed ${missing[*]}"

#!/usr/bin/env bash
# setup-loadtools.sh installs the real HTTP load generators the gateway
# overhead benchmark (e2e BenchmarkGatewayOverhead) uses: wrk (HTTP/1.1 with
# keep-alive) and h2load (package nghttp2-client; HTTP/2 over TLS), and its
# forward-proxy peer, squid (the benchmark runs its own instance on
# loopback; the system service apt may start is stopped). They come from
# Debian packages.
#
# Idempotent: when all three are installed it does nothing.
# Otherwise, as root, it runs `apt-get update` once and installs the missing
# packages. Messages go to stderr; stdout stays empty.
set -euo pipefail

log() { printf 'setup-loadtools: %s\n' "$*" >&2; }

declare -A pkg_of=([wrk]=wrk [h2load]=nghttp2-client [squid]=squid)
tools=(wrk h2load squid)
# squid lives in /usr/sbin, which need not be on a user's PATH.
have() { command -v "$1" >/dev/null 2>&1 || [[ -x "/usr/sbin/$1" ]]; }
missing=()
for tool in "${tools[@]}"; do
	if ! have "$tool"; then
		missing+=("${pkg_of[$tool]}")
	fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
	log "wrk, h2load and squid already installed; nothing to do"
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

for tool in "${tools[@]}"; do
	if ! have "$tool"; then
		log "error: $tool is still missing after installing ${missing[*]}"
		exit 1
	fi
done
# The benchmark runs squid itself; a system instance would only hold port 3128.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet squid 2>/dev/null; then
	systemctl stop squid >&2 || true
	systemctl disable squid >&2 || true
fi
log "installed ${missing[*]}"

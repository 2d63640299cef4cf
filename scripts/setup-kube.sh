#!/usr/bin/env bash
# setup-kube.sh installs the real Kubernetes control plane the e2e tests run
# on loopback: etcd (Debian's etcd-server) and kube-apiserver plus kubectl,
# built from the k8s.io/kubernetes Go module at KUBE_VERSION.
#
# etcd: when `etcd` is on PATH it does nothing. Otherwise, as root, it runs
# `apt-get update` once and installs etcd-server, keeping its system service
# from starting (a temporary policy-rc.d), then disables and stops it: the
# tests run their own etcd per test.
#
# kube-apiserver and kubectl: `go install k8s.io/kubernetes/cmd/...@v` does
# not work, since that module replaces its k8s.io/* staging modules with
# local folders. So this script generates a throwaway module in the cache
# folder ${EGRESSD_CACHE:-$HOME/.cache/egressd}/kube-<version>/ (outside the
# repository, so every clone reuses it) that requires k8s.io/kubernetes and
# replaces each staging module with its published v0.<minor>.<patch>
# version, read from the downloaded kubernetes go.mod. A cold build takes
# about 8 minutes. When both binaries exist it does nothing.
#
# Messages go to stderr; stdout is one line, the folder holding
# kube-apiserver and kubectl (the Makefile stores it in .cache/kube-bin).
set -euo pipefail

log() { printf 'setup-kube: %s\n' "$*" >&2; }

# Undo on exit, whatever happens: restore policy-rc.d, drop the build folder.
policy=/usr/sbin/policy-rc.d
policy_backup=""
policy_set=""
work=""
cleanup() {
	if [[ -n "$policy_set" ]]; then
		if [[ -n "$policy_backup" ]]; then
			mv -f "$policy_backup" "$policy"
		else
			rm -f "$policy"
		fi
	fi
	if [[ -n "$work" ]]; then
		rm -rf "$work"
	fi
}
trap cleanup EXIT

KUBE_VERSION="${KUBE_VERSION:-v1.37.2}"
GO="${GO:-go}"
cache_root="${EGRESSD_CACHE:-$HOME/.cache/egressd}"
dir="$cache_root/kube-$KUBE_VERSION"
bin="$dir/bin"

# --- etcd ---------------------------------------------------------------

# quiet_service disables the etcd system service this script installed and
# stops it if it runs, so it never holds port 2379.
quiet_service() {
	if command -v systemctl >/dev/null 2>&1; then
		systemctl disable etcd >/dev/null 2>&1 && log "disabled the etcd system service (tests run their own instances)"
		if systemctl is-active --quiet etcd 2>/dev/null; then
			log "stopping the etcd system service"
			systemctl stop etcd >&2 || true
		fi
	fi
	if command -v service >/dev/null 2>&1 && service etcd status >/dev/null 2>&1; then
		log "stopping the etcd system service"
		service etcd stop >&2 || true
	fi
}

install_etcd() {
	if command -v etcd >/dev/null 2>&1; then
		log "etcd already installed ($(command -v etcd)); nothing to do"
		return
	fi
	if [[ "$(id -u)" -ne 0 ]]; then
		log "error: etcd is missing; run as root, or install it with: sudo apt-get install --no-install-recommends etcd-server"
		exit 1
	fi
	# Keep maintainer scripts from starting the etcd service: exit code 101
	# in policy-rc.d means "action not allowed". Restore any existing file.
	if [[ -e "$policy" ]]; then
		policy_backup="$(mktemp)"
		cp -p "$policy" "$policy_backup"
	fi
	policy_set=1
	printf '#!/bin/sh\nexit 101\n' >"$policy"
	chmod 0755 "$policy"

	log "installing etcd-server (apt-get update, then apt-get install)"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2
	apt-get install -y -qq --no-install-recommends etcd-server >&2
	if ! command -v etcd >/dev/null 2>&1; then
		log "error: etcd is still missing after installing etcd-server"
		exit 1
	fi
	quiet_service
	log "installed etcd-server"
}

# --- kube-apiserver and kubectl -----------------------------------------

build_kube() {
	if [[ -x "$bin/kube-apiserver" && -x "$bin/kubectl" ]]; then
		log "kube-apiserver and kubectl $KUBE_VERSION already built in $bin; nothing to do"
		return
	fi
	if [[ ! "$KUBE_VERSION" =~ ^v1\.([0-9]+)\.([0-9]+)$ ]]; then
		log "error: KUBE_VERSION=$KUBE_VERSION is not a release like v1.37.2"
		exit 1
	fi
	local minor="${BASH_REMATCH[1]}" patch="${BASH_REMATCH[2]}"
	local staging="v0.$minor.$patch"
	local start=$SECONDS

	# Build outside any workspace and outside the project's module, with the
	# module proxy, whatever the caller's environment says.
	export GOFLAGS=-mod=mod GOWORK=off GO111MODULE=on
	mkdir -p "$dir" "$bin"
	work="$(mktemp -d "$dir/build.XXXXXX")"

	log "reading the go.mod of k8s.io/kubernetes@$KUBE_VERSION"
	local gomod
	gomod="$(cd "$work" && "$GO" mod download -json "k8s.io/kubernetes@$KUBE_VERSION" |
		sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
	if [[ -z "$gomod" || ! -f "$gomod" ]]; then
		log "error: could not download k8s.io/kubernetes@$KUBE_VERSION"
		exit 1
	fi
	# Every module the kubernetes go.mod replaces with a ./staging folder,
	# both in a replace block ("\tk8s.io/x => ./staging/...") and on single
	# lines ("replace k8s.io/x => ./staging/...").
	local mods
	mods="$(sed -n 's/^[[:space:]]*\(replace[[:space:]]\{1,\}\)\{0,1\}\(k8s\.io\/[^[:space:]]*\)[[:space:]]\{1,\}=>[[:space:]]\{1,\}\.\/staging\/.*/\2/p' "$gomod" | sort -u)"
	if [[ -z "$mods" ]]; then
		log "error: found no staging replacements in $gomod"
		exit 1
	fi

	{
		printf 'module egressd.local/kubebuild\n\ngo 1.25\n\nrequire k8s.io/kubernetes %s\n\nreplace (\n' "$KUBE_VERSION"
		local m
		for m in $mods; do
			printf '\t%s => %s %s\n' "$m" "$m" "$staging"
		done
		printf ')\n'
	} >"$work/go.mod"
	cat >"$work/tools.go" <<'EOF'
//go:build tools

// Package kubebuild only pins the commands this module builds.
package kubebuild

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
EOF
	# Stamp the version, as the release build does, so /version and
	# `kubectl version` say v1.37.2 instead of v0.0.0-master.
	local ldflags="" pkg
	for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
	done
	log "building kube-apiserver and kubectl $KUBE_VERSION ($(wc -w <<<"$mods") staging modules at $staging) in $work; about 8 minutes cold"
	(
		cd "$work"
		"$GO" mod tidy >&2
		"$GO" build -trimpath -ldflags "$ldflags" -o "$work/out/" k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl >&2
	)
	# Move both in only when both built, so a half build never counts as done.
	mv -f "$work/out/kube-apiserver" "$work/out/kubectl" "$bin/"
	cp -f "$work/go.mod" "$work/go.sum" "$dir/" 2>/dev/null || true
	log "built kube-apiserver and kubectl $KUBE_VERSION in $((SECONDS - start)) s"
}

install_etcd
build_kube
log "kube-apiserver and kubectl: $bin"
echo "$bin"

#!/usr/bin/env bash
# Builds the real parts the tests and the demo run against — kube-apiserver,
# kubectl, etcd and MinIO — from Go modules, once per version, into a cache
# outside the work tree (a machine keeps it between checkouts), and links them
# into bin/.
#
#   hack/tools.sh [kube-apiserver|kubectl|etcd|minio ...]   (default: all)
set -euo pipefail
export GOTOOLCHAIN=${GOTOOLCHAIN:-go1.27.3}
export GOFLAGS=-buildvcs=false

KUBE_VERSION=v1.37.2
STAGING_VERSION=v0.37.2
ETCD_VERSION=v3.6.16
MINIO_VERSION=${MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${HOMEOSTAT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/homeostat}
mkdir -p "$cache" "$root/bin"

log() { printf '[tools] %s\n' "$*" >&2; }

# The go commands' own output (hundreds of "go: downloading" and "go: added"
# lines on a first run) goes to this file, not the terminal.
buildlog="$cache/build.log"
logged=""

# quiet CMD...: runs CMD with its output appended to $buildlog; on failure,
# shows the end of it and where the rest is.
announce() {
  if [[ -z "$logged" ]]; then
    logged=1; : > "$buildlog"; log "full build output: $buildlog"
  fi
}

quiet() {
  announce
  printf '\n$ %s\n' "$*" >> "$buildlog"
  local rc=0
  "$@" >> "$buildlog" 2>&1 || rc=$?
  if [[ $rc -ne 0 ]]; then
    log "failed (exit $rc): $*"
    tail -n 30 "$buildlog" >&2
    log "the whole output is in $buildlog"
  fi
  return $rc
}

# with_progress CMD...: runs a long build quietly, printing elapsed time
# every 30s so a first run on a fresh machine does not look stuck.
with_progress() {
  local start=$SECONDS
  ( while sleep 30; do printf '[tools]   ... still building (%ds)\n' $((SECONDS - start)) >&2; done ) &
  local ticker=$!
  local rc=0
  quiet "$@" || rc=$?
  kill "$ticker" 2>/dev/null; wait "$ticker" 2>/dev/null || true
  return $rc
}

# link NAME PATH: bin/NAME points at the cached binary.
link() { ln -sf "$2" "$root/bin/$1"; }

build_kube() { # kube-apiserver and kubectl share one throwaway module
  local out="$cache/kubernetes-$KUBE_VERSION"
  if [[ -x "$out/kube-apiserver" && -x "$out/kubectl" ]]; then
    link kube-apiserver "$out/kube-apiserver"; link kubectl "$out/kubectl"; return
  fi
  log "building kube-apiserver and kubectl $KUBE_VERSION (about 6 minutes on 2 cores)"
  local mod; mod=$(mktemp -d)
  (
    cd "$mod"
    go mod init homeostat.dev/tools/kubernetes >/dev/null 2>&1
    go mod edit -go=1.26.0
    announce; log "downloading k8s.io/kubernetes $KUBE_VERSION and its modules"
    gomod=$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" 2>>"$buildlog" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
    go mod edit -require="k8s.io/kubernetes@$KUBE_VERSION"
    # Every staging module k8s.io/kubernetes replaces with a local path is
    # published at the matching v0 version.
    for m in $(sed -n 's|^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/.*|\1|p' "$gomod"); do
      go mod edit -replace="$m=$m@$STAGING_VERSION"
    done
    quiet go mod tidy || true
    cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
    quiet go mod tidy
    mkdir -p "$out"
    log "compiling kube-apiserver"
    with_progress go build -trimpath -ldflags=-s -o "$out/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver
    log "compiling kubectl"
    with_progress go build -trimpath -ldflags=-s -o "$out/kubectl.tmp" k8s.io/kubernetes/cmd/kubectl
    mv "$out/kube-apiserver.tmp" "$out/kube-apiserver"
    mv "$out/kubectl.tmp" "$out/kubectl"
  )
  rm -rf "$mod"
  link kube-apiserver "$out/kube-apiserver"; link kubectl "$out/kubectl"
}

build_etcd() {
  local out="$cache/etcd-$ETCD_VERSION"
  if [[ -x "$out/etcd" ]]; then link etcd "$out/etcd"; return; fi
  log "building etcd $ETCD_VERSION (about 1 minute)"
  local mod; mod=$(mktemp -d)
  (
    cd "$mod"
    go mod init homeostat.dev/tools/etcd >/dev/null 2>&1
    cat > tools.go <<'GO'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
GO
    quiet go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
    quiet go mod tidy
    mkdir -p "$out"
    with_progress go build -trimpath -ldflags=-s -o "$out/etcd.tmp" go.etcd.io/etcd/server/v3
    mv "$out/etcd.tmp" "$out/etcd"
  )
  rm -rf "$mod"
  link etcd "$out/etcd"
}

build_minio() {
  local out="$cache/minio-$MINIO_VERSION"
  if [[ -x "$out/minio" ]]; then link minio "$out/minio"; return; fi
  log "building minio $MINIO_VERSION (about 2 minutes)"
  local mod; mod=$(mktemp -d)
  (
    cd "$mod"
    go mod init homeostat.dev/tools/minio >/dev/null 2>&1
    cat > tools.go <<'GO'
//go:build tools

package tools

import _ "github.com/minio/minio"
GO
    quiet go get "github.com/minio/minio@$MINIO_VERSION"
    quiet go mod tidy
    mkdir -p "$out"
    with_progress go build -trimpath -ldflags=-s -o "$out/minio.tmp" github.com/minio/minio
    mv "$out/minio.tmp" "$out/minio"
  )
  rm -rf "$mod"
  link minio "$out/minio"
}

want=("$@")
[[ ${#want[@]} -gt 0 ]] || want=(etcd minio kube-apiserver)
for t in "${want[@]}"; do
  case "$t" in
    kube-apiserver|kubectl) build_kube ;;
    etcd) build_etcd ;;
    minio) build_minio ;;
    *) log "unknown tool $t"; exit 2 ;;
  esac
done

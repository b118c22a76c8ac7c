#!/usr/bin/env bash
# The image benchmark's fixture: a ~100 MB multi-layer Debian minbase, pushed to the
# fixture registry as bench/minbase:latest (Docker schema2, gzip layers).
#
#   scripts/minbase.sh            (bench/images.sh runs it; scripts/fixtures.sh runs it
#                                  only with BERTH_FIXTURE_MINBASE=1: not in the CI path)
#
# Made with independent tools, never Berth: `debootstrap --variant=minbase` from the
# default apt mirror (network access), the tree split into 4 layers by tar (usr/lib,
# usr/share, the rest of usr, everything outside usr), assembled with umoci and pushed
# with skopeo. The OCI layout is cached under .fixtures/minbase-oci (delete it to
# rebuild); the push is skipped when the registry already has the image.
#
# Needs (Debian 12): debootstrap umoci skopeo jq curl; the fixture registry running
# (scripts/fixtures.sh). Runs as root (debootstrap).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FIX="${BERTH_FIXTURES_DIR:-$ROOT/.fixtures}"
REG="${BERTH_TEST_REGISTRY:-127.0.0.1:5000}"
SUITE="${BERTH_MINBASE_SUITE:-bookworm}"
OCI="$FIX/minbase-oci"
REPO=bench/minbase

log() { printf 'minbase: %s\n' "$*" >&2; }
die() { printf 'minbase: ERROR: %s\n' "$*" >&2; exit 1; }

for tool in debootstrap umoci skopeo jq curl; do
    command -v "$tool" >/dev/null || die "missing '$tool' (apt-get install debootstrap umoci skopeo jq curl)"
done
[ "$(id -u)" = 0 ] || die "must run as root (debootstrap)"

if [ ! -f "$OCI/index.json" ] || ! jq -e '.manifests | length > 0' "$OCI/index.json" >/dev/null 2>&1; then
    WORK="$(mktemp -d "$FIX/minbase-build.XXXXXX")"
    trap 'rm -rf "$WORK"' EXIT
    ROOTFS="$WORK/rootfs"
    log "debootstrap --variant=minbase $SUITE (default mirror)"
    debootstrap --variant=minbase "$SUITE" "$ROOTFS" >"$WORK/debootstrap.log" 2>&1 ||
        { tail -n 30 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }
    # Nothing that changes per run, no apt lists: a smaller, reproducible-ish tree.
    rm -rf "$ROOTFS"/var/cache/apt/*.bin "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/log/*
    # 4 layers, in order; each tar holds only its part of the tree (parents included).
    T=(--numeric-owner --sort=name --mtime=@0 -C "$ROOTFS")
    tar "${T[@]}" -cf "$WORK/l1.tar" ./usr/lib
    tar "${T[@]}" -cf "$WORK/l2.tar" ./usr/share
    tar "${T[@]}" --exclude=./usr/lib --exclude=./usr/share -cf "$WORK/l3.tar" ./usr
    tar "${T[@]}" --exclude=./usr -cf "$WORK/l4.tar" .
    rm -rf "$OCI"
    umoci init --layout "$OCI"
    umoci new --image "$OCI:minbase"
    for i in 1 2 3 4; do
        umoci raw add-layer --image "$OCI:minbase" --history.created 1970-01-01T00:00:00Z \
            --history.created_by "bench minbase layer $i" "$WORK/l$i.tar"
    done
    umoci config --image "$OCI:minbase" --no-history --created 1970-01-01T00:00:00Z \
        --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --config.cmd=/bin/bash
    log "built $(du -sh "$OCI" | cut -f1) in $OCI"
fi

if skopeo inspect --tls-verify=false "docker://$REG/$REPO:latest" >/dev/null 2>&1; then
    log "$REG/$REPO:latest already present"
else
    skopeo copy --quiet --dest-tls-verify=false --format v2s2 "oci:$OCI:minbase" "docker://$REG/$REPO:latest"
    log "pushed $REG/$REPO:latest"
fi
skopeo inspect --tls-verify=false "docker://$REG/$REPO:latest" |
    jq -r '"minbase: \(.Digest) layers=\(.Layers|length)"' >&2

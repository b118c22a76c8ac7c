#!/usr/bin/env bash
# Image benchmarks: cold pull and push of a ~100 MB multi-layer image, Berth vs
# Docker, same machine, same run.
#
#   bench/images.sh [--docker] [--runs N] [--no-write]
#
#   --docker    install Debian's docker.io if dockerd is missing and measure it too
#               (without it, Docker is measured only if dockerd exists)
#   --runs N    timed runs of each operation (default 5)
#   --no-write  print the table, do not touch BENCHMARKS.md
#
# The image: bench/minbase:latest in the fixture registry, a Debian minbase in 4 gzip
# layers (scripts/minbase.sh builds it once with debootstrap/umoci/skopeo and caches it
# under .fixtures/minbase-oci). Per engine, driven by the real docker CLI (and `berth`
# for Berth):
#   cold pull   the image and its layers removed (rmi + image prune), then
#               `pull 127.0.0.1:5000/bench/minbase` timed: download, verification and
#               unpacking of all 4 layers;
#   push        the pulled image tagged into a fresh repository of an empty scratch
#               registry (docker-registry on its own port and temp storage, so every
#               push uploads every blob: no cross-repository mount, no "already
#               exists"), then `push` timed.
# Medians in seconds; ratios as "Berth faster" (Docker / Berth). Results are appended
# to BENCHMARKS.md under "## Image results". Runs as root; everything it starts it
# stops on exit.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
# shellcheck source=bench/lib.sh
. bench/lib.sh

WANT_DOCKER=0 RUNS=5 WRITE=1
while [ $# -gt 0 ]; do
    case "$1" in
    --docker) WANT_DOCKER=1 ;;
    --runs) RUNS="$2"; shift ;;
    --no-write) WRITE=0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
[ "$(id -u)" = 0 ] || { echo "bench/images.sh must run as root" >&2; exit 1; }

REG="${BERTH_TEST_REGISTRY:-127.0.0.1:5000}"
WORK=/tmp/berth-bench-images
BSOCK=/run/bench-images-berth.sock
DSOCK=/run/bench-images-docker.sock
DOCKER_CLI="$(bench_docker_cli)"
IMAGE="$REG/bench/minbase:latest"
mkdir -p "$WORK"
export DOCKER_CONFIG="$WORK/docker-config"
mkdir -p "$DOCKER_CONFIG"
BIN="$ROOT/target/release"

PIDS=()
cleanup() {
    bench_stop_pids "${PIDS[@]}"
    if [ -f /run/bench-images-berth/dns/berth-dns.pid ]; then
        kill "$(cat /run/bench-images-berth/dns/berth-dns.pid)" 2>/dev/null || true
    fi
}
trap cleanup EXIT

echo "== packages"
bench_install_tools "$WANT_DOCKER"
apt_install debootstrap

echo "== build (release)"
cargo build --release --bin berthd --bin berth --bin berth-shim
scripts/fixtures.sh
scripts/minbase.sh

echo "== scratch registry (push target)"
PUSH_PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
PUSH_REG="127.0.0.1:$PUSH_PORT"
rm -rf "$WORK/push-registry"
mkdir -p "$WORK/push-registry/data"
cat >"$WORK/push-registry/config.yml" <<EOM
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $WORK/push-registry/data
  delete:
    enabled: true
http:
  addr: $PUSH_REG
EOM
docker-registry serve "$WORK/push-registry/config.yml" >"$WORK/push-registry.log" 2>&1 </dev/null &
PIDS+=($!)
for _ in $(seq 1 100); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$PUSH_REG/v2/" || true)" = 200 ] && break
    sleep 0.1
done

echo "== berthd"
rm -rf "$WORK/berth-root"
"$BIN/berthd" --data-root "$WORK/berth-root" --exec-root /run/bench-images-berth -H "unix://$BSOCK" \
    --registry-mirror "http://$REG" >"$WORK/berthd.log" 2>&1 </dev/null &
PIDS+=($!)
wait_sock "$BSOCK" "$!" "$WORK/berthd.log"

HAVE_DOCKERD=0
if command -v dockerd >/dev/null; then
    echo "== dockerd ($(dockerd --version))"
    rm -rf "$WORK/docker-root"
    dockerd --data-root "$WORK/docker-root" --exec-root /run/bench-images-docker -H "unix://$DSOCK" \
        --pidfile /run/bench-images-docker.pid --registry-mirror "http://$REG" \
        --insecure-registry "$REG" --insecure-registry "$PUSH_REG" \
        >"$WORK/dockerd.log" 2>&1 </dev/null &
    PIDS+=($!)
    if wait_sock "$DSOCK" "$!" "$WORK/dockerd.log"; then
        HAVE_DOCKERD=1
    else
        echo "dockerd did not come up; measuring Berth only" >&2
    fi
fi

now_ns() { date +%s%N; }

# cold_pull <client...>: median seconds of RUNS pulls, each after removing the image
# and everything it left (so every layer is downloaded and unpacked again).
cold_pull() {
    local t=() i s
    for i in $(seq 1 "$RUNS"); do
        "$@" rmi -f "$IMAGE" >/dev/null 2>&1 || true
        "$@" image prune -a -f >/dev/null 2>&1 || true
        sync
        s="$(now_ns)"
        "$@" pull -q "$IMAGE" >/dev/null || { echo n/a; return; }
        t+=($(( $(now_ns) - s )))
    done
    median "${t[@]}"
}

# push_fresh <tag-prefix> <client...>: median seconds of RUNS pushes, each to a new
# repository of the empty scratch registry.
push_fresh() {
    local prefix="$1"; shift
    local t=() i s target
    "$@" pull -q "$IMAGE" >/dev/null || { echo n/a; return; }
    for i in $(seq 1 "$RUNS"); do
        target="$PUSH_REG/bench/$prefix-$$-$i:latest"
        "$@" tag "$IMAGE" "$target"
        s="$(now_ns)"
        "$@" push -q "$target" >/dev/null || { echo n/a; return; }
        t+=($(( $(now_ns) - s )))
        "$@" rmi "$target" >/dev/null 2>&1 || true
    done
    median "${t[@]}"
}

median() { # <ns...> → median in seconds, 2 decimals
    printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2; printf "%.2f", m / 1e9}'
}

ratio() { # <docker> <berth> → how many times faster Berth is
    if [[ "$1" =~ ^[0-9.]+$ && "$2" =~ ^[0-9.]+$ ]]; then
        awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f×", a/b}'
    else
        echo "—"
    fi
}

B=("$BIN/berth" -H "unix://$BSOCK")
BD=("$DOCKER_CLI" -H "unix://$BSOCK")
D=("$DOCKER_CLI" -H "unix://$DSOCK")
echo "== cold pull of $IMAGE ($RUNS runs each)"
b_pull="$(cold_pull "${B[@]}")"
bd_pull="$(cold_pull "${BD[@]}")"
d_pull=n/a
[ "$HAVE_DOCKERD" = 1 ] && d_pull="$(cold_pull "${D[@]}")"
echo "   berth→berthd ${b_pull}s   docker→berthd ${bd_pull}s   docker→dockerd ${d_pull}s"
echo "== push to an empty repository ($RUNS runs each)"
b_push="$(push_fresh berth "${B[@]}")"
bd_push="$(push_fresh dcli-berthd "${BD[@]}")"
d_push=n/a
[ "$HAVE_DOCKERD" = 1 ] && d_push="$(push_fresh dockerd "${D[@]}")"
echo "   berth→berthd ${b_push}s   docker→berthd ${bd_push}s   docker→dockerd ${d_push}s"

SIZE="$(skopeo inspect --tls-verify=false "docker://$IMAGE" | jq '[.LayersData[].Size] | add / 1e6 | floor' || echo '?')"
CGROUP=v1
[ -f /sys/fs/cgroup/cgroup.controllers ] && CGROUP=v2
DOCKERD_V="not installed"
[ "$HAVE_DOCKERD" = 1 ] && DOCKERD_V="$(dockerd --version)"
RESULTS="$(cat <<EOM

### $(date -u '+%Y-%m-%d %H:%M UTC') — \`bench/images.sh\`

$(nproc) cores, kernel $(uname -r), cgroup $CGROUP, Berth $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo uncommitted) (release),
Docker: $DOCKERD_V. Image: Debian minbase, 4 gzip layers, ${SIZE} MB compressed, from the
local fixture registry. Medians in seconds of the whole client command, $RUNS runs each.

| operation | berth → berthd | docker CLI → berthd | docker CLI → dockerd | Berth faster (same CLI) |
|---|---|---|---|---|
| cold pull | $b_pull | $bd_pull | $d_pull | $(ratio "$d_pull" "$bd_pull") |
| push to an empty repository | $b_push | $bd_push | $d_push | $(ratio "$d_push" "$bd_push") |
EOM
)"
echo "$RESULTS"

if [ "$WRITE" = 1 ]; then
    grep -q '^## Image results' BENCHMARKS.md || printf '\n## Image results\n\nAppended by `bench/images.sh` (see its header for the method). Targets: pull at least 2× faster than Docker, push at least as fast.\n' >>BENCHMARKS.md
    printf '%s\n' "$RESULTS" >>BENCHMARKS.md
    echo "== appended to BENCHMARKS.md"
fi

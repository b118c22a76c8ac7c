#!/usr/bin/env bash
# Build benchmarks: Berth's classic builder vs Docker's, same machine, same run.
#
#   bench/build.sh [--docker] [--runs N] [--no-write]
#
#   --docker    install Debian's docker.io if dockerd is missing and measure it too
#               (without it, Docker is measured only if dockerd exists)
#   --runs N    timed runs of the cached rebuild (default 20; --no-cache gets N/2, ≥ 5)
#   --no-write  print the table, do not touch BENCHMARKS.md
#
# The context: a 10-instruction Dockerfile (FROM, ENV, WORKDIR, 2 COPY, 2 RUN, LABEL,
# EXPOSE, CMD) over a small file and a directory of 50 files. Per engine and client:
# (1) a cached rebuild (`build -q -t bench:1 ctx` after one warm build): every step a
#     cache hit; (2) `build -q --no-cache ctx`: every step runs (two RUN containers,
#     two COPY layers, six config-only steps). Docker is driven with the real docker
#     CLI and DOCKER_BUILDKIT=0 (its classic builder, the one Berth implements); Berth
#     with both `berth` and the docker CLI. Medians in ms (hyperfine, or a python loop).
#
# Results are appended to BENCHMARKS.md under "## Build results". Runs as root.
# Everything it starts it stops on exit.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
# shellcheck source=bench/lib.sh
. bench/lib.sh

WANT_DOCKER=0 RUNS=20 WRITE=1
while [ $# -gt 0 ]; do
    case "$1" in
    --docker) WANT_DOCKER=1 ;;
    --runs) RUNS="$2"; shift ;;
    --no-write) WRITE=0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
[ "$(id -u)" = 0 ] || { echo "bench/build.sh must run as root" >&2; exit 1; }
NC_RUNS=$((RUNS / 2))
[ "$NC_RUNS" -ge 5 ] || NC_RUNS=5

REG="${BERTH_TEST_REGISTRY:-127.0.0.1:5000}"
WORK=/tmp/berth-bench-build
BSOCK=/run/bench-build-berth.sock
DSOCK=/run/bench-build-docker.sock
DOCKER_CLI="$(bench_docker_cli)"
mkdir -p "$WORK"
export DOCKER_CONFIG="$WORK/docker-config"
mkdir -p "$DOCKER_CONFIG"
BIN="$ROOT/target/release"

PIDS=()
cleanup() {
    bench_stop_pids "${PIDS[@]}"
}
trap cleanup EXIT

echo "== packages"
bench_install_tools "$WANT_DOCKER"

echo "== build (release)"
cargo build --release --bin berthd --bin berth --bin berth-shim
scripts/fixtures.sh

echo "== context"
CTX="$WORK/ctx"
rm -rf "$CTX"
mkdir -p "$CTX/dir"
echo "payload" >"$CTX/a.txt"
for i in $(seq 1 50); do echo "file $i" >"$CTX/dir/f$i.txt"; done
cat >"$CTX/Dockerfile" <<'EOF'
FROM busybox
ENV APP=/app
WORKDIR /app
COPY a.txt /app/a.txt
RUN echo one > /one
COPY dir /app/dir
RUN echo two > /two
LABEL bench=1
EXPOSE 8080
CMD ["cat", "/one"]
EOF

echo "== berthd"
rm -rf "$WORK/berth-root"
"$BIN/berthd" --data-root "$WORK/berth-root" --exec-root /run/bench-build-berth -H "unix://$BSOCK" \
    --registry-mirror "http://$REG" >"$WORK/berthd.log" 2>&1 </dev/null &
PIDS+=($!)
wait_sock "$BSOCK" "$!" "$WORK/berthd.log"
B=("$BIN/berth" -H "unix://$BSOCK")
"${B[@]}" pull busybox >/dev/null

HAVE_DOCKERD=0
if command -v dockerd >/dev/null; then
    echo "== dockerd ($(dockerd --version))"
    rm -rf "$WORK/docker-root"
    dockerd --data-root "$WORK/docker-root" --exec-root /run/bench-build-docker -H "unix://$DSOCK" \
        --pidfile /run/bench-build-docker.pid --registry-mirror "http://$REG" --insecure-registry "$REG" \
        >"$WORK/dockerd.log" 2>&1 </dev/null &
    PIDS+=($!)
    if wait_sock "$DSOCK" "$!" "$WORK/dockerd.log"; then
        D=("$DOCKER_CLI" -H "unix://$DSOCK")
        if ! "${D[@]}" pull busybox >/dev/null 2>&1; then
            "${D[@]}" pull "$REG/library/busybox" >/dev/null
            "${D[@]}" tag "$REG/library/busybox" busybox
        fi
        HAVE_DOCKERD=1
    else
        echo "dockerd did not come up; measuring Berth only" >&2
    fi
fi

# median_ms <runs> <command...> → the median wall time in ms, or "n/a" if it fails.
median_ms() {
    local runs="$1"; shift
    local cmd="$*" json="$WORK/hf.json"
    if ! bash -c "$cmd" >/dev/null 2>&1; then
        echo "   FAILED: $cmd" >&2
        echo n/a
        return
    fi
    if command -v hyperfine >/dev/null; then
        hyperfine --style none --warmup 1 --runs "$runs" --export-json "$json" "$cmd" >/dev/null 2>&1 ||
            { echo n/a; return; }
        jq -r '.results[0].median * 1000 | . * 10 | round / 10' "$json"
    else
        python3 - "$runs" "$cmd" <<'PY'
import statistics, subprocess, sys, time
runs, cmd = int(sys.argv[1]), sys.argv[2]
subprocess.run(cmd, shell=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
t = []
for _ in range(runs):
    s = time.perf_counter()
    subprocess.run(cmd, shell=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    t.append(time.perf_counter() - s)
print(round(statistics.median(t) * 1000, 1))
PY
    fi
}

ratio() { # <docker> <berth> → how many times faster Berth is
    if [[ "$1" =~ ^[0-9.]+$ && "$2" =~ ^[0-9.]+$ ]]; then
        awk -v a="$1" -v b="$2" 'BEGIN{printf "%.1f×", a/b}'
    else
        echo "—"
    fi
}

CLASSIC="env DOCKER_BUILDKIT=0"
b_cached="$(median_ms "$RUNS" "${B[*]} build -q -t bench:1 $CTX")"
bd_cached="$(median_ms "$RUNS" "$CLASSIC $DOCKER_CLI -H unix://$BSOCK build -q -t bench:1 $CTX")"
b_nocache="$(median_ms "$NC_RUNS" "${B[*]} build -q --no-cache $CTX")"
bd_nocache="$(median_ms "$NC_RUNS" "$CLASSIC $DOCKER_CLI -H unix://$BSOCK build -q --no-cache $CTX")"
d_cached=n/a d_nocache=n/a
if [ "$HAVE_DOCKERD" = 1 ]; then
    d_cached="$(median_ms "$RUNS" "$CLASSIC $DOCKER_CLI -H unix://$DSOCK build -q -t bench:1 $CTX")"
    d_nocache="$(median_ms "$NC_RUNS" "$CLASSIC $DOCKER_CLI -H unix://$DSOCK build -q --no-cache $CTX")"
fi

CGROUP=v1
[ -f /sys/fs/cgroup/cgroup.controllers ] && CGROUP=v2
DOCKERD_V="not installed"
[ "$HAVE_DOCKERD" = 1 ] && DOCKERD_V="$(dockerd --version)"
RESULTS="$(cat <<EOM

### $(date -u '+%Y-%m-%d %H:%M UTC') — \`bench/build.sh\`

$(nproc) cores, kernel $(uname -r), cgroup $CGROUP, Berth $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo uncommitted) (release),
Docker: $DOCKERD_V (classic builder, DOCKER_BUILDKIT=0). Medians in ms of the whole client
command; cached: $RUNS runs, --no-cache: $NC_RUNS runs.

| build | berth → berthd | docker CLI → berthd | docker CLI → dockerd | Berth faster (same CLI) |
|---|---|---|---|---|
| cached rebuild (10 steps, all hits) | $b_cached | $bd_cached | $d_cached | $(ratio "$d_cached" "$bd_cached") |
| \`--no-cache\` (2 RUN, 2 COPY, 6 config) | $b_nocache | $bd_nocache | $d_nocache | $(ratio "$d_nocache" "$bd_nocache") |
EOM
)"
echo "$RESULTS"

if [ "$WRITE" = 1 ]; then
    grep -q '^## Build results' BENCHMARKS.md || printf '\n## Build results\n\nAppended by `bench/build.sh` (see its header for the method).\n' >>BENCHMARKS.md
    printf '%s\n' "$RESULTS" >>BENCHMARKS.md
    echo "== appended to BENCHMARKS.md"
fi

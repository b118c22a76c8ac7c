#!/usr/bin/env bash
# Container start latency: Berth vs Docker on the same machine, in the same run.
#
#   bench/run.sh [--docker] [--runs N] [--no-write]
#
#   --docker    install Debian's docker.io (a real Docker engine) if dockerd is missing,
#               and measure it too. Without it, Docker is measured only if dockerd exists.
#   --runs N    timed runs per command (default 30, after 3 warm-up runs)
#   --no-write  print the table, do not rewrite BENCHMARKS.md
#
# What it does: release build; the fixture registry (scripts/fixtures.sh); a berthd on
# its own data root and socket; busybox pre-pulled; then hyperfine (Debian package;
# a python timing loop if it cannot be installed) times, per engine:
#   <client> run --rm busybox true
#   <client> run --rm --network none busybox true
#   <client> run -d -p P:80 busybox httpd + the first HTTP answer (bench/network.sh)
# with <client> = berth and the real docker CLI against berthd, and the docker CLI
# against dockerd. Medians and the Berth/Docker ratio go to BENCHMARKS.md.
# Runs as root. Everything it starts it stops on exit.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
# shellcheck source=bench/lib.sh
. bench/lib.sh

WANT_DOCKER=0 RUNS=30 WRITE=1
while [ $# -gt 0 ]; do
    case "$1" in
    --docker) WANT_DOCKER=1 ;;
    --runs) RUNS="$2"; shift ;;
    --no-write) WRITE=0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
[ "$(id -u)" = 0 ] || { echo "bench/run.sh must run as root" >&2; exit 1; }

REG="${BERTH_TEST_REGISTRY:-127.0.0.1:5000}"
WORK=/tmp/berth-bench
BSOCK=/run/bench-berth.sock
DSOCK=/run/bench-docker.sock
DOCKER_CLI="$(bench_docker_cli)"
mkdir -p "$WORK"
export DOCKER_CONFIG="$WORK/docker-config"
mkdir -p "$DOCKER_CONFIG"

PIDS=()
cleanup() {
    bench_stop_pids "${PIDS[@]}"
    # berthd's DNS resolver outlives it by design: stop it with the bench.
    if [ -f /run/bench-berth/dns/berth-dns.pid ]; then
        kill "$(cat /run/bench-berth/dns/berth-dns.pid)" 2>/dev/null || true
    fi
}
trap cleanup EXIT

echo "== packages"
apt_install "${BERTH_APT_PACKAGES[@]}"
bench_install_tools "$WANT_DOCKER"

echo "== build (release)"
BIN="$ROOT/target/release"
BUILD_OK=1
cargo build --release --bin berthd --bin berth --bin berth-shim --bin berth-dns || {
    BUILD_OK=0
    echo "release build failed; Berth columns will be n/a" >&2
}

echo "== fixtures"
scripts/fixtures.sh

HAVE_BERTHD=0
if [ "$BUILD_OK" = 1 ]; then
echo "== berthd"
rm -rf "$WORK/berth-root"
"$BIN/berthd" --data-root "$WORK/berth-root" --exec-root /run/bench-berth -H "unix://$BSOCK" \
    --registry-mirror "http://$REG" >"$WORK/berthd.log" 2>&1 </dev/null &
PIDS+=($!)
if wait_sock "$BSOCK" "$!" "$WORK/berthd.log" && "$BIN/berth" -H "unix://$BSOCK" pull busybox >/dev/null; then
    HAVE_BERTHD=1
else
    echo "berthd did not come up or could not pull busybox (see $WORK/berthd.log); Berth columns are n/a" >&2
fi
fi

HAVE_DOCKERD=0
if command -v dockerd >/dev/null; then
    echo "== dockerd ($(dockerd --version))"
    rm -rf "$WORK/docker-root"
    dockerd --data-root "$WORK/docker-root" --exec-root /run/bench-docker -H "unix://$DSOCK" \
        --pidfile /run/bench-docker.pid --registry-mirror "http://$REG" --insecure-registry "$REG" \
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
else
    echo "== no dockerd (use --docker to install Debian's docker.io); measuring Berth only"
fi

# works <client and -H...> — the client really runs a busybox container through that
# engine (a half-written CLI that exits 0 without doing anything must not be timed).
works() {
    [ "$("$@" run --rm busybox echo bench-ok 2>/dev/null)" = bench-ok ]
}

# median_ms <command...> → prints the median wall time in ms, or "n/a" if it fails.
median_ms() {
    local cmd="$*" json="$WORK/hf.json"
    if ! bash -c "$cmd" >/dev/null 2>&1; then
        echo "   FAILED: $cmd" >&2
        echo n/a
        return
    fi
    if command -v hyperfine >/dev/null; then
        hyperfine -N --style none --warmup 3 --runs "$RUNS" --export-json "$json" "$cmd" >/dev/null 2>&1 ||
            hyperfine --style none --warmup 3 --runs "$RUNS" --export-json "$json" "$cmd" >/dev/null 2>&1 ||
            { echo n/a; return; }
        jq -r '.results[0].median * 1000 | . * 10 | round / 10' "$json"
    else
        python3 - "$RUNS" "$cmd" <<'PY'
import shlex, statistics, subprocess, sys, time
runs, cmd = int(sys.argv[1]), shlex.split(sys.argv[2])
for _ in range(3):
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
t = []
for _ in range(runs):
    s = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    t.append(time.perf_counter() - s)
print(round(statistics.median(t) * 1000, 1))
PY
    fi
}

ratio() { # <berth> <docker>
    if [[ "$1" =~ ^[0-9.]+$ && "$2" =~ ^[0-9.]+$ ]]; then
        awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'
    else
        echo "—"
    fi
}

ROWS=()
for args in "run --rm busybox true" "run --rm --network none busybox true"; do
    echo "== $args"
    b_berth=n/a b_docker=n/a d_docker=n/a
    if [ "$HAVE_BERTHD" = 1 ]; then
        if works "$BIN/berth" -H "unix://$BSOCK"; then
            b_berth="$(median_ms "$BIN/berth -H unix://$BSOCK $args")"
        else
            echo "   berth → berthd does not run containers yet: n/a" >&2
        fi
        if works "$DOCKER_CLI" -H "unix://$BSOCK"; then
            b_docker="$(median_ms "$DOCKER_CLI -H unix://$BSOCK $args")"
        else
            echo "   docker CLI → berthd does not run containers yet: n/a" >&2
        fi
    fi
    if [ "$HAVE_DOCKERD" = 1 ] && works "$DOCKER_CLI" -H "unix://$DSOCK"; then
        d_docker="$(median_ms "$DOCKER_CLI -H unix://$DSOCK $args")"
    fi
    echo "   berth→berthd ${b_berth} ms   docker→berthd ${b_docker} ms   docker→dockerd ${d_docker} ms"
    ROWS+=("| \`$args\` | ${b_berth} | ${b_docker} | ${d_docker} | $(ratio "$b_docker" "$d_docker") | $(ratio "$b_berth" "$d_docker") |")
done

# shellcheck source=bench/network.sh
. "$ROOT/bench/network.sh"

CGROUP=v1
[ -f /sys/fs/cgroup/cgroup.controllers ] && CGROUP=v2
TOOL=hyperfine
command -v hyperfine >/dev/null || TOOL="python loop"
DOCKERD_V="not installed"
[ "$HAVE_DOCKERD" = 1 ] && DOCKERD_V="$(dockerd --version)"
RESULTS="$(cat <<EOM
Measured $(date -u +%Y-%m-%d) by \`bench/run.sh\`: $(nproc) cores, kernel $(uname -r), cgroup $CGROUP,
$RUNS runs after 3 warm-ups ($TOOL), Berth $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "uncommitted") ($([ "$BUILD_OK" = 1 ] && echo "release build" || echo "release build FAILED, not measured")),
Docker: $DOCKERD_V. Medians in milliseconds, wall clock of the whole client command.

| command | berth → berthd | docker CLI → berthd | docker CLI → dockerd | ratio (same CLI) | ratio (berth CLI) |
|---|---|---|---|---|---|
$(printf '%s\n' "${ROWS[@]}")
EOM
)"
echo
echo "$RESULTS"

if [ "$WRITE" = 1 ]; then
    python3 - "$ROOT/BENCHMARKS.md" "$RESULTS" <<'PY'
import re, sys
path, results = sys.argv[1], sys.argv[2]
text = open(path).read()
start, end = "<!-- results:start -->", "<!-- results:end -->"
new = re.sub(re.escape(start) + ".*?" + re.escape(end), start + "\n" + results.replace("\\", "\\\\") + "\n" + end, text, flags=re.S)
open(path, "w").write(new)
PY
    echo "== wrote BENCHMARKS.md"
fi

# The build benchmark runs in the same invocation (its own daemons, roots and table).
BUILD_ARGS=(--runs "$RUNS")
[ "$WANT_DOCKER" = 1 ] && BUILD_ARGS+=(--docker)
[ "$WRITE" = 0 ] && BUILD_ARGS+=(--no-write)
bench/build.sh "${BUILD_ARGS[@]}" || echo "bench/build.sh failed" >&2
# And the image benchmark (cold pull and push of a ~100 MB minbase; same arguments
# except the run count, which it keeps small: each run moves the whole image).
IMAGE_ARGS=()
[ "$WANT_DOCKER" = 1 ] && IMAGE_ARGS+=(--docker)
[ "$WRITE" = 0 ] && IMAGE_ARGS+=(--no-write)
bench/images.sh "${IMAGE_ARGS[@]}" || echo "bench/images.sh failed" >&2

#!/usr/bin/env bash
# Memory of berthd while it receives oversized request bodies (issue 6, D4).
#
#   bench/body_memory.sh [--debug] [--size MB] [--parallel N] [--uncapped] [--no-write]
#
#   --debug        use target/debug (no release build)
#   --size MB      size of each create body (default 200)
#   --parallel N   bodies sent at once (default 4)
#   --uncapped     also run a berthd with --max-request-body above the body size, so the
#                  bodies are read and parsed whole (what every body cost before the cap)
#   --no-write     print the table, do not touch BENCHMARKS.md
#
# For each berthd (fresh data root, no containers): N `POST /containers/create` bodies
# of MB each (valid JSON: busybox with one padded label) sent in parallel by curl, first
# with a Content-Length, then chunked. Reported from /proc/<berthd>/status: VmHWM (peak
# RSS since start) before, after the Content-Length round and after the chunked round,
# and VmRSS 3 s after the last answer. The answers' status codes are listed too.
# Results are appended to BENCHMARKS.md under "## Request body memory". Runs as root.
# Everything it starts it stops on exit. Not a test: nothing is asserted.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
# shellcheck source=bench/lib.sh
. bench/lib.sh

PROFILE=release SIZE=200 PAR=4 UNCAPPED=0 WRITE=1
while [ $# -gt 0 ]; do
    case "$1" in
    --debug) PROFILE=debug ;;
    --size) SIZE="$2"; shift ;;
    --parallel) PAR="$2"; shift ;;
    --uncapped) UNCAPPED=1 ;;
    --no-write) WRITE=0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
[ "$(id -u)" = 0 ] || { echo "bench/body_memory.sh must run as root" >&2; exit 1; }

WORK=/tmp/berth-bench-body
SOCK=/run/bench-body-berth.sock
BIN="$ROOT/target/$PROFILE"
mkdir -p "$WORK"

PIDS=()
cleanup() {
    bench_stop_pids "${PIDS[@]}"
    rm -f "$WORK/body.json"
}
trap cleanup EXIT

if [ "$PROFILE" = release ]; then
    echo "== build (release)"
    cargo build --release --bin berthd --bin berth-shim
fi

echo "== body: ${SIZE} MB"
python3 - "$WORK/body.json" "$SIZE" <<'PY'
import sys
path, mb = sys.argv[1], int(sys.argv[2])
head, tail = b'{"Image":"busybox","Cmd":["true"],"Labels":{"pad":"', b'"}}'
with open(path, "wb") as f:
    f.write(head)
    left = mb * 1024 * 1024 - len(head) - len(tail)
    block = b"x" * (1 << 20)
    while left > 0:
        n = min(left, len(block))
        f.write(block[:n])
        left -= n
    f.write(tail)
PY

kb() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status"; }

# round <pid> <chunked 0|1> → the answers' status codes, space-separated
round() {
    local i te=() codes=()
    [ "$2" = 1 ] && te=(-H "Transfer-Encoding: chunked")
    for i in $(seq 1 "$PAR"); do
        curl -s -o /dev/null -w '%{http_code}\n' --unix-socket "$SOCK" -X POST \
            -H 'Content-Type: application/json' "${te[@]}" -T "$WORK/body.json" \
            "http://localhost/containers/create?name=bodybench$2$i" >"$WORK/code.$i" 2>/dev/null &
    done
    wait
    for i in $(seq 1 "$PAR"); do codes+=("$(cat "$WORK/code.$i")"); done
    echo "${codes[*]}"
}

ROWS=()
# measure <label> <berthd args...>
measure() {
    local label="$1"; shift
    rm -rf "$WORK/root" "$WORK/run"
    "$BIN/berthd" --data-root "$WORK/root" --exec-root "$WORK/run" -H "unix://$SOCK" "$@" \
        >"$WORK/berthd.log" 2>&1 </dev/null &
    local pid=$!
    PIDS+=("$pid")
    wait_sock "$SOCK" "$pid" "$WORK/berthd.log"
    local base cl_codes cl_hwm ch_codes ch_hwm rss
    base=$(kb "$pid" VmHWM)
    cl_codes=$(round "$pid" 0)
    cl_hwm=$(kb "$pid" VmHWM)
    ch_codes=$(round "$pid" 1)
    ch_hwm=$(kb "$pid" VmHWM)
    sleep 3
    rss=$(kb "$pid" VmRSS)
    echo "$label: VmHWM start ${base} kB, after Content-Length round ${cl_hwm} kB ($cl_codes), after chunked round ${ch_hwm} kB ($ch_codes), VmRSS after ${rss} kB"
    ROWS+=("| $label | $base | $cl_hwm ($cl_codes) | $ch_hwm ($ch_codes) | $rss |")
    bench_stop_pids "$pid"
}

echo "== berthd, default cap (16 MiB)"
measure "default (\`max-request-body\` 16 MiB)"
if [ "$UNCAPPED" = 1 ]; then
    echo "== berthd, cap above the body size"
    measure "\`--max-request-body $((SIZE * 2))m\`" --max-request-body "$((SIZE * 2))m"
fi

TABLE="| berthd | VmHWM at start (kB) | VmHWM after $PAR Content-Length bodies (kB, answers) | VmHWM after $PAR chunked bodies (kB, answers) | VmRSS 3 s later (kB) |
|---|---|---|---|---|"
for r in "${ROWS[@]}"; do TABLE="$TABLE
$r"; done
echo "$TABLE"

if [ "$WRITE" = 1 ]; then
    grep -q '^## Request body memory' BENCHMARKS.md || printf '\n## Request body memory\n\nAppended by `bench/body_memory.sh` (see its header for the method).\n' >>BENCHMARKS.md
    {
        printf '\n### %s — `bench/body_memory.sh`\n\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
        printf '%s cores, kernel %s, Berth %s%s (%s build). %s bodies of %s MB sent at once, each `POST /containers/create`.\n\n' \
            "$(nproc)" "$(uname -r)" "$(git rev-parse --short HEAD)" \
            "$(git diff --quiet HEAD -- crates || echo ' + working tree')" "$PROFILE" "$PAR" "$SIZE"
        echo "$TABLE"
    } >>BENCHMARKS.md
fi

#!/usr/bin/env bash
# berthd's peak memory while serving `logs` of a ~100 MB json-file log (issue 6 D1:
# memory grew with the square of the log's size; `logs --tail 3` of a 100 MB log got
# berthd OOM-killed at 24 GB). A benchmark, not a test: it measures and reports.
#
#   bench/logs_memory.sh [--debug] [--mb N] [--no-write]
#
#   --debug     use target/debug as built (no build); default: release build
#   --mb N      log size to produce, in MB of json-file (default 100)
#   --no-write  print the table, do not touch BENCHMARKS.md
#
# What it does: a berthd on its own data root, exec root and socket; two busybox
# containers that print N MB of log lines (`yes … | head -n`) and exit:
#   single   --log-opt max-size=1g: one file of N MB
#   rotated  the defaults (20 MB × 5 files): with N = 100, five full files
# then for each, berthd's peak resident set (VmHWM in /proc/<pid>/status, reset before
# each command by writing 5 to /proc/<pid>/clear_refs) while serving, through `berth`:
#   logs <c> > /dev/null        (the whole log, streamed)
#   logs --tail 3 <c>           (read backwards from the end of the newest file)
# and the rise over berthd's resident set before the command. The fixture registry on
# $BERTH_TEST_REGISTRY (127.0.0.1:5000) is used as it is; scripts/fixtures.sh only runs
# when nothing answers there. Results are appended to BENCHMARKS.md under
# "## Logs memory results". Runs as root. Everything it starts it stops on exit.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
# shellcheck source=bench/lib.sh
. bench/lib.sh

PROFILE=release MB=100 WRITE=1
while [ $# -gt 0 ]; do
    case "$1" in
    --debug) PROFILE=debug ;;
    --mb) MB="$2"; shift ;;
    --no-write) WRITE=0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
[ "$(id -u)" = 0 ] || { echo "bench/logs_memory.sh must run as root" >&2; exit 1; }

REG="${BERTH_TEST_REGISTRY:-127.0.0.1:5000}"
WORK=/tmp/berth-bench-logs
BSOCK=/run/bench-logs-berth.sock
BEXEC=/run/bench-logs-berth
BIN="$ROOT/target/$PROFILE"
mkdir -p "$WORK"

PIDS=()
B=()
cleanup() {
    [ -n "${B[*]:-}" ] && "${B[@]}" rm -f single rotated >/dev/null 2>&1 || true
    bench_stop_pids "${PIDS[@]}"
    rm -rf "$WORK/berth-root"
}
trap cleanup EXIT

if [ "$PROFILE" = release ]; then
    echo "== build (release)"
    cargo build --release --bin berthd --bin berth --bin berth-shim
fi
for b in berthd berth berth-shim; do
    [ -x "$BIN/$b" ] || { echo "$BIN/$b missing (cargo build first)" >&2; exit 1; }
done

if ! curl -fsS --max-time 2 "http://$REG/v2/" >/dev/null 2>&1; then
    echo "== fixtures"
    scripts/fixtures.sh
fi

echo "== berthd ($PROFILE)"
rm -rf "$WORK/berth-root"
"$BIN/berthd" --data-root "$WORK/berth-root" --exec-root "$BEXEC" -H "unix://$BSOCK" \
    --registry-mirror "http://$REG" >"$WORK/berthd.log" 2>&1 </dev/null &
BPID=$!
PIDS+=("$BPID")
wait_sock "$BSOCK" "$BPID" "$WORK/berthd.log"
B=("$BIN/berth" -H "unix://$BSOCK")
"${B[@]}" pull busybox >/dev/null

# One line of output is 64 bytes; as json-file, {"log":"…\n","stream":"stdout",
# "time":"<30 chars>Z"} makes it ~130 bytes.
TEXT="berth-logs-benchmark-0123456789abcdefghijklmnopqrstuvwxyzABCDEF"
LINE_BYTES=$(printf '{"log":"%s\\n","stream":"stdout","time":"2026-11-23T11:29:54.177021719Z"}\n' "$TEXT" | wc -c)
LINES=$((MB * 1000 * 1000 / LINE_BYTES))

mib() { awk -v k="$1" 'BEGIN{printf "%.1f", k/1024}'; }
kib() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status"; }

# measure <container> <label> <args...>: runs `berth logs <args> <container>`, prints
# "<label>|<lines out>|<peak KiB>|<rise KiB>|<seconds>".
measure() {
    local c="$1" label="$2"
    shift 2
    sync
    echo 5 >"/proc/$BPID/clear_refs"
    local before start end lines peak
    before=$(kib "$BPID" VmRSS)
    start=$(date +%s.%N)
    lines=$("${B[@]}" logs "$@" "$c" 2>/dev/null | wc -l)
    end=$(date +%s.%N)
    peak=$(kib "$BPID" VmHWM)
    echo "$label|$lines|$peak|$((peak - before))|$(awk -v a="$start" -v b="$end" 'BEGIN{printf "%.1f", b-a}')"
}

ROWS=()
for c in single rotated; do
    opts=()
    [ "$c" = single ] && opts=(--log-opt max-size=1g)
    echo "== $c: $LINES lines (~$MB MB of json-file)"
    "${B[@]}" run -d --name "$c" "${opts[@]}" busybox sh -c "yes $TEXT | head -n $LINES" >/dev/null
    "${B[@]}" wait "$c" >/dev/null
    logpath=$("${B[@]}" inspect -f '{{.LogPath}}' "$c")
    files=$(ls "$logpath"* | wc -l)
    size=$(cat "$logpath"* | wc -c)
    kept=$(cat "$logpath"* | wc -l)
    desc="$c: $(awk -v s="$size" 'BEGIN{printf "%.1f", s/1e6}') MB in $files file(s), $kept lines"
    echo "   $desc"
    for m in full tail; do
        if [ "$m" = full ]; then row=$(measure "$c" '`logs` (all)'); else row=$(measure "$c" '`logs --tail 3`' --tail 3); fi
        echo "   $row"
        ROWS+=("$desc|$row")
    done
done

REV="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates || echo ' + working tree')"
BLOCK="### $(date -u '+%Y-%m-%d %H:%M UTC') — \`bench/logs_memory.sh$([ "$PROFILE" = debug ] && echo ' --debug')\`

$(nproc) cores, kernel $(uname -r), Berth $REV ($PROFILE build). berthd's resident set
before the command and its peak (VmHWM, reset before each command) while serving it;
output piped to \`wc -l\`.

| log | command | lines out | berthd peak RSS | rise over before | wall time |
|---|---|---|---|---|---|"
for r in "${ROWS[@]}"; do
    IFS='|' read -r desc label lines peak rise secs <<<"$r"
    BLOCK+="
| $desc | $label | $lines | $(mib "$peak") MiB | $(mib "$rise") MiB | ${secs} s |"
done
echo
echo "$BLOCK"
if [ "$WRITE" = 1 ]; then
    python3 - "$ROOT/BENCHMARKS.md" "$BLOCK" <<'PY'
import sys
path, block = sys.argv[1], sys.argv[2]
text = open(path).read()
head = "## Logs memory results"
if head not in text:
    text = text.rstrip("\n") + f"\n\n{head}\n\nAppended by `bench/logs_memory.sh` (see its header for the method).\n"
text = text.rstrip("\n") + "\n\n" + block + "\n"
open(path, "w").write(text)
PY
    echo "== wrote BENCHMARKS.md"
fi

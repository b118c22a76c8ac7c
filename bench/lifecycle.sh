#!/usr/bin/env bash
# Lifecycle benchmarks: Berth vs Docker on the same machine, in the same run.
#
#   bench/lifecycle.sh [--docker] [--runs N] [--containers N] [--no-write]
#
#   --docker         install Debian's docker.io if dockerd is missing and measure it too
#                    (without it, Docker is measured only if dockerd exists)
#   --runs N         timed runs for (1) and (2) (default 20)
#   --containers N   running containers for (3) (default 200)
#   --no-write       print the tables, do not touch BENCHMARKS.md
#
# (1) stop of a container whose pid 1 handles SIGTERM (`sh -c 'trap "exit 0" TERM;
#     sleep 1000 & wait'`): wall time of `<cli> stop -t 10 <c>`, which returns once the
#     container is "Exited" — request to exit, SIGTERM delivery, reaping, state update.
# (2) `<cli> exec <c> true` latency (hyperfine; a python loop without it).
# (3) memory per running container with N `sleep` containers (--network none on both):
#     PSS (from /proc/<pid>/smaps_rollup) of the per-container monitor processes:
#     berth-shim for Berth, containerd-shim-runc-v2 (runc has exited by then; nothing
#     else of runc stays) for Docker. Total and per container. The `sleep` processes
#     themselves are the same on both and are not counted; the daemons are listed apart.
#
# Results are appended to BENCHMARKS.md under "## Lifecycle results" (one dated block
# per run). Runs as root. Everything it starts it stops on exit.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
# shellcheck source=bench/lib.sh
. bench/lib.sh

WANT_DOCKER=0 RUNS=20 NCONT=200 WRITE=1
while [ $# -gt 0 ]; do
    case "$1" in
    --docker) WANT_DOCKER=1 ;;
    --runs) RUNS="$2"; shift ;;
    --containers) NCONT="$2"; shift ;;
    --no-write) WRITE=0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
[ "$(id -u)" = 0 ] || { echo "bench/lifecycle.sh must run as root" >&2; exit 1; }

REG="${BERTH_TEST_REGISTRY:-127.0.0.1:5000}"
WORK=/tmp/berth-bench-lc
BEXEC=/run/bench-lc-berth
DEXEC=/run/bench-lc-docker
BSOCK=/run/bench-lc-berth.sock
DSOCK=/run/bench-lc-docker.sock
DOCKER_CLI="$(bench_docker_cli)"
mkdir -p "$WORK"
export DOCKER_CONFIG="$WORK/docker-config"
mkdir -p "$DOCKER_CONFIG"
BIN="$ROOT/target/release"

PIDS=()
cleanup() {
    [ -n "${B[*]:-}" ] && "${B[@]}" rm -f $("${B[@]}" ps -aq 2>/dev/null) >/dev/null 2>&1 || true
    [ -n "${D[*]:-}" ] && "${D[@]}" rm -f $("${D[@]}" ps -aq 2>/dev/null) >/dev/null 2>&1 || true
    bench_stop_pids "${PIDS[@]}"
}
trap cleanup EXIT

echo "== packages"
bench_install_tools "$WANT_DOCKER"

echo "== build (release)"
cargo build --release --bin berthd --bin berth --bin berth-shim --bin berth-dns
scripts/fixtures.sh

echo "== berthd"
rm -rf "$WORK/berth-root"
"$BIN/berthd" --data-root "$WORK/berth-root" --exec-root "$BEXEC" -H "unix://$BSOCK" \
    --registry-mirror "http://$REG" >"$WORK/berthd.log" 2>&1 </dev/null &
BERTHD_PID=$!
PIDS+=("$BERTHD_PID")
wait_sock "$BSOCK" "$BERTHD_PID" "$WORK/berthd.log"
B=("$BIN/berth" -H "unix://$BSOCK")
BD=("$DOCKER_CLI" -H "unix://$BSOCK")
"${BD[@]}" pull busybox >/dev/null

HAVE_DOCKERD=0
D=()
if command -v dockerd >/dev/null; then
    echo "== dockerd ($(dockerd --version))"
    rm -rf "$WORK/docker-root"
    dockerd --data-root "$WORK/docker-root" --exec-root "$DEXEC" -H "unix://$DSOCK" \
        --pidfile /run/bench-lc-docker.pid --registry-mirror "http://$REG" --insecure-registry "$REG" \
        >"$WORK/dockerd.log" 2>&1 </dev/null &
    DOCKERD_PID=$!
    PIDS+=("$DOCKERD_PID")
    if wait_sock "$DSOCK" "$DOCKERD_PID" "$WORK/dockerd.log"; then
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

TRAP_SCRIPT='trap "exit 0" TERM; sleep 1000 & wait'

# stop_ms <cli...> → median ms of `stop -t 10` of a SIGTERM-handling container.
stop_ms() {
    python3 - "$RUNS" "$TRAP_SCRIPT" "$@" <<'PY'
import statistics, subprocess, sys, time
runs, script, cli = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
q = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
t = []
for i in range(runs + 2):
    name = f"lcstop{i}"
    subprocess.run(cli + ["run", "-d", "--network", "none", "--name", name, "busybox", "sh", "-c", script], check=True, **q)
    time.sleep(0.3)  # let the shell install its trap
    s = time.perf_counter()
    subprocess.run(cli + ["stop", "-t", "10", name], check=True, **q)
    e = time.perf_counter() - s
    st = subprocess.run(cli + ["inspect", "-f", "{{.State.ExitCode}}", name], capture_output=True, text=True).stdout.strip()
    if st != "0":
        print(f"exit code {st}, not 0: SIGTERM was not handled", file=sys.stderr)
        sys.exit(1)
    subprocess.run(cli + ["rm", name], check=True, **q)
    if i >= 2:
        t.append(e)
print(round(statistics.median(t) * 1000, 1))
PY
}

# exec_ms <cli...> → median ms of `exec <c> true`.
exec_ms() {
    local cli=("$@") json="$WORK/hf.json"
    "${cli[@]}" rm -f lcexec >/dev/null 2>&1 || true
    "${cli[@]}" run -d --network none --name lcexec busybox sleep 100000 >/dev/null
    if command -v hyperfine >/dev/null; then
        hyperfine -N --style none --warmup 3 --runs "$RUNS" --export-json "$json" "${cli[*]} exec lcexec true" >/dev/null 2>&1
        jq -r '.results[0].median * 1000 | . * 10 | round / 10' "$json"
    else
        python3 - "$RUNS" "${cli[@]}" exec lcexec true <<'PY'
import statistics, subprocess, sys, time
runs, cmd = int(sys.argv[1]), sys.argv[2:]
for _ in range(3):
    subprocess.run(cmd, check=True)
t = []
for _ in range(runs):
    s = time.perf_counter(); subprocess.run(cmd, check=True); t.append(time.perf_counter() - s)
print(round(statistics.median(t) * 1000, 1))
PY
    fi
    "${cli[@]}" rm -f lcexec >/dev/null
}

# pss_kb <pid...> → total PSS in kB
pss_kb() {
    local total=0 p v
    for p in "$@"; do
        v="$(awk '/^Pss:/{print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)"
        total=$((total + ${v:-0}))
    done
    echo "$total"
}

# mem_run <engine> <cli...> → prints "total_kb per_kb nprocs"
mem_run() {
    local engine="$1"; shift
    local cli=("$@") i ids pids=()
    "${cli[@]}" rm -f $("${cli[@]}" ps -aq) >/dev/null 2>&1 || true
    for i in $(seq 1 "$NCONT"); do
        "${cli[@]}" run -d --network none busybox sleep 1000000 >/dev/null
    done
    sleep 3
    ids="$("${cli[@]}" ps -q --no-trunc)"
    [ "$(wc -l <<<"$ids")" = "$NCONT" ] || { echo "only $(wc -l <<<"$ids") of $NCONT running" >&2; }
    local p cmd
    for p in $(ls /proc | grep -E '^[0-9]+$'); do
        cmd="$({ tr '\0' ' ' <"/proc/$p/cmdline"; } 2>/dev/null || true)"
        case "$engine" in
        berth) [[ "$cmd" == *berth-shim*"$BEXEC/"* ]] && pids+=("$p") ;;
        docker) [[ "$cmd" == *containerd-shim-runc-v2*"$DEXEC/"* || ( "$cmd" == *containerd-shim* && "$cmd" == *"-namespace moby"* && -n "$(grep -F -- "${cmd##*-id }" <<<"$ids" | head -1)" ) ]] && pids+=("$p") ;;
        esac
    done
    local total
    total="$(pss_kb "${pids[@]}")"
    echo "$total $((total / NCONT)) ${#pids[@]}"
    "${cli[@]}" rm -f $ids >/dev/null 2>&1 || true
}

echo "== (1) stop of a SIGTERM-handling container"
S_B="$(stop_ms "${B[@]}" || echo n/a)"
S_BD="$(stop_ms "${BD[@]}" || echo n/a)"
S_D=n/a
[ "$HAVE_DOCKERD" = 1 ] && S_D="$(stop_ms "${D[@]}" || echo n/a)"
echo "   berth→berthd $S_B ms   docker→berthd $S_BD ms   docker→dockerd $S_D ms"

echo "== (2) exec true"
E_B="$(exec_ms "${B[@]}" || echo n/a)"
E_BD="$(exec_ms "${BD[@]}" || echo n/a)"
E_D=n/a
[ "$HAVE_DOCKERD" = 1 ] && E_D="$(exec_ms "${D[@]}" || echo n/a)"
echo "   berth→berthd $E_B ms   docker→berthd $E_BD ms   docker→dockerd $E_D ms"

echo "== (3) memory with $NCONT running containers"
read -r M_BT M_BP M_BN <<<"$(mem_run berth "${BD[@]}")"
BERTHD_PSS="$(pss_kb "$BERTHD_PID")"
echo "   berth-shim: $M_BN processes, PSS total ${M_BT} kB, ${M_BP} kB per container; berthd PSS ${BERTHD_PSS} kB"
M_DT=n/a M_DP=n/a M_DN=0 DOCKERD_PSS=n/a
if [ "$HAVE_DOCKERD" = 1 ]; then
    read -r M_DT M_DP M_DN <<<"$(mem_run docker "${D[@]}")"
    CTRD_PID="$(pgrep -f "containerd --config $DEXEC" | head -1 || true)"
    DOCKERD_PSS="$(pss_kb "$DOCKERD_PID" ${CTRD_PID:+"$CTRD_PID"})"
    echo "   containerd-shim-runc-v2: $M_DN processes, PSS total ${M_DT} kB, ${M_DP} kB per container; dockerd+containerd PSS ${DOCKERD_PSS} kB"
fi

ratio() {
    if [[ "$1" =~ ^[0-9.]+$ && "$2" =~ ^[0-9.]+$ ]]; then awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'; else echo "—"; fi
}
CGROUP=v1
[ -f /sys/fs/cgroup/cgroup.controllers ] && CGROUP=v2
DOCKERD_V="not measured"
[ "$HAVE_DOCKERD" = 1 ] && DOCKERD_V="$(dockerd --version)"
RESULTS="$(cat <<EOM

### $(date -u '+%Y-%m-%d %H:%M') UTC — \`bench/lifecycle.sh\`

$(nproc) cores, kernel $(uname -r), cgroup $CGROUP, Berth $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "?") + working tree (release build),
Docker: $DOCKERD_V. (1) and (2): medians of $RUNS runs, wall clock of the whole client command, ms.

| measurement | berth → berthd | docker CLI → berthd | docker CLI → dockerd | ratio (same CLI) |
|---|---|---|---|---|
| stop of a SIGTERM-handling container (\`stop -t 10\`) | $S_B | $S_BD | $S_D | $(ratio "$S_BD" "$S_D") |
| \`exec <c> true\` | $E_B | $E_BD | $E_D | $(ratio "$E_BD" "$E_D") |

Memory with $NCONT running \`busybox sleep\` containers (\`--network none\`), PSS from
\`/proc/<pid>/smaps_rollup\`:

| engine | per-container processes | PSS total | PSS per container | daemon(s) PSS |
|---|---|---|---|---|
| Berth | $M_BN × berth-shim | ${M_BT} kB | ${M_BP} kB | berthd ${BERTHD_PSS} kB |
| Docker | $M_DN × containerd-shim-runc-v2 | ${M_DT} kB | ${M_DP} kB | dockerd + containerd ${DOCKERD_PSS} kB |
EOM
)"
echo "$RESULTS"
if [ "$WRITE" = 1 ]; then
    grep -q '^## Lifecycle results' BENCHMARKS.md || printf '\n## Lifecycle results\n\nAppended by `bench/lifecycle.sh` (see its header for the method).\n' >>BENCHMARKS.md
    printf '%s\n' "$RESULTS" >>BENCHMARKS.md
    echo "== appended to BENCHMARKS.md"
fi

# Shared by bench/run.sh and bench/lifecycle.sh (sourced after scripts/lib.sh).

# The docker CLI to drive both engines with: BERTH_DOCKER_CLI, else the machine's
# /usr/local/bin/docker, else whatever `docker` is on PATH.
bench_docker_cli() {
    if [ -n "${BERTH_DOCKER_CLI:-}" ]; then echo "$BERTH_DOCKER_CLI"
    elif [ -x /usr/local/bin/docker ]; then echo /usr/local/bin/docker
    else command -v docker || true
    fi
}

# hyperfine (a python loop times without it) and, with $1 = 1, a Docker engine from
# Debian whose own service is stopped: the bench starts its own dockerd.
bench_install_tools() {
    apt_install hyperfine || echo "hyperfine unavailable; timing with a python loop"
    if [ "$1" = 1 ] && ! command -v dockerd >/dev/null; then
        apt_install docker.io
        service docker stop 2>/dev/null || systemctl stop docker docker.socket 2>/dev/null || true
    fi
}

# Stops the given pids: TERM, up to 10 s each, then KILL.
bench_stop_pids() {
    local p
    for p in "$@"; do kill "$p" 2>/dev/null || true; done
    for p in "$@"; do
        for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null || true
    done
}

# wait_sock <sock> <pid> <log>: until the daemon answers /_ping; its log tail if it dies.
wait_sock() {
    for _ in $(seq 1 300); do
        curl -fsS --max-time 1 --unix-socket "$1" http://localhost/_ping >/dev/null 2>&1 && return 0
        kill -0 "$2" 2>/dev/null || { tail -n 30 "$3" >&2; return 1; }
        sleep 0.1
    done
    tail -n 30 "$3" >&2
    return 1
}

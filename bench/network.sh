#!/usr/bin/env bash
# Published-port latency, sourced by bench/run.sh (needs its BIN, BSOCK, DSOCK,
# DOCKER_CLI, HAVE_BERTHD, HAVE_DOCKERD, RUNS, WORK and ROWS):
#   <client> run -d -p P:80 busybox httpd -f -p 80, then the first HTTP answer on
#   127.0.0.1:P (kernel DNAT to the container) — the time a user waits until a
#   published server is reachable. The container is removed after each run (untimed).

# publish_ms <client and -H...> → median ms of run -d -p + first answer, or n/a.
publish_ms() {
    python3 - "$RUNS" "$@" <<'PY' 2>/dev/null || echo n/a
import socket, statistics, subprocess, sys, time
runs, client = int(sys.argv[1]), sys.argv[2:]

def free_port():
    s = socket.socket(); s.bind(("0.0.0.0", 0)); p = s.getsockname()[1]; s.close(); return p

def once():
    port = free_port()
    name = f"bench-pub-{port}"
    t0 = time.perf_counter()
    subprocess.run(client + ["run", "-d", "--name", name, "-p", f"{port}:80", "busybox", "httpd", "-f", "-p", "80"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    deadline = t0 + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                if s.recv(12).startswith(b"HTTP/"):
                    break
        except OSError:
            pass
        if time.perf_counter() > deadline:
            raise SystemExit("no answer")
        time.sleep(0.0005)
    t = time.perf_counter() - t0
    subprocess.run(client + ["rm", "-f", name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return t

for _ in range(3):
    once()
print(round(statistics.median(once() for _ in range(runs)) * 1000, 1))
PY
}

echo "== run -d -p + first connection"
p_berth=n/a p_bdocker=n/a p_docker=n/a
if [ "$HAVE_BERTHD" = 1 ]; then
    p_berth="$(publish_ms "$BIN/berth" -H "unix://$BSOCK")"
    p_bdocker="$(publish_ms "$DOCKER_CLI" -H "unix://$BSOCK")"
fi
if [ "$HAVE_DOCKERD" = 1 ]; then
    p_docker="$(publish_ms "$DOCKER_CLI" -H "unix://$DSOCK")"
fi
echo "   berth→berthd ${p_berth} ms   docker→berthd ${p_bdocker} ms   docker→dockerd ${p_docker} ms"
ROWS+=("| \`run -d -p P:80 busybox httpd\` + first HTTP answer | ${p_berth} | ${p_bdocker} | ${p_docker} | $(ratio "$p_bdocker" "$p_docker") | $(ratio "$p_berth" "$p_docker") |")

#!/usr/bin/env bash
# THE main-job command: build Berth (release), make sure images can be pulled, start
# berthd on /run/berth.sock, and run hello-world through it.
#
#   scripts/up.sh             # then: target/release/berth -H unix:///run/berth.sock ps -a
#                             #   or: docker -H unix:///run/berth.sock ps -a
# Environment: BERTH_SOCK (default /run/berth.sock), BERTH_DATA_ROOT (/var/lib/berth),
# BERTH_LOG (/var/log/berthd.log), BERTH_MIRROR (set to use your own registry mirror).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

SOCK="${BERTH_SOCK:-/run/berth.sock}"
DATA_ROOT="${BERTH_DATA_ROOT:-/var/lib/berth}"
LOG="${BERTH_LOG:-/var/log/berthd.log}"
PIDFILE="${BERTH_PIDFILE:-/run/berthd.pid}"
[ "$(id -u)" = 0 ] || { echo "scripts/up.sh must run as root" >&2; exit 1; }

echo "== build (release)"
cargo build --release --bin berthd --bin berth --bin berth-shim --bin berth-dns
BIN="$ROOT/target/release"

MIRROR_ARGS=()
if [ -n "${BERTH_MIRROR:-}" ]; then
    MIRROR_ARGS=(--registry-mirror "$BERTH_MIRROR")
elif curl -s -o /dev/null --max-time 5 https://registry-1.docker.io/v2/; then
    echo "== Docker Hub is reachable; pulling from it directly"
else
    echo "== Docker Hub is unreachable from this machine (no route outside Debian/crates.io/PyPI/npm)."
    echo "   Serving hello-world, busybox, alpine and redis from the local fixture registry"
    echo "   (scripts/fixtures.sh, built from Debian packages) as a registry mirror."
    apt_install "${BERTH_APT_PACKAGES[@]}"
    scripts/fixtures.sh
    MIRROR_ARGS=(--registry-mirror "http://${BERTH_TEST_REGISTRY:-127.0.0.1:5000}")
fi

ping() { curl -fsS --max-time 2 --unix-socket "$SOCK" http://localhost/_ping 2>/dev/null; }

if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    echo "== stopping the berthd started earlier (pid $(cat "$PIDFILE"))"
    kill "$(cat "$PIDFILE")" || true
    for _ in $(seq 1 50); do kill -0 "$(cat "$PIDFILE")" 2>/dev/null || break; sleep 0.1; done
fi

echo "== starting berthd on unix://$SOCK (data root $DATA_ROOT, log $LOG)"
mkdir -p "$DATA_ROOT" "$(dirname "$LOG")"
setsid nohup "$BIN/berthd" --data-root "$DATA_ROOT" -H "unix://$SOCK" "${MIRROR_ARGS[@]}" \
    >>"$LOG" 2>&1 </dev/null &
echo $! >"$PIDFILE"
for i in $(seq 1 100); do
    if [ "$(ping)" = OK ]; then break; fi
    if ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
        echo "berthd exited; last lines of $LOG:" >&2; tail -n 30 "$LOG" >&2; exit 1
    fi
    [ "$i" = 100 ] && { echo "berthd did not answer /_ping within 10s; see $LOG" >&2; exit 1; }
    sleep 0.1
done
echo "   berthd is up (pid $(cat "$PIDFILE")); Api-Version $(curl -sI --unix-socket "$SOCK" http://localhost/_ping | tr -d '\r' | awk -F': ' 'tolower($1)=="api-version"{print $2}')"

echo "== berth run hello-world"
"$BIN/berth" -H "unix://$SOCK" run hello-world

cat <<EOM

Berth is running. Try:
  $BIN/berth -H unix://$SOCK ps -a
  docker -H unix://$SOCK run --rm alpine ls /
Stop it with: kill \$(cat $PIDFILE)
EOM

#!/usr/bin/env bash
# THE test command (README and .ci/run call it). Runs as root on Debian 12:
#   1. installs the Debian packages the tests need (apt-get update once, only if missing)
#      and docker-py (PyPI) if `import docker` fails;
#   2. scripts/fixtures.sh: the fixture registry on 127.0.0.1:5000 with test images;
#   3. cargo build --workspace (debug): berthd, berth, berth-shim, berth-dns for the e2e harness,
#      then clippy over the workspace with -D warnings;
#   4. the whole suite: cargo nextest run --workspace (cargo test --workspace if nextest
#      is missing). Exits non-zero on any failure.
# Extra arguments go to the test runner, e.g. `scripts/test.sh -p berth-e2e`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

if [ "$(id -u)" != 0 ]; then
    echo "scripts/test.sh must run as root (containers need namespaces, mounts and cgroups)" >&2
    exit 1
fi
command -v cargo >/dev/null || { echo "cargo not found (the machine's Rust toolchain is required)" >&2; exit 1; }

echo "== packages"
apt_install "${BERTH_APT_PACKAGES[@]}"
if ! python3 -c 'import docker' 2>/dev/null; then
    echo "pip: installing docker-py"
    python3 -m pip install -q 'docker>=7' 2>/dev/null ||
        python3 -m pip install -q --break-system-packages 'docker>=7' ||
        apt_install python3-docker
fi
if ! command -v docker >/dev/null && [ ! -x /usr/local/bin/docker ] && [ -z "${BERTH_DOCKER_CLI:-}" ]; then
    echo "warning: no docker CLI found; the e2e tests that compare with it will fail" >&2
fi

echo "== fixtures"
scripts/fixtures.sh

echo "== build"
cargo build --workspace --all-targets

echo "== lint"
cargo clippy --workspace --all-targets -- -D warnings

echo "== tests"
export BERTH_TEST_REGISTRY="${BERTH_TEST_REGISTRY:-127.0.0.1:5000}"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast --failure-output final "$@"
else
    cargo test --workspace --no-fail-fast "$@"
fi

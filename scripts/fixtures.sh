#!/usr/bin/env bash
# Fixture images for Berth's tests and benchmarks, served by a real registry.
#
# Starts Debian's `docker-registry` (distribution 2.8) on $BERTH_TEST_REGISTRY
# (default 127.0.0.1:5000) with its storage under .fixtures/registry, then builds
# small images from Debian packages with independent tools (gcc, umoci, skopeo;
# never Berth itself) and pushes them as Docker Hub "library" repositories, so that
# `berthd --registry-mirror http://127.0.0.1:5000` pulls `hello-world` from
# 127.0.0.1:5000/library/hello-world:
#
#   library/hello-world:latest  static /hello, Cmd ["/hello"], no shell   Docker schema2
#   library/busybox:latest      busybox-static + applet links             OCI manifest
#   library/alpine:latest       busybox base + usual root dirs            OCI index (amd64 + arm64)
#   library/redis:latest        alpine layer + redis layer (2 layers)     Docker schema2
#   test/busybox:latest         = library/busybox, for non-hub names      OCI manifest
#
# Idempotent: when the registry already serves every fixture built by this version
# of the script, it only (re)starts the registry and returns.
#
# Needs (Debian 12): docker-registry umoci skopeo busybox-static redis-server jq curl
# gcc libc6-dev. scripts/test.sh installs them.
set -euo pipefail

# Bump when the fixture contents change, to force a rebuild.
FIXTURE_VERSION=3

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FIX="${BERTH_FIXTURES_DIR:-$ROOT/.fixtures}"
REG="${BERTH_TEST_REGISTRY:-127.0.0.1:5000}"
REGDIR="$FIX/registry"
BUILD="$FIX/build"
PIDFILE="$FIX/registry.pid"
STAMP="$REGDIR/fixtures.stamp"

log() { printf 'fixtures: %s\n' "$*" >&2; }
die() { printf 'fixtures: ERROR: %s\n' "$*" >&2; exit 1; }

for tool in docker-registry umoci skopeo busybox redis-server jq curl gcc; do
    command -v "$tool" >/dev/null || die "missing '$tool' (run scripts/test.sh, which installs the Debian packages)"
done

mkdir -p "$REGDIR/data" "$BUILD"

# ---------------------------------------------------------------- registry
registry_status() { curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$REG/v2/" || true; }

start_registry() {
    local code
    code="$(registry_status)"
    if [ "$code" = 200 ]; then
        if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
            log "registry already running on $REG (pid $(cat "$PIDFILE"))"
        else
            log "a registry already answers on $REG (not started by this script); using it"
        fi
        return
    fi
    if [ "$code" = 401 ] && command -v systemctl >/dev/null && systemctl is-active -q docker-registry 2>/dev/null; then
        # Debian's package starts its own registry (with auth) on :5000.
        log "stopping the distro's docker-registry service, it holds $REG"
        systemctl disable --now docker-registry || true
    fi
    cat >"$REGDIR/config.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $REGDIR/data
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: $REG
EOF
    log "starting docker-registry on $REG (storage $REGDIR/data, log $REGDIR/registry.log)"
    setsid nohup docker-registry serve "$REGDIR/config.yml" >>"$REGDIR/registry.log" 2>&1 </dev/null &
    echo $! >"$PIDFILE"
    for _ in $(seq 1 100); do
        [ "$(registry_status)" = 200 ] && { log "registry up (pid $(cat "$PIDFILE"))"; return; }
        kill -0 "$(cat "$PIDFILE")" 2>/dev/null || { tail -n 20 "$REGDIR/registry.log" >&2; die "docker-registry exited"; }
        sleep 0.1
    done
    tail -n 20 "$REGDIR/registry.log" >&2
    die "registry on $REG did not answer GET /v2/ within 10s"
}

start_registry

ACCEPT='application/vnd.oci.image.index.v1+json,application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.list.v2+json,application/vnd.docker.distribution.manifest.v2+json'
media_type() {
    curl -fsS --max-time 5 -o /dev/null -D - -H "Accept: $ACCEPT" "http://$REG/v2/$1/manifests/latest" 2>/dev/null |
        tr -d '\r' | awk -F': ' 'tolower($1)=="content-type"{print $2}'
}

declare -A WANT_TYPE=(
    [library/hello-world]=application/vnd.docker.distribution.manifest.v2+json
    [library/busybox]=application/vnd.oci.image.manifest.v1+json
    [library/alpine]=application/vnd.oci.image.index.v1+json
    [library/redis]=application/vnd.docker.distribution.manifest.v2+json
    [test/busybox]=application/vnd.oci.image.manifest.v1+json
)
REPOS=(library/hello-world library/busybox library/alpine library/redis test/busybox)

all_present() {
    [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$FIXTURE_VERSION" ] || return 1
    local r
    for r in "${REPOS[@]}"; do
        [ "$(media_type "$r")" = "${WANT_TYPE[$r]}" ] || return 1
    done
}

# Opt-in (not in the CI path): the image benchmark's ~100 MB Debian minbase.
minbase_opt_in() {
    if [ "${BERTH_FIXTURE_MINBASE:-0}" = 1 ]; then "$ROOT/scripts/minbase.sh"; fi
}

if [ "${BERTH_FIXTURES_FORCE:-}" != 1 ] && all_present; then
    log "all fixture images present in $REG (version $FIXTURE_VERSION):"
    for r in "${REPOS[@]}"; do log "  $REG/$r:latest  ${WANT_TYPE[$r]}"; done
    minbase_opt_in
    exit 0
fi

# ---------------------------------------------------------------- build
log "building fixture images in $BUILD"
rm -rf "$BUILD"
mkdir -p "$BUILD"
cd "$BUILD"
OCI="$BUILD/oci"
umoci init --layout "$OCI"

CREATED="2024-01-01T00:00:00Z"
MTIME="@1704067200"

# tar a directory as an uncompressed layer: root-owned, sorted, no "./" prefix.
mklayer() { # <dir> <out.tar>
    local out="$BUILD/$2"
    (cd "$1" && find . -mindepth 1 | sed 's|^\./||' | LC_ALL=C sort >"$out.list")
    tar -C "$1" --numeric-owner --owner=0 --group=0 --mtime="$MTIME" --no-recursion \
        -cf "$out" -T "$out.list"
    rm -f "$out.list"
}

new_image() { # <tag> [arch]
    umoci new --image "$OCI:$1"
    umoci config --image "$OCI:$1" --no-history --created "$CREATED" \
        --os linux --architecture "${2:-amd64}" --author "berth fixtures"
}

add_layer() { # <tag> <layer.tar> <created_by>
    umoci raw add-layer --image "$OCI:$1" --history.created "$CREATED" \
        --history.created_by "$3" "$2"
}

# -- hello-world: one static binary printing Docker's greeting, nothing else.
cat >hello.c <<'EOF'
#include <unistd.h>
static const char msg[] =
"\n"
"Hello from Docker!\n"
"This message shows that your installation appears to be working correctly.\n"
"\n"
"To generate this message, Docker took the following steps:\n"
" 1. The Docker client contacted the Docker daemon.\n"
" 2. The Docker daemon pulled the \"hello-world\" image from the Docker Hub.\n"
"    (amd64)\n"
" 3. The Docker daemon created a new container from that image which runs the\n"
"    executable that produces the output you are currently reading.\n"
" 4. The Docker daemon streamed that output to the Docker client, which sent it\n"
"    to your terminal.\n"
"\n"
"To try something more ambitious, you can run an Ubuntu container with:\n"
" $ docker run -it ubuntu bash\n"
"\n"
"Share images, automate workflows, and more with a free Docker ID:\n"
" https://hub.docker.com/\n"
"\n"
"For more examples and ideas, visit:\n"
" https://docs.docker.com/get-started/\n"
"\n";
int main(void) {
    const char *p = msg;
    size_t left = sizeof(msg) - 1;
    while (left > 0) {
        ssize_t n = write(1, p, left);
        if (n <= 0) return 1;
        p += n;
        left -= (size_t)n;
    }
    return 0;
}
EOF
mkdir -p hello-root
gcc -static -Os -s -o hello-root/hello hello.c
mklayer hello-root hello.tar
new_image hello-world
add_layer hello-world hello.tar 'COPY hello / # buildkit'
umoci config --image "$OCI:hello-world" --no-history --config.cmd=/hello

# -- busybox root filesystem (shared by busybox, alpine and redis).
BB="$(command -v busybox)"
make_busybox_root() { # <dir>
    local d="$1" a
    mkdir -p "$d"/{bin,etc,root,tmp,proc,sys,dev,home,var,usr/bin,usr/sbin}
    install -m 0755 "$BB" "$d/bin/busybox"
    for a in $("$BB" --list); do
        [ "$a" = busybox ] && continue
        ln -sf busybox "$d/bin/$a"
    done
    chmod 1777 "$d/tmp"
    chmod 0700 "$d/root"
    cat >"$d/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
    cat >"$d/etc/group" <<'EOF'
root:x:0:
nogroup:x:65534:
EOF
}

make_busybox_root busybox-root
mklayer busybox-root busybox.tar
new_image busybox
add_layer busybox busybox.tar 'ADD busybox.tar.xz / # buildkit'
umoci config --image "$OCI:busybox" --no-history --config.cmd=sh

# -- alpine (linux/amd64): busybox base + the usual root dirs.
make_alpine_root() { # <dir>
    local d="$1"
    make_busybox_root "$d"
    mkdir -p "$d"/{lib,mnt,opt,srv,run,sbin,media,usr/lib,usr/local/bin,usr/local/sbin,usr/share,var/log,var/tmp,var/cache,var/lib}
    chmod 1777 "$d/var/tmp"
    cat >"$d/etc/os-release" <<'EOF'
NAME="Berth test image"
ID=berth-test
PRETTY_NAME="Berth test image (busybox, alpine-like layout)"
VERSION_ID=1
HOME_URL="https://example.invalid/berth"
EOF
    echo "berth-test" >"$d/etc/hostname"
    printf '/bin/sh\n' >"$d/etc/shells"
}
PATH_ENV='PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

make_alpine_root alpine-root
mklayer alpine-root alpine.tar
new_image alpine-amd64 amd64
add_layer alpine-amd64 alpine.tar 'ADD alpine-minirootfs.tar.gz / # buildkit'
umoci config --image "$OCI:alpine-amd64" --no-history --config.env="$PATH_ENV" --config.cmd=/bin/sh

# -- alpine (linux/arm64): a different small layer; never runnable here, only
#    present so that platform selection in the index is exercised.
mkdir -p alpine-arm64-root/etc
printf 'this is the linux/arm64 variant of the Berth test alpine image\n' >alpine-arm64-root/etc/berth-arm64
mklayer alpine-arm64-root alpine-arm64.tar
new_image alpine-arm64 arm64
add_layer alpine-arm64 alpine-arm64.tar 'ADD alpine-minirootfs-aarch64.tar.gz / # buildkit'
umoci config --image "$OCI:alpine-arm64" --no-history --config.env="$PATH_ENV" --config.cmd=/bin/sh

# Assemble the OCI image index by hand and tag it "alpine" in index.json.
desc_of() { jq -c --arg t "$1" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"]==$t) | {mediaType,digest,size}' "$OCI/index.json"; }
AMD="$(desc_of alpine-amd64)"
ARM="$(desc_of alpine-arm64)"
jq -n --argjson amd "$AMD" --argjson arm "$ARM" '{
  schemaVersion: 2,
  mediaType: "application/vnd.oci.image.index.v1+json",
  manifests: [
    ($amd + {platform: {architecture: "amd64", os: "linux"}}),
    ($arm + {platform: {architecture: "arm64", os: "linux", variant: "v8"}})
  ]
}' >alpine-index.json
IDX_HEX="$(sha256sum alpine-index.json | cut -d' ' -f1)"
IDX_SIZE="$(stat -c %s alpine-index.json)"
cp alpine-index.json "$OCI/blobs/sha256/$IDX_HEX"
jq --arg d "sha256:$IDX_HEX" --argjson s "$IDX_SIZE" '.manifests += [{
  mediaType: "application/vnd.oci.image.index.v1+json", digest: $d, size: $s,
  annotations: {"org.opencontainers.image.ref.name": "alpine"}}]' "$OCI/index.json" >index.tmp
mv index.tmp "$OCI/index.json"

# -- redis: the alpine layer + a layer with redis-server, redis-cli and their libs.
mkdir -p redis-root/usr/local/bin redis-root/data
chmod 0777 redis-root/data
for b in redis-server redis-cli; do
    cp -L "$(command -v $b)" "redis-root/usr/local/bin/$b"
done
{ ldd "$(command -v redis-server)"; ldd "$(command -v redis-cli)"; } |
    grep -oE '/[^ ]+' | sort -u | while read -r lib; do
        mkdir -p "redis-root$(dirname "$lib")"
        cp -L "$lib" "redis-root$lib"
    done
mklayer redis-root redis.tar
umoci tag --image "$OCI:alpine-amd64" redis
add_layer redis redis.tar 'COPY redis-server redis-cli /usr/local/bin/ # buildkit'
umoci config --image "$OCI:redis" --no-history \
    --config.cmd=redis-server --config.cmd=--protected-mode --config.cmd=no \
    --config.exposedports=6379/tcp --config.workingdir=/data

# ---------------------------------------------------------------- push
push() { # <layout-tag> <repo> <skopeo flags...>
    local src="$1" repo="$2"
    shift 2
    log "pushing $REG/$repo:latest ($*)"
    skopeo copy --quiet --dest-tls-verify=false "$@" "oci:$OCI:$src" "docker://$REG/$repo:latest"
}
push hello-world library/hello-world --format v2s2
push busybox library/busybox --format oci
push alpine library/alpine --all --preserve-digests
push redis library/redis --format v2s2
push busybox test/busybox --format oci

# ---------------------------------------------------------------- verify
fail=0
for r in "${REPOS[@]}"; do
    got="$(media_type "$r")"
    if [ "$got" != "${WANT_TYPE[$r]}" ]; then
        log "VERIFY FAILED: $REG/$r:latest has media type '$got', want '${WANT_TYPE[$r]}'"
        fail=1
        continue
    fi
    info="$(skopeo inspect --tls-verify=false "docker://$REG/$r:latest")"
    log "  $REG/$r:latest  $got  $(jq -r '"\(.Digest)  \(.Architecture)  layers=\(.Layers|length)"' <<<"$info")"
done
[ "$fail" = 0 ] || die "fixture verification failed"

# Content checks that tests rely on.
[ "$(skopeo inspect --tls-verify=false docker://$REG/library/redis:latest | jq '.Layers|length')" = 2 ] ||
    die "redis must have two layers"
skopeo inspect --tls-verify=false --raw "docker://$REG/library/alpine:latest" |
    jq -e '[.manifests[].platform.architecture] == ["amd64","arm64"]' >/dev/null ||
    die "alpine index must list amd64 and arm64"

echo "$FIXTURE_VERSION" >"$STAMP"
log "done: fixtures version $FIXTURE_VERSION in $REG"
minbase_opt_in

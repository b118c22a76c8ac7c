#!/usr/bin/env bash
# save/load interop between Berth and a real Docker engine, both ways, and the
# Docker-made fixture archives of crates/berth-e2e/fixtures/docker-interop/.
#
#   scripts/docker-interop.sh [--regen]
#
#   --regen   remake the fixture archives with this machine's Docker and rewrite
#             expected.json (without it the committed fixtures are checked as they are)
#
# Opt-in and never part of CI or scripts/test.sh: Berth must not depend on Docker. Runs
# as root; installs Debian's docker.io if dockerd is missing (its own service stopped),
# starts its own dockerd (no bridge, no iptables: it touches no host networking) and its
# own berthd on private roots and sockets, and stops both on exit. Containers run with
# --network none in both engines.
#
# Checks, each printed PASS/FAIL (the exit status is the number of failures):
#  1. Docker → Berth: `docker save` archives (busybox from the fixture registry; the
#     fixture archives: a 5-layer classic-builder image with a repeated layer, three
#     images in one archive with a Parent link, an image saved by id) loaded by the
#     berth CLI and by the docker CLI into berthd: Docker's own load lines, the same
#     image ids, tags, parents and layers as Docker's, and the images run.
#  2. Structure: Berth's archive of an image and Docker's archive of the same image
#     have the same members (names, kinds, contents; a layer.tar by its content through
#     any symlink and manifest.json as a set of images, since Docker writes images in
#     Go's random map order, which decides which copy of a shared layer is the file).
#  3. Berth → Docker: `berth save` of one image by tag, several (built by Berth's
#     builder, committed, pulled OCI and Docker-schema2 images), one by id and a bare
#     repository name, loaded by `docker load` into dockerd: same ids, tags and
#     parents as in Berth, and the images run in Docker; Docker's re-save of them has
#     the same members as Berth's archive.
#  4. skopeo: docker-archive (two tags), oci-archive (named by ref.name) and a
#     multi-platform oci-archive (`--all`) from the fixture registry load into Berth.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
# shellcheck source=bench/lib.sh
. bench/lib.sh

REGEN=0
while [ $# -gt 0 ]; do
    case "$1" in
    --regen) REGEN=1 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
[ "$(id -u)" = 0 ] || { echo "scripts/docker-interop.sh must run as root" >&2; exit 1; }

REG="${BERTH_TEST_REGISTRY:-127.0.0.1:5000}"
FIX="$ROOT/crates/berth-e2e/fixtures/docker-interop"
WORK=/tmp/berth-interop
BSOCK=/run/berth-interop-berth.sock
DSOCK=/run/berth-interop-docker.sock
DOCKER_CLI="$(bench_docker_cli)"
rm -rf "$WORK"
mkdir -p "$WORK/out"
export DOCKER_CONFIG="$WORK/docker-config"
mkdir -p "$DOCKER_CONFIG"

PIDS=()
cleanup() {
    bench_stop_pids "${PIDS[@]}"
    # berthd's DNS resolver outlives it by design; this one is ours.
    local dns=/run/berth-interop-berth/dns/berth-dns.pid
    [ -f "$dns" ] && bench_stop_pids "$(cat "$dns")"
    # berthd's build-context tmpfs stays mounted after it exits (it is reused).
    umount /run/berth-interop-berth/builder 2>/dev/null || true
    return 0
}
trap cleanup EXIT

FAILS=0
pass() { printf 'PASS  %s\n' "$*"; }
fail() { printf 'FAIL  %s\n' "$*"; FAILS=$((FAILS + 1)); }
# check <description> <expected> <got>
check() {
    if [ "$2" = "$3" ]; then pass "$1"; else fail "$1"; diff <(printf '%s\n' "$2") <(printf '%s\n' "$3") | sed 's/^/      /' || true; fi
}

echo "== packages"
apt_install docker.io skopeo jq python3 busybox-static
service docker stop 2>/dev/null || systemctl stop docker docker.socket 2>/dev/null || true

echo "== build"
cargo build --bin berthd --bin berth --bin berth-shim
scripts/fixtures.sh
BIN="$ROOT/target/debug"

echo "== dockerd ($(dockerd --version))"
dockerd --data-root "$WORK/docker-root" --exec-root /run/berth-interop-docker -H "unix://$DSOCK" \
    --pidfile /run/berth-interop-docker.pid --registry-mirror "http://$REG" --insecure-registry "$REG" \
    --bridge none --iptables=false --ip-masq=false >"$WORK/dockerd.log" 2>&1 </dev/null &
PIDS+=($!)
wait_sock "$DSOCK" "$!" "$WORK/dockerd.log"
D=("$DOCKER_CLI" -H "unix://$DSOCK")

echo "== berthd"
"$BIN/berthd" --data-root "$WORK/berth-root" --exec-root /run/berth-interop-berth -H "unix://$BSOCK" \
    --registry-mirror "http://$REG" >"$WORK/berthd.log" 2>&1 </dev/null &
PIDS+=($!)
wait_sock "$BSOCK" "$!" "$WORK/berthd.log"
B=("$BIN/berth" -H "unix://$BSOCK")
DB=("$DOCKER_CLI" -H "unix://$BSOCK")

# wipe <cli...>: removes every image (and container) of that engine.
wipe() {
    local c i n
    c="$("$@" ps -aq)"; [ -z "$c" ] || "$@" rm -f $c >/dev/null
    # Children first would be needed for ids with dependants; a few passes do it.
    for n in 1 2 3; do
        i="$("$@" images -aq | sort -u)"; [ -z "$i" ] && return 0
        "$@" rmi -f $i >/dev/null 2>&1 || true
    done
}
# facts <cli...> -- <names...>: one line per image: name, id, tags= (sorted), parent=, layers=.
facts() {
    local cli=() n
    while [ "$1" != -- ]; do cli+=("$1"); shift; done
    shift
    for n in "$@"; do
        "${cli[@]}" image inspect "$n" | jq -r --arg n "$n" \
            '.[0] | "\($n) \(.Id) tags=\(.RepoTags // [] | sort | join(",")) parent=\(.Parent) layers=\(.RootFS.Layers | map(.[7:19]) | join(","))"'
    done
}
# same_members <docker archive> <berth archive>: prints "same" or what differs. A
# layer.tar is compared by its content through any symlink: which directory holds the
# file and which links to it follows the order images are written in, and Docker's is
# Go's random map order.
same_members() {
    python3 - "$1" "$2" <<'PY'
import hashlib, json, posixpath, sys, tarfile
def members(p):
    raw = {}
    with tarfile.open(p) as t:
        for m in t.getmembers():
            data = t.extractfile(m).read() if m.isfile() else b""
            raw[m.name.rstrip("/")] = (m.type, m.linkname, data)
    out = {}
    for name, (kind, link, data) in raw.items():
        if name.endswith("/layer.tar"):
            seen = 0
            while kind == tarfile.SYMTYPE and seen < 8:
                name2 = posixpath.normpath(posixpath.join(posixpath.dirname(name), link))
                kind, link, data = raw[name2]
                seen += 1
            out[name] = ("layer", hashlib.sha256(data).hexdigest())
        elif name == "manifest.json":
            out[name] = sorted(json.dumps(i, sort_keys=True) for i in json.loads(data))
        else:
            out[name] = (kind, link, data)
    return out
a, b = members(sys.argv[1]), members(sys.argv[2])
diff = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
print("same" if not diff else "differ: " + " ".join(diff[:8]))
PY
}

if [ "$REGEN" = 1 ]; then
    echo "== regenerate the fixtures with $(dockerd --version)"
    G="$WORK/gen"
    rm -rf "$G"
    mkdir -p "$G/base/etc" "$G/base/srv/data" "$G/ctx/dir"
    printf 'interop\n' >"$G/base/etc/hostname"
    printf 'root:x:0:0:root:/root:/bin/sh\n' >"$G/base/etc/passwd"
    printf 'base file\n' >"$G/base/srv/data/base.txt"
    ln -s data/base.txt "$G/base/srv/link"
    tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=2024-01-01 -C "$G/base" -cf "$G/base.tar" .
    printf 'hello from docker\n' >"$G/ctx/greeting.txt"
    printf 'one\n' >"$G/ctx/dir/one.txt"
    cat >"$G/ctx/Dockerfile" <<'EOF'
FROM interop/base:1
COPY greeting.txt /greeting.txt
ENV GREETING=hello APP=/srv/app
WORKDIR /srv/app
COPY dir /srv/app/dir
COPY greeting.txt /greeting.txt
LABEL org.example.fixture=interop
CMD ["/greeting.txt"]
EOF
    wipe "${D[@]}"
    "${D[@]}" import -c 'ENV PATH=/bin' -m 'interop base' "$G/base.tar" interop/base:1 >/dev/null
    DOCKER_BUILDKIT=0 "${D[@]}" build -q -t interop/app:1 "$G/ctx" >/dev/null 2>&1
    "${D[@]}" tag interop/app:1 interop/app:latest
    "${D[@]}" create --name interop-c --network none interop/base:1 /nothing >/dev/null
    "${D[@]}" commit -c 'ENV COMMITTED=1' interop-c interop/child:1 >/dev/null
    "${D[@]}" rm interop-c >/dev/null
    APP_ID="$("${D[@]}" image inspect -f '{{.Id}}' interop/app:1)"
    mkdir -p "$FIX"
    "${D[@]}" save -o "$FIX/docker-app.tar" interop/app:1
    "${D[@]}" save -o "$FIX/docker-multi.tar" interop/base:1 interop/child:1 interop/app
    "${D[@]}" save -o "$FIX/docker-byid.tar" "${APP_ID:7:12}"
    chmod 644 "$FIX"/*.tar
    # Docker's own output when each archive is loaded into an empty engine, and its
    # inspect of the images docker-multi.tar gives (base, child, app: the tests count
    # on that order).
    LOADS='{}'
    for a in docker-app docker-byid docker-multi; do
        wipe "${D[@]}"
        lines="$("${D[@]}" load -i "$FIX/$a.tar" | jq -R . | jq -s .)"
        LOADS="$(jq --arg a "$a.tar" --argjson l "$lines" '. + {($a): $l}' <<<"$LOADS")"
    done
    IMAGES="$("${D[@]}" image inspect interop/base:1 interop/child:1 interop/app:1 | jq '[.[] | {Id, RepoTags: (.RepoTags | sort), Parent, Comment, Author, Created, Architecture, Os, Layers: .RootFS.Layers, Config: (.Config | {Env, Cmd, Entrypoint, WorkingDir, Labels, User})}]')"
    jq -n --arg v "$(dockerd --version)" --arg c "$("$DOCKER_CLI" --version)" --argjson images "$IMAGES" --argjson loads "$LOADS" \
        '{made_with: {dockerd: $v, cli: $c}, load_lines: $loads, images: $images}' >"$FIX/expected.json"
    ls -l "$FIX"
fi

echo "== 1. Docker → Berth"
wipe "${D[@]}"
"${D[@]}" pull -q busybox >/dev/null
"${D[@]}" save -o "$WORK/out/docker-busybox.tar" busybox
for a in docker-busybox.tar docker-app.tar docker-multi.tar docker-byid.tar; do
    src="$FIX/$a"; [ "$a" = docker-busybox.tar ] && src="$WORK/out/$a"
    wipe "${D[@]}"
    want_lines="$("${D[@]}" load -i "$src")"
    names="$("${D[@]}" images --format '{{.Repository}}:{{.Tag}}' | grep -v '<none>' | sort || true)"
    [ -n "$names" ] || names="$("${D[@]}" images -q --no-trunc)"
    # shellcheck disable=SC2086
    want="$(facts "${D[@]}" -- $names)"
    for cli in berth docker; do
        if [ "$cli" = berth ]; then C=("${B[@]}"); else C=("${DB[@]}"); fi
        wipe "${B[@]}"
        got_lines="$("${C[@]}" load -i "$src")"
        check "$a → berthd ($cli CLI): Docker's load lines" "$want_lines" "$got_lines"
        # shellcheck disable=SC2086
        check "$a → berthd ($cli CLI): ids, tags, parents, layers" "$want" "$(facts "${B[@]}" -- $names)"
    done
done
wipe "${B[@]}"
"${B[@]}" load -i "$WORK/out/docker-busybox.tar" >/dev/null
"${B[@]}" load -i "$FIX/docker-multi.tar" >/dev/null
check "Docker's busybox runs in Berth" ok "$("${B[@]}" run --rm --pull never --network none busybox echo ok)"
check "Docker's classic-builder image runs in Berth" "hello /srv/app hello from docker" \
    "$("${B[@]}" run --rm --pull never --network none -v /bin/busybox:/bin/busybox:ro interop/app:1 /bin/busybox sh -c 'echo $GREETING $(pwd) $(cat /greeting.txt)')"

echo "== 2. structure: Berth's save of Docker's images = Docker's archives"
"${B[@]}" save -o "$WORK/out/b-busybox.tar" busybox
check "busybox: berth save vs docker save" same "$(same_members "$WORK/out/docker-busybox.tar" "$WORK/out/b-busybox.tar")"
"${B[@]}" save -o "$WORK/out/b-app.tar" interop/app:1
check "docker-app.tar vs berth save interop/app:1" same "$(same_members "$FIX/docker-app.tar" "$WORK/out/b-app.tar")"
"${B[@]}" save -o "$WORK/out/b-multi.tar" interop/base:1 interop/child:1 interop/app
check "docker-multi.tar vs berth save of the same names" same "$(same_members "$FIX/docker-multi.tar" "$WORK/out/b-multi.tar")"
APP_ID="$("${B[@]}" image inspect -f '{{.Id}}' interop/app:1)"
"${B[@]}" save -o "$WORK/out/b-byid.tar" "${APP_ID:7:12}"
check "docker-byid.tar vs berth save <id>" same "$(same_members "$FIX/docker-byid.tar" "$WORK/out/b-byid.tar")"

echo "== 3. Berth → Docker"
wipe "${B[@]}"
for i in busybox redis alpine; do "${B[@]}" pull -q "$i" >/dev/null; done
mkdir -p "$WORK/bctx"
printf 'from berth\n' >"$WORK/bctx/note.txt"
cat >"$WORK/bctx/Dockerfile" <<'EOF'
FROM busybox
RUN echo built-by-berth > /built
COPY note.txt /note.txt
ENV WHO=berth
LABEL made.by=berth
CMD ["cat", "/built", "/note.txt"]
EOF
DOCKER_BUILDKIT=0 "${DB[@]}" build -q -t bb/built:1 "$WORK/bctx" >/dev/null 2>&1
"${B[@]}" run --name cm --network none busybox sh -c 'echo committed > /c'
"${B[@]}" commit cm bb/committed:1 >/dev/null
"${B[@]}" rm cm >/dev/null
COMMITTED_ID="$("${B[@]}" image inspect -f '{{.Id}}' bb/committed:1)"
declare -A SAVES=(
    [one]="bb/built:1"
    [several]="bb/built:1 redis alpine bb/committed:1 busybox"
    [byid]="${COMMITTED_ID:7:12}"
    [repo]="busybox"
)
ids_of() { local n; for n in "$@"; do "${B[@]}" image inspect -f '{{.Id}}' "$n"; done; }
for s in one several byid repo; do
    # shellcheck disable=SC2086
    "${B[@]}" save -o "$WORK/out/berth-$s.tar" ${SAVES[$s]}
    wipe "${D[@]}"
    lines="$("${D[@]}" load -i "$WORK/out/berth-$s.tar")"
    names="${SAVES[$s]}"; [ "$s" = byid ] && names="$COMMITTED_ID"
    # shellcheck disable=SC2086
    saved_ids="$(ids_of $names)"
    # Docker's rules for what the archive carries: a parent only when it is saved
    # too, no tag for an image named by id.
    # shellcheck disable=SC2086
    want="$(facts "${B[@]}" -- $names | while read -r n id tags parent layers; do
        p="${parent#parent=}"; grep -qx "$p" <<<"$saved_ids" || parent=parent=
        [ "$s" = byid ] && tags=tags=
        echo "$n $id $tags $parent $layers"
    done)"
    # shellcheck disable=SC2086
    check "berth save $s → docker load: ids, tags, parents, layers" "$want" "$(facts "${D[@]}" -- $names)"
    printf '      docker load said: %s\n' "$(tr '\n' ';' <<<"$lines")"
done
wipe "${D[@]}"
"${D[@]}" load -i "$WORK/out/berth-several.tar" >/dev/null
check "Berth's build runs in Docker" "built-by-berth from berth" "$("${D[@]}" run --rm --pull never --network none bb/built:1 | tr '\n' ' ' | sed 's/ $//')"
check "Berth's commit runs in Docker" committed "$("${D[@]}" run --rm --pull never --network none bb/committed:1 cat /c)"
check "Berth's pulled redis runs in Docker" 1 "$("${D[@]}" run --rm --pull never --network none redis redis-server --version | grep -c 'Redis server')"
check "Berth's pulled alpine (OCI index) runs in Docker" ok "$("${D[@]}" run --rm --pull never --network none alpine echo ok)"
"${D[@]}" save -o "$WORK/out/docker-several.tar" bb/built:1 redis alpine bb/committed:1 busybox
check "docker re-save of Berth's images = berth save" same "$(same_members "$WORK/out/docker-several.tar" "$WORK/out/berth-several.tar")"

echo "== 4. skopeo archives → Berth"
S="$WORK/skopeo"
mkdir -p "$S"
skopeo copy -q --src-tls-verify=false "docker://$REG/library/redis:latest" "docker-archive:$S/redis-da.tar:sk/redis:1" --additional-tag sk/redis:2
skopeo copy -q --src-tls-verify=false "docker://$REG/library/redis:latest" "oci-archive:$S/redis-oci.tar:sk/redis:3"
skopeo copy -q --src-tls-verify=false --all "docker://$REG/library/alpine:latest" "oci-archive:$S/alpine-all.tar:sk/alpine:all"
wipe "${B[@]}"
check "skopeo docker-archive → berth" "Loaded image: sk/redis:1;Loaded image: sk/redis:2;" "$("${B[@]}" load -i "$S/redis-da.tar" | tr '\n' ';')"
wipe "${D[@]}"
"${D[@]}" load -i "$S/redis-da.tar" >/dev/null
check "skopeo docker-archive: same id as Docker's load" "$(facts "${D[@]}" -- sk/redis:1)" "$(facts "${B[@]}" -- sk/redis:1)"
check "skopeo oci-archive → berth (ref.name)" "Loaded image: sk/redis:3;" "$("${B[@]}" load -i "$S/redis-oci.tar" | tr '\n' ';')"
cfg="$(skopeo inspect --raw "oci-archive:$S/redis-oci.tar" | jq -r .config.digest)"
check "skopeo oci-archive: id is the config digest" "$cfg" "$("${B[@]}" image inspect -f '{{.Id}}' sk/redis:3)"
check "skopeo oci-archive --all → berth (host platform)" "Loaded image: sk/alpine:all;" "$("${B[@]}" load -i "$S/alpine-all.tar" | tr '\n' ';')"
check "the multi-platform image runs" ok "$("${B[@]}" run --rm --pull never --network none sk/alpine:all echo ok)"

echo
echo "== $FAILS failure(s); dockerd: $(dockerd --version); docker CLI: $("$DOCKER_CLI" --version)"
exit "$FAILS"

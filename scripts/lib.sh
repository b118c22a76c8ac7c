# Shared helpers for scripts/*.sh and bench/run.sh (sourced, not executed).

# Debian packages every test run needs (runtime tools, fixture builders, clients).
BERTH_APT_PACKAGES=(docker-registry umoci skopeo busybox-static redis-server runc libseccomp-dev
    jq socat curl gcc libc6-dev tini procps docker-compose apache2-utils openssl
    zstd xz-utils bzip2)

_apt_updated=0
# apt_install PKG... — installs the packages that are missing (apt-get update once).
apt_install() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    [ "$(id -u)" = 0 ] || { echo "need root to apt-get install ${missing[*]}" >&2; return 1; }
    echo "apt: installing ${missing[*]}" >&2
    if [ "$_apt_updated" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        _apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # The packages' own services must not hold the ports the fixtures use.
    if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
        systemctl disable --now docker-registry redis-server 2>/dev/null || true
    else
        service docker-registry stop 2>/dev/null || true
        service redis-server stop 2>/dev/null || true
    fi
}

#!/bin/sh
# Build a minimal Debian rootfs with debootstrap and import it as a Docker
# image: the stand-in for debian:<release> where no image registry is reachable.
# The mirror (and its apt settings) are the ones this host is configured with.
#   debian-rootfs.sh IMAGE_TAG [RELEASE]
set -eu
tag=$1
release=${2:-bookworm}
here=$(cd "$(dirname "$0")" && pwd)
docker=${DOCKER:-docker}

# What this script runs on the host beyond the base system: debootstrap, gpgv
# and Debian's archive keys for checking what it fetches.
sh "$here/../apt-ensure.sh" debootstrap gpgv debian-archive-keyring

mirror=$(python3 "$here/apt_sources.py" "$release" mirror)
root=$(mktemp -d "${TMPDIR:-/tmp}/usbills-rootfs.XXXXXX")
trap 'rm -rf "$root"' EXIT

echo "debootstrap $release from $mirror"
debootstrap --variant=minbase "$release" "$root" "$mirror" >"$root.log" 2>&1 || {
    tail -n 30 "$root.log" >&2
    rm -f "$root.log"
    exit 1
}
rm -f "$root.log"

python3 "$here/apt_sources.py" "$release" sources >"$root/etc/apt/sources.list.d/debian.sources"
rm -f "$root/etc/apt/sources.list"
# A snapshot mirror serves Release files past their Valid-Until date; follow
# the host if it has been told to accept that.
apt-config dump | grep -E '^Acquire::Check-(Valid-Until|Date) "false";' \
    >"$root/etc/apt/apt.conf.d/99host-mirror" || rm -f "$root/etc/apt/apt.conf.d/99host-mirror"
# Like the official images: no caches or package lists left in layers.
cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'CONF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
CONF
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/log/*.log "$root"/var/cache/debconf/*-old
: >"$root/etc/hostname"
: >"$root/etc/resolv.conf"

tar --numeric-owner -C "$root" -c . | "$docker" import \
    ${LABEL_ARG:+--change "LABEL $LABEL_ARG"} \
    --change 'CMD ["bash"]' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    - "$tag" >/dev/null
echo "imported $tag"

#!/bin/sh
# Build the local stand-ins for the official base images, each only when it
# is missing or its definition here changed (a hash label on the image):
#
#   usbills-standin/debian:bookworm       debootstrap rootfs, docker import
#   usbills-standin/python:3.11-slim      for python:3.11-slim
#   usbills-standin/postgres:15-bookworm  for postgres:15-bookworm
#   usbills-standin/nginx:stable-bookworm for nginx:stable-bookworm
#   usbills-standin/redis:7-bookworm      for redis:7-bookworm
#
# For machines that reach Debian's mirror and PyPI but no image registry.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
docker=${DOCKER:-docker}
export DOCKER_BUILDKIT=0
LABEL=org.usbills.standin

digest() {
    (cd "$here" && find "$@" -type f | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-16)
}

current() {
    "$docker" image inspect --format "{{ index .Config.Labels \"$LABEL\" }}" "$1" 2>/dev/null || true
}

debian=usbills-standin/debian:bookworm
debian_hash=$(digest debian-rootfs.sh apt_sources.py)
if [ "$(current "$debian")" != "$debian_hash" ]; then
    echo "stand-in: building $debian"
    LABEL_ARG="$LABEL=$debian_hash" "$here/debian-rootfs.sh" "$debian" bookworm
else
    echo "stand-in: $debian is up to date"
fi

# The four are built side by side: each mostly waits on Debian's mirror.
pids=""
for spec in python:3.11-slim postgres:15-bookworm nginx:stable-bookworm redis:7-bookworm; do
    name=${spec%%:*}
    tag=usbills-standin/$spec
    hash=$(printf '%s %s' "$debian_hash" "$(digest "$name")" | sha256sum | cut -c1-16)
    if [ "$(current "$tag")" = "$hash" ]; then
        echo "stand-in: $tag is up to date"
        continue
    fi
    echo "stand-in: building $tag"
    "$docker" build --quiet --label "$LABEL=$hash" --build-arg "DEBIAN_IMAGE=$debian" \
        --tag "$tag" "$here/$name" >/dev/null &
    pids="$pids $!"
done
failed=0
for pid in $pids; do
    wait "$pid" || failed=1
done
[ "$failed" = 0 ] || { echo "stand-in: a build failed (its output is above)" >&2; exit 1; }

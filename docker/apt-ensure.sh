#!/bin/sh
# Install the Debian packages named on the command line that are not
# installed yet; do nothing when all are. As root, or through `sudo -n` (never
# a password prompt: CI has no one to type it). Recommended packages are left
# out, so only what is named and its dependencies arrive.
#
#   sh docker/apt-ensure.sh debootstrap gpgv
set -eu

missing=""
for pkg in "$@"; do
    status=$(dpkg-query -W -f '${db:Status-Status}' "$pkg" 2>/dev/null || true)
    [ "$status" = installed ] || missing="$missing $pkg"
done
[ -n "$missing" ] || exit 0

if [ "$(id -u)" = 0 ]; then
    sudo=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo="sudo -n"
else
    echo "apt-ensure: cannot install$missing: needs root or password-less sudo" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "apt-ensure: cannot install$missing: no apt-get on this machine" >&2
    exit 1
fi

echo "apt-ensure: installing$missing from Debian's packages"
log=$(mktemp "${TMPDIR:-/tmp}/apt-ensure.XXXXXX")
# A fresh machine has no package lists yet, and old ones may name files the
# mirror no longer has: always update first.
# shellcheck disable=SC2086 # $sudo and $missing are word lists
if ! { $sudo apt-get update -qq &&
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends $missing; } >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    rm -f "$log"
    echo "apt-ensure: installing$missing failed" >&2
    exit 1
fi
rm -f "$log"

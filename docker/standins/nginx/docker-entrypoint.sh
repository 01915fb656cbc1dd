#!/bin/sh
# Entrypoint of the nginx stand-in: before nginx starts, source every
# /docker-entrypoint.d/*.envsh and run every executable *.sh, in name order;
# any other command runs as given.
set -e

say() {
    [ -n "${NGINX_ENTRYPOINT_QUIET_LOGS:-}" ] || echo "$@"
}

if [ "$1" = nginx ] || [ "$1" = nginx-debug ]; then
    if find /docker-entrypoint.d -mindepth 1 -maxdepth 1 -print -quit 2>/dev/null | grep -q .; then
        say "$0: looking for shell scripts in /docker-entrypoint.d/"
        for f in $(find /docker-entrypoint.d -follow -type f -print | sort -V); do
            case "$f" in
                *.envsh)
                    if [ -x "$f" ]; then say "$0: sourcing $f"; . "$f"; else say "$0: ignoring $f, not executable"; fi ;;
                *.sh)
                    if [ -x "$f" ]; then say "$0: launching $f"; "$f"; else say "$0: ignoring $f, not executable"; fi ;;
                *) say "$0: ignoring $f" ;;
            esac
        done
        say "$0: configuration complete; ready for start up"
    else
        say "$0: no files in /docker-entrypoint.d/, skipping configuration"
    fi
fi

exec "$@"

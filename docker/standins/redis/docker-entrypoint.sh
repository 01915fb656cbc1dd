#!/bin/sh
# Entrypoint of the redis stand-in: options alone (or a config file) run
# redis-server; redis-server runs as the redis user in /data, without
# protected mode unless asked for, as in the official image.
set -e

case "$1" in
    -* | *.conf) set -- redis-server "$@" ;;
esac

if [ "$1" = redis-server ]; then
    if [ "$(id -u)" = 0 ]; then
        find . \! -user redis -exec chown redis '{}' +
        exec setpriv --reuid=redis --regid=redis --init-groups "$0" "$@"
    fi
    case " $* " in
        *" --protected-mode "*) ;;
        *) set -- "$@" --protected-mode no ;;
    esac
    umask 0077
fi

exec "$@"

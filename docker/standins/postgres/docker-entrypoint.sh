#!/bin/bash
# Entrypoint of the postgres stand-in: initialise PGDATA on first start the
# way the official image does (superuser, password, database, init scripts),
# then run the server in the foreground as the postgres user.
set -Eeuo pipefail

# VAR or VAR_FILE (a Docker secret), not both.
file_env() {
    local var=$1 file_var="${1}_FILE" default=${2:-}
    if [ -n "${!var:-}" ] && [ -n "${!file_var:-}" ]; then
        echo >&2 "error: both $var and $file_var are set"
        exit 1
    fi
    local value=$default
    if [ -n "${!var:-}" ]; then
        value=${!var}
    elif [ -n "${!file_var:-}" ]; then
        value=$(<"${!file_var}")
    fi
    export "$var"="$value"
    unset "$file_var"
}

run_sql() {
    psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname "${1:-$POSTGRES_DB}"
}

init_database() {
    file_env POSTGRES_PASSWORD
    file_env POSTGRES_USER postgres
    file_env POSTGRES_DB "$POSTGRES_USER"
    file_env POSTGRES_INITDB_ARGS
    local auth=${POSTGRES_HOST_AUTH_METHOD:-}
    if [ -z "$POSTGRES_PASSWORD" ] && [ "$auth" != trust ]; then
        echo >&2 "error: database is uninitialized and POSTGRES_PASSWORD is not set"
        echo >&2 "       (set it, or POSTGRES_HOST_AUTH_METHOD=trust to allow all connections)"
        exit 1
    fi
    [ -n "$auth" ] || auth=scram-sha-256

    local pwfile
    pwfile=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
    # shellcheck disable=SC2086
    initdb --username="$POSTGRES_USER" --pwfile="$pwfile" --auth-local=trust \
        ${POSTGRES_INITDB_WALDIR:+--waldir "$POSTGRES_INITDB_WALDIR"} \
        $POSTGRES_INITDB_ARGS
    rm -f "$pwfile"
    printf '\nhost all all all %s\n' "$auth" >>"$PGDATA/pg_hba.conf"

    # A server reachable only through the socket while the init scripts run,
    # so nothing outside sees a half-made database as ready.
    pg_ctl -D "$PGDATA" -w -o "-c listen_addresses='' -p 5432" start
    if [ "$POSTGRES_DB" != postgres ]; then
        echo "CREATE DATABASE \"$POSTGRES_DB\";" | run_sql postgres
    fi
    local f
    for f in /docker-entrypoint-initdb.d/*; do
        case "$f" in
            *.sh)
                if [ -x "$f" ]; then echo "running $f"; "$f"; else echo "sourcing $f"; . "$f"; fi ;;
            *.sql) echo "running $f"; run_sql <"$f" ;;
            *.sql.gz) echo "running $f"; gunzip -c "$f" | run_sql ;;
            *.sql.xz) echo "running $f"; xzcat "$f" | run_sql ;;
            *) [ -e "$f" ] && echo "ignoring $f" ;;
        esac
    done
    pg_ctl -D "$PGDATA" -m fast -w stop
    echo "PostgreSQL init process complete; ready for start up."
}

if [ "${1:0:1}" = '-' ]; then
    set -- postgres "$@"
fi

if [ "$1" = postgres ]; then
    if [ "$(id -u)" = 0 ]; then
        mkdir -p "$PGDATA"
        chown postgres:postgres "$PGDATA"
        chmod 700 "$PGDATA"
        exec setpriv --reuid=postgres --regid=postgres --init-groups "$BASH_SOURCE" "$@"
    fi
    if [ ! -s "$PGDATA/PG_VERSION" ]; then
        init_database
    else
        echo "PostgreSQL database directory appears to contain a database; skipping initialization"
    fi
fi

exec "$@"

#!/bin/sh
# Entrypoint of the web image: before gunicorn starts, hand the static files
# to nginx and bring the database schema up to date. Any other command (a
# shell, manage.py createsuperuser ...) runs as given.
set -eu

# An empty value would stop gunicorn from starting; unset means "one per core".
[ -n "${WEB_CONCURRENCY:-}" ] || unset WEB_CONCURRENCY

if [ "${1:-}" = gunicorn ]; then
    if [ -n "${STATIC_EXPORT_DIR:-}" ]; then
        # Files from earlier releases stay: pages cached in browsers may still
        # name them. Hashed names never clash.
        cp -R /app/staticfiles/. "$STATIC_EXPORT_DIR"/
    fi
    if [ "${DJANGO_MIGRATE:-1}" != 0 ]; then
        # The database may still be starting (or restarting); retry a while.
        tries=0
        until python manage.py migrate --noinput; do
            tries=$((tries + 1))
            if [ "$tries" -ge 10 ]; then
                echo "entrypoint: migrate failed $tries times, giving up" >&2
                exit 1
            fi
            sleep 3
        done
        # The cache table, used only when REDIS_URL is unset.
        [ -n "${REDIS_URL:-}" ] || python manage.py createcachetable
    fi
fi

# Swarm (and Kubernetes) take a stopping task out of the service's DNS when
# they send SIGTERM, but a proxy may still send it new connections until its
# cached lookup runs out (nginx's resolver `valid=`). gunicorn's graceful stop
# would leave those queued unanswered, then reset them: a failed upload. So
# with WEB_STOP_DELAY set, SIGTERM first waits that many seconds, still
# serving, then passes the signal on; gunicorn then finishes what it holds.
if [ "${1:-}" = gunicorn ] && [ "${WEB_STOP_DELAY:-0}" != 0 ]; then
    "$@" &
    child=$!
    stopping() {
        echo "entrypoint: stopping in ${WEB_STOP_DELAY} s (serving until then)"
        sleep "$WEB_STOP_DELAY"
        kill -TERM "$child" 2>/dev/null || true
    }
    trap stopping TERM
    trap 'kill -INT "$child" 2>/dev/null || true' INT
    # `wait` returns early when a trapped signal arrives: wait again until
    # gunicorn itself has exited, and exit with its status.
    status=0
    while kill -0 "$child" 2>/dev/null; do
        wait "$child" && status=0 || status=$?
    done
    exit "$status"
fi

exec "$@"

#!/bin/sh
# Docker Engine for the deployment's tests, from Debian's packages.
#
#   sh docker/engine.sh start STATE_DIR   docker.io, docker-compose when missing;
#                                         dockerd started when none answers
#   sh docker/engine.sh stop STATE_DIR    stop the dockerd that `start` started
#
# `start` can run any number of times: a daemon that answers is used as it
# is. It writes STATE_DIR/engine.env (DOCKER and COMPOSE, the commands to use)
# and, only when it started dockerd itself, STATE_DIR/dockerd.pid, so that
# `stop` ends that daemon by its PID and never one that was running before.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
say() { echo "engine: $*"; }

# Prefer Debian's client next to Debian's daemon; any other works too.
pick_docker() {
    if [ -x /usr/bin/docker ]; then DOCKER=/usr/bin/docker; else DOCKER=$(command -v docker || true); fi
}

answers() { [ -n "$DOCKER" ] && "$DOCKER" info >/dev/null 2>&1; }

# True while the process runs (a zombie no longer does).
running() {
    kill -0 "$1" 2>/dev/null || return 1
    pstate=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null || echo gone)
    [ "$pstate" != Z ] && [ "$pstate" != gone ]
}

start() {
    state=$1
    mkdir -p "$state"
    pick_docker
    if ! answers; then
        if ! command -v dockerd >/dev/null 2>&1 && [ ! -x /usr/sbin/dockerd ]; then
            sh "$here/apt-ensure.sh" docker.io
            pick_docker
        fi
        # `ip` finds the uplink below.
        sh "$here/apt-ensure.sh" iproute2
        # Containers get the MTU of the host's uplink: larger packets would be lost.
        dev=$(ip -o route show default 2>/dev/null |
            awk '{ for (i = 1; i < NF; i++) if ($i == "dev") { print $(i + 1); exit } }')
        mtu=$(cat "/sys/class/net/${dev:-eth0}/mtu" 2>/dev/null || echo 1500)
        # dockerd turns IP forwarding on for its containers; `stop` puts it back.
        cat /proc/sys/net/ipv4/ip_forward >"$state/ip_forward" 2>/dev/null || true
        say "starting dockerd (mtu $mtu), log in $state/dockerd.log"
        dockerd --mtu "$mtu" >"$state/dockerd.log" 2>&1 &
        pid=$!
        echo "$pid" >"$state/dockerd.pid"
        tries=0
        until answers; do
            tries=$((tries + 1))
            if [ "$tries" -gt 60 ] || ! running "$pid"; then
                say "dockerd did not start:" >&2
                tail -n 20 "$state/dockerd.log" >&2
                stop "$state"
                exit 1
            fi
            sleep 0.5
        done
        say "dockerd answers (pid $pid)"
    fi

    if "$DOCKER" compose version >/dev/null 2>&1; then
        compose="$DOCKER compose"
    else
        if ! command -v docker-compose >/dev/null 2>&1; then
            sh "$here/apt-ensure.sh" docker-compose
        fi
        compose=docker-compose
    fi
    printf 'DOCKER="%s"\nCOMPOSE="%s"\n' "$DOCKER" "$compose" >"$state/engine.env"
}

stop() {
    state=$1
    [ -f "$state/dockerd.pid" ] || return 0
    pid=$(cat "$state/dockerd.pid")
    say "stopping dockerd (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    # dockerd stops its containers first: give it time, then insist.
    tries=0
    while running "$pid"; do
        tries=$((tries + 1))
        if [ "$tries" -eq 60 ]; then
            say "dockerd still running after 30 s: killing it" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
        [ "$tries" -lt 80 ] || break
        sleep 0.5
    done
    rm -f "$state/dockerd.pid"
    if [ "$(cat "$state/ip_forward" 2>/dev/null)" = 0 ]; then
        echo 0 >/proc/sys/net/ipv4/ip_forward 2>/dev/null || true
    fi
}

case "${1:-}" in
start | stop) "$1" "${2:?usage: engine.sh start|stop STATE_DIR}" ;;
*)
    echo "usage: engine.sh start|stop STATE_DIR" >&2
    exit 2
    ;;
esac

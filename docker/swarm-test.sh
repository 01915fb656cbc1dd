#!/bin/bash
# make swarm-test: the Swarm stack (docker/stack.yml) on a one-node swarm of
# this machine, under load while it changes.
#
#  1. Docker Engine and the images, as `make docker-test` makes them (its
#     --build step: the cached layers make this quick when docker-test has
#     just run), plus two cheap ones: nginx with the static files in it, and
#     a web image that differs from the running one by a label only, to
#     roll out.
#  2. `docker swarm init` on loopback (refused when this dockerd is already in
#     a swarm: that one is not ours to touch), node labels for placement,
#     the secrets, and `docker stack deploy` with 3 web replicas and the
#     photos in the SeaweedFS service's bucket.
#  3. 8 clients upload through nginx's published port on loopback for a
#     minute, or until 5 s after the last change if that is later
#     (classifier/tests/deploy/swarm_load.py; no retries, every
#     failure counted). Before it, a copy of a shipped model is registered
#     under a new version name from one replica, which publishes it to the
#     bucket only. Meanwhile: one web container is killed (`docker kill`),
#     that version is activated from another replica, and the web service is
#     rolled to the new image (`docker service update --force`).
#  4. Checks: no failed upload; upload rows = photos in the bucket = client
#     successes; every upload started after the activation answered by the
#     new version, on every replica running at the end.
#  5. The figures: uploads, failures, uploads/s, p50/p95 latency, the time
#     of each step.
# Whatever happens, the stack, its volumes, secrets and networks go, the swarm
# is left, and dockerd is stopped if this run started it.
#
#   docker/swarm-test.sh          the test (make swarm-test)
#   docker/swarm-test.sh --bench  uploads/s with 1, 2 and 3 web replicas, the
#                                 memory of a worker, and what 1,000 uploads
#                                 add to Postgres and the bucket (make swarm-bench)
#
# Environment: PYTHON (default .venv/bin/python), SWARM_TEST_SECONDS (load
# time, default 60), SWARM_TEST_CLIENTS (default 8), SWARM_BENCH_SECONDS
# (per replica count, default 30), DOCKER_TEST_STATE as for docker-test.sh.
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
export DOCKER_BUILDKIT=0
MODE=test
case "${1:-}" in
"") ;;
--bench) MODE=bench ;;
*)
    echo "usage: docker/swarm-test.sh [--bench]" >&2
    exit 2
    ;;
esac
STACK=usbills-swarmtest
SECONDS_LOAD=${SWARM_TEST_SECONDS:-60}
CLIENTS=${SWARM_TEST_CLIENTS:-8}
BENCH_SECONDS=${SWARM_BENCH_SECONDS:-30}
WEB_IMAGE=usbills-web:dockertest
NEXT_IMAGE=usbills-web:swarmtest-next
NGINX_STATIC_IMAGE=usbills-nginx-static:swarmtest
work=$(mktemp -d "${TMPDIR:-/tmp}/usbills-swarm-test.XXXXXX")
engine_state=${DOCKER_TEST_STATE:-$work/engine}
DOCKER=""
swarm_ours=""
gwbridge_before=""
deployed=""
secrets_made=""
guard_ports=""
status=1
TIMES=""

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
say() { echo "swarm-test: $*"; }
# One line per step for the summary at the end.
step_done() {
    say "$1: $2 s"
    TIMES="${TIMES}    $1: $2 s"$'\n'
}
free_port() {
    "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
secret_value() { "$PYTHON" -c "import secrets; print(secrets.$1)"; }

# The containers of one of the stack's services, running ones or all.
containers() {
    "$DOCKER" ps ${2:+-a} -q --no-trunc --filter "label=com.docker.swarm.service.name=${STACK}_$1"
}
one_container() { containers "$1" | head -n 1; }

teardown() {
    set +e
    if [ -n "$deployed" ]; then
        if [ "$status" != 0 ]; then
            say "state of the failed run:"
            "$DOCKER" service ls 2>&1 | sed 's/^/    /'
            "$DOCKER" service ps --no-trunc "${STACK}_web" 2>&1 | head -20 | sed 's/^/    /'
            "$DOCKER" service logs --tail 30 "${STACK}_web" 2>&1 | sed 's/^/    /'
        fi
        say "removing the stack, its volumes and networks"
        "$DOCKER" stack rm "$STACK" >/dev/null
        # Volumes can go only once their containers have.
        local tries=0
        while [ -n "$("$DOCKER" ps -aq --filter "label=com.docker.stack.namespace=$STACK")" ] ||
            [ -n "$("$DOCKER" network ls -q --filter "label=com.docker.stack.namespace=$STACK")" ]; do
            tries=$((tries + 1))
            [ "$tries" -lt 120 ] || break
            sleep 0.5
        done
        "$DOCKER" volume ls -q --filter "label=com.docker.stack.namespace=$STACK" |
            xargs -r "$DOCKER" volume rm >/dev/null
    fi
    for name in $secrets_made; do "$DOCKER" secret rm "$name" >/dev/null; done
    if [ -n "$swarm_ours" ]; then
        say "leaving the swarm"
        "$DOCKER" swarm leave --force >/dev/null
        # `swarm init` made this bridge for the containers' outside traffic.
        if [ -z "$gwbridge_before" ]; then "$DOCKER" network rm docker_gwbridge >/dev/null 2>&1; fi
    fi
    for port in $guard_ports; do
        iptables -D DOCKER-USER -p tcp -m conntrack --ctorigdstport "$port" -j DROP 2>/dev/null
    done
    if [ -n "$DOCKER" ]; then "$DOCKER" image rm "$NEXT_IMAGE" >/dev/null 2>&1; fi
    # Stops dockerd only if it was started for this run (or by the --build run
    # that DOCKER_TEST_STATE's folder remembers), as docker-test.sh does.
    sh docker/engine.sh stop "$engine_state"
    rm -rf "$work"
    if [ "$status" = 0 ]; then say "PASSED"; else say "FAILED"; fi
}
trap 'status=$?; teardown' EXIT
trap 'exit 130' INT TERM

# 1. Engine and images -----------------------------------------------------------

build_images() {
    local t0
    t0=$(now)
    # docker-test's own build step: the engine (started when none answers),
    # the stand-in base images and the project's images, from cache when
    # nothing changed. It leaves dockerd running; teardown stops it if it
    # was started for this run (the state folder says).
    DOCKER_TEST_STATE=$engine_state DOCKER_TEST_TRAIN=0 PYTHON=$PYTHON \
        bash docker/docker-test.sh --build 2>&1 | sed 's/^/    /'
    # shellcheck source=/dev/null
    . "$engine_state/engine.env"
    "$DOCKER" build --quiet -f nginx/static.Dockerfile --build-arg "WEB_IMAGE=$WEB_IMAGE" \
        --build-arg NGINX_IMAGE=usbills-nginx:dockertest -t "$NGINX_STATIC_IMAGE" nginx >/dev/null
    # The image to roll out: the same code under another image id.
    printf 'FROM %s\nLABEL org.usbills.rollout="%s"\n' "$WEB_IMAGE" "$(date +%s.%N)" |
        "$DOCKER" build --quiet -t "$NEXT_IMAGE" - >/dev/null
    step_done "images (docker-test's build, cached, and the two swarm images)" "$(since "$t0")"
}

# 2. Swarm and stack --------------------------------------------------------------

init_swarm() {
    local t0 node state
    t0=$(now)
    state=$("$DOCKER" info --format '{{ .Swarm.LocalNodeState }}')
    if [ "$state" != inactive ]; then
        say "this dockerd is already part of a swarm ($state): not touching it" >&2
        exit 1
    fi
    if "$DOCKER" network inspect docker_gwbridge >/dev/null 2>&1; then gwbridge_before=1; fi
    swarm_ours=1
    "$DOCKER" swarm init --advertise-addr 127.0.0.1 >/dev/null
    node=$("$DOCKER" node ls -q)
    # The one node holds the database, the bucket and the edge.
    "$DOCKER" node update --label-add usbills.db=true --label-add usbills.objects=true \
        --label-add usbills.edge=true "$node" >/dev/null
    step_done "swarm init, node labels" "$(since "$t0")"
}

# Host-mode ports listen on every address of the machine (a swarm port has no
# address to bind): this test answers only this machine. Connections from
# elsewhere are forwarded through DOCKER-USER, where they are dropped; those
# from loopback never pass there.
guard_published_ports() {
    local port
    if ! command -v iptables >/dev/null || ! iptables -S DOCKER-USER >/dev/null 2>&1; then
        say "no iptables DOCKER-USER chain: the test's ports are open to the network while it runs"
        return 0
    fi
    for port in "$HTTP_PORT" "$HTTPS_PORT"; do
        iptables -I DOCKER-USER -p tcp -m conntrack --ctorigdstport "$port" -j DROP
        guard_ports="$guard_ports $port"
    done
}

make_secrets() {
    local name
    # The values exist only in the swarm's encrypted store and the
    # containers' /run/secrets: never in a file or the environment here.
    for name in django_secret_key postgres_password s3_secret_key; do
        case "$name" in
        django_secret_key) secret_value 'token_urlsafe(50)' ;;
        postgres_password) secret_value 'token_hex(16)' ;;
        s3_secret_key) secret_value 'token_urlsafe(30)' ;;
        esac | "$DOCKER" secret create "${STACK}_$name" - >/dev/null
        secrets_made="$secrets_made ${STACK}_$name"
    done
}

# Ready: the wanted number of web tasks running (healthy: Swarm reports a
# task with a health check running only then), the site answering through
# nginx, and a replica able to write to the bucket.
answers() {
    "$PYTHON" -c 'import ssl, sys, urllib.request
urllib.request.urlopen(sys.argv[1], context=ssl._create_unverified_context(), timeout=3)' \
        "https://localhost:$HTTPS_PORT/healthz" 2>/dev/null
}

web_running() {
    "$DOCKER" service ps --filter desired-state=running --format '{{ .CurrentState }}' \
        "${STACK}_web" | grep -c '^Running' || true
}

in_web() { "$DOCKER" exec "$(one_container web)" python manage.py shell -v 0 -c "$1"; }

wait_ready() {
    local want=$1 what=$2 t0 tries=0
    t0=$(now)
    until [ "$(web_running)" = "$want" ] && [ "$(containers web | wc -l)" = "$want" ] &&
        answers && in_web "from django.core.files.base import ContentFile
from django.core.files.storage import default_storage as s
s.delete(s.save('ready/check', ContentFile(b'ready')))" >/dev/null 2>&1; do
        tries=$((tries + 1))
        if [ "$tries" -gt 180 ]; then
            say "$what: not ready within 180 s" >&2
            exit 1
        fi
        sleep 1
    done
    step_done "$what" "$(since "$t0")"
}

deploy() {
    local t0
    HTTP_PORT=$(free_port)
    HTTPS_PORT=$(free_port)
    guard_published_ports
    make_secrets
    export WEB_IMAGE NGINX_IMAGE=$NGINX_STATIC_IMAGE HTTP_PORT HTTPS_PORT \
        SEAWEEDFS_IMAGE=usbills-seaweedfs:dockertest \
        POSTGRES_IMAGE=usbills-standin/postgres:15-bookworm \
        REDIS_IMAGE=usbills-standin/redis:7-bookworm \
        SECRETS_PREFIX=$STACK \
        DJANGO_ALLOWED_HOSTS=localhost,127.0.0.1 \
        DJANGO_CSRF_TRUSTED_ORIGINS=https://localhost:$HTTPS_PORT \
        NGINX_SERVER_NAME=localhost \
        S3_ACCESS_KEY=usbills-$("$PYTHON" -c 'import secrets; print(secrets.token_hex(6))') \
        CLASSIFIER_UPLOAD_RATE=off \
        WEB_REPLICAS=${WEB_REPLICAS:-3}
    export WEB_CONCURRENCY=${WEB_CONCURRENCY:-}
    t0=$(now)
    deployed=1
    # Images are local: no registry to ask for their digests.
    if ! "$DOCKER" stack deploy --resolve-image never -c docker/stack.yml "$STACK" \
        >"$work/deploy.log" 2>&1; then
        sed 's/^/    /' "$work/deploy.log" >&2
        exit 1
    fi
    { grep -v '^Creating' "$work/deploy.log" || true; } | sed 's/^/    /'
    step_done "stack deploy (the command)" "$(since "$t0")"
    wait_ready "$WEB_REPLICAS" "stack up: $WEB_REPLICAS web replicas healthy, site answering through nginx, bucket writable"
    "$DOCKER" exec "$(one_container nginx)" cat /etc/nginx/certs/fullchain.pem >"$work/fullchain.pem"
}

# 3. Load and changes ---------------------------------------------------------------

load() {
    local seconds=$1 out=$2
    shift 2
    "$PYTHON" -m classifier.tests.deploy.swarm_load run \
        --https "https://localhost:$HTTPS_PORT" --cafile "$work/fullchain.pem" \
        --clients "$CLIENTS" --seconds "$seconds" --out "$out" "$@"
}

# The version to switch to: a copy of a shipped model under a new name,
# registered from one replica and so published to the object store only: no
# replica has it on disk, each fetches it (and checks its SHA-256) when it
# must serve it.
publish_copy() {
    local t0 source web
    t0=$(now)
    NEW_VERSION=effl0-swarm-copy
    source=models/effl0-20261124
    [ -f "$source.tflite" ] || source=models/$(cat models/CURRENT)
    mkdir -p "$work/copy"
    cp "$source.tflite" "$work/copy/$NEW_VERSION.tflite"
    "$PYTHON" -c 'import json, sys
card = json.load(open(sys.argv[1]))
card["version"] = sys.argv[3]
json.dump(card, open(sys.argv[2], "w"), indent=2)' "$source.json" "$work/copy/$NEW_VERSION.json" "$NEW_VERSION"
    chmod -R a+rX "$work/copy"
    web=$(one_container web)
    "$DOCKER" cp "$work/copy" "$web:/tmp/swarm-copy"
    "$DOCKER" exec "$web" python manage.py register_model "/tmp/swarm-copy/$NEW_VERSION.tflite" |
        sed 's/^/    /'
    "$DOCKER" exec -u 0 "$web" rm -rf /tmp/swarm-copy
    step_done "register_model: a copy of $(basename "$source") published as $NEW_VERSION" "$(since "$t0")"
}

at() { # wait until $1 seconds after the load started
    local wait
    wait=$(awk -v s="$load_start" -v d="$1" -v n="$(now)" 'BEGIN { w = s + d - n; print (w > 0 ? w : 0) }')
    sleep "$wait"
}
rel() { awk -v s="$load_start" -v n="$(now)" 'BEGIN { printf "+%.1f s", n - s }'; }

kill_replica() {
    local victim t0
    victim=$(one_container web)
    t0=$(now)
    say "$(rel): docker kill ${victim:0:12} (one web replica)"
    "$DOCKER" kill "$victim" >/dev/null
    until [ "$(web_running)" = 3 ] && [ "$(containers web | wc -l)" = 3 ]; do
        [ "$(since "$t0" | cut -d. -f1)" -lt 120 ] || { say "no replacement within 120 s" >&2; exit 1; }
        sleep 0.5
    done
    step_done "docker kill: a replacement replica healthy after" "$(since "$t0")"
}

activate() {
    local t0
    t0=$(now)
    # From the last replica listed: not the one that registered the copy.
    say "$(rel): activate_model $NEW_VERSION in a replica"
    "$DOCKER" exec "$(containers web | tail -n 1)" python manage.py activate_model "$NEW_VERSION" |
        sed 's/^/    /'
    SWITCHED_AT=$(now)
    step_done "activate_model (docker exec)" "$(since "$t0")"
}

roll_out() {
    local t0 state
    t0=$(now)
    say "$(rel): docker service update --force --image $NEXT_IMAGE"
    "$DOCKER" service update --detach --force --no-resolve-image --image "$NEXT_IMAGE" \
        "${STACK}_web" >/dev/null
    while :; do
        state=$("$DOCKER" service inspect --format '{{ if .UpdateStatus }}{{ .UpdateStatus.State }}{{ end }}' "${STACK}_web")
        case "$state" in
        completed) break ;;
        rollback_* | paused)
            say "the rolling update ended in '$state'" >&2
            exit 1
            ;;
        esac
        [ "$(since "$t0" | cut -d. -f1)" -lt 300 ] || { say "the update took over 300 s" >&2; exit 1; }
        sleep 0.5
    done
    say "$(rel): rolling update completed"
    step_done "rolling update to the new image (3 replicas, start-first)" "$(since "$t0")"
}

under_load() {
    local t0 load_pid load_status=0
    publish_copy
    t0=$(now)
    load_start=$(now)
    # The load lasts SECONDS_LOAD, or until 5 s after the last change when
    # that comes later (a slow machine): every replica of the new image must
    # have answered some uploads.
    load "$SECONDS_LOAD" "$work/records.json" --until-file "$work/changes-done" \
        >"$work/load.log" 2>&1 &
    load_pid=$!
    at 5
    kill_replica
    at 12
    activate
    at 15
    roll_out
    sleep 5
    touch "$work/changes-done"
    wait "$load_pid" || load_status=$?
    sed 's/^/    /' "$work/load.log"
    FIGURES=$(grep '^load: [0-9]' "$work/load.log" || true)
    step_done "load ($CLIENTS clients, ${SECONDS_LOAD} s asked)" "$(since "$t0")"
    LOAD_FAILED=$load_status
}

# 4. Checks -------------------------------------------------------------------------

check() {
    local db id name counts swept
    # A replica killed mid-upload may have written files and no row (nginx
    # sent the upload again, elsewhere): the sweep an operator runs removes
    # them. Nothing uploads now, so no file is too young to go.
    swept=$("$DOCKER" exec "$(one_container web)" python manage.py sweep_storage --older-than 0 | tail -n 1)
    say "sweep_storage: $swept (left by the killed replica)"
    # What nginx did about replicas that failed it: each line is a request
    # passed to another replica (or, if none was left, failed).
    "$DOCKER" logs "$(one_container nginx)" 2>&1 >/dev/null |
        grep -oE 'connect\(\) failed \([0-9]+: [^)]*\)|upstream prematurely closed connection|upstream timed out \([0-9]+: [^)]*\)|recv\(\) failed \([0-9]+: [^)]*\)' |
        sort | uniq -c | sed 's/^ */    nginx: /; s/$/ (then the next replica)/' || true
    db=$(one_container db)
    "$DOCKER" exec "$db" psql -U usbills -d usbills -AtF $'\t' \
        -c "SELECT id, model_version FROM classifier_prediction" >"$work/rows.tsv"
    UPLOAD_ROWS=$("$DOCKER" exec "$db" psql -U usbills -d usbills -Atc "SELECT count(*) FROM classifier_upload")
    counts=$(in_web "from django.core.files.storage import default_storage as s
print(*(len(s.listdir(d)[1]) for d in ('photos', 'display', 'thumbnails')))")
    # shellcheck disable=SC2086 # three numbers
    set -- $counts
    PHOTOS=$1
    say "bucket: $1 photos, $2 page-size copies, $3 thumbnails"
    SWEPT=$swept
    [ "$2" = "$1" ] && [ "$3" = "$1" ] || { say "the bucket's three kinds of object differ" >&2; exit 1; }
    # Every web container this run had, killed and replaced ones too: each
    # one's access log says which uploads it answered.
    mkdir -p "$work/logs"
    for id in $(containers web all); do
        name=$("$DOCKER" inspect --format '{{ index .Config.Labels "com.docker.swarm.task.name" }}' "$id")
        "$DOCKER" logs "$id" >"$work/logs/$name.${id:0:12}.log" 2>&1
    done
    for id in $(containers web); do
        name=$("$DOCKER" inspect --format '{{ index .Config.Labels "com.docker.swarm.task.name" }}' "$id")
        echo "$name.${id:0:12}"
    done >"$work/logs/running.txt"
    "$PYTHON" -m classifier.tests.deploy.swarm_load check --records "$work/records.json" \
        --rows "$work/rows.tsv" --uploads "$UPLOAD_ROWS" --photos "$PHOTOS" \
        --logs "$work/logs" --switched-at "$SWITCHED_AT" --version "$NEW_VERSION" | sed 's/^/    /'
    [ "${PIPESTATUS[0]}" = 0 ] && [ "$LOAD_FAILED" = 0 ]
}

# --bench -------------------------------------------------------------------------

# Figures from the load's summary line.
figure() { sed -n "s/.*$1.*/\\1/p" "$2" | head -n 1; }

# Resident memory of each gunicorn process in a web container: RSS, and PSS
# (shared pages divided among the processes sharing them).
worker_memory() {
    "$DOCKER" exec "$(one_container web)" python -c '
import os
procs = {}
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        if open(f"/proc/{pid}/comm").read().strip() != "gunicorn":
            continue
        status = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status"))
        rollup = dict(line.split(":", 1) for line in open(f"/proc/{pid}/smaps_rollup").readlines()[1:])
    except OSError:
        continue
    mb = lambda v: int(v.split()[0]) // 1024
    procs[pid] = (status["PPid"].strip(), mb(status["VmRSS"]), mb(rollup["Pss"]))
for pid, (ppid, rss, pss) in sorted(procs.items(), key=lambda p: int(p[0])):
    role = "worker" if ppid in procs else "master"
    print(f"gunicorn {role} (pid {pid}): RSS {rss} MB, PSS {pss} MB")'
}

sizes() { # database bytes of the uploads and predictions tables; bucket bytes of the photos
    "$DOCKER" exec "$(one_container db)" psql -U usbills -d usbills -Atc \
        "SELECT pg_total_relation_size('classifier_upload') + pg_total_relation_size('classifier_prediction'), pg_database_size('usbills')" |
        tr '|' ' '
    in_web "from django.core.files.storage import default_storage as s
print(sum(o.size for o in s.bucket.objects.all() if o.key.split('/')[0] in ('photos', 'display', 'thumbnails')))"
}

# CPU time a container has used, in nanoseconds, from its cgroup (v1 or v2,
# either cgroup driver); empty when none of them is there.
cpu_ns() {
    local id=$1 f
    for f in "/sys/fs/cgroup/cpuacct/docker/$id/cpuacct.usage" \
        "/sys/fs/cgroup/cpu,cpuacct/docker/$id/cpuacct.usage"; do
        if [ -r "$f" ]; then cat "$f"; return; fi
    done
    for f in "/sys/fs/cgroup/docker/$id/cpu.stat" "/sys/fs/cgroup/system.slice/docker-$id.scope/cpu.stat"; do
        if [ -r "$f" ]; then awk '/^usage_usec/ { print $2 * 1000 }' "$f"; return; fi
    done
}

# "container service nanoseconds" for each container of the stack.
cpu_snapshot() {
    local id service
    for id in $("$DOCKER" ps -q --no-trunc --filter "label=com.docker.stack.namespace=$STACK"); do
        service=$("$DOCKER" inspect --format '{{ index .Config.Labels "com.docker.swarm.service.name" }}' "$id")
        echo "$id ${service#"${STACK}"_} $(cpu_ns "$id")"
    done
}

# CPU milliseconds per upload for each service, between two snapshots.
cpu_per_upload() {
    awk -v uploads="$3" 'NR == FNR { before[$1] = $3; next }
        ($1 in before) && $3 != "" { used[$2] += $3 - before[$1] }
        END { for (s in used) printf "%s %.1f, ", s, used[s] / 1e6 / uploads }' "$1" "$2" |
        sed 's/, $//'
}

bench() {
    local n out rate base="" table="" t0 before after uploads cpu
    for n in 1 2 3; do
        if [ "$n" != 1 ]; then
            "$DOCKER" service scale --detach "${STACK}_web=$n" >/dev/null
            wait_ready "$n" "scaled to $n web replicas"
        fi
        t0=$(now)
        out=$work/bench-$n.log
        cpu_snapshot >"$work/cpu-before"
        load "$BENCH_SECONDS" "$work/bench-$n.json" >"$out" 2>&1 || { cat "$out"; exit 1; }
        cpu_snapshot >"$work/cpu-after"
        sed 's/^/    /' "$out"
        uploads=$(figure 'load: \([0-9]*\) uploads' "$out")
        cpu=$(cpu_per_upload "$work/cpu-before" "$work/cpu-after" "$uploads")
        say "CPU ms per upload, by service: ${cpu:-not measurable here (no cgroup found)}"
        rate=$(figure ' \([0-9.]*\) uploads\/s' "$out")
        base=${base:-$rate}
        table="$table$(printf '    %s replica(s): %6s uploads/s (x%s), p50 %s ms, p95 %s ms, load average %s; CPU ms per upload: %s' \
            "$n" "$rate" "$(awk -v a="$rate" -v b="$base" 'BEGIN { printf "%.2f", a / b }')" \
            "$(figure 'p50 \([0-9]*\) ms' "$out")" "$(figure 'p95 \([0-9]*\) ms' "$out")" \
            "$(cut -d' ' -f1 /proc/loadavg)" "${cpu:--}")"$'\n'
        step_done "bench with $n replica(s)" "$(since "$t0")"
    done
    say "memory of one replica's gunicorn processes after the bench:"
    worker_memory | sed 's/^/    /'
    # What 1,000 uploads add to the database and the bucket.
    before=$(sizes | tr '\n' ' ')
    load 600 "$work/growth.json" --max-uploads 1000 >"$work/growth.log" 2>&1 || { cat "$work/growth.log"; exit 1; }
    after=$(sizes | tr '\n' ' ')
    say "uploads/s by web replicas (WEB_CONCURRENCY=${WEB_CONCURRENCY:-one per core} each, $(nproc) cores shared by everything):"
    printf '%s' "$table"
    # shellcheck disable=SC2086 # six numbers
    set -- $before $after
    say "1,000 uploads: tables +$(( ($4 - $1) / 1024 )) KB, database +$(( ($5 - $2) / 1024 )) KB, bucket +$(( ($6 - $3) / 1024 / 1024 )) MB ($(( ($6 - $3) / 1000 / 1024 )) KB an upload)"
}

build_images
init_swarm
if [ "$MODE" = bench ]; then
    # One replica to start with, one worker each: replicas are processes.
    WEB_REPLICAS=1 WEB_CONCURRENCY=${WEB_CONCURRENCY:-1}
fi
deploy
if [ "$MODE" = bench ]; then
    bench
else
    under_load
    check
fi
say "steps:"
printf '%s' "$TIMES"
if [ -n "${FIGURES:-}" ]; then say "figures: ${FIGURES#load: }"; fi
status=0

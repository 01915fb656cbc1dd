#!/bin/bash
# make docker-test: build the images and run the Compose stack for real, then
# drive it through nginx with the same smoke flow as the integration test.
#
#  1. Docker Engine (docker/engine.sh): Debian's docker.io and docker-compose,
#     installed when missing; dockerd started when none answers, and stopped
#     again at the end, by its PID, only if this run started it.
#  2. Base images (docker/standins/build.sh): local stand-ins built from
#     Debian's packages (debootstrap, installed when missing), kept between runs.
#  3. Build the project's images on them (docker/compose.test.yml), with this
#     host's CA bundle and package index settings passed to pip.
#  4. docker compose up -d, wait until the site answers through nginx, run the
#     smoke flow and check the web container.
#  5. The train image: build it, export reviewed photos from the stack, and a
#     real short training run whose candidate web activates and rolls back.
#  6. Photos in object storage (docker/compose.s3.yml): a SeaweedFS service,
#     web switched to it, the smoke flow again with the photos in the bucket.
#  7. Print image sizes and start-up time.
# Whatever happens, tear down containers, networks and volumes, and remove
# everything this run wrote (its temporary folder, the CA bundle it copied).
#
#   docker/docker-test.sh           the whole test (make docker-test)
#   docker/docker-test.sh --build   steps 1 to 3 only, every image of the test
#                                   built, dockerd left running (.ci/run builds
#                                   while the unit tests run, then tests)
#
# Environment: PYTHON (for the smoke flow; default .venv/bin/python),
# DOCKER_TEST_TRAIN=0 to skip building and running the train image,
# DOCKER_TEST_S3=0 to skip the object-storage step, DOCKER_TEST_STATE: a
# folder that keeps docker/engine.sh's state from one run to the next (so that
# the run after --build stops the dockerd that --build started).
# Installing needs root or password-less sudo (see docker/apt-ensure.sh).
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
export DOCKER_BUILDKIT=0 COMPOSE_DOCKER_CLI_BUILD=0
PROJECT=usbills-dockertest
MODE=test
case "${1:-}" in
"") ;;
--build) MODE=build ;;
*)
    echo "usage: docker/docker-test.sh [--build]" >&2
    exit 2
    ;;
esac
TRAIN=${DOCKER_TEST_TRAIN:-1}
S3=${DOCKER_TEST_S3:-1}
# Everything this run writes, but for the CA bundle below, lives in $work.
work=$(mktemp -d "${TMPDIR:-/tmp}/usbills-docker-test.XXXXXX")
engine_state=${DOCKER_TEST_STATE:-$work}
# The Dockerfiles pick up a CA bundle at this git-ignored path. One that was
# there before the run is the owner's and stays; one this run copies is removed.
CA_BUNDLE=docker/ca-certificates.crt
ca_copied=""
compose_up=""
# The object-storage step's compose file, once it has used it.
S3_FILES=""
status=1

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
say() { echo "docker-test: $*"; }
# Build output without the classic builder's deprecation notice.
quiet_build() { grep -v -E 'DEPRECATED|BuildKit is currently|environment-variable|^\s*$' || true; }
free_port() {
    "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
mb() { "$DOCKER" image inspect --format '{{ .Size }}' "$1" | awk '{ printf "%.0f MB", $1 / 1e6 }'; }

teardown() {
    if [ -n "$compose_up" ]; then
        if [ "$status" != 0 ]; then
            say "logs of the failed run:"
            $COMPOSE logs --no-color --tail 60 2>&1 | sed 's/^/    /' || true
        fi
        say "tearing down (containers, networks, volumes)"
        $COMPOSE $S3_FILES --profile train down -v --remove-orphans >/dev/null 2>&1 || true
    fi
    if [ "$MODE" = build ] && [ "$status" = 0 ]; then
        say "images ready; dockerd left running for the test"
    else
        sh docker/engine.sh stop "$engine_state" || true
    fi
    if [ -n "$ca_copied" ]; then rm -f "$CA_BUNDLE"; fi
    rm -rf "$work"
    if [ "$status" = 0 ]; then say "PASSED"; else say "FAILED"; fi
}
trap 'status=$?; teardown' EXIT
trap 'exit 130' INT TERM

# 1. Docker Engine --------------------------------------------------------------

start_engine() {
    local t0
    t0=$(now)
    sh docker/engine.sh start "$engine_state"
    say "Docker Engine ready in $(since "$t0") s"
    # DOCKER and COMPOSE: the client commands to use.
    # shellcheck source=/dev/null
    . "$engine_state/engine.env"
    export DOCKER
    COMPOSE="$COMPOSE -p $PROJECT --env-file $work/test.env -f docker-compose.yml -f docker/compose.test.yml -f $work/compose.models.yml"
}

# 2. Stand-in base images -------------------------------------------------------

build_standins() {
    local t0
    t0=$(now)
    DOCKER="$DOCKER" sh docker/standins/build.sh
    say "stand-in images ready in $(since "$t0") s"
}

# 3. Build ----------------------------------------------------------------------

# The stack's settings: fresh secrets, loopback ports, this host's pip indexes.
write_env() {
    HTTP_PORT=$(free_port)
    HTTPS_PORT=$(free_port)
    cat >"$work/test.env" <<EOF
DJANGO_SECRET_KEY=$("$PYTHON" -c 'import secrets; print(secrets.token_urlsafe(50))')
POSTGRES_PASSWORD=$("$PYTHON" -c 'import secrets; print(secrets.token_hex(16))')
DJANGO_ALLOWED_HOSTS=localhost,127.0.0.1
DJANGO_CSRF_TRUSTED_ORIGINS=https://localhost:$HTTPS_PORT
NGINX_SERVER_NAME=localhost
PUBLISH_ADDRESS=127.0.0.1
HTTP_PORT=$HTTP_PORT
HTTPS_PORT=$HTTPS_PORT
WEB_CONCURRENCY=2
S3_ACCESS_KEY=usbills-$("$PYTHON" -c 'import secrets; print(secrets.token_hex(6))')
S3_SECRET_KEY=$("$PYTHON" -c 'import secrets; print(secrets.token_urlsafe(30))')
SEAWEEDFS_BUILD_IMAGE=usbills-standin/python:3.11-slim
SEAWEEDFS_BASE_IMAGE=usbills-standin/debian:bookworm
SEAWEEDFS_IMAGE=usbills-seaweedfs:dockertest
$("$PYTHON" docker/pip_settings.py)
EOF
}

# pip in the build trusts what this host trusts (e.g. a TLS-inspecting proxy).
copy_ca_bundle() {
    if [ ! -e "$CA_BUNDLE" ] && [ -s /etc/ssl/certs/ca-certificates.crt ]; then
        ca_copied=1
        cp /etc/ssl/certs/ca-certificates.crt "$CA_BUNDLE"
    fi
}

# The models directory web serves from and train writes candidates into, as
# in a deployment: a copy of the shipped model (or, before one is committed,
# the tests' tiny one), so that the test's training run writes nowhere real.
# Beside it a few training photos of each class and source, when the data set
# is beside the repository: enough for a real, short training run.
prepare_models() {
    cat >"$work/compose.models.yml" <<EOF
services:
  web:
    volumes:
      - $work/models:/app/models:ro
  train:
    volumes:
      - $work/models:/app/models
      - $work/traindata:/data:ro
EOF
    [ "$MODE" = test ] || return 0
    chmod 755 "$work"
    mkdir -p "$work/models" "$work/traindata"
    if [ -f models/CURRENT ]; then
        cp models/CURRENT models/*.tflite models/*.json "$work/models/"
    else
        say "models/CURRENT is missing: serving a tiny test model instead of the shipped one"
        cp classifier/tests/fixtures/tiny-model/CURRENT classifier/tests/fixtures/tiny-model/*.tflite \
            classifier/tests/fixtures/tiny-model/*.json "$work/models/"
    fi
    local dataset=../shared/datasets/usd-bills/train class_dir class
    if [ "$TRAIN" != 0 ] && [ -d "$dataset" ]; then
        for class_dir in "$dataset"/*/; do
            class=$(basename "$class_dir")
            mkdir -p "$work/traindata/$class"
            find "$class_dir" -maxdepth 1 -type f -name '*.jpg' -printf '%f\n' | sort |
                awk '{ source = $0; sub(/-[^-]*$/, "", source); if (seen[source]++ < 3) print }' |
                while read -r name; do cp "$class_dir$name" "$work/traindata/$class/"; done
        done
    fi
    chmod -R a+rwX "$work/models" "$work/traindata"
}

build_images() {
    local t0 image
    t0=$(now)
    $COMPOSE build --quiet web nginx 2>&1 | quiet_build
    say "images built in $(since "$t0") s"
    for image in usbills-web:dockertest usbills-nginx:dockertest; do
        "$DOCKER" image inspect "$image" >/dev/null
    done
}

build_train_image() {
    local t0
    t0=$(now)
    $COMPOSE --profile train build --quiet train 2>&1 | quiet_build
    "$DOCKER" image inspect usbills-train:dockertest >/dev/null
    say "train image built in $(since "$t0") s"
}

build_seaweedfs_image() {
    local t0
    t0=$(now)
    $COMPOSE -f docker/compose.s3.yml build --quiet seaweedfs 2>&1 | quiet_build
    "$DOCKER" image inspect usbills-seaweedfs:dockertest >/dev/null
    say "seaweedfs image built in $(since "$t0") s"
}

# 4. Run ------------------------------------------------------------------------

# Ready means: the site answers through nginx over HTTPS.
answers() {
    "$PYTHON" -c 'import ssl, sys, urllib.request
urllib.request.urlopen(sys.argv[1], context=ssl._create_unverified_context(), timeout=3)' \
        "https://localhost:$HTTPS_PORT/healthz" 2>/dev/null
}

start_stack() {
    local t_up tries=0
    t_up=$(now)
    compose_up=1
    $COMPOSE up -d 2>&1 | sed 's/^/    /'
    until answers; do
        tries=$((tries + 1))
        if [ "$tries" -gt 180 ]; then
            say "the site did not come up within 180 s" >&2
            $COMPOSE ps >&2
            exit 1
        fi
        sleep 1
    done
    STARTUP=$(since "$t_up")
    say "site up through nginx $STARTUP s after 'up -d' (fresh database, migrations, model load)"
    WEB=$($COMPOSE ps -q web)
}

check_stack() {
    local nginx redis counters uid health
    nginx=$($COMPOSE ps -q nginx)
    "$DOCKER" exec "$nginx" cat /etc/nginx/certs/fullchain.pem >"$work/fullchain.pem"

    "$PYTHON" -m classifier.tests.deploy.smoke \
        --https "https://localhost:$HTTPS_PORT" --http "http://localhost:$HTTP_PORT" \
        --cafile "$work/fullchain.pem" \
        --media-cmd "$DOCKER exec $WEB find /srv/media -type f -printf '%P\\n'" | sed 's/^/    /'

    # The upload counts are kept in the redis service, shared by the workers.
    redis=$($COMPOSE ps -q redis)
    counters=$("$DOCKER" exec "$redis" redis-cli --scan --pattern '*ratelimit*' | wc -l)
    [ "$counters" -gt 0 ] || { say "no upload counter in redis: is the app using it?" >&2; exit 1; }

    uid=$("$DOCKER" exec "$WEB" id -u)
    [ "$uid" != 0 ] || { say "the web container runs as root" >&2; exit 1; }
    if "$DOCKER" exec "$WEB" python -c "import tensorflow" 2>/dev/null; then
        say "TensorFlow is in the web image" >&2
        exit 1
    fi
    "$DOCKER" exec "$WEB" python manage.py check --deploy --fail-level WARNING | sed 's/^/    /'
    health=$("$DOCKER" inspect --format '{{ .State.Health.Status }}' "$WEB")
    say "web container: uid $uid, health $health, no TensorFlow, check --deploy clean, counts in redis"
}

# 5. Train ----------------------------------------------------------------------

check_train() {
    local t0 versions previous
    build_train_image
    # Against the stack's database and photos: the export of reviewed photos
    # that training starts with, and the training command.
    $COMPOSE --profile train run --rm -T train sh -c '
        python -c "import tensorflow as tf, keras; print(\"tensorflow\", tf.__version__, \"keras\", keras.__version__)" 2>/dev/null &&
        python manage.py export_training_data --skip-checks /tmp/reviewed &&
        /app/docker/train.sh --help >/dev/null && echo "train.sh: training command ready"' 2>&1 |
        { grep -v -E '^(I0000|W0000|E0000|WARNING: All log)' || true; } | sed 's/^/    /'
    [ -n "$(ls -A "$work/traindata")" ] || return 0
    # A real, short training run in the train service: the candidate lands
    # in the shared models directory, registered but not active; the web
    # service activates it and rolls back, as an operator would.
    t0=$(now)
    $COMPOSE --profile train run --rm -T train /app/docker/train.sh \
        --name dockertest-candidate --variants 1 --head-epochs 1 --finetune-epochs 1 \
        >"$work/train.log" 2>&1 || { tail -40 "$work/train.log" >&2; exit 1; }
    [ -f "$work/models/dockertest-candidate.tflite" ] || {
        tail -40 "$work/train.log" >&2
        echo "the train service wrote no candidate" >&2
        exit 1
    }
    versions=$("$DOCKER" exec "$WEB" python manage.py activate_model --list)
    echo "$versions" | sed 's/^/    /'
    echo "$versions" | grep -q dockertest-candidate
    previous=$(cat "$work/models/CURRENT")
    "$DOCKER" exec "$WEB" python manage.py activate_model dockertest-candidate | sed 's/^/    /'
    "$DOCKER" exec "$WEB" python manage.py activate_model "$previous" | sed 's/^/    /'
    say "train service: a candidate trained, registered inactive, activated and rolled back in $(since "$t0") s"
}

# 6. Object storage ---------------------------------------------------------------

# Django's view of the bucket, from inside the web container.
in_web() { "$DOCKER" exec "$WEB" python manage.py shell -v 0 -c "$1"; }

check_object_storage() {
    local t0 media_before media_after tries=0 objects
    build_seaweedfs_image
    S3_FILES="-f docker/compose.s3.yml"
    media_before=$("$DOCKER" exec "$WEB" find /srv/media -type f | wc -l)

    # web is recreated with the bucket's settings; the media volume stays.
    t0=$(now)
    $COMPOSE $S3_FILES up -d 2>&1 | sed 's/^/    /'
    WEB=$($COMPOSE $S3_FILES ps -q web)
    # Ready means: the site answers and web can write to the bucket.
    until answers && in_web "from django.core.files.base import ContentFile
from django.core.files.storage import default_storage as s
s.delete(s.save('ready/check', ContentFile(b'ready')))" >/dev/null 2>&1; do
        tries=$((tries + 1))
        if [ "$tries" -gt 120 ]; then
            say "web could not write to the bucket within 120 s" >&2
            $COMPOSE $S3_FILES logs --no-color --tail 30 seaweedfs >&2 || true
            exit 1
        fi
        sleep 1
    done
    say "web on the bucket $(since "$t0") s after 'up -d'"
    in_web "from django.conf import settings; print('    storage:', settings.STORAGES['default']['BACKEND'])"

    local list_photos="$DOCKER exec $WEB python manage.py shell -v 0 -c \"from django.core.files.storage import default_storage as s; [print('photos/' + n) for n in s.listdir('photos')[1]]\""
    "$PYTHON" -m classifier.tests.deploy.smoke \
        --https "https://localhost:$HTTPS_PORT" --http "http://localhost:$HTTP_PORT" \
        --cafile "$work/fullchain.pem" --media-cmd "$list_photos" | sed 's/^/    /'

    objects=$(in_web "from django.core.files.storage import default_storage as s
print(*(len(s.listdir(d)[1]) for d in ('photos', 'display', 'thumbnails')))")
    media_after=$("$DOCKER" exec "$WEB" find /srv/media -type f | wc -l)
    # shellcheck disable=SC2086 # three numbers
    set -- $objects
    # Every upload keeps three objects: the photo, its page-size copy and its thumbnail.
    [ "${1:-0}" -gt 0 ] && [ "${2:-0}" = "$1" ] && [ "${3:-0}" = "$1" ] || {
        say "photos, page-size copies and thumbnails in the bucket do not match ($objects)" >&2
        exit 1
    }
    [ "$media_after" = "$media_before" ] || {
        say "photos were written to the media volume ($media_before -> $media_after files)" >&2
        exit 1
    }
    say "object storage: smoke flow passed with $1 photos, $2 page-size copies and $3 thumbnails in the bucket, none on disk"
}

# 7. Report ---------------------------------------------------------------------

report() {
    say "image sizes: web $(mb usbills-web:dockertest), nginx $(mb usbills-nginx:dockertest)$(
        [ "$TRAIN" = 0 ] || printf ', train %s' "$(mb usbills-train:dockertest)")$(
        [ "$S3" = 0 ] || printf ', seaweedfs %s' "$(mb usbills-seaweedfs:dockertest)")"
    say "base stand-in python:3.11-slim $(mb usbills-standin/python:3.11-slim) (the official image is about 130 MB)"
    say "start-up: $STARTUP s from 'docker compose up -d' to the first answer through nginx"
}

start_engine
build_standins
write_env
copy_ca_bundle
prepare_models
if [ "$MODE" = build ]; then
    # Every image of the test, side by side: each build mostly waits on PyPI.
    build_images &
    pids=$!
    if [ "$TRAIN" != 0 ]; then build_train_image & pids="$pids $!"; fi
    if [ "$S3" != 0 ]; then build_seaweedfs_image & pids="$pids $!"; fi
    for pid in $pids; do wait "$pid"; done
    exit 0
fi
build_images
start_stack
check_stack
if [ "$TRAIN" != 0 ]; then check_train; fi
if [ "$S3" != 0 ]; then check_object_storage; fi
report

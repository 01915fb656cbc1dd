#!/bin/bash
# make docker-test: build the images and run the Compose stack for real, then
# drive it through nginx with the same smoke flow as the integration test.
#
#  1. Docker Engine: use a running one, else install Debian's docker.io (and
#     docker-compose) when missing and start dockerd in the background; it is
#     stopped again at the end, by its PID.
#  2. Base images: local stand-ins built from Debian's packages
#     (docker/standins/build.sh), kept between runs.
#  3. Build the project's images on them (docker/compose.test.yml), with the
#     host's CA bundle and package index settings passed to pip.
#  4. docker compose up -d, wait until the site answers through nginx, run the
#     smoke flow, check the containers, print image sizes and start-up time.
#  5. Tear everything down: containers, networks, volumes.
#
# Environment: PYTHON (for the smoke flow; default .venv/bin/python),
# DOCKER_TEST_TRAIN=0 to skip building and running the train image.
set -euo pipefail

cd "$(dirname "$0")/.."
repo=$(pwd)
PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
export DOCKER_BUILDKIT=0 COMPOSE_DOCKER_CLI_BUILD=0
PROJECT=usbills-dockertest
work=$(mktemp -d "${TMPDIR:-/tmp}/usbills-docker-test.XXXXXX")
dockerd_pid=""
ip_forward=""
compose_up=""
status=1

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
say() { echo "docker-test: $*"; }
# Build output without the classic builder's deprecation notice.
quiet_build() { grep -v -E 'DEPRECATED|BuildKit is currently|environment-variable|^\s*$' || true; }

# 1. Docker Engine ------------------------------------------------------------

apt_install() {
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        say "cannot install $* (needs root and apt-get)" >&2
        exit 1
    fi
    say "installing $* from Debian's packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# Prefer Debian's client next to Debian's daemon; any other works too.
pick_docker() {
    if [ -x /usr/bin/docker ]; then DOCKER=/usr/bin/docker; else DOCKER=$(command -v docker || true); fi
}

pick_docker
if [ -z "$DOCKER" ] || ! "$DOCKER" info >/dev/null 2>&1; then
    if ! command -v dockerd >/dev/null 2>&1 && [ ! -x /usr/sbin/dockerd ]; then
        apt_install docker.io
        pick_docker
    fi
    # Containers get the MTU of the host's uplink: larger packets would be lost.
    dev=$(ip -o route show default 2>/dev/null | awk '{ for (i = 1; i < NF; i++) if ($i == "dev") { print $(i + 1); exit } }')
    mtu=$(cat "/sys/class/net/${dev:-eth0}/mtu" 2>/dev/null || echo 1500)
    # dockerd turns IP forwarding on for its containers; it is put back after.
    ip_forward=$(cat /proc/sys/net/ipv4/ip_forward 2>/dev/null || echo "")
    say "starting dockerd (mtu $mtu), log in $work/dockerd.log"
    dockerd --mtu "$mtu" >"$work/dockerd.log" 2>&1 &
    dockerd_pid=$!
    tries=0
    until "$DOCKER" info >/dev/null 2>&1; do
        tries=$((tries + 1))
        if [ "$tries" -gt 60 ] || ! kill -0 "$dockerd_pid" 2>/dev/null; then
            say "dockerd did not start:" >&2
            tail -n 20 "$work/dockerd.log" >&2
            exit 1
        fi
        sleep 0.5
    done
fi
export DOCKER

if "$DOCKER" compose version >/dev/null 2>&1; then
    set -- "$DOCKER" compose
elif command -v docker-compose >/dev/null 2>&1; then
    set -- docker-compose
else
    apt_install docker-compose
    set -- docker-compose
fi
COMPOSE="$* -p $PROJECT --env-file $work/test.env -f docker-compose.yml -f docker/compose.test.yml"

cleanup() {
    if [ -n "$compose_up" ]; then
        if [ "$status" != 0 ]; then
            say "logs of the failed run:"
            $COMPOSE logs --no-color --tail 60 2>&1 | sed 's/^/    /' || true
        fi
        say "tearing down (containers, networks, volumes)"
        $COMPOSE --profile train down -v --remove-orphans >/dev/null 2>&1 || true
    fi
    if [ -n "$dockerd_pid" ]; then
        say "stopping dockerd (pid $dockerd_pid)"
        kill -TERM "$dockerd_pid" 2>/dev/null || true
        wait "$dockerd_pid" 2>/dev/null || true
        if [ "$ip_forward" = 0 ]; then echo 0 >/proc/sys/net/ipv4/ip_forward 2>/dev/null || true; fi
    fi
    rm -rf "$work"
    if [ "$status" = 0 ]; then say "PASSED"; else say "FAILED"; fi
}
trap 'status=$?; cleanup' EXIT
trap 'exit 130' INT TERM

# 2. Stand-in base images -----------------------------------------------------

t0=$(now)
DOCKER="$DOCKER" sh docker/standins/build.sh
say "stand-in images ready in $(since "$t0") s"

# 3. Build --------------------------------------------------------------------

# pip in the build trusts what this host trusts (e.g. a TLS-inspecting proxy).
if [ -s /etc/ssl/certs/ca-certificates.crt ]; then
    cp /etc/ssl/certs/ca-certificates.crt docker/ca-certificates.crt
fi

free_port() {
    "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
HTTP_PORT=$(free_port)
HTTPS_PORT=$(free_port)
# Index settings of this host's pip that a container can use (http/https only).
pip_settings=$("$PYTHON" - <<'PY'
import os, subprocess, sys
out = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
conf = {}
for line in out.splitlines():
    key, _, value = line.partition("=")
    conf[key.split(".", 1)[-1]] = value.strip().strip("'\"")
for name, key in (("PIP_INDEX_URL", "index-url"), ("PIP_EXTRA_INDEX_URL", "extra-index-url"),
                  ("PIP_TRUSTED_HOST", "trusted-host")):
    value = os.environ.get(name) or conf.get(key, "")
    if key != "trusted-host":
        value = " ".join(u for u in value.split() if u.startswith(("http://", "https://")))
    print(f"{name}={value}")
PY
)
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
$pip_settings
EOF

# The models directory web serves from and train writes candidates into, as
# in a deployment: a copy of the shipped model (or, before one is committed,
# the tests' tiny one), so that the test's training run writes nowhere real.
chmod 755 "$work"
mkdir -p "$work/models" "$work/traindata"
if [ -f models/CURRENT ]; then
    cp models/CURRENT models/*.tflite models/*.json "$work/models/"
else
    say "models/CURRENT is missing: serving a tiny test model instead of the shipped one"
    cp classifier/tests/fixtures/tiny-model/CURRENT classifier/tests/fixtures/tiny-model/*.tflite \
        classifier/tests/fixtures/tiny-model/*.json "$work/models/"
fi
# A few training photos of each class and source, when the data set is beside
# the repository: enough for a real, short training run in the train image.
dataset=../shared/datasets/usd-bills/train
if [ "${DOCKER_TEST_TRAIN:-1}" != 0 ] && [ -d "$dataset" ]; then
    for class_dir in "$dataset"/*/; do
        class=$(basename "$class_dir")
        mkdir -p "$work/traindata/$class"
        find "$class_dir" -maxdepth 1 -type f -name '*.jpg' -printf '%f\n' | sort |
            awk '{ source = $0; sub(/-[^-]*$/, "", source); if (seen[source]++ < 3) print }' |
            while read -r name; do cp "$class_dir$name" "$work/traindata/$class/"; done
    done
fi
chmod -R a+rwX "$work/models" "$work/traindata"
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
COMPOSE="$COMPOSE -f $work/compose.models.yml"

t0=$(now)
$COMPOSE build --quiet web nginx 2>&1 | quiet_build
say "images built in $(since "$t0") s"
for image in usbills-web:dockertest usbills-nginx:dockertest; do
    "$DOCKER" image inspect "$image" >/dev/null
done

# 4. Run ----------------------------------------------------------------------

t_up=$(now)
compose_up=1
$COMPOSE up -d 2>&1 | sed 's/^/    /'
# Ready means: the site answers through nginx over HTTPS.
tries=0
answers() {
    "$PYTHON" -c 'import ssl, sys, urllib.request
urllib.request.urlopen(sys.argv[1], context=ssl._create_unverified_context(), timeout=3)' \
        "https://localhost:$HTTPS_PORT/healthz" 2>/dev/null
}
until answers; do
    tries=$((tries + 1))
    if [ "$tries" -gt 180 ]; then
        say "the site did not come up within 180 s" >&2
        $COMPOSE ps >&2
        exit 1
    fi
    sleep 1
done
startup=$(since "$t_up")
say "site up through nginx $startup s after 'up -d' (fresh database, migrations, model load)"

web=$($COMPOSE ps -q web)
nginx=$($COMPOSE ps -q nginx)
"$DOCKER" exec "$nginx" cat /etc/nginx/certs/fullchain.pem >"$work/fullchain.pem"

"$PYTHON" -m classifier.tests.deploy.smoke \
    --https "https://localhost:$HTTPS_PORT" --http "http://localhost:$HTTP_PORT" \
    --cafile "$work/fullchain.pem" \
    --media-cmd "$DOCKER exec $web find /srv/media -type f -printf '%P\\n'" | sed 's/^/    /'

# The upload counts are kept in the redis service, shared by the workers.
redis=$($COMPOSE ps -q redis)
counters=$("$DOCKER" exec "$redis" redis-cli --scan --pattern '*ratelimit*' | wc -l)
[ "$counters" -gt 0 ] || { say "no upload counter in redis: is the app using it?" >&2; exit 1; }

uid=$("$DOCKER" exec "$web" id -u)
[ "$uid" != 0 ] || { say "the web container runs as root" >&2; exit 1; }
if "$DOCKER" exec "$web" python -c "import tensorflow" 2>/dev/null; then
    say "TensorFlow is in the web image" >&2
    exit 1
fi
"$DOCKER" exec "$web" python manage.py check --deploy --fail-level WARNING | sed 's/^/    /'
health=$("$DOCKER" inspect --format '{{ .State.Health.Status }}' "$web")
say "web container: uid $uid, health $health, no TensorFlow, check --deploy clean, counts in redis"

if [ "${DOCKER_TEST_TRAIN:-1}" != 0 ]; then
    t0=$(now)
    $COMPOSE --profile train build --quiet train 2>&1 | quiet_build
    "$DOCKER" image inspect usbills-train:dockertest >/dev/null
    say "train image built in $(since "$t0") s"
    # Against the stack's database and photos: the export of reviewed photos
    # that training starts with, and the training command.
    $COMPOSE --profile train run --rm -T train sh -c '
        python -c "import tensorflow as tf, keras; print(\"tensorflow\", tf.__version__, \"keras\", keras.__version__)" 2>/dev/null &&
        python manage.py export_training_data --skip-checks /tmp/reviewed &&
        /app/docker/train.sh --help >/dev/null && echo "train.sh: training command ready"' 2>&1 |
        { grep -v -E '^(I0000|W0000|E0000|WARNING: All log)' || true; } | sed 's/^/    /'
    if [ -n "$(ls -A "$work/traindata")" ]; then
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
        versions=$("$DOCKER" exec "$web" python manage.py activate_model --list)
        echo "$versions" | sed 's/^/    /'
        echo "$versions" | grep -q dockertest-candidate
        previous=$(cat "$work/models/CURRENT")
        "$DOCKER" exec "$web" python manage.py activate_model dockertest-candidate | sed 's/^/    /'
        "$DOCKER" exec "$web" python manage.py activate_model "$previous" | sed 's/^/    /'
        say "train service: a candidate trained, registered inactive, activated and rolled back in $(since "$t0") s"
    fi
fi

mb() { "$DOCKER" image inspect --format '{{ .Size }}' "$1" | awk '{ printf "%.0f MB", $1 / 1e6 }'; }
say "image sizes: web $(mb usbills-web:dockertest), nginx $(mb usbills-nginx:dockertest)$(
    [ "${DOCKER_TEST_TRAIN:-1}" = 0 ] || printf ', train %s' "$(mb usbills-train:dockertest)")"
say "base stand-in python:3.11-slim $(mb usbills-standin/python:3.11-slim) (the official image is about 130 MB)"
say "start-up: $startup s from 'docker compose up -d' to the first answer through nginx"

# usbills web image: gunicorn + the app + the shipped model, serving
# dependencies only (requirements.txt: LiteRT, no TensorFlow).
#
#   docker build -t usbills-web .
#
# Build arguments:
#   PYTHON_IMAGE         base image (default the official python:3.11-slim)
#   PIP_INDEX_URL, PIP_EXTRA_INDEX_URL, PIP_TRUSTED_HOST
#                        package index settings, when PyPI is reached through a mirror
# Put a CA bundle at docker/ca-certificates.crt (not committed) to have pip
# trust it, e.g. behind a TLS-inspecting proxy; it stays in the build stage.
# Run `npm ci` (or `make node-deps`) first: the live page's runtime is copied
# from node_modules. Works with the classic builder and with BuildKit.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ARG PIP_INDEX_URL=
ARG PIP_EXTRA_INDEX_URL=
ARG PIP_TRUSTED_HOST=
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DEFAULT_TIMEOUT=120
# The glob matches nothing when there is no bundle; requirements.txt keeps
# the COPY valid either way.
COPY docker/ca-certificates.cr[t] requirements.txt /tmp/build/
RUN set -eu; \
    if [ -s /tmp/build/ca-certificates.crt ]; then export PIP_CERT=/tmp/build/ca-certificates.crt; fi; \
    [ -n "$PIP_INDEX_URL" ] || unset PIP_INDEX_URL; \
    [ -n "$PIP_EXTRA_INDEX_URL" ] || unset PIP_EXTRA_INDEX_URL; \
    [ -n "$PIP_TRUSTED_HOST" ] || unset PIP_TRUSTED_HOST; \
    # The venv gets the packages and no installer: pip stays in the build stage.
    python -m venv --without-pip /opt/venv; \
    python -m pip --python /opt/venv/bin/python install --no-compile \
        -r /tmp/build/requirements.txt; \
    # no TensorFlow in the web image, whatever pulled it in
    if /opt/venv/bin/python -c "import importlib.util as u, sys; sys.exit(u.find_spec('tensorflow') is None)"; then \
        echo "tensorflow must not be in the web image" >&2; exit 1; \
    fi; \
    /opt/venv/bin/python -m compileall -q -j 0 /opt/venv/lib


FROM ${PYTHON_IMAGE} AS web
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MEDIA_ROOT=/srv/media \
    CLASSIFIER_MODELS_DIR=/app/models \
    GUNICORN_BIND=0.0.0.0:8000

RUN set -eu; \
    groupadd --system --gid 10001 usbills; \
    useradd --system --uid 10001 --gid usbills --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin usbills
COPY --from=build /opt/venv /opt/venv

# The code stays owned by root, read-only to the app; only photos are written.
WORKDIR /app
COPY manage.py gunicorn.conf.py ./
COPY usbills_site/ usbills_site/
COPY classifier/ classifier/
COPY templates/ templates/
COPY static/ static/
COPY models/ models/
# The live page's in-browser runtime (LiteRT.js), as `npm ci` installed it
# from package-lock.json before the build (`make node-deps`; no registry is
# needed here): only its built code and WebAssembly files, which
# collectstatic and the live views serve (settings.LITERTJS_DIR).
COPY node_modules/@litertjs/core/dist/ node_modules/@litertjs/core/dist/
COPY node_modules/@litertjs/core/wasm/ node_modules/@litertjs/core/wasm/
COPY node_modules/@litertjs/wasm-utils/dist/ node_modules/@litertjs/wasm-utils/dist/
COPY docker/entrypoint.sh docker/healthcheck.py docker/
RUN set -eu; \
    # settings refuse to start without a secret key when DEBUG is off; this
    # one exists only for this command
    DJANGO_SECRET_KEY=collectstatic-at-build-time-only DJANGO_DEBUG=0 \
        python manage.py collectstatic --noinput --verbosity 0; \
    # collected with the app's private file mode (FILE_UPLOAD_PERMISSIONS);
    # static files are public, and copied for nginx by the unprivileged user
    chmod -R a+rX /app/staticfiles; \
    python -m compileall -q -j 0 /app; \
    mkdir -p /srv/media /srv/static; \
    chown usbills:usbills /srv/media /srv/static

USER usbills
EXPOSE 8000
HEALTHCHECK --interval=5s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "/app/docker/healthcheck.py"]
ENTRYPOINT ["/app/docker/entrypoint.sh"]
CMD ["gunicorn", "--config", "/app/gunicorn.conf.py", "usbills_site.wsgi"]

# usbills training image: the app, its serving dependencies and the training
# ones (TensorFlow, requirements-train.txt). Used by the compose service
# `train` (profile "train") to retrain against the production database and
# photos; the new model is written to the mounted models/ directory.
# Same build arguments as the web image (see ../Dockerfile).
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ARG PIP_INDEX_URL=
ARG PIP_EXTRA_INDEX_URL=
ARG PIP_TRUSTED_HOST=
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DEFAULT_TIMEOUT=120
COPY docker/ca-certificates.cr[t] requirements.txt requirements-train.txt /tmp/build/
RUN set -eu; \
    if [ -s /tmp/build/ca-certificates.crt ]; then export PIP_CERT=/tmp/build/ca-certificates.crt; fi; \
    [ -n "$PIP_INDEX_URL" ] || unset PIP_INDEX_URL; \
    [ -n "$PIP_EXTRA_INDEX_URL" ] || unset PIP_EXTRA_INDEX_URL; \
    [ -n "$PIP_TRUSTED_HOST" ] || unset PIP_TRUSTED_HOST; \
    python -m venv --without-pip /opt/venv; \
    python -m pip --python /opt/venv/bin/python install \
        -r /tmp/build/requirements.txt -r /tmp/build/requirements-train.txt


FROM ${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    MEDIA_ROOT=/srv/media \
    CLASSIFIER_MODELS_DIR=/app/models
COPY --from=build /opt/venv /opt/venv

WORKDIR /app
COPY manage.py ./
COPY usbills_site/ usbills_site/
COPY classifier/ classifier/
COPY templates/ templates/
COPY docker/train.sh docker/

# A batch job run by an operator, not a server: it runs as root so that it
# can write the new model into a host directory mounted at /app/models.
CMD ["/app/docker/train.sh"]

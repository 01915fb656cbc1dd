"""Which model serves, and the one predictor of each server process.

The database decides which model serves: the active ModelVersion, in every
worker. `manage.py activate_model` (or the admin action) switches it, and
rolls it back. CLASSIFIER_MODELS_DIR holds the versions' files; its CURRENT
file names only the seed, the version made active when the database has none
(a new deployment), which is also served when the database cannot be read at
start. `make train` writes CURRENT because it makes the model the repository
ships; `manage.py train_model` leaves it alone because it makes a candidate
for a running deployment. Once the database has an active version, CURRENT
changes nothing: activate the new version instead.

Servers load the model at start (wsgi.py, asgi.py); management commands never
do, so `migrate` and friends don't pay for it. A shell or a test server that
skipped the start loads it at first use.

A worker loads only bytes whose SHA-256 is the version's row's. With object
storage, a machine that lacks a version's files fetches them once into
CLASSIFIER_MODEL_CACHE (services.model_version_file); a refused or failed
fetch is logged and the model already loaded keeps serving.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError

from .ml.predictor import ModelError, Predictor

log = logging.getLogger(__name__)

_lock = threading.Lock()
_predictor: Predictor | None = None


def start() -> Predictor:
    """Load the active model version (seeding it on a new database); once per server process."""
    from . import selectors, services

    try:
        active = selectors.model_version_active() or services.model_version_sync()
        path = services.model_version_file(active) if active else None
    except DatabaseError:
        # First start before migrate, or the database is down: the seed serves,
        # and the active version takes over at the first upload after that.
        log.warning("no active model version from the database; serving the seed (CURRENT)")
        path = None
    except ModelError:
        # The active version's files are missing here and could not be fetched,
        # or were refused: the seed serves rather than no worker at all, and
        # the active version is tried again at a later upload.
        log.exception("cannot serve the active model version %s; serving the seed", active)
        path = None
    predictor = Predictor.load(
        path or Path(settings.CLASSIFIER_MODELS_DIR), num_threads=settings.CLASSIFIER_THREADS
    )
    set_predictor(predictor)
    log.info("loaded model %s from %s", predictor.version, predictor.path)
    return predictor


def current() -> Predictor | None:
    """The predictor this process holds now, if it has loaded one; no database query."""
    return _predictor


def set_predictor(predictor: Predictor | None) -> None:
    """Serve this predictor from now on (start(), a switch, or a test)."""
    global _predictor
    with _lock:
        _predictor = predictor


def get_predictor() -> Predictor:
    """The predictor for this request: the database's active model version."""
    if _predictor is None:
        start()
    _follow_active_version()
    return _predictor


def _follow_active_version() -> None:
    # One indexed query per call: `manage.py activate_model` (or the admin
    # action) takes effect in every worker at its next upload, with no
    # restart. The old model serves until the new one has loaded, so no
    # request fails during the switch; a model that fails to load (missing,
    # not fetched, or refused for its checksum) is logged and the old one
    # keeps serving. With no active version (the database was
    # down at start), the loaded model serves: registering versions is not
    # work for the request path.
    from . import services
    from .models import ModelVersion

    serving = _predictor.version
    try:
        # Only the name, on every upload; the row (with its large card) is
        # read only when the version has changed.
        name = ModelVersion.objects.filter(is_active=True).values_list("version", flat=True).first()
        if name is None or name == serving:
            return
        active = ModelVersion.objects.filter(version=name).first()
    except DatabaseError:
        log.exception("cannot read the active model version; serving %s", serving)
        return
    if active is None:  # deactivated in between
        return
    try:
        predictor = Predictor.load(
            services.model_version_file(active), num_threads=settings.CLASSIFIER_THREADS
        )
    except ModelError:
        log.exception("cannot load model version %s; serving %s", active, serving)
        return
    set_predictor(predictor)
    log.info("switched from model %s to %s", serving, predictor.version)

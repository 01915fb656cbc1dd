import logging
import threading

from django.apps import AppConfig
from django.conf import settings

log = logging.getLogger(__name__)


class ClassifierConfig(AppConfig):
    """The web app; owns the one predictor of this process."""

    name = "classifier"
    verbose_name = "Banknote classifier"
    default_auto_field = "django.db.models.BigAutoField"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.predictor = None
        self._predictor_lock = threading.Lock()

    def ready(self):
        from . import checks  # noqa: F401  (registers the system checks)

    def load_predictor(self):
        """Load the active model version (else CLASSIFIER_MODEL); called once per server process."""
        from .ml.predictor import Predictor

        path = self._active_model_path() or settings.CLASSIFIER_MODEL
        with self._predictor_lock:
            self.predictor = Predictor.load(path, num_threads=settings.CLASSIFIER_THREADS)
        log.info("loaded model %s from %s", self.predictor.version, self.predictor.path)
        return self.predictor

    def _active_model_path(self):
        # After an activation and a restart, start with the active model
        # rather than load CURRENT's and switch at the first upload. Without
        # a database yet (first start, outage), CLASSIFIER_MODEL it is.
        from django.db import DatabaseError

        from . import services
        from .models import ModelVersion

        try:
            active = ModelVersion.objects.filter(is_active=True).first()
        except DatabaseError:
            log.warning("no active model version from the database; using CLASSIFIER_MODEL")
            return None
        return services.model_version_path(active) if active else None

    def get_predictor(self):
        """The process's predictor: the database's active model version, loaded once."""
        # Servers load it at start (wsgi.py); a shell or a test server may not
        # have, and should still work, once, without a per-request cost.
        if self.predictor is None:
            with self._predictor_lock:
                if self.predictor is None:
                    from .ml.predictor import Predictor

                    self.predictor = Predictor.load(
                        settings.CLASSIFIER_MODEL, num_threads=settings.CLASSIFIER_THREADS
                    )
                    log.info("loaded model %s on first use", self.predictor.version)
        self._follow_active_version()
        return self.predictor

    def _follow_active_version(self):
        # One indexed query per call: `manage.py activate_model` (or the admin
        # action) takes effect in every worker at its next upload, with no
        # restart. The old model serves until the new one has loaded, so no
        # request fails during the switch; a model that fails to load is
        # logged and the old one keeps serving.
        from django.db import DatabaseError

        from . import services
        from .ml.predictor import ModelError, Predictor
        from .models import ModelVersion

        try:
            # Only the name, on every upload; the row (with its large card) is
            # read only when the version has changed.
            name = (
                ModelVersion.objects.filter(is_active=True)
                .values_list("version", flat=True)
                .first()
            )
            if name == self.predictor.version:
                return
            active = ModelVersion.objects.filter(version=name).first() if name else None
            if active is None:
                active = services.model_version_sync()
        except DatabaseError:
            log.exception(
                "cannot read the active model version; serving %s", self.predictor.version
            )
            return
        if active is None or active.version == self.predictor.version:
            return
        try:
            predictor = Predictor.load(
                services.model_version_path(active), num_threads=settings.CLASSIFIER_THREADS
            )
        except ModelError:
            log.exception(
                "cannot load model version %s; serving %s", active, self.predictor.version
            )
            return
        with self._predictor_lock:
            old, self.predictor = self.predictor, predictor
        log.info("switched from model %s to %s", old.version, predictor.version)

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
        """Load the model named by settings.CLASSIFIER_MODEL; called once per server process."""
        from .ml.predictor import Predictor

        with self._predictor_lock:
            self.predictor = Predictor.load(
                settings.CLASSIFIER_MODEL, num_threads=settings.CLASSIFIER_THREADS
            )
        log.info("loaded model %s from %s", self.predictor.version, self.predictor.path)
        return self.predictor

    def get_predictor(self):
        """The process's predictor, loading it now if the entry point did not."""
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
        return self.predictor

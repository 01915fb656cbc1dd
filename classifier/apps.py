from django.apps import AppConfig


class ClassifierConfig(AppConfig):
    """The web app. Its model's lifecycle is in classifier/serving.py."""

    name = "classifier"
    verbose_name = "Banknote classifier"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from . import checks, signals  # noqa: F401  (registers the system checks, receivers)

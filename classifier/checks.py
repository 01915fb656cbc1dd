"""System checks: a missing or broken model is reported by `manage.py check`
(and runserver) with the file at fault, instead of failing every request."""

from django.conf import settings
from django.core.checks import Error, Tags, register

from .ml.predictor import ModelError, read_card, resolve_model

REQUIRED_CARD_FIELDS = ("version", "classes", "threshold", "input")


@register("classifier")
def check_model(app_configs=None, **kwargs):
    """The seed model (CLASSIFIER_MODELS_DIR's CURRENT) exists and has a readable card."""
    path = settings.CLASSIFIER_MODELS_DIR
    hint = (
        "Set CLASSIFIER_MODELS_DIR to a models directory whose CURRENT file names a "
        "<version>.tflite in it, with its <version>.json card beside it."
    )
    try:
        _model, card_path = resolve_model(path)
    except ModelError as exc:
        return [
            Error(f"The classifier model is not usable: {exc}", hint=hint, id="classifier.E001")
        ]
    try:
        card = read_card(card_path)
    except ModelError as exc:
        message = f"The classifier model is not usable: {exc}"
        return [Error(message, hint=hint, id="classifier.E002")]
    missing = [f for f in REQUIRED_CARD_FIELDS if f not in card]
    if missing:
        return [
            Error(
                f"The model card {card_path} lacks {', '.join(missing)}.",
                hint=hint,
                id="classifier.E003",
            )
        ]
    return []


@register(Tags.security, deploy=True)
def check_secret_key(app_configs=None, **kwargs):
    """Production refuses the development secret key."""
    if settings.SECRET_KEY == settings.DEV_SECRET_KEY:
        return [
            Error(
                "DJANGO_SECRET_KEY is not set: the development key is in use.",
                hint="Set DJANGO_SECRET_KEY to a long random string.",
                id="classifier.E010",
            )
        ]
    return []


# Caches whose incr() two workers cannot interleave: the rate limits count in it.
COUNTING_CACHES = (
    "classifier.cache.TolerantRedisCache",
    "classifier.cache.CountingDatabaseCache",
    "django.core.cache.backends.redis.RedisCache",
    # One process only (tests, a single runserver): atomic under its own lock.
    "django.core.cache.backends.locmem.LocMemCache",
)


@register("classifier")
def check_cache_counts(app_configs=None, **kwargs):
    """The rate limits' cache counts atomically, or the app refuses to start."""
    backend = settings.CACHES["default"]["BACKEND"]
    if backend in COUNTING_CACHES:
        return []
    return [
        Error(
            f"The cache {backend} cannot count atomically: concurrent uploads, sign-ups and "
            "sign-ins would slip past their limits.",
            hint="Set REDIS_URL, or use classifier.cache.CountingDatabaseCache.",
            id="classifier.E011",
        )
    ]

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.urls import reverse
from django.utils import timezone

from .ml import labels
from .ml.predictor import BANDS, ConfidenceBands

CLASS_CHOICES = [(c, labels.display(c)) for c in labels.CLASSES]
ANSWER_CHOICES = [
    *((c, labels.display(c)) for c in labels.NOTES),
    (labels.UNKNOWN, "Can't identify"),
]


class User(AbstractUser):
    """The project's user; a model of its own from the start so it can grow."""

    def save(self, *args, **kwargs):
        # set_password() leaves the new password in _password until saved. A
        # new password, by any path (change, reset, admin, changepassword),
        # ends every API key: a key made by whoever knew the old one must
        # not outlive it.
        password_changed = self._password is not None and self.pk is not None
        super().save(*args, **kwargs)
        if password_changed:
            ApiToken.objects.filter(user=self, revoked_at=None).update(revoked_at=timezone.now())


class ModelVersion(models.Model):
    """A model the app has served or could serve: its files, its card, and whether it is live.

    Exactly one version is active at a time; workers switch to it between
    requests (see classifier/serving.py).
    """

    version = models.CharField(max_length=64, unique=True)
    file = models.CharField(
        max_length=500,
        help_text="the .tflite file, relative to CLASSIFIER_MODELS_DIR when it is inside it",
    )
    card = models.JSONField(help_text="the model card: classes, threshold, metrics")
    # The bytes every worker must load under this name, wherever it gets them
    # (CLASSIFIER_MODELS_DIR, the object store, its cache): a file that does
    # not match is never served. Empty for a version whose files could not be
    # read when checksums were introduced; registering it again fills them.
    sha256 = models.CharField(
        max_length=64, blank=True, default="", help_text="SHA-256 of the .tflite file, hex"
    )
    card_sha256 = models.CharField(
        max_length=64, blank=True, default="", help_text="SHA-256 of the card (.json) file, hex"
    )
    created = models.DateTimeField(help_text="when the model was trained")
    registered = models.DateTimeField(default=timezone.now)
    activated_at = models.DateTimeField(null=True, blank=True)
    is_active = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_active"],
                condition=models.Q(is_active=True),
                name="one_active_model_version",
            )
        ]

    def __str__(self):
        return self.version + (" (active)" if self.is_active else "")

    def get_absolute_url(self):
        return reverse("admin:classifier_modelversion_change", args=[self.pk])

    @property
    def threshold(self) -> float | None:
        return self.card.get("threshold")

    @property
    def validation(self) -> dict:
        return self.card.get("validation") or {}

    @property
    def comparison(self) -> dict:
        return self.card.get("comparison") or {}


class ApiToken(models.Model):
    """A key a user made for the JSON API. Only its hash is stored; the key is shown once."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    prefix = models.CharField(
        max_length=12, help_text="the key's first characters, to tell keys apart"
    )
    key_hash = models.CharField(max_length=64, unique=True)
    created = models.DateTimeField(default=timezone.now)
    last_used = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-pk"]

    def __str__(self):
        return f"{self.name} ({self.prefix}…) of {self.user_id}"

    def get_absolute_url(self):
        return reverse("classifier:tokens")

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class Upload(models.Model):
    """A photo a user sent. The file lives in private storage under a random name."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="uploads"
    )
    file = models.FileField(max_length=200)
    thumbnail = models.FileField(max_length=200)
    # A page-size copy for the result page and the review screen, so a phone
    # does not fetch the whole original. Empty for uploads made before it existed.
    display = models.FileField(max_length=200, blank=True)
    content_type = models.CharField(max_length=40)
    sha256 = models.CharField(max_length=64, db_index=True)
    size = models.PositiveIntegerField(help_text="bytes")
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            # The history page: one user's uploads, newest first.
            models.Index(fields=["owner", "-created"], name="upload_owner_created"),
        ]

    def __str__(self):
        return f"upload {self.pk} by {self.owner_id} ({self.width}x{self.height})"


class Prediction(models.Model):
    """What the model said about an upload, and what people said afterwards.

    The model's fields are written once; the user's feedback and the
    reviewer's label live in fields of their own.
    """

    upload = models.OneToOneField(Upload, on_delete=models.CASCADE, related_name="prediction")

    # What the model said.
    model_version = models.CharField(max_length=100)
    model = models.ForeignKey(
        ModelVersion,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="predictions",
        help_text="the registered model version that made this prediction",
    )
    label = models.CharField(max_length=20, choices=CLASS_CHOICES, help_text="most probable class")
    confidence = models.FloatField()
    probabilities = models.JSONField(help_text="every class and its probability")
    answer = models.CharField(
        max_length=20, choices=ANSWER_CHOICES, help_text="the note shown, or unknown"
    )
    threshold = models.FloatField(help_text="the model's confidence threshold for an answer")
    band = models.CharField(
        max_length=12,
        choices=[(b, b) for b in BANDS],
        blank=True,
        help_text="what the user was told: sure, unsure, not_a_note or unknown; empty if older",
    )
    inference_ms = models.FloatField(help_text="decoding + forward pass, milliseconds")
    created = models.DateTimeField(default=timezone.now)

    # What the model in the user's browser said, for a photo saved from the
    # live page (empty for an ordinary upload). Kept beside the server's
    # answer, never instead of it.
    device_label = models.CharField(
        max_length=20, choices=CLASS_CHOICES, blank=True, help_text="the browser's top class"
    )
    device_answer = models.CharField(
        max_length=20, choices=ANSWER_CHOICES, blank=True, help_text="the browser's answer"
    )
    device_confidence = models.FloatField(null=True, blank=True)
    device_model_version = models.CharField(max_length=100, blank=True)
    # The browser and the server gave different answers: a reviewer should look.
    device_disagrees = models.BooleanField(default=False)

    # What the user said: the class they say the photo shows.
    user_label = models.CharField(max_length=20, choices=CLASS_CHOICES, blank=True)
    # Whether that disagrees with the model; kept with the label so the admin
    # can filter and order on it.
    user_flagged = models.BooleanField(default=False)
    user_labelled_at = models.DateTimeField(null=True, blank=True)

    # What a reviewer decided.
    reviewed_label = models.CharField(max_length=20, choices=CLASS_CHOICES, blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="reviews",
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            # The admin's default order: unreviewed first, flagged first, least sure first.
            models.Index(
                fields=["reviewed_label", "-user_flagged", "confidence"], name="prediction_review"
            ),
            models.Index(fields=["answer", "-created"], name="prediction_answer_created"),
            models.Index(fields=["model_version"], name="prediction_model_version"),
        ]

    def __str__(self):
        return f"{labels.display(self.answer)} ({self.confidence:.0%}) #{self.pk}"

    def get_absolute_url(self):
        return reverse("classifier:prediction", args=[self.pk])

    @property
    def claimed_label(self) -> str | None:
        """The class the model committed to, or None when it was unsure of a note."""
        if self.answer != labels.UNKNOWN:
            return self.answer
        if self.shown_band == "not_a_note":
            return labels.NOT_A_BILL
        return None

    @property
    def is_answered(self) -> bool:
        return self.answer != labels.UNKNOWN

    @property
    def shown_band(self) -> str:
        """The band the answer was shown in; worked out from the threshold for older rows."""
        if self.band:
            return self.band
        return ConfidenceBands.from_card({"threshold": self.threshold}).band(
            self.label, self.confidence
        )

    @property
    def headline(self) -> str:
        """The answer in words, as the result page and the history put it."""
        band = self.shown_band
        if band == "sure":
            return labels.display(self.answer)
        if band == "unsure":
            return f"Might be {labels.display(self.answer)}"
        if band == "not_a_note":
            return "Not a US note"
        return "Can't identify"

    def top(self, k: int = 3) -> list[tuple[str, float]]:
        """The k most probable classes, most probable first."""
        ranked = sorted(self.probabilities.items(), key=lambda kv: kv[1], reverse=True)
        return ranked[:k]

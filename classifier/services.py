"""Everything that changes data. Views, forms, admin actions and commands call these."""

from __future__ import annotations

import hashlib
import io
import logging
import uuid

from django.apps import apps
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone
from PIL import Image

from .ml import labels, preprocess
from .models import Prediction, Upload

log = logging.getLogger(__name__)

# Pillow format -> (content type served, file extension stored).
FORMAT_TYPES = {
    "JPEG": ("image/jpeg", "jpg"),
    "MPO": ("image/jpeg", "jpg"),
    "PNG": ("image/png", "png"),
    "WEBP": ("image/webp", "webp"),
    "GIF": ("image/gif", "gif"),
    "BMP": ("image/bmp", "bmp"),
    "TIFF": ("image/tiff", "tif"),
}
THUMBNAIL_SIZE = 320


def get_predictor():
    """The predictor this process loaded at start."""
    return apps.get_app_config("classifier").get_predictor()


def upload_create(*, user, file) -> Prediction:
    """Check a photo by its content, store it, classify it and save Upload + Prediction."""
    data = _read_capped(file)
    try:
        image = preprocess.open_image(
            data, max_pixels=settings.CLASSIFIER_MAX_PIXELS, draft_size=THUMBNAIL_SIZE
        )
        # open_image has decoded every byte; reading the header again tells the
        # format and the stored size without another decode.
        header = Image.open(io.BytesIO(data), formats=preprocess.FORMATS)
    except preprocess.InvalidImage as exc:
        raise ValidationError(str(exc), code="invalid_image") from None
    content_type, ext = FORMAT_TYPES[header.format]
    width, height = image_size(header)

    result = get_predictor().predict(data)
    inference_ms = sum(result.timings_ms.values())

    # Random names: nothing about the user or the original file name leaks
    # into storage, and nothing can be guessed.
    stem = uuid.uuid4().hex
    stored = []
    try:
        stored.append(default_storage.save(f"photos/{stem}.{ext}", ContentFile(data)))
        stored.append(default_storage.save(f"thumbnails/{stem}.jpg", _thumbnail(image)))
        with transaction.atomic():
            upload = Upload.objects.create(
                owner=user,
                file=stored[0],
                thumbnail=stored[1],
                content_type=content_type,
                sha256=hashlib.sha256(data).hexdigest(),
                size=len(data),
                width=width,
                height=height,
            )
            prediction = Prediction.objects.create(
                upload=upload,
                model_version=result.model_version,
                label=result.label,
                confidence=result.confidence,
                probabilities=result.probabilities,
                answer=result.answer,
                threshold=result.threshold,
                inference_ms=inference_ms,
            )
    except BaseException:
        # No row was saved, so no file may stay behind either.
        for name in stored:
            default_storage.delete(name)
        raise
    log.info(
        "upload %s by %s: %s %.3f (%s, %.1f ms)",
        upload.pk,
        user.pk,
        result.label,
        result.confidence,
        result.model_version,
        inference_ms,
    )
    return prediction


@transaction.atomic
def prediction_set_feedback(*, prediction: Prediction, user, label: str) -> Prediction:
    """Record which class the owner says the photo shows."""
    if prediction.upload.owner_id != user.pk:
        raise PermissionError("only the owner can give feedback on a prediction")
    if label not in labels.CLASSES:
        raise ValidationError(f"{label!r} is not a class.", code="invalid_label")
    prediction.user_label = label
    prediction.user_flagged = label != prediction.claimed_label
    prediction.user_labelled_at = timezone.now()
    prediction.save(update_fields=["user_label", "user_flagged", "user_labelled_at"])
    return prediction


@transaction.atomic
def prediction_review(*, prediction: Prediction, reviewer, label: str) -> Prediction:
    """Set the reviewed label (or clear it with ""), recording who and when."""
    if label and label not in labels.CLASSES:
        raise ValidationError(f"{label!r} is not a class.", code="invalid_label")
    prediction.reviewed_label = label
    prediction.reviewed_by = reviewer if label else None
    prediction.reviewed_at = timezone.now() if label else None
    prediction.save(update_fields=["reviewed_label", "reviewed_by", "reviewed_at"])
    return prediction


def prediction_confirm(*, prediction: Prediction, reviewer) -> bool:
    """Review a prediction as the model's own answer; False when it gave none to confirm."""
    if prediction.claimed_label is None:
        return False
    prediction_review(prediction=prediction, reviewer=reviewer, label=prediction.claimed_label)
    return True


def image_size(img: Image.Image) -> tuple[int, int]:
    """Width and height as the photo is seen, after its EXIF rotation."""
    width, height = img.size
    try:
        orientation = img.getexif().get(0x0112, 1)
    except Exception:  # a broken EXIF block: open_image ignores it too
        orientation = 1
    if orientation in (5, 6, 7, 8):
        return height, width
    return width, height


def _read_capped(file) -> bytes:
    cap = settings.CLASSIFIER_MAX_UPLOAD_BYTES
    if file.size is not None and file.size > cap:
        raise ValidationError(too_large_message(cap), code="too_large")
    file.seek(0)
    data = file.read(cap + 1)
    if len(data) > cap:
        raise ValidationError(too_large_message(cap), code="too_large")
    if not data:
        raise ValidationError("The file is empty.", code="empty")
    return data


def too_large_message(cap: int) -> str:
    """The sentence shown for a file over the upload cap."""
    return f"This file is too large: the limit is {cap / (1024 * 1024):.0f} MB."


def _thumbnail(image: Image.Image) -> ContentFile:
    thumb = image.copy()
    thumb.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    thumb.save(out, "JPEG", quality=82, optimize=True)
    return ContentFile(out.getvalue())

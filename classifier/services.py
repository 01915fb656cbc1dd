"""Everything that changes data. Views, forms, admin actions and commands call these."""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import logging
import os
import secrets
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.admin.models import CHANGE, LogEntry
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage, storages
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from PIL import Image

from . import errors, selectors, serving
from .ml import labels, preprocess
from .ml.predictor import ModelError, Predictor, read_card, resolve_model
from .models import ApiToken, ModelVersion, Prediction, Upload

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
# The decode size of the photo, so that one decode serves the thumbnail and the model.
THUMBNAIL_SIZE = preprocess.DECODE_SIZE
# The longest side of the copy shown on the result page and the review screen.
DISPLAY_SIZE = 960


@dataclass(frozen=True)
class DeviceAnswer:
    """What the model in the user's browser said about a photo saved from the live page."""

    label: str
    answer: str
    confidence: float
    model_version: str

    def __post_init__(self):
        if self.label not in labels.CLASSES:
            raise ValidationError(f"{self.label!r} is not a class.", code="invalid_label")
        if self.answer not in (*labels.NOTES, labels.UNKNOWN):
            raise ValidationError(f"{self.answer!r} is not an answer.", code="invalid_answer")
        if not 0.0 <= self.confidence <= 1.0:
            raise ValidationError("The confidence must be within 0..1.", code="invalid")
        if not self.model_version or len(self.model_version) > 100:
            raise ValidationError("Which model gave the answer?", code="invalid")


def upload_create(*, user, file, device: DeviceAnswer | None = None) -> Prediction:
    """Check a photo by its content, store it, classify it and save Upload + Prediction.

    device is the browser's own answer, for a frame saved from the live page.
    Raises ValidationError for a photo the site does not accept, and
    errors.ServiceUnavailable when the model or the storage fails.
    """
    data = _read_capped(file)
    try:
        image = preprocess.open_image(data, max_pixels=settings.CLASSIFIER_MAX_PIXELS)
        # open_image has decoded every byte; reading the header again tells the
        # format and the stored size without another decode.
        header = Image.open(io.BytesIO(data), formats=preprocess.FORMATS)
    except preprocess.InvalidImage as exc:
        raise ValidationError(str(exc), code="invalid_image") from None
    content_type, ext = FORMAT_TYPES[header.format]
    width, height = image_size(header)

    try:
        predictor = serving.get_predictor()
    except ModelError as exc:
        log.exception("the classifier model is not usable")
        raise errors.model_unavailable() from exc
    # The photo was decoded once, above, at a size that serves both the
    # thumbnail and the model: decoding it again would cost as much as the
    # network itself.
    result = predictor.predict_image(image)
    inference_ms = sum(result.timings_ms.values())

    # Random names: nothing about the user or the original file name leaks
    # into storage, and nothing can be guessed.
    stem = uuid.uuid4().hex
    stored = []
    try:
        stored.append(default_storage.save(f"photos/{stem}.{ext}", ContentFile(data)))
        stored.append(default_storage.save(f"thumbnails/{stem}.jpg", _thumbnail(image)))
        stored.append(default_storage.save(f"display/{stem}.jpg", display_rendition(image)))
        with transaction.atomic():
            upload = Upload.objects.create(
                owner=user,
                file=stored[0],
                thumbnail=stored[1],
                display=stored[2],
                content_type=content_type,
                sha256=hashlib.sha256(data).hexdigest(),
                size=len(data),
                width=width,
                height=height,
            )
            prediction = Prediction.objects.create(
                upload=upload,
                model_version=result.model_version,
                model=_model_version_of(result.model_version, predictor),
                label=result.label,
                confidence=result.confidence,
                probabilities=result.probabilities,
                answer=result.answer,
                threshold=result.threshold,
                band=result.band,
                inference_ms=inference_ms,
                **_device_fields(device, result.answer),
            )
    except BaseException as exc:
        # No row was saved, so no file may stay behind either.
        for name in stored:
            default_storage.delete(name)
        if isinstance(exc, OSError):  # the media directory is full or not writable
            log.exception("could not store an upload")
            raise errors.storage_unavailable() from exc
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
        raise PermissionDenied("only the owner can give feedback on a prediction")
    if label not in labels.CLASSES:
        raise ValidationError(f"{label!r} is not a class.", code="invalid_label")
    prediction.user_label = label
    prediction.user_flagged = label != prediction.claimed_label
    prediction.user_labelled_at = timezone.now()
    prediction.save(update_fields=["user_label", "user_flagged", "user_labelled_at"])
    return prediction


@transaction.atomic
def prediction_review(*, prediction: Prediction, reviewer, label: str, how: str = "") -> Prediction:
    """Set the reviewed label (or clear it with ""), recording who, when and what it was."""
    if label and label not in labels.CLASSES:
        raise ValidationError(f"{label!r} is not a class.", code="invalid_label")
    before = prediction.reviewed_label
    prediction.reviewed_label = label
    prediction.reviewed_by = reviewer if label else None
    prediction.reviewed_at = timezone.now() if label else None
    prediction.save(update_fields=["reviewed_label", "reviewed_by", "reviewed_at"])
    if label != before:
        # Every change of a training label leaves a line on the object's
        # history page, whichever screen or bulk action made it.
        said = f"Reviewed label: {_label_or_none(before)} → {_label_or_none(label)}"
        LogEntry.objects.log_actions(
            reviewer.pk,
            [prediction],
            CHANGE,
            f"{said} ({how})" if how else said,
            single_object=True,
        )
    return prediction


def _label_or_none(label: str) -> str:
    return labels.display(label) if label else "none"


def prediction_confirm(*, prediction: Prediction, reviewer, how: str = "") -> bool:
    """Review a prediction as the model's own answer; False when it gave none to confirm."""
    if prediction.claimed_label is None:
        return False
    prediction_review(
        prediction=prediction,
        reviewer=reviewer,
        label=prediction.claimed_label,
        how=how or "the model's answer confirmed",
    )
    return True


def prediction_accept_user_label(*, prediction: Prediction, reviewer, how: str = "") -> bool:
    """Review a prediction as what its owner said it shows; False when they said nothing."""
    if not prediction.user_label:
        return False
    prediction_review(
        prediction=prediction,
        reviewer=reviewer,
        label=prediction.user_label,
        how=how or "the user's label accepted",
    )
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


def _model_version_of(version: str, predictor) -> ModelVersion | None:
    # Only the key: the card is a large JSON document, not needed here.
    found = ModelVersion.objects.filter(version=version).only("pk", "version").first()
    if found is None and predictor.path is not None:
        # A model loaded from a file nobody registered (a shell, a test server):
        # registered now, so that the prediction still says which model it was
        # (not published: no upload to the object store on the request path).
        found = model_version_register(model_path=predictor.path, publish=False)
    return found


def _device_fields(device: DeviceAnswer | None, server_answer: str) -> dict:
    if device is None:
        return {}
    return {
        "device_label": device.label,
        "device_answer": device.answer,
        "device_confidence": device.confidence,
        "device_model_version": device.model_version,
        # Different answers from the same photo: one of the two models (or the
        # browser's preprocessing) is wrong, and a reviewer should say which.
        "device_disagrees": device.answer != server_answer,
    }


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
    # The image is already the reduced decode (preprocess.open_image), so the
    # copy is small whatever the photo's size.
    thumb = image.copy()
    # Nothing of the original's metadata (comments, EXIF, XMP, ICC) is kept.
    thumb.info = {}
    # Bilinear after a box reduction (reducing_gap) looks the same as bicubic at
    # thumbnail size and costs half as much on the upload path.
    thumb.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE), Image.Resampling.BILINEAR, reducing_gap=2.0)
    out = io.BytesIO()
    thumb.save(out, "JPEG", quality=82)
    return ContentFile(out.getvalue())


def display_rendition(image: Image.Image) -> ContentFile:
    """A JPEG of the decoded photo for pages, at most DISPLAY_SIZE on its longest side."""
    # Made from the decode the model and the thumbnail use: a JPEG decoded at
    # reduced size (Image.draft) is already a few hundred pixels across, which
    # is what a result page shows, and costs nothing more to get.
    shown = image.copy()
    shown.thumbnail((DISPLAY_SIZE, DISPLAY_SIZE), Image.Resampling.BILINEAR, reducing_gap=2.0)
    out = io.BytesIO()
    # Plain baseline JPEG: "optimize" and "progressive" save 4% of the bytes
    # and cost twenty times the encoding time on the upload path.
    shown.save(out, "JPEG", quality=80)
    return ContentFile(out.getvalue())


# Deleting data ------------------------------------------------------------------


def upload_delete(*, upload: Upload, user) -> None:
    """Delete one of the user's photos: its row, its prediction and its three files."""
    if upload.owner_id != user.pk:
        raise PermissionDenied("only the owner can delete a photo")
    with transaction.atomic():
        names = [upload.file.name, upload.display.name, upload.thumbnail.name]
        upload.delete()
        # The files go once the rows are gone for good: a rolled-back delete
        # must not leave rows pointing at nothing.
        transaction.on_commit(lambda: _delete_files(names))
    log.info("upload %s deleted by its owner %s", upload.pk, user.pk)


def user_delete(*, user) -> None:
    """Delete an account and everything of it: uploads, predictions, files and API keys."""
    with transaction.atomic():
        names = [
            name
            for files in Upload.objects.filter(owner=user).values_list(
                "file", "display", "thumbnail"
            )
            for name in files
        ]
        pk = user.pk
        # API keys, uploads and predictions go with the user (on_delete=CASCADE);
        # the reviews this user made as staff stay, without a reviewer.
        user.delete()
        transaction.on_commit(lambda: _delete_files(names))
    log.info("user %s deleted with %d files", pk, len(names))


def _delete_files(names) -> None:
    for name in names:
        if not name:
            continue
        try:
            default_storage.delete(name)
        except OSError:
            # The rows are gone; a file left behind is found by its missing row.
            log.exception("could not delete %s", name)


# Reviewers ----------------------------------------------------------------------

REVIEWER_GROUP = "Reviewers"
# Enough to use the review screen and the prediction list, and to read the
# model versions' figures; nothing to delete, activate or add.
REVIEWER_PERMISSIONS = (
    ("classifier", "view_prediction"),
    ("classifier", "change_prediction"),
    ("classifier", "view_modelversion"),
)


@transaction.atomic
def reviewer_group_ensure(*, users=()):
    """Make (or repair) the Reviewers group with exactly its permissions; add users to it.

    The users are made staff, which the admin needs; being staff gives nothing else.
    """
    from django.contrib.auth.models import Group, Permission

    group, _ = Group.objects.get_or_create(name=REVIEWER_GROUP)
    wanted = Q()
    for app_label, codename in REVIEWER_PERMISSIONS:
        wanted |= Q(content_type__app_label=app_label, codename=codename)
    permissions = list(Permission.objects.filter(wanted))
    if len(permissions) != len(REVIEWER_PERMISSIONS):
        raise ValidationError("The permissions are missing: run `manage.py migrate` first.")
    group.permissions.set(permissions)
    for user in users:
        if not user.is_staff:
            user.is_staff = True
            user.save(update_fields=["is_staff"])
        user.groups.add(group)
    return group


# Model versions ---------------------------------------------------------------

# Where a version's files go in the object store (STORAGES["models"]).
MODEL_STORE_PREFIX = "models"
# A fetch from the object store that failed is not tried again by this
# process for this long: a refused object must not cost a download per upload.
MODEL_FETCH_RETRY_SECONDS = 30.0
_fetch_failures: dict[tuple[str, str], tuple[float, str]] = {}
# path -> ((inode, size, mtime), sha256): a file is hashed again only when it changed.
_hashes: dict[str, tuple[tuple[int, int, int], str]] = {}


def model_version_path(version: ModelVersion) -> Path:
    """The .tflite file of a version, wherever CLASSIFIER_MODELS_DIR is on this machine."""
    path = Path(version.file)
    return path if path.is_absolute() else Path(settings.CLASSIFIER_MODELS_DIR) / path


def model_version_file(version: ModelVersion) -> Path:
    """A .tflite of this version on this machine (its card beside it), checked against the row.

    Local files first (CLASSIFIER_MODELS_DIR, or where it was registered),
    then this machine's cache, then, with object storage, a fetch into the
    cache. Bytes whose SHA-256 differs from the row's are never returned:
    ModelError says where they came from.
    """
    local = model_version_path(version)
    if not version.sha256:
        # Registered before checksums were kept, from files unreadable since:
        # nothing to check against, and nothing to fetch by.
        return local
    if _files_match(local, version):
        return local
    if local.exists():
        log.warning(
            "%s is not the file registered as model version %s (sha256 %s, expected %s)",
            local,
            version.version,
            (_sha256_of(local) or "unreadable")[:12],
            version.sha256[:12],
        )
    cached = _cache_path(version)
    if _files_match(cached, version):
        return cached
    store = _model_store()
    if store is None:
        if local.exists():
            raise ModelError(
                f"model file {local} is not the one registered as {version.version}: "
                f"its sha256 differs from {version.sha256[:12]}…"
            )
        raise ModelError(f"model file {local} does not exist.")
    return _model_version_fetch(version, store)


def model_version_store_names(version: ModelVersion) -> tuple[str, str]:
    """The object names of a version's .tflite and card in the object store."""
    folder = f"{MODEL_STORE_PREFIX}/{version.version}"
    return f"{folder}/{version.version}.tflite", f"{folder}/{version.version}.json"


def model_version_publish(*, version: ModelVersion) -> list[str] | None:
    """Put the version's .tflite and card in the object store unless there already; names written.

    None without object storage. The files sent are checked against the row
    first: other machines would refuse anything else.
    """
    store = _model_store()
    if store is None:
        return None
    local = model_version_file(version)
    written = []
    for name, path, sha256 in zip(
        model_version_store_names(version),
        (local, local.with_suffix(".json")),
        (version.sha256, version.card_sha256),
        strict=True,
    ):
        # An object already there with the right checksum is not sent again; a
        # missing, older or tampered one is replaced.
        if store.sha256(name) == sha256:
            continue
        store.put(name, path, sha256=sha256)
        log.info("published %s (sha256 %s) to the object store", name, sha256[:12])
        written.append(name)
    return written


def model_version_register(*, model_path: str | Path, publish: bool = True) -> ModelVersion:
    """Record a model (a .tflite with its card beside it) as a version, inactive if new.

    The row keeps the SHA-256 of both files: under this version, those bytes
    and no others are served. With object storage the files are published
    there too (publish=False skips that; OSError when the store fails, after
    the row is saved, so registering again finishes the job).
    """
    from .ml.train import valid_version  # numpy only; no TensorFlow

    tflite, card_path = resolve_model(model_path)
    card = read_card(card_path)
    if "version" not in card:
        raise ModelError(f"model card {card_path} lacks the field 'version'")
    version = card["version"]
    if not isinstance(version, str) or not valid_version(version):
        # The name becomes file and object names on every machine.
        raise ModelError(
            f"model card {card_path}: version {version!r} must be letters, digits, dot, dash "
            "and underscore"
        )
    sha256, card_sha256 = _sha256_of(tflite), _sha256_of(card_path)
    if sha256 is None or card_sha256 is None:
        raise ModelError(f"cannot read {tflite} or its card {card_path}")
    # Inside the models directory the path is stored relative to it, so that
    # the web and train containers, which mount it in different places, agree.
    try:
        file = str(tflite.resolve().relative_to(Path(settings.CLASSIFIER_MODELS_DIR).resolve()))
    except ValueError:
        file = str(tflite.resolve())
    created = parse_datetime(str(card.get("created", ""))) or timezone.now()
    with transaction.atomic():
        known = ModelVersion.objects.select_for_update().filter(version=version).first()
        if (
            known is not None
            and known.sha256
            and (known.sha256, known.card_sha256)
            != (
                sha256,
                card_sha256,
            )
        ):
            # Predictions name the version: its model must never change under them.
            raise ModelError(
                f"{tflite} is not the model registered as {version} (sha256 {sha256[:12]}… "
                f"and card {card_sha256[:12]}…, registered {known.sha256[:12]}… and "
                f"{known.card_sha256[:12]}…): give it a version name of its own"
            )
        obj, _ = ModelVersion.objects.update_or_create(
            version=version,
            defaults={
                "file": file,
                "card": card,
                "created": created,
                "sha256": sha256,
                "card_sha256": card_sha256,
            },
        )
        # Predictions made before the version was registered name it only by string.
        Prediction.objects.filter(model=None, model_version=version).update(model=obj)
    if publish:
        model_version_publish(version=obj)
    return obj


@transaction.atomic
def model_version_sync() -> ModelVersion | None:
    """Register the models on disk; if none is active, activate the seed (models/CURRENT)."""
    models_dir = Path(settings.CLASSIFIER_MODELS_DIR)
    if models_dir.is_dir():
        for tflite in sorted(models_dir.glob("*.tflite")):
            try:
                model_version_register(model_path=tflite)
            except ModelError as exc:
                log.warning("not registering %s: %s", tflite, exc)
            except OSError as exc:
                log.warning("%s is registered but not in the object store: %s", tflite, exc)
    configured = None
    try:
        configured = model_version_register(model_path=models_dir, publish=False)
    except ModelError:
        log.warning("the seed model of %s (its CURRENT) is not usable", models_dir)
    active = ModelVersion.objects.select_for_update().filter(is_active=True).first()
    if active is None and configured is not None:
        configured.is_active = True
        configured.activated_at = timezone.now()
        configured.save(update_fields=["is_active", "activated_at"])
        active = configured
        log.info("model version %s is active (first run)", active.version)
    return active


def model_version_activate(*, version: ModelVersion) -> ModelVersion:
    """Make this version the one every worker serves (and the others inactive)."""
    # Load it first (fetched and checked, if this machine lacks it): a version
    # that cannot be served must never become active, or every worker would
    # keep failing to switch to it.
    Predictor.load(model_version_file(version), num_threads=1)
    with transaction.atomic():
        ModelVersion.objects.select_for_update().filter(is_active=True).exclude(
            pk=version.pk
        ).update(is_active=False)
        version.is_active = True
        version.activated_at = timezone.now()
        version.save(update_fields=["is_active", "activated_at"])
    log.info("model version %s activated", version.version)
    return version


def _model_store():
    # The "models" storage exists only with a bucket (usbills_site/storage.py).
    return storages["models"] if "models" in settings.STORAGES else None


def _cache_path(version: ModelVersion) -> Path:
    return Path(settings.CLASSIFIER_MODEL_CACHE) / f"{version.version}.tflite"


def _files_match(tflite: Path, version: ModelVersion) -> bool:
    return (
        _sha256_of(tflite) == version.sha256
        and _sha256_of(tflite.with_suffix(".json")) == version.card_sha256
    )


def _sha256_of(path: Path) -> str | None:
    """The file's SHA-256, or None when it cannot be read; hashed again only after a change."""
    try:
        st = path.stat()
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        known = _hashes.get(str(path))
        if known is not None and known[0] == stamp:
            return known[1]
        digest = hashlib.sha256()
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    except OSError:
        return None
    _hashes[str(path)] = (stamp, digest.hexdigest())
    return digest.hexdigest()


def _model_version_fetch(version: ModelVersion, store) -> Path:
    """Fetch the version into this machine's cache, once, and check it; ModelError if refused."""
    key = (version.version, version.sha256)
    failed = _fetch_failures.get(key)
    if failed is not None and time.monotonic() - failed[0] < MODEL_FETCH_RETRY_SECONDS:
        raise ModelError(failed[1])
    target = _cache_path(version)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # One fetch per machine: the other workers wait here, then find the
        # checked files in place.
        with (target.parent / f".{version.version}.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            names = model_version_store_names(version)
            for name, path, sha256 in (
                (names[1], target.with_suffix(".json"), version.card_sha256),
                (names[0], target, version.sha256),
            ):
                if _sha256_of(path) != sha256:
                    _fetch_one(store, name, path, sha256, version)
    except ModelError as exc:
        _fetch_failures[key] = (time.monotonic(), str(exc))
        log.error("%s", exc)
        raise
    except OSError as exc:
        message = f"cannot fetch model version {version.version} from the object store: {exc}"
        _fetch_failures[key] = (time.monotonic(), message)
        log.error("%s", message)
        raise ModelError(message) from exc
    _fetch_failures.pop(key, None)
    return target


def _fetch_one(store, name: str, path: Path, sha256: str, version: ModelVersion) -> None:
    # Into a temporary file beside the target, flushed to disk and checked,
    # then renamed over it: a reader sees the old file or the whole new one,
    # never a part, and never bytes that were not checked.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            for chunk in store.chunks(name):
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != sha256:
            raise ModelError(
                f"refused {name} from the object store: its sha256 is {digest.hexdigest()[:12]}…, "
                f"model version {version.version} is registered with {sha256[:12]}… "
                "(the object was corrupted or replaced; registering the right file again "
                "publishes it again)"
            )
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide it from a worker running as another user
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a crash
    finally:
        os.close(dir_fd)
    log.info("fetched %s (sha256 %s) from the object store into %s", name, sha256[:12], path)


# Training data ------------------------------------------------------------------


def training_data_export(*, out: str | Path) -> dict:
    """Write every reviewed photo into out/<reviewed label>/, once per distinct photo.

    Returns {"classes": {label: photos in the tree}, "written": n, "unchanged": n,
    "missing": [prediction ids whose file is gone]}.
    """
    out = Path(out)
    # The same photo uploaded twice is one training example: keyed by its
    # content hash, the latest review wins.
    chosen: dict[str, Prediction] = {}
    for prediction in selectors.prediction_list_labelled():
        chosen[prediction.upload.sha256 or f"upload-{prediction.upload_id}"] = prediction
    written = unchanged = 0
    missing = []
    counts = dict.fromkeys(labels.CLASSES, 0)
    for key, prediction in chosen.items():
        ext = Path(prediction.upload.file.name).suffix or ".jpg"
        name = f"{key[:32]}{ext}"
        target = out / prediction.reviewed_label / name
        # Relabelled since the last export: the photo moves to its new class.
        for label in labels.CLASSES:
            stale = out / label / name
            if label != prediction.reviewed_label and stale.exists():
                stale.unlink()
        if target.exists():
            unchanged += 1
            counts[prediction.reviewed_label] += 1
            continue
        try:
            with default_storage.open(prediction.upload.file.name, "rb") as src:
                data = src.read()
        except FileNotFoundError:
            missing.append(prediction.pk)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        written += 1
        counts[prediction.reviewed_label] += 1
    return {"classes": counts, "written": written, "unchanged": unchanged, "missing": missing}


def model_version_train(
    *,
    data: str | Path,
    version: str = "",
    variants: int | None = None,
    head_epochs: int | None = None,
    finetune_epochs: int | None = None,
    processes: int | None = None,
    log=print,
) -> ModelVersion:
    """Train a candidate on the base data plus the reviewed photos; register it inactive."""
    from .ml.train import Config, train  # TensorFlow: only the train image has it

    schedule = {
        k: v
        for k, v in (
            ("variants", variants),
            ("head_epochs", head_epochs),
            ("finetune_epochs", finetune_epochs),
        )
        if v is not None
    }

    active = model_version_sync()
    models_dir = Path(settings.CLASSIFIER_MODELS_DIR)
    with tempfile.TemporaryDirectory(prefix="corrections-") as corrections:
        report = training_data_export(out=corrections)
        exported = sum(report["classes"].values())
        log(f"corrections: {exported} reviewed photos " + json.dumps(report["classes"]))
        cfg = Config(
            data=str(data),
            out=str(models_dir),
            version=version,
            processes=processes,
            **schedule,
            extra=(corrections,) if exported else (),
            compare_with=str(model_version_file(active)) if active else None,
            # No final run on all the data: the candidate must not have seen the
            # held-out photos (30% of the corrections among them) that both
            # models are scored on, or the comparison would flatter it.
            final=False,
            # Which model serves is the database's decision (activate_model).
            make_current=False,
        )
        tflite = train(cfg, log=log)
    candidate = model_version_register(model_path=tflite, publish=False)
    try:
        model_version_publish(version=candidate)
    except OSError as exc:
        # Hours of training are not thrown away for a store that is down.
        log(
            f"{candidate.version} is registered but not in the object store ({exc}): "
            f"publish it with `manage.py register_model {tflite}`"
        )
    return candidate


# API tokens -----------------------------------------------------------------------

API_TOKEN_PREFIX = "usb_"  # noqa: S105  (a marker that makes leaked keys easy to find)


def api_token_hash(key: str) -> str:
    """The stored form of a key: its SHA-256 (keys are random, so no salt is needed)."""
    return hashlib.sha256(key.encode()).hexdigest()


@transaction.atomic
def api_token_create(*, user, name: str) -> tuple[ApiToken, str]:
    """Make a key for the user; returns the record and the key, which is never stored."""
    name = name.strip()[:100]
    if not name:
        raise ValidationError("Give the key a name.", code="required")
    key = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user, name=name, prefix=key[:10], key_hash=api_token_hash(key)
    )
    return token, key


@transaction.atomic
def api_token_revoke(*, token: ApiToken, user) -> ApiToken:
    """Revoke one of the user's keys; it stops working at once."""
    if token.user_id != user.pk:
        raise PermissionDenied("only the owner can revoke a key")
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token


def api_token_authenticate(*, key: str):
    """The active user a key belongs to, or None; notes when the key was last used."""
    token = (
        ApiToken.objects.select_related("user")
        .filter(key_hash=api_token_hash(key), revoked_at=None, user__is_active=True)
        .first()
    )
    if token is None:
        return None
    now = timezone.now()
    # At most one write a minute per key, not one per request.
    if token.last_used is None or (now - token.last_used).total_seconds() > 60:
        ApiToken.objects.filter(pk=token.pk).update(last_used=now)
    return token.user

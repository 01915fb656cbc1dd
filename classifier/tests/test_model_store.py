"""Model files in the object store: registering publishes a version's .tflite and
card; a machine that lacks them fetches them once, checks their SHA-256 against
the row, and serves them; a replaced object is refused while the old model keeps
serving. A real S3-compatible server (SeaweedFS on loopback), as in
test_storage_s3.py; "machines" are a models directory and a cache of their own."""

from __future__ import annotations

import hashlib
import importlib
import io
import json
import logging
import shutil
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.apps import apps
from django.core.management import CommandError, call_command
from django.urls import reverse

from classifier import selectors, services, serving
from classifier.ml.predictor import ModelError
from classifier.models import ModelVersion
from conftest import BUCKET, REPO, image_bytes, uploaded
from usbills_site import storage

pytestmark = pytest.mark.django_db


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(autouse=True)
def _fresh_fetch_memory(monkeypatch):
    # A refused fetch is remembered for a while by the process: not between tests.
    monkeypatch.setattr(services, "_fetch_failures", {})


class Machine:
    """One host of the deployment: its own models directory (the image's) and model cache."""

    def __init__(self, root: Path, *model_dirs: Path):
        self.models = root / "models"
        self.cache = root / "cache"
        self.models.mkdir(parents=True)
        for d in model_dirs:
            for f in d.iterdir():
                shutil.copy(f, self.models / f.name)

    def enter(self, settings) -> Machine:
        """Run what follows as this machine."""
        settings.CLASSIFIER_MODELS_DIR = self.models
        settings.CLASSIFIER_MODEL_CACHE = self.cache
        return self

    def cached(self) -> list[str]:
        return sorted(p.name for p in self.cache.iterdir()) if self.cache.is_dir() else []


@pytest.fixture
def machine_a(settings, tmp_path, tiny_model_dir, tiny_model_2_dir):
    """Where the versions were made: both tiny models in its models directory."""
    return Machine(tmp_path / "a", tiny_model_dir, tiny_model_2_dir).enter(settings)


@pytest.fixture
def machine_b(tmp_path, tiny_model_dir):
    """Another replica: its image has only the seed (tiny-test), and its cache is empty."""
    return Machine(tmp_path / "b", tiny_model_dir)


class Store:
    """The test's folder of the bucket (DJANGO_S3_PREFIX), seen with a plain S3 client."""

    def __init__(self, server, prefix):
        self.client = server.client()
        self.prefix = prefix

    def objects(self) -> dict[str, dict]:
        listing = self.client.list_objects_v2(Bucket=BUCKET, Prefix=self.prefix + "/")
        found = {}
        for item in listing.get("Contents", []):
            got = self.client.get_object(Bucket=BUCKET, Key=item["Key"])
            found[item["Key"].removeprefix(self.prefix + "/")] = {
                "body": got["Body"].read(),
                "sha256": got["Metadata"].get("sha256"),
                "etag": got["ETag"],
                "modified": got["LastModified"],
            }
        return found

    def replace(self, name: str, body: bytes, **metadata):
        """What an attacker or a broken disk would do: other bytes under the same name."""
        self.client.put_object(
            Bucket=BUCKET, Key=f"{self.prefix}/{name}", Body=body, Metadata=metadata
        )


@pytest.fixture
def model_store(s3_server, s3_bucket, settings):
    """STORAGES["models"] as DJANGO_S3_BUCKET makes it, in a folder of this test's own."""
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    config = storage.model_storage(
        {
            "DJANGO_S3_BUCKET": s3_bucket,
            "DJANGO_S3_ENDPOINT_URL": s3_server.endpoint_url,
            "DJANGO_S3_ACCESS_KEY_ID": s3_server.access_key,
            "DJANGO_S3_SECRET_ACCESS_KEY": s3_server.secret_key,
            "DJANGO_S3_PREFIX": prefix,
        }
    )
    settings.STORAGES = {**settings.STORAGES, "models": config}
    return Store(s3_server, prefix)


TINY2 = ["models/tiny-2/tiny-2.json", "models/tiny-2/tiny-2.tflite"]


# Publishing -----------------------------------------------------------------------


def test_registering_publishes_the_model_and_its_card(model_store, machine_a):
    tflite = (machine_a.models / "tiny-2.tflite").read_bytes()
    card = (machine_a.models / "tiny-2.json").read_bytes()

    tiny2 = services.model_version_register(model_path=machine_a.models / "tiny-2.tflite")

    assert (tiny2.sha256, tiny2.card_sha256) == (sha256(tflite), sha256(card))
    found = model_store.objects()
    assert sorted(found) == TINY2
    assert found["models/tiny-2/tiny-2.tflite"]["body"] == tflite
    assert found["models/tiny-2/tiny-2.tflite"]["sha256"] == tiny2.sha256
    assert found["models/tiny-2/tiny-2.json"]["body"] == card
    assert found["models/tiny-2/tiny-2.json"]["sha256"] == tiny2.card_sha256
    # The row, not the bucket, keeps where the file is on the machine that registered it.
    assert tiny2.file == "tiny-2.tflite"


def test_registering_again_uploads_nothing_but_repairs_a_replaced_object(
    model_store, machine_a, caplog
):
    path = machine_a.models / "tiny-2.tflite"
    services.model_version_register(model_path=path)
    before = model_store.objects()
    caplog.set_level(logging.INFO, logger="classifier.services")
    caplog.clear()

    again = services.model_version_register(model_path=path)

    assert "published" not in caplog.text
    assert services.model_version_publish(version=again) == []
    assert model_store.objects() == before  # same ETag, same time: not written again

    # An object with other bytes (and no checksum, or a wrong one) is replaced.
    model_store.replace("models/tiny-2/tiny-2.tflite", b"not a model")
    model_store.replace("models/tiny-2/tiny-2.json", b"{}", sha256="0" * 64)
    assert sorted(services.model_version_publish(version=again)) == TINY2
    assert {k: v["body"] for k, v in model_store.objects().items()} == {
        k: v["body"] for k, v in before.items()
    }


def test_a_first_start_publishes_every_model_of_the_image(model_store, machine_a):
    active = services.model_version_sync()

    assert active.version == "tiny-test"
    assert sorted(model_store.objects()) == [
        "models/tiny-2/tiny-2.json",
        "models/tiny-2/tiny-2.tflite",
        "models/tiny-test/tiny-test.json",
        "models/tiny-test/tiny-test.tflite",
    ]


# Fetching -------------------------------------------------------------------------


def test_a_worker_on_another_machine_fetches_checks_and_serves_the_active_version(
    model_store, machine_a, machine_b, settings, use_predictor, tiny_predictor, user
):
    services.model_version_sync()
    tiny2 = selectors.model_version_get(version="tiny-2")
    services.model_version_activate(version=tiny2)
    assert machine_a.cached() == []  # machine A had the files: nothing fetched there

    # A worker starting on machine B, which has never seen tiny-2.
    machine_b.enter(settings)
    use_predictor(None)
    predictor = serving.start()

    assert predictor.version == "tiny-2"
    assert predictor.path == machine_b.cache / "tiny-2.tflite"
    assert sha256(predictor.path.read_bytes()) == tiny2.sha256
    assert sha256(predictor.path.with_suffix(".json").read_bytes()) == tiny2.card_sha256
    assert machine_b.cached() == [".tiny-2.lock", "tiny-2.json", "tiny-2.tflite"]
    prediction = services.upload_create(user=user, file=uploaded(image_bytes()))
    assert prediction.model == tiny2

    # A worker that was serving tiny-test there switches at its next upload,
    # from the copy already fetched.
    use_predictor(tiny_predictor)
    assert serving.get_predictor().version == "tiny-2"
    assert serving.get_predictor().path == machine_b.cache / "tiny-2.tflite"


def test_a_replaced_object_is_refused_and_the_old_model_keeps_serving(
    model_store,
    machine_a,
    machine_b,
    settings,
    use_predictor,
    tiny_predictor,
    user,
    caplog,
    monkeypatch,
):
    services.model_version_sync()
    tiny2 = selectors.model_version_get(version="tiny-2")
    services.model_version_activate(version=tiny2)
    # Another valid model under tiny-2's name: it would load, and answer wrongly.
    tiny_test = (machine_a.models / "tiny-test.tflite").read_bytes()
    model_store.replace("models/tiny-2/tiny-2.tflite", tiny_test, sha256=tiny2.sha256)

    machine_b.enter(settings)
    use_predictor(tiny_predictor)
    caplog.set_level(logging.INFO)
    predictor = serving.get_predictor()

    assert predictor.version == "tiny-test"
    refusals = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert refusals
    message = refusals[0].getMessage()
    assert "refused models/tiny-2/tiny-2.tflite from the object store" in message
    assert f"its sha256 is {sha256(tiny_test)[:12]}" in message
    assert f"registered with {tiny2.sha256[:12]}" in message
    # Nothing unchecked is left where a worker could load it.
    assert "tiny-2.tflite" not in machine_b.cached()
    assert not [n for n in machine_b.cached() if n.endswith(".part")]
    assert services.upload_create(user=user, file=uploaded(image_bytes())).model_version == (
        "tiny-test"
    )
    # Refused once, not downloaded again at every upload.
    caplog.clear()
    serving.get_predictor()
    assert "fetched" not in caplog.text

    # A worker starting there now serves the seed rather than nothing.
    use_predictor(None)
    assert serving.start().version == "tiny-test"

    # activate_model on that machine refuses it too.
    call_command("activate_model", "tiny-test", stdout=io.StringIO())
    with pytest.raises(CommandError, match="cannot be served.*refused models/tiny-2/tiny-2.tflite"):
        call_command("activate_model", "tiny-2", stdout=io.StringIO())

    # Registering the right file again publishes it again; workers then follow.
    machine_a.enter(settings)
    call_command("register_model", str(machine_a.models / "tiny-2.tflite"), stdout=io.StringIO())
    machine_b.enter(settings)
    monkeypatch.setattr(services, "MODEL_FETCH_RETRY_SECONDS", 0)
    call_command("activate_model", "tiny-2", stdout=io.StringIO())
    assert serving.get_predictor().version == "tiny-2"


def test_a_local_file_is_checked_too(model_store, machine_a, machine_b, settings, caplog):
    services.model_version_sync()
    tiny2 = selectors.model_version_get(version="tiny-2")
    # Machine B's image has a tiny-2 of its own, with other bytes.
    machine_b.enter(settings)
    shutil.copy(machine_b.models / "tiny-test.tflite", machine_b.models / "tiny-2.tflite")
    shutil.copy(machine_a.models / "tiny-2.json", machine_b.models / "tiny-2.json")

    path = services.model_version_file(tiny2)

    # Not served: the store's copy, checked, is.
    assert path == machine_b.cache / "tiny-2.tflite"
    assert sha256(path.read_bytes()) == tiny2.sha256
    assert "is not the file registered as model version tiny-2" in caplog.text


def test_concurrent_fetches_on_one_machine_leave_one_good_file(
    model_store, machine_a, machine_b, settings, caplog
):
    services.model_version_sync()
    tiny2 = selectors.model_version_get(version="tiny-2")
    machine_b.enter(settings)
    caplog.set_level(logging.INFO, logger="classifier.services")
    start = threading.Barrier(4)

    def fetch(_):
        start.wait()
        return services.model_version_file(tiny2)

    with ThreadPoolExecutor(4) as pool:
        paths = set(pool.map(fetch, range(4)))

    assert paths == {machine_b.cache / "tiny-2.tflite"}
    fetched = [r.getMessage() for r in caplog.records if r.getMessage().startswith("fetched")]
    assert len(fetched) == 2, fetched  # the .tflite and the card, once each
    assert machine_b.cached() == [".tiny-2.lock", "tiny-2.json", "tiny-2.tflite"]
    assert sha256((machine_b.cache / "tiny-2.tflite").read_bytes()) == tiny2.sha256


# As gunicorn's workers do: processes of their own, configured by the environment.
FETCH_IN_A_PROCESS = """
import os, sys, time
from pathlib import Path
import django
django.setup()
from classifier import services
from classifier.models import ModelVersion
version, sha256, card_sha256, go = sys.argv[1:]
row = ModelVersion(
    version=version, file=version + ".tflite", sha256=sha256, card_sha256=card_sha256
)
Path(f"{go}.{os.getpid()}").touch()
while not Path(go).exists():
    time.sleep(0.001)
print("PATH", services.model_version_file(row), flush=True)
"""


def test_worker_processes_fetch_a_version_once(
    model_store, s3_server, s3_bucket, machine_a, machine_b, tmp_path
):
    services.model_version_sync()
    tiny2 = selectors.model_version_get(version="tiny-2")
    go = tmp_path / "go"
    env = {
        "PATH": "/usr/bin:/bin",
        "DJANGO_SETTINGS_MODULE": "usbills_site.settings",
        "DJANGO_DEBUG": "1",
        "DJANGO_S3_BUCKET": s3_bucket,
        "DJANGO_S3_ENDPOINT_URL": s3_server.endpoint_url,
        "DJANGO_S3_ACCESS_KEY_ID": s3_server.access_key,
        "DJANGO_S3_SECRET_ACCESS_KEY": s3_server.secret_key,
        "DJANGO_S3_PREFIX": model_store.prefix,
        "CLASSIFIER_MODELS_DIR": str(machine_b.models),
        "CLASSIFIER_MODEL_CACHE": str(machine_b.cache),
    }
    workers = [
        subprocess.Popen(  # noqa: S603 - our own arguments
            [
                sys.executable,
                "-c",
                FETCH_IN_A_PROCESS,
                "tiny-2",
                tiny2.sha256,
                tiny2.card_sha256,
                str(go),
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(3)
    ]
    try:
        deadline = time.monotonic() + 120
        while len(list(tmp_path.glob("go.*"))) < len(workers):
            assert time.monotonic() < deadline, "the workers did not start"
            assert all(w.poll() is None for w in workers), [w.communicate() for w in workers]
            time.sleep(0.05)
        go.touch()  # all at once
        outputs = [w.communicate(timeout=60)[0] for w in workers]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.wait()

    assert [w.returncode for w in workers] == [0, 0, 0], outputs
    assert all(f"PATH {machine_b.cache / 'tiny-2.tflite'}" in out for out in outputs), outputs
    log = "".join(outputs)
    assert log.count("fetched models/tiny-2/tiny-2.tflite") == 1, log
    assert machine_b.cached() == [".tiny-2.lock", "tiny-2.json", "tiny-2.tflite"]
    assert sha256((machine_b.cache / "tiny-2.tflite").read_bytes()) == tiny2.sha256


def test_a_store_that_cannot_be_reached_leaves_the_old_model_serving(
    machine_a, machine_b, settings, use_predictor, tiny_predictor
):
    from classifier.tests.deploy.stack import free_port

    services.model_version_sync()
    services.model_version_activate(version=selectors.model_version_get(version="tiny-2"))
    machine_b.enter(settings)
    settings.STORAGES = {
        **settings.STORAGES,
        "models": storage.model_storage(
            {
                "DJANGO_S3_BUCKET": "models",
                "DJANGO_S3_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
                "DJANGO_S3_ACCESS_KEY_ID": "key",
                "DJANGO_S3_SECRET_ACCESS_KEY": "secret",
            }
        ),
    }
    use_predictor(tiny_predictor)

    assert serving.get_predictor().version == "tiny-test"
    with pytest.raises(ModelError, match="cannot fetch model version tiny-2 from the object store"):
        services.model_version_file(selectors.model_version_get(version="tiny-2"))


# register_model -------------------------------------------------------------------


def copy_as(src: Path, out: Path, version: str) -> Path:
    """The model of src under another version name: the same .tflite, its card renamed."""
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(src, out / f"{version}.tflite")
    card = json.loads(src.with_suffix(".json").read_text())
    (out / f"{version}.json").write_text(json.dumps({**card, "version": version}))
    return out / f"{version}.tflite"


def test_register_model_publishes_a_copy_that_another_replica_activates(
    model_store, machine_a, machine_b, settings, tmp_path, use_predictor, tiny_predictor
):
    services.model_version_sync()
    copy = copy_as(machine_a.models / "tiny-2.tflite", tmp_path / "elsewhere", "tiny-copy")
    out = io.StringIO()

    call_command("register_model", str(copy), stdout=out)

    row = selectors.model_version_get(version="tiny-copy")
    assert not row.is_active
    assert row.sha256 == selectors.model_version_get(version="tiny-2").sha256
    assert f"tiny-copy is registered (sha256 {row.sha256[:12]}), not active" in out.getvalue()
    assert "published to the object store: models/tiny-copy/tiny-copy.tflite" in out.getvalue()
    assert "activate_model tiny-copy" in out.getvalue()
    assert "models/tiny-copy/tiny-copy.json" in model_store.objects()
    again = io.StringIO()
    call_command("register_model", str(copy), stdout=again)
    assert "already in the object store" in again.getvalue()

    # From another replica, which cannot see the file (the machines here share a disk).
    copy.unlink()
    machine_b.enter(settings)
    listing = io.StringIO()
    call_command("activate_model", "--list", stdout=listing)
    assert f"sha256 {row.sha256[:12]}" in listing.getvalue()
    call_command("activate_model", "tiny-copy", stdout=io.StringIO())
    use_predictor(tiny_predictor)
    assert serving.get_predictor().version == "tiny-copy"
    assert serving.get_predictor().path == machine_b.cache / "tiny-copy.tflite"


def test_register_model_refuses_other_bytes_under_a_known_version(machine_a, tmp_path):
    services.model_version_sync()
    # tiny-test's card, tiny-2's weights: not the registered tiny-test.
    out = tmp_path / "impostor"
    out.mkdir()
    shutil.copy(machine_a.models / "tiny-2.tflite", out / "tiny-test.tflite")
    shutil.copy(machine_a.models / "tiny-test.json", out / "tiny-test.json")

    with pytest.raises(CommandError, match="not the model registered as tiny-test"):
        call_command("register_model", str(out / "tiny-test.tflite"))
    with pytest.raises(CommandError, match="letters, digits"):
        call_command("register_model", str(copy_as(out / "tiny-test.tflite", out, "a b")))
    with pytest.raises(CommandError, match="does not exist"):
        call_command("register_model", str(out / "nothing.tflite"))


# Without object storage --------------------------------------------------------------


def test_without_object_storage_nothing_is_published_or_fetched(
    machine_a, machine_b, settings, tmp_path, use_predictor, tiny_predictor
):
    assert "models" not in settings.STORAGES
    copy = copy_as(machine_a.models / "tiny-2.tflite", tmp_path / "elsewhere", "tiny-copy")
    out = io.StringIO()
    call_command("register_model", str(copy), stdout=out)
    row = selectors.model_version_get(version="tiny-copy")
    assert row.sha256 == sha256(copy.read_bytes())
    assert f"no object storage: it is served from {copy}" in out.getvalue()
    assert services.model_version_publish(version=row) is None
    # Served from where it was registered, as before.
    call_command("activate_model", "tiny-copy", stdout=io.StringIO())
    use_predictor(tiny_predictor)
    assert serving.get_predictor().path == copy

    # A machine that cannot see the file cannot activate it, and fetches nothing.
    copy.unlink()
    machine_b.enter(settings)
    call_command("activate_model", "tiny-test", stdout=io.StringIO())
    with pytest.raises(CommandError, match="cannot be served.*does not exist"):
        call_command("activate_model", "tiny-copy")
    assert not machine_b.cache.exists()


def test_without_object_storage_a_changed_local_file_is_not_served(
    machine_a, settings, use_predictor, tiny_predictor, user
):
    services.model_version_sync()
    services.model_version_activate(version=selectors.model_version_get(version="tiny-2"))
    # The file changes under the version's name after it was registered.
    shutil.copy(machine_a.models / "tiny-test.tflite", machine_a.models / "tiny-2.tflite")
    use_predictor(tiny_predictor)

    assert serving.get_predictor().version == "tiny-test"
    with pytest.raises(ModelError, match="is not the one registered as tiny-2"):
        services.model_version_file(selectors.model_version_get(version="tiny-2"))
    # Starting again does not register the other bytes under the old name either.
    assert services.model_version_sync().version == "tiny-2"
    assert selectors.model_version_get(version="tiny-2").sha256 != sha256(
        (machine_a.models / "tiny-2.tflite").read_bytes()
    )


def test_a_version_registered_before_checksums_is_served_as_before(model_store, machine_a):
    services.model_version_sync()
    ModelVersion.objects.filter(version="tiny-2").update(sha256="", card_sha256="")
    tiny2 = selectors.model_version_get(version="tiny-2")

    assert services.model_version_file(tiny2) == machine_a.models / "tiny-2.tflite"
    # But nothing unchecked goes to the store.
    with pytest.raises(ModelError, match="no checksums yet"):
        services.model_version_publish(version=tiny2)
    # Registering it again records them.
    services.model_version_sync()
    assert selectors.model_version_get(version="tiny-2").sha256


def test_the_migration_fills_the_checksums_from_readable_files(machine_a, tmp_path):
    migration = importlib.import_module("classifier.migrations.0005_model_version_sha256")
    services.model_version_sync()
    expected = dict(ModelVersion.objects.values_list("version", "sha256"))
    ModelVersion.objects.update(sha256="", card_sha256="")
    ModelVersion.objects.filter(version="tiny-2").update(file=str(tmp_path / "gone.tflite"))

    migration.fill_checksums(apps, None)

    found = dict(ModelVersion.objects.values_list("version", "sha256"))
    assert found == {"tiny-test": expected["tiny-test"], "tiny-2": ""}


def test_the_model_storage_exists_only_with_a_bucket():
    assert storage.model_storage({}) is None
    config = storage.model_storage({"DJANGO_S3_BUCKET": "photos", "DJANGO_S3_PREFIX": "usbills"})
    assert config["BACKEND"] == storage.MODELS_S3
    assert config["OPTIONS"]["bucket_name"] == "photos"
    assert config["OPTIONS"]["location"] == "usbills"
    assert config["OPTIONS"]["default_acl"] is None


def test_the_admin_shows_the_checksums(machine_a, staff_user, client):
    services.model_version_sync()
    tiny2 = selectors.model_version_get(version="tiny-2")
    client.force_login(staff_user)

    listing = client.get(reverse("admin:classifier_modelversion_changelist")).content.decode()
    page = client.get(tiny2.get_absolute_url()).content.decode()

    assert tiny2.sha256[:12] in listing
    assert tiny2.sha256 not in listing  # short in the list...
    assert tiny2.sha256 in page  # ...whole on the version's page, with the card's
    assert tiny2.card_sha256 in page

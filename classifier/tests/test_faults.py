"""Faults: the database going away and coming back, a worker killed in the
middle of uploads, a missing or corrupt model, a media directory that cannot
be written.

The database outage runs the real stack (nginx, gunicorn, Django) against a
throwaway Postgres cluster of the test's own (initdb/pg_ctl, on a free
loopback port), which it stops and starts by pg_ctl: the machine's Postgres
server is never touched.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from classifier.models import Prediction, Upload
from classifier.tests.deploy import smoke
from classifier.tests.deploy.client import Client
from classifier.tests.deploy.stack import REPO, Stack, find_nginx, free_port, stop, wait_for
from conftest import image_bytes, media_files, uploaded

PG_BINS = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))


# A throwaway Postgres cluster -------------------------------------------------


class Cluster:
    """initdb + pg_ctl in a temporary directory, as the postgres user when run as root."""

    def __init__(self):
        self.bin = PG_BINS[-1].parent
        self.dir = Path(tempfile.mkdtemp(prefix="usbills-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool, *args):
        return subprocess.run(
            [*self.as_user, str(self.bin / tool), *args],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def start(self):
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.dir / "log"),
            "-w",
            "start",
        )

    def stop(self):
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def destroy(self):
        subprocess.run(
            [
                *self.as_user,
                str(self.bin / "pg_ctl"),
                "-D",
                str(self.data),
                "-m",
                "immediate",
                "stop",
            ],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster():
    if not PG_BINS:
        pytest.skip("no Postgres server binaries in /usr/lib/postgresql to make a cluster with")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        pytest.skip("runuser is needed to run initdb as the postgres user")
    pg = Cluster()
    try:
        pg.start()
        yield pg
    finally:
        pg.destroy()


@pytest.fixture(scope="module")
def stack(cluster, tmp_path_factory, tiny_model_dir):
    if find_nginx() is None:
        pytest.skip("nginx is not installed and could not be (make nginx-test-deps)")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CLASSIFIER_UPLOAD_RATE", "off")
        mp.delenv("REDIS_URL", raising=False)  # the cache is in the database: it goes down too
        with Stack.start(
            tmp_path_factory.mktemp("faults"),
            model_dir=tiny_model_dir,
            database_url=cluster.url,
            workers=2,
            log=lambda _msg: None,
        ) as running:
            yield running


def signed_in(stack: Stack, username: str) -> Client:
    client = Client(stack.https_url)
    smoke.sign_up(client, username)
    return client


# The database goes away and comes back ---------------------------------------


def test_database_outage_is_a_503_and_the_app_recovers_without_a_restart(stack, cluster):
    alice = signed_in(stack, "alice")
    token = alice.get("/").csrf_token()
    assert smoke.upload(alice, image_bytes(), token=token).status == 302
    files_before = stack.media_names()
    master = stack.gunicorn.pid

    cluster.stop()
    try:
        assert alice.get("/").status == 503
        # An upload during the outage: refused, and no file stays behind.
        assert smoke.upload(alice, image_bytes(), token=token).status == 503
        assert stack.media_names() == files_before
        # Django's own page, straight from gunicorn (nginx shows its own).
        direct = Client(f"http://127.0.0.1:{stack.app_port}", cookies=dict(alice.cookies))
        page = direct.get("/", headers={"X-Forwarded-Proto": "https"})
        assert page.status == 503
        assert page.header("Retry-After") == "30"
        assert "briefly unavailable" in page.text
        api = direct.get("/api/v1/predictions/", headers={"X-Forwarded-Proto": "https"})
        assert api.status == 503
        assert json.loads(api.text)["error"]["code"] == "unavailable"
        assert Client(stack.https_url).get("/healthz").status == 503
    finally:
        cluster.start()

    # Back without restarting anything: the same master, answering again.
    wait_for(lambda: alice.get("/").status == 200, timeout=20, what="recovery")
    assert smoke.upload(alice, image_bytes(), token=token).status == 302
    assert stack.gunicorn.poll() is None
    assert stack.gunicorn.pid == master
    assert stack.query("SELECT count(*) FROM classifier_upload")[0][0] == 2
    # One more upload: its photo, thumbnail and display copy.
    assert len(stack.media_names()) == len(files_before) + 3


# A worker killed mid-request --------------------------------------------------


def workers_of(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(c) for c in children]


def test_a_worker_killed_mid_request_leaves_no_partial_row(stack):
    clients = [signed_in(stack, f"killed{i}") for i in range(4)]
    photo = smoke.photo_jpeg(1600, 1200)  # big enough to keep a worker busy a while
    statuses: list[int] = []
    stop_at = time.monotonic() + 4

    def upload_until_stopped(client):
        token = client.get("/").csrf_token()
        while time.monotonic() < stop_at:
            try:
                statuses.append(smoke.upload(client, photo, token=token).status)
            except OSError:
                statuses.append(0)

    threads = [threading.Thread(target=upload_until_stopped, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    killed = 0
    for _ in range(3):
        time.sleep(0.8)
        for pid in workers_of(stack.gunicorn.pid)[:1]:
            os.kill(pid, signal.SIGKILL)
            killed += 1
    for t in threads:
        t.join(60)
    assert killed == 3
    assert 502 in statuses or 504 in statuses  # some requests did die with their worker
    assert not [s for s in statuses if s not in (302, 502, 504)]

    # Every row is whole: an upload with its prediction, both files on disk.
    uploads = stack.query("SELECT id, file, thumbnail FROM classifier_upload")
    predictions = stack.query("SELECT upload_id, model_version FROM classifier_prediction")
    assert sorted(u[0] for u in uploads) == sorted(p[0] for p in predictions)
    assert all(p[1] for p in predictions)
    names = set(stack.media_names())
    assert all(u[1] in names and u[2] in names for u in uploads)
    assert statuses.count(302) <= len(uploads)
    # The master replaced the killed workers.
    wait_for(lambda: len(workers_of(stack.gunicorn.pid)) == 2, timeout=30, what="new workers")


# The model ----------------------------------------------------------------------


def start_gunicorn(env_model: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "usbills_site.settings",
        "DJANGO_DEBUG": "1",
        "CLASSIFIER_MODELS_DIR": str(env_model),
        "GUNICORN_BIND": f"127.0.0.1:{free_port()}",
        "WEB_CONCURRENCY": "1",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "usbills_site.wsgi"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        out, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        stop(proc)
        pytest.fail("gunicorn started with an unusable model")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, "")


def test_a_missing_model_stops_the_app_from_starting(tmp_path):
    missing = tmp_path / "models"
    result = start_gunicorn(missing, tmp_path)
    assert result.returncode != 0
    assert str(missing) in result.stdout


def test_a_corrupt_model_stops_the_app_from_starting(tmp_path, tiny_model_dir):
    broken = tmp_path / "models"
    shutil.copytree(tiny_model_dir, broken)
    tflite = next(broken.glob("*.tflite"))
    tflite.write_bytes(b"this is not a flatbuffer" * 10)
    result = start_gunicorn(broken, tmp_path)
    assert result.returncode != 0
    assert str(tflite) in result.stdout or tflite.name in result.stdout, result.stdout[-2000:]


# The media directory ----------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("blocked", ["photos", "thumbnails", "display"])
def test_unwritable_media_is_a_clear_error_with_nothing_half_saved(
    user_client, media_root, blocked
):
    # A file where the directory should be: no write there succeeds, even as root.
    (media_root / blocked).write_text("in the way")
    response = user_client.post("/", {"image": uploaded(image_bytes())})
    assert response.status_code == 503
    assert "Your photo could not be stored right now" in response.content.decode()
    assert Upload.objects.count() == Prediction.objects.count() == 0
    # Only the obstacle is left: a photo stored before the thumbnail failed is gone.
    assert media_files(media_root) == [media_root / blocked]


@pytest.mark.django_db
def test_unwritable_media_through_the_api_is_a_json_503(client, user, media_root):
    from classifier import services

    key = services.api_token_create(user=user, name="faults")[1]
    (media_root / "thumbnails").write_text("in the way")
    response = client.post(
        "/api/v1/predictions/",
        {"image": uploaded(image_bytes())},
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "storage_unavailable"
    assert Upload.objects.count() == 0
    assert media_files(media_root) == [media_root / "thumbnails"]


# Redis goes away -------------------------------------------------------------------


@pytest.mark.django_db
def test_with_redis_down_signing_in_and_uploading_still_work(
    client, user, media_root, settings, caplog
):
    from axes.handlers.proxy import AxesProxyHandler

    # Nothing listens on this port: every cache call is refused, as when Redis is stopped.
    settings.CACHES = {
        "default": {
            "BACKEND": "classifier.cache.TolerantRedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
    settings.CLASSIFIER_UPLOAD_RATE = "1/h"
    AxesProxyHandler.get_implementation(force=True)

    assert (
        client.post("/accounts/login/", {"username": "alice", "password": "wrong"}).status_code
        == 200
    )
    response = client.post(
        "/accounts/login/", {"username": "alice", "password": "a-long-test-password"}
    )
    assert response.status_code == 302
    for _ in range(2):  # over the rate, but nothing can count it: let through
        assert client.post("/", {"image": uploaded(image_bytes())}).status_code == 302
    assert Upload.objects.count() == 2
    assert "cache unavailable" in caplog.text

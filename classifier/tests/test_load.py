"""Load through the real stack: 16 signed-in clients upload 200 photos at
once through nginx, gunicorn and Postgres, with the upload rate limit on (in
the local Redis) but set high enough not to throttle; and nginx's own cap on
a 30 MB body.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from classifier.tests.deploy import smoke
from classifier.tests.deploy.client import Client
from classifier.tests.deploy.stack import Stack, skip_reason
from conftest import REDIS_AVAILABLE, TEST_REDIS_URL

pytestmark = pytest.mark.slow

CLIENTS = 16
UPLOADS = 200


@pytest.fixture(scope="module")
def stack(tmp_path_factory, served_model_dir):
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    with pytest.MonkeyPatch.context() as mp:
        # The limit stays on, as in production, but well above this test's pace.
        mp.setenv("CLASSIFIER_UPLOAD_RATE", "1000/m")
        if REDIS_AVAILABLE:
            mp.setenv("REDIS_URL", TEST_REDIS_URL)
        else:
            mp.delenv("REDIS_URL", raising=False)
        with Stack.start(
            tmp_path_factory.mktemp("load"),
            model_dir=served_model_dir,
            workers=2,
            log=lambda _m: None,
        ) as running:
            yield running


def test_sixteen_clients_upload_two_hundred_photos(stack, served_model_dir):
    started = time.monotonic()
    photos = [smoke.photo_jpeg(800, 600, seed=i) for i in range(8)]

    def sign_up(i):
        client = Client(stack.https_url)
        smoke.sign_up(client, f"load{i}")
        return client, client.get("/").csrf_token()

    with ThreadPoolExecutor(CLIENTS) as pool:
        clients = list(pool.map(sign_up, range(CLIENTS)))

    def one_client(i):
        client, token = clients[i]
        statuses = []
        for n in range(i, UPLOADS, CLIENTS):
            statuses.append(smoke.upload(client, photos[n % len(photos)], token=token).status)
        return statuses

    upload_start = time.monotonic()
    with ThreadPoolExecutor(CLIENTS) as pool:
        statuses = [s for part in pool.map(one_client, range(CLIENTS)) for s in part]
    upload_seconds = time.monotonic() - upload_start

    assert len(statuses) == UPLOADS
    assert not [s for s in statuses if s >= 500]
    assert statuses.count(302) == UPLOADS, sorted(set(statuses))
    uploads = stack.query("SELECT count(*) FROM classifier_upload")[0][0]
    versions = stack.query(
        "SELECT model_version, count(*) FROM classifier_prediction GROUP BY model_version"
    )
    assert uploads == UPLOADS
    current = (served_model_dir / "CURRENT").read_text().strip()
    assert sum(n for _v, n in versions) == UPLOADS
    assert [v for v, _n in versions] == [current]
    assert len(stack.media_names()) == 3 * UPLOADS  # a photo, a page-size copy and a thumbnail
    took = time.monotonic() - started
    print(json.dumps({"uploads": UPLOADS, "upload_seconds": round(upload_seconds, 1)}))
    assert took < 60


def test_a_30_mb_body_is_refused_by_nginx_with_413(stack):
    client = Client(stack.https_url)
    smoke.sign_up(client, "big")
    token = client.get("/").csrf_token()
    before = stack.media_names()
    response = smoke.upload(client, b"\xff\xd8\xff\xe0" + b"\0" * (30 * 1024 * 1024), token=token)
    assert response.status == 413
    assert stack.media_names() == before

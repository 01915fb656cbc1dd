"""Switching the model under load, for real: two gunicorn workers behind nginx
keep answering API uploads while `manage.py activate_model` switches versions
back and forth in another process. No request may fail, and each answer must
come from a version that was active at some point. Needs nginx and Postgres,
like test_deploy_nginx.py."""

from __future__ import annotations

import json
import shutil
import threading
import time

import pytest

from classifier.tests.deploy.client import Client, multipart
from classifier.tests.deploy.stack import Stack, skip_reason
from conftest import image_bytes

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack(tmp_path_factory, tiny_model_dir, tiny_model_2_dir):
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    models = tmp_path_factory.mktemp("live-models")
    for f in [*tiny_model_dir.iterdir(), *tiny_model_2_dir.iterdir()]:
        shutil.copy(f, models / f.name)
    with Stack.start(
        tmp_path_factory.mktemp("live"),
        model_dir=models,
        workers=2,
        extra_env={"CLASSIFIER_MODELS_DIR": str(models), "CLASSIFIER_UPLOAD_RATE": "off"},
        log=lambda _msg: None,
    ) as running:
        yield running


def test_activation_switches_running_workers_without_a_failed_request(stack):
    made = stack.manage(
        "shell",
        "-c",
        "from classifier import services; from classifier.models import User; "
        "u = User.objects.create_user('loader', password='a-long-test-password'); "
        "print(services.api_token_create(user=u, name='load')[1])",
    )
    key = made.stdout.strip().splitlines()[-1]
    body, content_type = multipart({}, {"image": ("note.jpg", image_bytes(), "image/jpeg")})
    headers = {"Authorization": f"Bearer {key}", "Content-Type": content_type}
    answers: list[tuple[int, str]] = []
    stop_at = time.monotonic() + 1000

    def upload_until_stopped():
        client = Client(stack.https_url)
        while time.monotonic() < stop_at:
            response = client.request("POST", "/api/v1/predictions/", body=body, headers=headers)
            version = json.loads(response.body)["model_version"] if response.status == 201 else ""
            answers.append((response.status, version))

    threads = [threading.Thread(target=upload_until_stopped) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for version in ("tiny-2", "tiny-test", "tiny-2"):
            time.sleep(1.0)
            result = stack.manage("activate_model", version)
            assert f"{version} is now active" in result.stdout
        time.sleep(1.5)
        settled = len(answers)
        time.sleep(1.0)
    finally:
        stop_at = 0  # the threads read it through their closure
    for t in threads:
        t.join(30)

    assert answers
    assert [a for a in answers if a[0] != 201] == []
    assert {v for _, v in answers} == {"tiny-test", "tiny-2"}
    # Once the last activation has been seen, every worker answers with it.
    assert {v for _, v in answers[settled:]} == {"tiny-2"}

"""The production request path for real: nginx (the project's template, TLS)
-> gunicorn (the project's config) -> Django -> Postgres, on loopback ports.

Needs Debian's nginx (`make nginx-test-deps` installs it) and the Postgres
server the test suite uses (DATABASE_URL, or postgres@127.0.0.1:5432); the
test makes and drops a database of its own, since gunicorn runs in other
processes than the test's transaction.
"""

from __future__ import annotations

import os
import re
import runpy
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from classifier.tests.deploy import smoke
from classifier.tests.deploy.client import Client, trusting_context
from classifier.tests.deploy.stack import (
    NGINX_DIR,
    REPO,
    TEMPLATE,
    TEMPLATE_VAR,
    Stack,
    render_template,
    skip_reason,
    stop,
)

SHIPPED_MODELS = REPO / "models"


@pytest.fixture(scope="module")
def model_dir(served_model_dir) -> Path:
    return served_model_dir


@pytest.fixture(scope="module")
def stack(tmp_path_factory, model_dir):
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    with Stack.start(
        tmp_path_factory.mktemp("deploy"), model_dir=model_dir, workers=2, log=lambda _msg: None
    ) as running:
        yield running


def count_rows(stack: Stack, table: str) -> int:
    return stack.query(f"SELECT count(*) FROM {table}")[0][0]  # noqa: S608 (a fixed name)


def test_smoke_flow_through_nginx(stack):
    report = smoke.run(
        stack.https_url,
        stack.http_url,
        ssl_context=trusting_context(str(stack.cert_file)),
        media_names=stack.media_names,
    )
    assert report.answer
    # One photo, its thumbnail and its display copy on disk, one row each: the refused upload
    # over the cap never reached the app.
    names = stack.media_names()
    assert sorted(n.split("/")[0] for n in names) == ["display", "photos", "thumbnails"], names
    assert count_rows(stack, "classifier_upload") == 1
    assert count_rows(stack, "classifier_prediction") == 1
    # Stored photos are private to the app's user and group.
    assert all((stack.media_root / n).stat().st_mode & 0o007 == 0 for n in names), (
        "photos are readable by everyone"
    )


def test_shipped_model_answers_through_nginx(stack, model_dir, dataset_dir):
    """A $20 the shipped model knows well, uploaded the way a browser does."""
    photo = dataset_dir / "usd_20" / "emerson5123-767d6c5bfc3c.jpg"
    if model_dir != SHIPPED_MODELS:
        pytest.skip("no shipped model in models/ yet")
    if not photo.is_file():
        pytest.skip(f"the test photo is not in {dataset_dir}")
    client = Client(stack.https_url, ssl_context=trusting_context(str(stack.cert_file)))
    smoke.sign_up(client, "carol")
    response = smoke.upload(client, photo.read_bytes(), name=photo.name)
    assert response.status == 302, response.text[:500]
    page = client.get(response.location)
    client.close()
    assert smoke.ANSWER.search(page.text).group(1) == "usd_20"


def test_unknown_host_is_refused(stack):
    client = Client(stack.https_url, ssl_context=trusting_context(str(stack.cert_file)))
    response = client.get("/accounts/login/", headers={"Host": "evil.example"})
    assert response.status == 400
    client.close()


def test_healthz_through_nginx(stack):
    client = Client(stack.https_url, ssl_context=trusting_context(str(stack.cert_file)))
    response = client.get("/healthz")
    assert response.status == 200, response.text
    assert '"status": "ok"' in response.text
    client.close()


def test_gunicorn_reloads_gracefully_on_hup(stack):
    """HUP starts new workers (new code, new model) without failing a request."""
    client = Client(stack.https_url, ssl_context=trusting_context(str(stack.cert_file)))
    stack.gunicorn.send_signal(signal.SIGHUP)
    statuses = []
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        statuses.append(client.get("/accounts/login/").status)
    client.close()
    assert set(statuses) == {200}, statuses
    log = (stack.workdir / "gunicorn.log").read_text()
    assert "Hang up" in log, log[-2000:]


def test_two_scan_bombs_at_once_are_refused_quickly_and_healthz_stays_up(stack):
    """The report's attack on both workers at once: each answered within 3 s."""
    from PIL import Image

    from classifier.tests.hostile_images import scan_bomb

    bomb = scan_bomb(Image.new("L", (7745, 7745), 128), 16_000)
    context = trusting_context(str(stack.cert_file))
    attackers = []
    for i in range(2):
        client = Client(stack.https_url, ssl_context=context)
        smoke.sign_up(client, f"bomber{i}")
        attackers.append((client, client.get("/").csrf_token()))
    results = {}

    def attack(i):
        client, token = attackers[i]
        start = time.monotonic()
        response = smoke.upload(client, bomb, token=token)
        results[i] = (response.status, response.text, time.monotonic() - start)

    threads = [threading.Thread(target=attack, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    health = Client(stack.https_url, ssl_context=context)
    healthz = []
    while any(t.is_alive() for t in threads):
        start = time.monotonic()
        healthz.append((health.get("/healthz").status, time.monotonic() - start))
    for t in threads:
        t.join()
    for client, _ in attackers:
        client.close()
    health.close()
    for status, text, took in results.values():
        assert status == 200, text[:300]
        assert "more than 64 scans" in text
        assert took < 3, f"answered after {took:.1f} s"
    assert all(status == 200 for status, _ in healthz), healthz
    stored = stack.query(
        "SELECT count(*) FROM classifier_upload p JOIN classifier_user u ON p.owner_id = u.id"
        " WHERE u.username LIKE 'bomber%'"
    )
    assert stored == [(0,)]


def test_gunicorn_reached_directly_refuses_a_huge_body_before_reading_it(stack):
    """An anonymous POST to the sign-in page claiming 1.5 GB, straight to gunicorn."""
    with socket.create_connection(("127.0.0.1", stack.app_port), timeout=10) as sock:
        sock.sendall(
            b"POST /accounts/login/ HTTP/1.1\r\n"
            b"Host: localhost\r\n"
            b"X-Forwarded-Proto: https\r\n"
            b"Cookie: csrftoken=" + b"a" * 32 + b"\r\n"
            b"Content-Type: multipart/form-data; boundary=xyz\r\n"
            b"Content-Length: "
            + str(1_500 * 1024 * 1024).encode()
            + b"\r\n\r\n"
            + b"--xyz\r\n"
            + b"\0" * 65536
        )
        start = time.monotonic()
        answer = sock.recv(65536)
        took = time.monotonic() - start
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert took < 3
    # And the workers are free for everyone else.
    client = Client(stack.https_url, ssl_context=trusting_context(str(stack.cert_file)))
    assert client.get("/healthz").status == 200
    client.close()


def test_app_down_gives_the_friendly_page(stack):
    """Stops gunicorn: keep this the last test that uses the stack."""
    stop(stack.gunicorn)
    client = Client(stack.https_url, ssl_context=trusting_context(str(stack.cert_file)))
    response = client.get("/")
    client.close()
    assert response.status == 502
    assert "Back in a moment" in response.text
    assert response.header("Strict-Transport-Security")


def test_gunicorn_config(monkeypatch):
    config = REPO / "gunicorn.conf.py"
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    monkeypatch.setenv("GUNICORN_TIMEOUT", "45")
    values = runpy.run_path(str(config))
    assert values["workers"] == 3
    assert values["timeout"] == 45
    assert values["worker_class"] == "sync"
    assert values["preload_app"] is False
    assert values["accesslog"] == "-"
    monkeypatch.setenv("WEB_CONCURRENCY", "")
    assert runpy.run_path(str(config))["workers"] == len(os.sched_getaffinity(0))


def test_nginx_image_sets_every_template_variable():
    """The container renders the template with envsubst, which would leave an
    unset variable empty and nginx failing at start: each needs a default."""
    used = {a or b for a, b in TEMPLATE_VAR.findall(TEMPLATE.read_text())}
    dockerfile = (NGINX_DIR / "Dockerfile").read_text()
    defaults = set(re.findall(r"\b(NGINX_[A-Z0-9_]+)=", dockerfile))
    assert used <= defaults, f"no default in nginx/Dockerfile for {sorted(used - defaults)}"
    with pytest.raises(KeyError):
        render_template(TEMPLATE.read_text(), {})


@pytest.mark.parametrize("compose_file", ["docker-compose.yml", "docker/compose.s3.yml"])
def test_env_example_documents_every_compose_variable(compose_file):
    compose = (REPO / compose_file).read_text()
    used = set(re.findall(r"\$\{([A-Z0-9_]+)(?::?[-?][^}]*)?\}", compose))
    documented = set(
        re.findall(r"^#?([A-Z0-9_]+)=", (REPO / ".env.example").read_text(), re.MULTILINE)
    )
    assert used <= documented, f".env.example lacks {sorted(used - documented)}"

"""Photos in a bucket, sent by nginx: the app answers the owner with an
X-Accel-Redirect to /protected-s3/ carrying a presigned URL, and nginx (the
project's template) fetches it from the bucket endpoint pinned in its
configuration. Real nginx, real SeaweedFS, the real app behind gunicorn; and,
to send nginx what the app never would, a stand-in app of the test's own.
"""

from __future__ import annotations

import secrets
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from classifier.tests.deploy import smoke
from classifier.tests.deploy.client import Client, trusting_context
from classifier.tests.deploy.stack import Stack, skip_reason
from conftest import BUCKET


@pytest.fixture(scope="module")
def prefix() -> str:
    return f"deploy-{secrets.token_hex(4)}"


@pytest.fixture(scope="module")
def stack(tmp_path_factory, served_model_dir, s3_server, s3_bucket, prefix):
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    s3_env = {
        "DJANGO_S3_BUCKET": s3_bucket,
        "DJANGO_S3_ENDPOINT_URL": s3_server.endpoint_url,
        "DJANGO_S3_ACCESS_KEY_ID": s3_server.access_key,
        "DJANGO_S3_SECRET_ACCESS_KEY": s3_server.secret_key,
        "DJANGO_S3_PREFIX": prefix,
        "DJANGO_S3_ACCEL_REDIRECT": "/protected-s3/",
    }
    with Stack.start(
        tmp_path_factory.mktemp("deploy-s3"),
        model_dir=served_model_dir,
        workers=2,
        extra_env=s3_env,
        log=lambda _msg: None,
    ) as running:
        yield running


class Recorder(ThreadingHTTPServer):
    """A loopback HTTP server that answers every GET with `headers` and keeps
    what it was asked: a stand-in for the app, or for the bucket."""

    def __init__(self, headers: dict[str, str], body: bytes = b""):
        self.answer_headers = headers
        self.answer_body = body
        self.requests: list[tuple[str, dict[str, str]]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(handler):  # noqa: N802, N805 (http.server's names)
                self.requests.append((handler.path, dict(handler.headers)))
                handler.send_response(200)
                for name, value in self.answer_headers.items():
                    handler.send_header(name, value)
                handler.send_header("Content-Length", str(len(self.answer_body)))
                handler.end_headers()
                handler.wfile.write(self.answer_body)

            def log_message(handler, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.server_address[1]

    def close(self):
        self.shutdown()
        self.server_close()
        self.thread.join(5)


@pytest.fixture
def recorders():
    started = []

    def start(headers, body=b""):
        started.append(Recorder(headers, body))
        return started[-1]

    yield start
    for recorder in started:
        recorder.close()


def client_for(stack: Stack) -> Client:
    return Client(stack.https_url, ssl_context=trusting_context(str(stack.cert_file)))


def presigned(s3_server, key: str, expires: int = 60) -> str:
    """Path and query of a URL presigned for key, as the app makes them."""
    url = s3_server.client().generate_presigned_url(
        "get_object", Params={"Bucket": BUCKET, "Key": key}, ExpiresIn=expires
    )
    parts = urllib.parse.urlsplit(url)
    return f"{parts.path}?{parts.query}"


def test_the_owner_gets_the_photo_from_the_bucket_through_nginx(stack, s3_server, prefix):
    data = smoke.photo_jpeg(800, 600, seed=7)
    owner = client_for(stack)
    smoke.sign_up(owner, "alice")
    response = smoke.upload(owner, data)
    assert response.status == 302, response.text[:300]
    pk = response.location.rstrip("/").rsplit("/", 1)[1]

    photo = owner.get(f"/predictions/{pk}/photo/")
    assert photo.status == 200, photo.text[:300]
    assert photo.body == data
    assert photo.header("Content-Type") == "image/jpeg"
    assert photo.header("Cache-Control") == "private, max-age=3600"
    assert photo.header("Content-Security-Policy") == "default-src 'none'; sandbox"
    assert photo.header("X-Content-Type-Options") == "nosniff"
    assert photo.header("Strict-Transport-Security")
    # Nothing of the bucket's own leaks.
    assert not [name for name in photo.headers if name.lower().startswith("x-amz")], photo.headers
    assert photo.header("ETag") is None
    for copy in ("display", "thumbnail"):
        smaller = owner.get(f"/predictions/{pk}/{copy}/")
        assert smaller.status == 200
        assert smaller.body[:2] == b"\xff\xd8"
    # It came from the bucket: the app's folder there holds the photo.
    listing = s3_server.client().list_objects_v2(Bucket=BUCKET, Prefix=prefix + "/photos/")
    assert [item["Size"] for item in listing["Contents"]] == [len(data)]
    owner.close()

    stranger = client_for(stack)
    smoke.sign_up(stranger, "bob")
    for copy in ("photo", "display", "thumbnail"):
        assert stranger.get(f"/predictions/{pk}/{copy}/").status == 404
    stranger.close()


def test_the_internal_location_cannot_be_asked_for_from_outside(stack, s3_server, prefix):
    key = f"{prefix}/outside.jpg"
    s3_server.client().put_object(Bucket=BUCKET, Key=key, Body=b"secret")
    client = client_for(stack)
    response = client.get("/protected-s3" + presigned(s3_server, key))
    client.close()
    assert response.status == 404
    assert b"secret" not in response.body


def test_an_expired_or_altered_signature_is_refused(stack, s3_server, prefix, recorders, tmp_path):
    """A stand-in app sends nginx presigned URLs the real app never would."""
    objects = s3_server.client()
    mine, theirs = f"{prefix}/mine.jpg", f"{prefix}/theirs.jpg"
    objects.put_object(Bucket=BUCKET, Key=mine, Body=b"mine")
    objects.put_object(Bucket=BUCKET, Key=theirs, Body=b"theirs")
    app = recorders({"Content-Type": "image/jpeg", "Cache-Control": "private"})
    proxy = stack.nginx_in_front_of(app.port, tmp_path, s3_endpoint=s3_server.endpoint_url)
    client = client_for(proxy)

    def through_nginx(accel: str):
        app.answer_headers["X-Accel-Redirect"] = "/protected-s3" + accel
        return client.get("/any-photo/")

    valid = through_nginx(presigned(s3_server, mine))
    assert (valid.status, valid.body) == (200, b"mine")

    # Another object's key under my signature: the bucket refuses, nobody's bytes come back.
    altered = through_nginx(presigned(s3_server, mine).replace("mine.jpg", "theirs.jpg"))
    assert altered.status == 502
    assert b"theirs" not in altered.body
    assert "Back in a moment" in altered.text  # nginx's page, not the bucket's XML

    expiring = presigned(s3_server, mine, expires=1)
    time.sleep(2.5)
    expired = through_nginx(expiring)
    assert expired.status == 502
    assert b"mine" not in expired.body

    # An object that is not there (deleted meanwhile) is "not found".
    missing = through_nginx(presigned(s3_server, f"{prefix}/gone.jpg"))
    assert missing.status == 404
    assert b"<Error>" not in missing.body
    client.close()


def test_nginx_sends_the_bucket_nothing_of_the_client(stack, recorders, tmp_path):
    """Only the pinned endpoint is reached, with its own Host and none of the
    client's cookies or credentials; the bucket's headers stay behind."""
    bucket = recorders(
        {"Content-Type": "text/html", "x-amz-request-id": "abc", "Set-Cookie": "b=1"}, b"bytes"
    )
    elsewhere = recorders({})
    app = recorders({"Content-Type": "image/png", "Cache-Control": "private, max-age=3600"})
    endpoint = f"http://127.0.0.1:{bucket.port}"
    proxy = stack.nginx_in_front_of(app.port, tmp_path, s3_endpoint=endpoint)
    client = client_for(proxy)
    # A path that looks like a host is still a path on the pinned endpoint.
    sneaky = f"/protected-s3//127.0.0.1:{elsewhere.port}/x?a=1"
    for accel, path in (
        ("/protected-s3/b/k.jpg?X-Amz-Signature=1", "/b/k.jpg?X-Amz-Signature=1"),
        (sneaky, f"/127.0.0.1:{elsewhere.port}/x?a=1"),
    ):
        app.answer_headers["X-Accel-Redirect"] = accel
        response = client.get(
            "/photo/", headers={"Cookie": "sessionid=s3cret", "Authorization": "Basic s3cret"}
        )
        assert response.status == 200
        assert response.body == b"bytes"
        assert response.header("Content-Type") == "image/png"
        assert response.header("Cache-Control") == "private, max-age=3600"
        assert response.header("x-amz-request-id") is None
        assert response.header("Set-Cookie") is None
        sent_path, sent_headers = bucket.requests[-1]
        assert sent_path == path
        assert sent_headers["Host"] == f"127.0.0.1:{bucket.port}"
        assert "s3cret" not in repr(sent_headers)
    assert elsewhere.requests == []
    client.close()

"""The smoke flow through nginx, as a person with a browser would go:
HTTP -> HTTPS, sign up, upload a photo, read the answer, see the photo, and
the things nginx must refuse. Shared by the integration test (nginx +
gunicorn on loopback) and `make docker-test` (the Compose stack):

    python -m classifier.tests.deploy.smoke --https https://localhost:8443 \
        --http http://localhost:8080 [--media-cmd "docker compose exec -T web ..."]

Raises AssertionError (exit status 1 from the command line) at the first
thing that is not as it should be.
"""

from __future__ import annotations

import argparse
import io
import random
import re
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .client import Client, Response, trusting_context

PASSWORD = "correct-horse-battery-staple-42"
MAX_UPLOAD_BYTES = 10 * 1024 * 1024  # the app's cap (settings.CLASSIFIER_MAX_UPLOAD_BYTES)
HASHED_STATIC = re.compile(r'(?:href|src)="(/static/[^"]+\.[0-9a-f]{12}\.(?:css|js))"')
ANSWER = re.compile(r'data-answer="([^"]+)"')


def photo_jpeg(width: int = 1224, height: int = 816, seed: int = 0) -> bytes:
    """A photo-like JPEG (about one megapixel by default): gradients, noise, shapes."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)  # noqa: S311 (test pictures, not secrets)
    grad = Image.linear_gradient("L").resize((width, height))
    noise = Image.effect_noise((width, height), 24)
    img = Image.merge("RGB", (grad, noise, grad.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))
    draw = ImageDraw.Draw(img)
    for _ in range(12):
        x, y = rng.randrange(width), rng.randrange(height)
        w, h = rng.randrange(40, width // 3), rng.randrange(30, height // 3)
        colour = tuple(rng.randrange(256) for _ in range(3))
        draw.rectangle((x, y, x + w, y + h), fill=colour, outline=(255, 255, 255), width=3)
    out = io.BytesIO()
    img.save(out, "JPEG", quality=88)
    return out.getvalue()


def expect(condition: bool, message: str):
    if not condition:
        raise AssertionError(message)


def expect_status(response: Response, status: int, what: str):
    expect(
        response.status == status,
        f"{what}: expected {status}, got {response.status} from {response.url}\n"
        f"{response.text[:600]}",
    )


@dataclass
class SmokeReport:
    prediction_url: str = ""
    answer: str = ""
    photo_name: str = ""
    checks: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def ok(self, what: str):
        self.checks.append(what)


def sign_up(client: Client, username: str) -> Response:
    """Create an account through the sign-up form; the client is then signed in."""
    page = client.get("/accounts/signup/")
    expect_status(page, 200, "sign-up page")
    response = client.post_form(
        "/accounts/signup/",
        {
            "csrfmiddlewaretoken": page.csrf_token(),
            "username": username,
            "email": "",
            "password1": PASSWORD,
            "password2": PASSWORD,
        },
        referer="/accounts/signup/",
    )
    expect_status(response, 302, f"sign-up of {username}")
    return response


def upload(client: Client, data: bytes, *, token: str | None = None, name="note.jpg") -> Response:
    """POST a photo to the upload form; fetch the form first when no token is given."""
    if token is None:
        token = client.get("/").csrf_token()
    return client.post_multipart(
        "/",
        {"csrfmiddlewaretoken": token},
        {"image": (name, data, "image/jpeg")},
        referer="/",
    )


def run(
    https_url: str,
    http_url: str,
    *,
    ssl_context=None,
    media_names: Callable[[], list[str]] | None = None,
    photo: bytes | None = None,
    max_upload_bytes: int = MAX_UPLOAD_BYTES,
) -> SmokeReport:
    """The whole flow; media_names lists the stored files (relative to MEDIA_ROOT)."""
    started = time.monotonic()
    report = SmokeReport()
    photo = photo if photo is not None else photo_jpeg()
    suffix = uuid.uuid4().hex[:8]

    # Plain HTTP is only a redirect to the same place over HTTPS.
    plain = Client(http_url)
    response = plain.get("/predictions/?page=2")
    expect_status(response, 301, "plain HTTP")
    expected = https_url.rstrip("/") + "/predictions/?page=2"
    expect(response.location == expected, f"HTTP redirects to {response.location}, not {expected}")
    plain.close()
    report.ok("http redirects to https")

    alice = Client(https_url, ssl_context=ssl_context)
    page = alice.get("/accounts/login/")
    expect_status(page, 200, "login page")
    hsts = page.header("Strict-Transport-Security") or ""
    expect("max-age=" in hsts, f"no HSTS header on HTTPS pages: {dict(page.headers)}")
    expect(len(page.header_all("Strict-Transport-Security")) == 1, "HSTS header sent twice")
    for name in ("X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy"):
        expect(page.header(name) is not None, f"no {name} header on {page.url}")
        expect(len(page.header_all(name)) == 1, f"{name} sent more than once")
    expect(page.header("Server") == "nginx", f"Server header shows {page.header('Server')}")
    report.ok("security headers")

    # Anonymous visitors are sent to the login page.
    response = alice.get("/predictions/")
    expect_status(response, 302, "history while signed out")
    expect("/accounts/login/" in (response.location or ""), "signed-out user not sent to login")

    response = sign_up(alice, f"alice-{suffix}")
    session_line = alice.cookie_flags.get("sessionid", "")
    expect("secure" in session_line.lower(), f"session cookie is not Secure: {session_line}")
    expect("httponly" in session_line.lower(), f"session cookie is not HttpOnly: {session_line}")
    report.ok("sign-up over https, secure session cookie")

    form = alice.get("/")
    expect_status(form, 200, "upload page")
    response = upload(alice, photo, token=form.csrf_token())
    expect_status(response, 302, "upload of a photo")
    report.prediction_url = urlsplit(response.location).path
    expect(
        re.fullmatch(r"/predictions/\d+/", report.prediction_url) is not None,
        f"upload redirected to {response.location}",
    )
    result = alice.get(report.prediction_url)
    expect_status(result, 200, "result page")
    match = ANSWER.search(result.text)
    expect(match is not None, "the result page shows no answer")
    report.answer = match.group(1)
    report.ok(f"upload answered {report.answer}")

    # The photo, as its owner: served by nginx from the internal location.
    photo_path = report.prediction_url + "photo/"
    response = alice.get(photo_path)
    expect_status(response, 200, "photo for its owner")
    expect(response.body == photo, "the photo served is not the photo uploaded")
    expect(
        response.header("Content-Type") == "image/jpeg",
        f"photo served as {response.header('Content-Type')}",
    )
    # The app's own headers for photos survive nginx's X-Accel-Redirect, once each.
    for name in ("X-Content-Type-Options", "Content-Security-Policy", "Strict-Transport-Security"):
        values = response.header_all(name)
        expect(len(values) == 1, f"the photo came with {name}: {values}")
    expect(response.header("X-Content-Type-Options") == "nosniff", "photo without nosniff")
    csp = response.header("Content-Security-Policy")
    expect("sandbox" in csp, f"photo served with CSP {csp!r}, not the app's sandbox")
    expect(response.header("X-Accel-Redirect") is None, "X-Accel-Redirect leaked to the client")
    report.ok("photo for its owner (200)")

    # Someone else: not found, for the photo and the page.
    bob = Client(https_url, ssl_context=ssl_context)
    sign_up(bob, f"bob-{suffix}")
    expect_status(bob.get(photo_path), 404, "someone else's photo")
    expect_status(bob.get(report.prediction_url), 404, "someone else's result page")
    bob.close()
    report.ok("photo for another user (404)")

    # Stored files are never reachable by URL, neither where MEDIA_URL would
    # put them nor at nginx's internal location.
    names = media_names() if media_names else []
    photos = [n for n in names if n.startswith("photos/")]
    report.photo_name = photos[-1] if photos else "photos/00000000000000000000000000000000.jpg"
    for prefix in ("/media/", "/protected-media/"):
        response = alice.get(prefix + report.photo_name)
        expect_status(response, 404, f"{prefix}{report.photo_name} by URL")
    report.ok("/media/ and /protected-media/ by URL (404)")

    # Static files: hashed names, cached for a year, gzipped when asked.
    match = HASHED_STATIC.search(form.text)
    expect(match is not None, "the upload page links no hashed static file")
    static_path = match.group(1)
    response = alice.get(static_path, headers={"Accept-Encoding": "gzip"})
    expect_status(response, 200, "static file")
    cache = response.header("Cache-Control") or ""
    expect(
        "max-age=31536000" in cache and "immutable" in cache,
        f"static file cached as {cache!r}",
    )
    if len(response.text) > 1024:
        expect(response.header("Content-Encoding") == "gzip", "static text file not gzipped")
    report.ok(f"static {static_path}: {cache}")

    # Over the cap: refused by nginx with its own page; the app never sees it.
    big = b"\xff\xd8\xff\xe0" + bytes(max_upload_bytes + 1024 * 1024)
    response = upload(alice, big, token=form.csrf_token(), name="huge.jpg")
    expect_status(response, 413, "upload over the cap")
    expect("too large" in response.text, "the 413 page is not the friendly one")
    report.ok("upload over the cap (413 from nginx)")

    # The history lists the one upload; logout is a POST.
    history = alice.get("/predictions/")
    expect_status(history, 200, "history")
    expect(report.prediction_url in history.text, "history does not list the upload")
    response = alice.post_form(
        "/accounts/logout/", {"csrfmiddlewaretoken": history.csrf_token()}, referer="/predictions/"
    )
    expect_status(response, 302, "logout")
    expect_status(alice.get("/predictions/"), 302, "history after logout")
    alice.close()
    report.ok("history and logout")

    report.seconds = time.monotonic() - started
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--https", required=True, help="e.g. https://localhost:8443")
    parser.add_argument("--http", required=True, help="e.g. http://localhost:8080")
    parser.add_argument("--cafile", help="trust this certificate (else no TLS checks)")
    parser.add_argument("--media-cmd", help="a command printing the stored file names, one a line")
    args = parser.parse_args(argv)

    def media_names() -> list[str]:
        # The command is the operator's own, from the Makefile: no shell.
        out = subprocess.run(  # noqa: S603
            shlex.split(args.media_cmd), check=True, capture_output=True, text=True
        ).stdout
        return sorted(line.strip() for line in out.splitlines() if line.strip())

    try:
        report = run(
            args.https,
            args.http,
            ssl_context=trusting_context(args.cafile) if args.cafile else None,
            media_names=media_names if args.media_cmd else None,
        )
    except AssertionError as exc:
        print(f"smoke: FAILED: {exc}", file=sys.stderr)
        return 1
    for check in report.checks:
        print(f"smoke: ok: {check}")
    print(f"smoke: passed in {report.seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

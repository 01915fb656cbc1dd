"""Guards that run before any view reads the body or believes a header.

nginx is meant to stand in front of gunicorn (docs/deploy.md), but the app
must not fall over when it is reached directly: it trusts forwarding headers
only from the proxies the deployment names, and refuses oversized bodies
before reading them.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler
from django.http import HttpResponse, JsonResponse
from django.template.loader import render_to_string

# Set by nginx (docs/deploy.md); believed only when nginx is the one talking.
FORWARDING_HEADERS = (
    "HTTP_X_REAL_IP",
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_FORWARDED_PORT",
    "HTTP_FORWARDED",
)


@lru_cache(maxsize=64)
def _networks(allowed: tuple[str, ...]) -> tuple:
    return tuple(ipaddress.ip_network(a, strict=False) for a in allowed if a != "*")


def address_in(address: str, allowed) -> bool:
    """True when address is one of the allowed addresses or networks ("*" is any)."""
    allowed = tuple(allowed)
    if "*" in allowed:
        return True
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False  # a Unix socket peer, or nothing: not a proxy we named
    return any(ip in net for net in _networks(allowed))


def is_trusted_proxy(request) -> bool:
    """Whether the peer is one of the proxies in settings.TRUSTED_PROXIES."""
    return address_in(request.META.get("REMOTE_ADDR", ""), settings.TRUSTED_PROXIES)


def client_ip(request) -> str:
    """The client's address: nginx's X-Real-IP when nginx sent the request, else the peer."""
    if is_trusted_proxy(request):
        # nginx sets X-Real-IP to the address it saw, overwriting whatever the
        # client sent.
        return request.META.get("HTTP_X_REAL_IP") or request.META.get("REMOTE_ADDR", "")
    return request.META.get("REMOTE_ADDR", "")


class ProxyHeadersMiddleware:
    """Drop X-Forwarded-* and X-Real-IP unless a trusted proxy sent the request.

    Otherwise anyone reaching gunicorn directly could name their own address
    (and dodge the sign-in lockout), host (and steer password-reset links) or
    scheme.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not is_trusted_proxy(request):
            for name in FORWARDING_HEADERS:
                request.META.pop(name, None)
        return self.get_response(request)


class BodySizeLimitMiddleware:
    """413 for a body larger than settings.CLASSIFIER_MAX_REQUEST_BYTES, before reading it.

    nginx has the same cap; this one holds when the app is reached directly,
    for every page, signed in or not.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > settings.CLASSIFIER_MAX_REQUEST_BYTES:
            return too_large_response(request)
        return self.get_response(request)


def too_large_message() -> str:
    """The sentence shown for a file over the upload cap."""
    cap = settings.CLASSIFIER_MAX_UPLOAD_BYTES
    return f"This file is too large: the limit is {cap / (1024 * 1024):.0f} MB."


def too_large_response(request):
    # Django would otherwise read the body into a temporary file; the
    # connection is closed so that the rest of it is never read either.
    if request.path.startswith("/api/"):
        error = {"code": "too_large", "message": too_large_message()}
        response = JsonResponse({"error": error}, status=413)
    else:
        # A plain page: the session and user are not loaded yet.
        html = render_to_string("413.html", {"message": too_large_message()})
        response = HttpResponse(html, status=413)
    response["Connection"] = "close"
    return response


class CappedUploadHandler(FileUploadHandler):
    """Keep at most CLASSIFIER_MAX_UPLOAD_BYTES + 1 bytes of each uploaded file.

    First in FILE_UPLOAD_HANDLERS: the handlers after it (memory, temporary
    file) never see more, so an oversized file is never spooled to disk, and
    the upload form still sees that it was too large.
    """

    def new_file(self, *args, **kwargs):
        super().new_file(*args, **kwargs)
        self.received = 0

    def receive_data_chunk(self, raw_data, start):
        keep = settings.CLASSIFIER_MAX_UPLOAD_BYTES + 1 - self.received
        self.received += len(raw_data)
        if keep <= 0:
            return None  # dropped: the later handlers get nothing
        return raw_data[:keep]

    def file_complete(self, file_size):
        return None  # the later handlers make the file

"""A small HTTP(S) client for driving the site as a browser would: cookies,
CSRF tokens from forms, multipart uploads, and no automatic redirects (the
tests look at each one). Standard library only, so that it runs anywhere the
stack is checked from, without Django.
"""

from __future__ import annotations

import gzip
import http.client
import re
import ssl
import uuid
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from urllib.parse import urlencode, urljoin, urlsplit

CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken"\s+value="([^"]+)"')


@dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes
    url: str

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name, default)

    def header_all(self, name: str) -> list[str]:
        return self.headers.get_all(name) or []

    @property
    def text(self) -> str:
        data = self.body
        if self.header("Content-Encoding") == "gzip":
            data = gzip.decompress(data)
        return data.decode("utf-8", "replace")

    @property
    def location(self) -> str | None:
        return self.header("Location")

    def csrf_token(self) -> str:
        match = CSRF_INPUT.search(self.text)
        if not match:
            raise AssertionError(f"no CSRF token in the page at {self.url}")
        return match.group(1)


@dataclass
class Client:
    """One browser: a cookie jar for one site, reached at base_url."""

    base_url: str  # e.g. https://localhost:8443
    ssl_context: ssl.SSLContext | None = None
    timeout: float = 30.0
    # Send a request again, once, on a fresh connection when the kept-alive one
    # turns out closed. A load test counting failures turns this off.
    retry: bool = True
    cookies: dict[str, str] = field(default_factory=dict)
    cookie_flags: dict[str, str] = field(default_factory=dict)  # name -> the Set-Cookie line

    def __post_init__(self):
        parts = urlsplit(self.base_url)
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self._conn: http.client.HTTPConnection | None = None
        if self.ssl_context is None:
            self.ssl_context = insecure_context()

    # Connections ------------------------------------------------------------

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            if self.scheme == "https":
                self._conn = http.client.HTTPSConnection(
                    self.host, self.port, timeout=self.timeout, context=self.ssl_context
                )
            else:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return self._conn

    def close(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        """One request on a kept-alive connection (reopened once if the server closed it,
        unless retry is off)."""
        all_headers = {"User-Agent": "usbills-deploy-check", **(headers or {})}
        if self.cookies:
            all_headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        for attempt in (1, 2):
            conn = self._connection()
            try:
                conn.request(method, path, body=body, headers=all_headers)
                raw = conn.getresponse()
                data = raw.read()
                break
            except (ConnectionError, http.client.RemoteDisconnected, BrokenPipeError):
                self.close()
                if attempt == 2 or not self.retry:
                    raise
        if raw.getheader("Connection", "").lower() == "close" or raw.will_close:
            self.close()
        self._store_cookies(raw.headers)
        return Response(raw.status, raw.headers, data, urljoin(self.base_url, path))

    def _store_cookies(self, headers: http.client.HTTPMessage):
        for line in headers.get_all("Set-Cookie") or []:
            cookie = SimpleCookie()
            cookie.load(line)
            for name, morsel in cookie.items():
                if morsel.get("max-age") == "0" or morsel.value == "":
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
                self.cookie_flags[name] = line

    # Browser-like helpers ---------------------------------------------------

    def get(self, path: str, **kwargs) -> Response:
        return self.request("GET", path, **kwargs)

    def post_form(self, path: str, fields: dict[str, str], *, referer: str | None = None):
        return self.request(
            "POST",
            path,
            body=urlencode(fields).encode(),
            headers=self._post_headers(referer or path, "application/x-www-form-urlencoded"),
        )

    def post_multipart(
        self,
        path: str,
        fields: dict[str, str],
        files: dict[str, tuple[str, bytes, str]],
        *,
        referer: str | None = None,
    ) -> Response:
        body, content_type = multipart(fields, files)
        return self.request(
            "POST", path, body=body, headers=self._post_headers(referer or path, content_type)
        )

    def _post_headers(self, referer: str, content_type: str) -> dict[str, str]:
        # Django checks Origin (and, over HTTPS, Referer) against the host.
        return {
            "Content-Type": content_type,
            "Origin": self.base_url,
            "Referer": urljoin(self.base_url, referer),
        }


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes, str]]):
    """(body, content type) of a multipart/form-data request."""
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
            f"{value}\r\n".encode()
        )
    for name, (filename, data, ctype) in files.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{filename}"\r\nContent-Type: {ctype}\r\n\r\n'.encode()
            + data
            + b"\r\n"
        )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def insecure_context() -> ssl.SSLContext:
    """TLS without certificate checks: for a self-signed certificate of unknown origin."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def trusting_context(cafile: str) -> ssl.SSLContext:
    """TLS that trusts exactly the given (self-signed) certificate."""
    return ssl.create_default_context(cafile=cafile)

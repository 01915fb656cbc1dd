"""Rate limits: uploads per user (form and API), sign-ups and password resets
per client address, reset mails per email address.

A fixed window counted in the cache: Redis in production, so that every
gunicorn worker and container sees the same count (or the database cache,
whose counter is atomic too: classifier.cache). The limits come from settings,
e.g. CLASSIFIER_UPLOAD_RATE = "30/m"; "0" or "off" turns one off.
"""

from __future__ import annotations

import functools
import hashlib
import re
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.shortcuts import render

from .middleware import client_ip

__all__ = ["client_ip"]  # sign-in throttling names the client the same way

PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class RateLimit:
    allowed: bool
    limit: int
    period: int  # seconds
    retry_after: int  # seconds until the window resets; 0 when allowed


def parse_rate(rate: str) -> tuple[int, int] | None:
    """'30/m' -> (30, 60); None when the limit is off ('', '0', 'off')."""
    rate = (rate or "").strip().lower()
    if rate in ("", "0", "off", "none"):
        return None
    # "30/m"; "10/5m" means ten per five minutes.
    match = re.fullmatch(r"(\d+)/(\d*)([smhd])", rate)
    if match is None:
        raise ValueError(f"not a rate: {rate!r} (expected e.g. '30/m', '100/h' or 'off')")
    count, multiple, unit = match.groups()
    return int(count), max(1, int(multiple or 1)) * PERIODS[unit]


def upload_rate_hit(*, user) -> RateLimit:
    """Count one upload by this user; say whether it is within CLASSIFIER_UPLOAD_RATE."""
    return rate_hit(scope="upload", ident=str(user.pk), rate=settings.CLASSIFIER_UPLOAD_RATE)


def rate_hit(*, scope: str, ident: str, rate: str) -> RateLimit:
    """Count one hit of ident (a user, an address) in scope; say whether it is within rate."""
    parsed = parse_rate(rate)
    if parsed is None:
        return RateLimit(allowed=True, limit=0, period=0, retry_after=0)
    limit, period = parsed
    now = int(time.time())
    window = now - now % period
    # Hashed: an email address or IPv6 address is no safe cache key as it is.
    digest = hashlib.sha256(ident.encode()).hexdigest()[:32]
    key = f"ratelimit:{scope}:{digest}:{period}:{window}"
    # add() is a no-op when the key exists, incr() is atomic in Redis and in
    # classifier.cache's database cache: two workers counting at once never
    # lose a hit.
    cache.add(key, 0, timeout=period + 1)
    try:
        count = cache.incr(key)
    except ValueError:  # the key expired between add() and incr()
        cache.add(key, 1, timeout=period + 1)
        count = 1
    if count <= limit:
        return RateLimit(allowed=True, limit=limit, period=period, retry_after=0)
    return RateLimit(allowed=False, limit=limit, period=period, retry_after=window + period - now)


def too_many_uploads(request, result: RateLimit, *, json: bool = False):
    """The 429 with Retry-After: the friendly page, or the API's JSON error."""
    if json:
        from .api.auth import error

        response = error(
            429,
            "too_many_uploads",
            "Too many photos in a short time; try again later.",
            retry_after=result.retry_after,
        )
        response["Retry-After"] = str(max(1, result.retry_after))
        return response
    return too_many_requests(request, result)


def too_many_requests(request, result: RateLimit, **context):
    """The 429 page (what was limited is in context), with Retry-After."""
    context = {"retry_after": result.retry_after, **context}
    response = render(request, "429.html", context, status=429)
    response["Retry-After"] = str(max(1, result.retry_after))
    return response


def limit_uploads(view=None, *, json: bool = False):
    """Decorator for a view whose POST stores an upload: 429 beyond the user's rate.

    `@limit_uploads` for a page; `@limit_uploads(json=True)` inside `api_view`,
    which has authenticated the caller by then.
    """
    if view is None:
        return functools.partial(limit_uploads, json=json)

    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        if request.method == "POST" and request.user.is_authenticated:
            result = upload_rate_hit(user=request.user)
            if not result.allowed:
                return too_many_uploads(request, result, json=json)
        return view(request, *args, **kwargs)

    return wrapped


def limit_account_requests(*, per_email: bool = False):
    """Decorator for sign-up and password reset: 429 beyond CLASSIFIER_ACCOUNT_RATE per
    client address and, with per_email, beyond CLASSIFIER_RESET_MAIL_RATE per email address."""

    def decorate(view):
        @functools.wraps(view)
        def wrapped(request, *args, **kwargs):
            if request.method == "POST":
                checks = [("account", client_ip(request), settings.CLASSIFIER_ACCOUNT_RATE)]
                email = request.POST.get("email", "").strip().lower()
                if per_email and email:
                    # Counted whether or not an account has the address, so the
                    # answer tells nothing about who is signed up.
                    checks.append(("reset-mail", email, settings.CLASSIFIER_RESET_MAIL_RATE))
                for scope, ident, rate in checks:
                    result = rate_hit(scope=scope, ident=ident, rate=rate)
                    if not result.allowed:
                        return too_many_requests(request, result, account=True)
            return view(request, *args, **kwargs)

        return wrapped

    return decorate

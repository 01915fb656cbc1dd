"""Who is calling: an API key (Authorization: Bearer usb_...) or the session, with CSRF."""

from __future__ import annotations

import functools

from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.middleware.csrf import CsrfViewMiddleware
from django.views.decorators.csrf import csrf_exempt

from classifier import services

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def error(status: int, code: str, message: str, **extra) -> JsonResponse:
    """The one shape of every API error."""
    response = JsonResponse({"error": {"code": code, "message": message, **extra}}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="api"'
    return response


def _csrf_failure(request):
    # A key is not sent by browsers on their own, so key requests need no CSRF
    # token; a session cookie is, so session requests get Django's own check.
    check = CsrfViewMiddleware(lambda r: None)
    check.process_request(request)
    return check.process_view(request, None, (), {})


def api_view(methods):
    """Allow these methods, authenticate, and answer errors in JSON."""

    def decorate(view):
        @login_not_required
        @csrf_exempt
        @functools.wraps(view)
        def wrapped(request, *args, **kwargs):
            try:
                return checked(request, *args, **kwargs)
            except MultiPartParserError:
                # Django would answer its HTML 400 page; an app expects JSON.
                return error(400, "malformed_body", "The multipart body could not be read.")
            except (TooManyFilesSent, TooManyFieldsSent) as exc:
                return error(400, "too_many_parts", f"{exc} Send one photo in the field 'image'.")
            except RequestDataTooBig:
                return error(413, "too_large", "The form fields are too large.")

        def checked(request, *args, **kwargs):
            if request.method not in methods:
                response = error(405, "method_not_allowed", f"Use {', '.join(methods)}.")
                response["Allow"] = ", ".join(methods)
                return response
            header = request.headers.get("Authorization", "")
            if header:
                scheme, _, key = header.partition(" ")
                user = None
                if scheme.lower() == "bearer" and key.strip():
                    user = services.api_token_authenticate(key=key.strip())
                if user is None:
                    return error(401, "invalid_token", "The API key is not valid or was revoked.")
                request.user = user
            elif request.user.is_authenticated:
                if request.method not in SAFE_METHODS and _csrf_failure(request) is not None:
                    return error(403, "csrf_failed", "CSRF check failed: send X-CSRFToken.")
            else:
                return error(
                    401, "not_authenticated", "Send 'Authorization: Bearer <key>' or sign in."
                )
            return view(request, *args, **kwargs)

        return wrapped

    return decorate

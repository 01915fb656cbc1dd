import functools
import hashlib
import re
from pathlib import Path

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.contrib.staticfiles import finders
from django.contrib.staticfiles.storage import staticfiles_storage
from django.http import FileResponse, Http404, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from classifier import selectors, services
from classifier.errors import ServiceUnavailable
from classifier.ml import labels
from classifier.ml.predictor import ModelError
from classifier.ratelimit import upload_rate_hit

from .forms import LiveSaveForm

# A version's files never change under its name: the browser keeps them for a year.
IMMUTABLE = "private, max-age=31536000, immutable"


# What the page loads from the runtime package; absent until `npm ci` has run.
RUNTIME_ENTRY = "litertjs/core/dist/index.js"


@require_GET
def page(request):
    # From the sources (development) or from collectstatic's output (production).
    runtime = finders.find(RUNTIME_ENTRY) or staticfiles_storage.exists(RUNTIME_ENTRY)
    context = {
        "runtime_installed": bool(runtime),
        "cache_name": cache_name(),
        "model_url": reverse("classifier:live_model"),
        "save_url": reverse("classifier:live_save"),
        "sw_url": reverse("classifier:live_sw"),
        "runtime_url": reverse("classifier:live_runtime", args=["x"]).removesuffix("x"),
        "poll_seconds": settings.CLASSIFIER_LIVE_POLL_SECONDS,
        "upload_url": reverse("classifier:upload"),
    }
    response = render(request, "live/live.html", context)
    # Cross-origin isolation lets the runtime use its threaded WebAssembly
    # build (about twice as fast per frame). Only this page asks for it:
    # everything it loads is our own.
    response["Cross-Origin-Opener-Policy"] = "same-origin"
    response["Cross-Origin-Embedder-Policy"] = "require-corp"
    # The service worker keeps its own copy for offline use; the browser's
    # cache must not hand out a stale page (it holds a CSRF token).
    response["Cache-Control"] = "private, no-cache"
    return response


# The runtime's WebAssembly builds and their loaders, by name.
RUNTIME_FILE = re.compile(r"litert_wasm(_compat|_jspi|_threaded)?_internal\.(js|wasm)")
RUNTIME_TYPES = {"js": "text/javascript", "wasm": "application/wasm"}


@login_not_required
@require_GET
def runtime_file(request, name):
    # Served here rather than by the static files server for one header: the
    # threaded build starts workers from its loader script, and a cross-origin
    # isolated page may start workers only from isolated responses.
    if not RUNTIME_FILE.fullmatch(name):
        raise Http404("No such runtime file.")
    try:
        # FileResponse closes the file when the response is done.
        handle = (Path(settings.LITERTJS_DIR) / "core" / "wasm" / name).open("rb")  # noqa: SIM115
    except OSError:
        raise Http404("The live page's runtime is not installed.") from None
    response = FileResponse(handle, content_type=RUNTIME_TYPES[name.rsplit(".", 1)[1]])
    response["Cross-Origin-Embedder-Policy"] = "require-corp"
    response["Cross-Origin-Resource-Policy"] = "same-origin"
    # The names carry no version: a day, then the browser asks again. The
    # service worker keeps them for offline use.
    response["Cache-Control"] = "public, max-age=86400"
    return response


@require_GET
def service_worker(request):
    response = render(
        request,
        "live/sw.js",
        {
            "live_url": reverse("classifier:live"),
            "static_url": settings.STATIC_URL,
            "cache_name": cache_name(),
        },
        content_type="text/javascript; charset=utf-8",
    )
    # Browsers check for a new worker on each visit; never a cached one.
    response["Cache-Control"] = "no-cache"
    return response


@require_GET
def model_active(request):
    active = selectors.model_version_active() or services.model_version_sync()
    if active is None:
        return _error("no_model", "No model is active on this server.", 503)
    try:
        reason = browser_refusal(str(services.model_version_file(active)))
    except ModelError as exc:
        reason = f"the model file cannot be read: {exc}"
    body = {
        "version": active.version,
        "model": reverse("classifier:live_model_file", args=[active.version]),
        "card": reverse("classifier:live_model_card", args=[active.version]),
        "runs_in_browser": reason is None,
        "reason": reason or "",
    }
    response = JsonResponse(body)
    response["Cache-Control"] = "private, no-cache"
    return response


@require_GET
def model_file(request, version):
    found = selectors.model_version_get(version=version)
    if found is None:
        raise Http404("No such model version.")
    try:
        handle = services.model_version_file(found).open("rb")
    except (ModelError, FileNotFoundError):
        raise Http404("The model file is missing.") from None
    response = FileResponse(handle, content_type="application/octet-stream")
    response["Cache-Control"] = IMMUTABLE
    return response


@require_GET
def model_card(request, version):
    found = selectors.model_version_get(version=version)
    if found is None:
        raise Http404("No such model version.")
    response = JsonResponse(found.card)
    response["Cache-Control"] = IMMUTABLE
    return response


@require_POST
def save(request):
    # JSON in, JSON out: the page (or its offline queue) posts with fetch().
    limit = upload_rate_hit(user=request.user)
    if not limit.allowed:
        response = _error("rate_limited", "Too many photos saved; try again soon.", 429)
        response["Retry-After"] = str(max(1, limit.retry_after))
        return response
    form = LiveSaveForm(request.POST, request.FILES, user=request.user)
    prediction = None
    if form.is_valid():
        try:
            prediction = form.save()
        except ServiceUnavailable as exc:
            # upload_create kept no file and no row, and has logged why.
            return _error(exc.code, exc.message, exc.status)
    if prediction is None:
        message = " ".join(str(e) for errors in form.errors.values() for e in errors)
        return _error("invalid", message, 400)
    return JsonResponse(
        {
            "id": prediction.pk,
            "url": prediction.get_absolute_url(),
            "answer": prediction.answer,
            "answer_display": labels.display(prediction.answer),
            "band": prediction.shown_band,
            "label": prediction.label,
            "device_answer": prediction.device_answer,
            "agrees": not prediction.device_disagrees,
        },
        status=201,
    )


def cache_name() -> str:
    """The service worker's cache: a new name whenever the runtime's files change."""
    # In production the runtime's URL carries a hash of its content; in
    # development the name stays the same, and the worker revalidates.
    try:
        url = staticfiles_storage.url(RUNTIME_ENTRY)
    except ValueError:  # not collected (no runtime installed)
        url = RUNTIME_ENTRY
    return "usbills-live-" + hashlib.sha256(url.encode()).hexdigest()[:12]


def browser_refusal(path: str) -> str | None:
    """Why the browser's runtime cannot run this model file, or None when it can."""
    return _browser_refusal(path, _mtime(path))


@functools.lru_cache(maxsize=8)
def _browser_refusal(path: str, mtime: float) -> str | None:
    # LiteRT.js needs every input dimension fixed: a model exported with a
    # dynamic batch ([-1, 224, 224, 3]) is refused when it compiles.
    from ai_edge_litert.interpreter import Interpreter

    try:
        detail = Interpreter(model_path=path).get_input_details()[0]
    except (ValueError, RuntimeError, OSError) as exc:
        return f"the model file cannot be read: {exc}"
    signature = [int(d) for d in detail.get("shape_signature", detail["shape"])]
    if any(d < 0 for d in signature):
        return f"its input shape {signature} is not fixed (the browser needs a batch of 1)"
    return None


def _mtime(path: str) -> float:
    try:
        return Path(path).stat().st_mtime
    except OSError:
        return 0.0


def _error(code: str, message: str, status: int) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message}}, status=status)

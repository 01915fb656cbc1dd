import logging
import sys
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login, logout
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.core.paginator import Paginator
from django.db import DatabaseError, connection
from django.http import FileResponse, Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from . import selectors, services, serving
from .errors import ServiceUnavailable
from .forms import (
    AccountDeleteForm,
    FeedbackForm,
    HistoryFilterForm,
    PasswordResetForm,
    SignupForm,
    UploadForm,
)
from .ml import labels, preprocess
from .ratelimit import limit_account_requests, limit_uploads

log = logging.getLogger(__name__)

HISTORY_PAGE_SIZE = 20


@login_not_required
@require_http_methods(["GET", "POST"])
@limit_account_requests()
def signup(request):
    if request.user.is_authenticated:
        return redirect("classifier:upload")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, f"Welcome, {user.username}. Upload a photo of a note.")
        return redirect("classifier:upload")
    return render(request, "registration/signup.html", {"form": form})


@require_http_methods(["GET", "POST"])
@limit_uploads
def upload(request):
    form = UploadForm(
        request.POST or None,
        request.FILES or None,
        user=request.user,
        request_id=services.request_id_of(request),
    )
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            prediction = form.save()
        except ServiceUnavailable as exc:
            # upload_create has removed whatever it had written, and saved no row.
            form.add_error(None, exc.message)
            status = exc.status
        else:
            if prediction is not None:
                return redirect(prediction)
    recent = selectors.prediction_list_for_user(user=request.user)[:3]
    context = {
        "form": form,
        "recent": recent,
        "max_upload_bytes": settings.CLASSIFIER_MAX_UPLOAD_BYTES,
        "formats": preprocess.FORMAT_NAMES,
    }
    return render(request, "classifier/upload.html", context, status=status)


@require_GET
def prediction_detail(request, pk):
    prediction = _get_prediction_or_404(request, pk)
    # "Wrong: it is a ..." offers every other class; when the model gave no
    # answer, the user picks from all of them.
    claimed = prediction.claimed_label
    feedback_choices = [(c, labels.display(c)) for c in labels.CLASSES if c != claimed]
    context = {
        "prediction": prediction,
        "top": [(label, labels.display(label), p) for label, p in prediction.top(3)],
        "feedback_choices": feedback_choices,
        "claimed": claimed,
        "is_owner": prediction.upload.owner_id == request.user.pk,
    }
    return render(request, "classifier/result.html", context)


@require_POST
def prediction_feedback(request, pk):
    prediction = _get_prediction_or_404(request, pk, owner_only=True)
    form = FeedbackForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose what the photo shows.")
        return redirect(prediction)
    label = form.cleaned_data["label"]
    services.prediction_set_feedback(prediction=prediction, user=request.user, label=label)
    # One thank-you, here; the page itself then says what the user answered.
    if prediction.user_flagged:
        messages.success(request, "Thanks: a reviewer will look at it.")
    else:
        messages.success(request, "Thanks for telling us.")
    return redirect(prediction)


@require_GET
def prediction_list(request):
    filters = HistoryFilterForm(request.GET or None)
    answer, flagged = "", False
    if filters.is_valid():
        answer = filters.cleaned_data["answer"]
        flagged = filters.cleaned_data["flagged"]
    predictions = selectors.prediction_list_for_user(
        user=request.user, answer=answer, flagged=flagged
    )
    page = Paginator(predictions, HISTORY_PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "page": page,
        "filters": filters,
        "filtered": bool(answer or flagged),
        "query": query.urlencode(),
    }
    return render(request, "classifier/history.html", context)


# Django's view with the throttle and the pinned origin of links (forms.PasswordResetForm).
password_reset = login_not_required(
    limit_account_requests(per_email=True)(
        auth_views.PasswordResetView.as_view(form_class=PasswordResetForm)
    )
)


@require_POST
def prediction_delete(request, pk):
    prediction = _get_prediction_or_404(request, pk, owner_only=True)
    services.upload_delete(upload=prediction.upload, user=request.user)
    messages.success(request, "The photo and its result are deleted.")
    return redirect("classifier:predictions")


@require_http_methods(["GET", "POST"])
def account_delete(request):
    form = AccountDeleteForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        user = request.user
        logout(request)
        # The sign-out's own "You are logged out." (signals.py) is dropped:
        # reading the queued messages marks them used, and this one says more.
        list(messages.get_messages(request))
        services.user_delete(user=user)
        messages.success(request, "Your account, your photos and your API keys are deleted.")
        return redirect("login")
    return render(request, "registration/account_delete.html", {"form": form})


@require_GET
def photo(request, pk):
    prediction = _get_prediction_or_404(request, pk)
    upload = prediction.upload
    return _private_file(upload.file.name, upload.content_type)


@require_GET
def display(request, pk):
    prediction = _get_prediction_or_404(request, pk)
    upload = prediction.upload
    if not upload.display:
        # Uploaded before page-size copies were made: the original will do.
        return _private_file(upload.file.name, upload.content_type)
    return _private_file(upload.display.name, "image/jpeg")


@require_GET
def thumbnail(request, pk):
    prediction = _get_prediction_or_404(request, pk)
    return _private_file(prediction.upload.thumbnail.name, "image/jpeg")


@login_not_required
@never_cache
@require_GET
def healthz(request):
    # The details go to the log, not to whoever asks: this page is public.
    problems = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:  # any database failure makes the instance unhealthy
        log.exception("healthz: the database is not usable")
        problems["database"] = "unusable"
    model = None
    try:
        model = serving.get_predictor().version
    except Exception:  # a missing or broken model, likewise
        log.exception("healthz: the model is not usable")
        problems["model"] = "unusable"
    if problems:
        return JsonResponse({"status": "error", **problems}, status=503)
    return JsonResponse({"status": "ok", "model": model})


@login_not_required
def server_error(request):
    """handler500: a database outage is a 503 ("try again soon"), anything else a 500."""
    # Called inside Django's exception handler, so the exception is at hand.
    # The pages are plain HTML: rendering base.html would ask the database
    # for the user again.
    exc = sys.exc_info()[1]
    if isinstance(exc, DatabaseError):
        if request.path.startswith("/api/"):
            # The API's one error shape (classifier/api/auth.py), for programs.
            message = "The service is briefly unavailable; try again soon."
            error = {"code": "unavailable", "message": message}
            response = JsonResponse({"error": error}, status=503)
        else:
            response = render(request, "503.html", status=503)
        response["Retry-After"] = "30"
        return response
    return render(request, "500.html", status=500)


def _get_prediction_or_404(request, pk, *, owner_only=False):
    prediction = selectors.prediction_get_for_user(user=request.user, pk=pk)
    if prediction is None or (owner_only and prediction.upload.owner_id != request.user.pk):
        # Someone else's prediction is "not found", never "forbidden": a 403
        # would confirm that it exists.
        raise Http404("No such prediction.")
    return prediction


def _private_file(name, content_type):
    if not name:
        raise Http404("No such photo.")
    if settings.MEDIA_ACCEL_REDIRECT:
        # nginx serves the file from its `internal` location; Python only said yes.
        response = HttpResponse(content_type=content_type)
        response["X-Accel-Redirect"] = settings.MEDIA_ACCEL_REDIRECT.rstrip("/") + "/" + name
    elif settings.S3_ACCEL_REDIRECT:
        response = HttpResponse(content_type=content_type)
        response["X-Accel-Redirect"] = _presigned_accel_path(name)
    else:
        try:
            handle = default_storage.open(name, "rb")
        except FileNotFoundError:
            raise Http404("No such photo.") from None
        response = FileResponse(handle, content_type=content_type)
    # The type is the one Pillow detected, never guessed from the name, and the
    # browser must not second-guess it.
    response["X-Content-Type-Options"] = "nosniff"
    # Even if a browser did take a stored photo for a page, it could run nothing.
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cache-Control"] = "private, max-age=3600"
    response["Content-Disposition"] = "inline"
    return response


def _presigned_accel_path(name):
    """The internal location followed by the object's presigned path and query.

    Only the path and the query travel: nginx sends them to the bucket
    endpoint pinned in its own configuration, never to a host named here.
    The signature (60 s) covers that endpoint's Host, so a URL altered on
    the way, or used late, is refused by the bucket.
    """
    url = urlsplit(default_storage.url(name))
    return f"{settings.S3_ACCEL_REDIRECT.rstrip('/')}{url.path}?{url.query}"


# The account page where users make and revoke keys -----------------------------


# The key made by the last POST waits in the session for the one page that shows it.
NEW_KEY_SESSION = "api_new_key"


@require_http_methods(["GET", "POST"])
def tokens(request):
    if request.method == "POST":
        # Redirect after POST: reloading the page must not make a second key.
        try:
            token, key = services.api_token_create(
                user=request.user, name=request.POST.get("name", "")
            )
        except ValidationError as exc:
            messages.error(request, exc.messages[0])
            return redirect("classifier:tokens")
        request.session[NEW_KEY_SESSION] = {"key": key, "name": token.name}
        return redirect("classifier:tokens")
    # Shown once: taken out of the session by the page that shows it.
    new_key = request.session.pop(NEW_KEY_SESSION, None)
    keys = selectors.api_token_list_for_user(user=request.user)
    context = {
        "tokens": [t for t in keys if t.is_active],
        "revoked_count": sum(1 for t in keys if not t.is_active),
        "new_key": new_key,
        "api_docs": reverse("api:docs"),
        "base_url": request.build_absolute_uri("/api/v1/"),
        "max_upload_mb": settings.CLASSIFIER_MAX_UPLOAD_BYTES // (1024 * 1024),
    }
    # A page that shows a key once must not be cached anywhere.
    response = render(request, "classifier/tokens.html", context)
    response["Cache-Control"] = "no-store"
    return response


@require_http_methods(["GET", "POST"])
def token_revoke(request, pk):
    token = selectors.api_token_list_for_user(user=request.user).filter(pk=pk).first()
    if token is None or not token.is_active:
        raise Http404("No such key.")
    if request.method == "GET":
        # A page of its own asks first: revoking cannot be undone.
        return render(request, "classifier/token_revoke.html", {"token": token})
    services.api_token_revoke(token=token, user=request.user)
    messages.success(request, f"Key “{token.name}” revoked. Programs using it are refused now.")
    return redirect("classifier:tokens")

import json

from django.contrib.auth.decorators import login_not_required
from django.core.paginator import EmptyPage, PageNotAnInteger, Paginator
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET

from classifier import selectors, services
from classifier.errors import ServiceUnavailable
from classifier.forms import UploadForm
from classifier.ml import labels
from classifier.ratelimit import limit_uploads
from classifier.views import _private_file

from .auth import api_view, error
from .schema import schema as openapi_schema

PAGE_SIZE = 20


def prediction_json(request, prediction) -> dict:
    """A prediction as the API shows it."""
    pk = prediction.pk
    return {
        "id": pk,
        "answer": prediction.answer,
        "answer_display": labels.display(prediction.answer),
        "band": prediction.shown_band,
        "headline": prediction.headline,
        "label": prediction.label,
        "confidence": round(prediction.confidence, 6),
        "probabilities": {k: round(v, 6) for k, v in prediction.probabilities.items()},
        "threshold": prediction.threshold,
        "model_version": prediction.model_version,
        "created": prediction.created.isoformat(),
        "feedback": {
            "label": prediction.user_label or None,
            "flagged": prediction.user_flagged,
        },
        # What a reviewer decided the photo shows, once someone has.
        "review": {"label": prediction.reviewed_label or None},
        "links": {
            "self": request.build_absolute_uri(reverse("api:prediction", args=[pk])),
            "feedback": request.build_absolute_uri(reverse("api:feedback", args=[pk])),
            "html": request.build_absolute_uri(prediction.get_absolute_url()),
            # Reachable with the API key as well as the session.
            "photo": request.build_absolute_uri(reverse("api:photo", args=[pk])),
        },
    }


@api_view(["GET", "POST"])
@limit_uploads(json=True)
def predictions(request):
    if request.method == "POST":
        return _create(request)
    qs = selectors.prediction_list_for_user(user=request.user)
    paginator = Paginator(qs, PAGE_SIZE)
    try:
        page = paginator.page(request.GET.get("page") or 1)
    except (PageNotAnInteger, EmptyPage):
        return error(404, "no_such_page", f"Pages are 1 to {paginator.num_pages}.")
    base = request.build_absolute_uri(reverse("api:predictions"))
    return JsonResponse(
        {
            "count": paginator.count,
            "page": page.number,
            "pages": paginator.num_pages,
            "next": f"{base}?page={page.next_page_number()}" if page.has_next() else None,
            "previous": (
                f"{base}?page={page.previous_page_number()}" if page.has_previous() else None
            ),
            "results": [prediction_json(request, p) for p in page.object_list],
        }
    )


def _create(request):
    form = UploadForm(
        request.POST,
        request.FILES,
        user=request.user,
        request_id=services.request_id_of(request),
    )
    if form.is_valid():
        try:
            prediction = form.save()
        except ServiceUnavailable as exc:
            # upload_create kept no file and no row.
            return error(exc.status, exc.code, exc.message)
        if prediction is not None:
            response = JsonResponse(prediction_json(request, prediction), status=201)
            response["Location"] = reverse("api:prediction", args=[prediction.pk])
            return response
    fields = {
        name: [e["message"] for e in errs] for name, errs in form.errors.get_json_data().items()
    }
    first = next(iter(fields.values()))[0]
    status = (
        413
        if any(
            e["code"] == "too_large" for errs in form.errors.get_json_data().values() for e in errs
        )
        else 400
    )
    return error(status, "invalid", first, fields=fields)


@api_view(["GET", "DELETE"])
def prediction_detail(request, pk):
    prediction = selectors.prediction_get_for_user(user=request.user, pk=pk)
    if prediction is None:
        return error(404, "not_found", "No such prediction.")
    if request.method == "DELETE":
        if prediction.upload.owner_id != request.user.pk:
            return error(404, "not_found", "No such prediction.")
        services.upload_delete(upload=prediction.upload, user=request.user)
        return HttpResponse(status=204)
    return JsonResponse(prediction_json(request, prediction))


@api_view(["GET"])
def prediction_photo(request, pk):
    prediction = selectors.prediction_get_for_user(user=request.user, pk=pk)
    if prediction is None:
        return error(404, "not_found", "No such prediction.")
    try:
        return _private_file(prediction.upload.file.name, prediction.upload.content_type)
    except Http404:
        return error(404, "not_found", "The photo is gone.")


@api_view(["POST"])
def prediction_feedback(request, pk):
    prediction = selectors.prediction_get_for_user(user=request.user, pk=pk)
    if prediction is None or prediction.upload.owner_id != request.user.pk:
        return error(404, "not_found", "No such prediction.")
    label = _label_from(request)
    if label not in labels.CLASSES:
        return error(
            400,
            "invalid_label",
            f"'label' must be one of {', '.join(labels.CLASSES)}.",
            fields={"label": ["Not a class."]},
        )
    services.prediction_set_feedback(prediction=prediction, user=request.user, label=label)
    return JsonResponse(prediction_json(request, prediction))


def _label_from(request):
    if request.content_type == "application/json":
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            return None
        return body.get("label") if isinstance(body, dict) else None
    return request.POST.get("label")


@login_not_required
@csrf_exempt  # it changes nothing, and must answer in JSON even to a POST
def not_found(request):
    return error(404, "not_found", "No such API address; see /api/v1/docs/.")


@login_not_required
@require_GET
def schema(request):
    return JsonResponse(openapi_schema(request.build_absolute_uri("/api/v1/")))


@login_not_required
@require_GET
def docs(request):
    spec = openapi_schema("/api/v1/")
    return render(
        request,
        "api/docs.html",
        {
            "spec": spec,
            "operations": _operations(spec),
            "classes": labels.CLASSES,
            "schema_text": json.dumps(spec, indent=2),
            "example_response": json.dumps(EXAMPLE_PREDICTION, indent=2),
        },
    )


# What POST /api/v1/predictions/ answers, shown on the docs page.
EXAMPLE_PREDICTION = {
    "id": 42,
    "answer": "usd_20",
    "answer_display": "$20",
    "band": "sure",
    "headline": "$20",
    "label": "usd_20",
    "confidence": 0.973412,
    "probabilities": {
        "usd_1": 0.002101,
        "usd_2": 0.000512,
        "usd_5": 0.008843,
        "usd_10": 0.006217,
        "usd_20": 0.973412,
        "usd_50": 0.004409,
        "usd_100": 0.001986,
        "not_a_bill": 0.00252,
    },
    "threshold": 0.35,
    "model_version": "effl0-20261125-v5",
    "created": "2026-11-24T10:31:07.412093+00:00",
    "feedback": {"label": None, "flagged": False},
    "review": {"label": None},
    "links": {
        "self": "https://example.org/api/v1/predictions/42/",
        "feedback": "https://example.org/api/v1/predictions/42/feedback/",
        "html": "https://example.org/predictions/42/",
        "photo": "https://example.org/predictions/42/photo/",
    },
}


def _operations(spec):
    ops = []
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method == "parameters":
                continue
            responses = [(code, r.get("description", "")) for code, r in op["responses"].items()]
            ops.append(
                {
                    "method": method.upper(),
                    "path": "/api/v1" + path,
                    "summary": op.get("summary", ""),
                    "description": op.get("description", ""),
                    "responses": responses,
                }
            )
    return ops

"""Everything that reads data for a page, the admin or a command."""

from __future__ import annotations

from django.db.models import Case, Count, F, IntegerField, Q, QuerySet, Value, When
from django.db.models.functions import TruncDate

from .ml import labels
from .ml.predictor import DEFAULT_SURE, NO_ANSWER, UNSURE
from .models import ApiToken, ModelVersion, Prediction


def prediction_list_for_user(
    *, user, answer: str | None = None, flagged: bool = False
) -> QuerySet[Prediction]:
    """The user's predictions, newest first, optionally by answer or only those they flagged."""
    qs = (
        Prediction.objects.filter(upload__owner=user)
        .select_related("upload")
        .order_by("-upload__created", "-pk")
    )
    if answer:
        qs = qs.filter(answer=answer)
    if flagged:
        qs = qs.filter(user_flagged=True)
    return qs


def prediction_get_for_user(*, user, pk: int) -> Prediction | None:
    """One prediction the user may see (their own; any, with the view permission), or None."""
    qs = Prediction.objects.select_related("upload", "upload__owner")
    # The model permission, not is_staff: a staff account given no
    # permissions sees no one else's photos, in the admin or here.
    if not user.has_perm("classifier.view_prediction"):
        qs = qs.filter(upload__owner=user)
    return qs.filter(pk=pk).first()


# What needs review first: flagged by the user, then least sure; reviewed ones
# last (review_priority is annotated by prediction_list_for_review).
REVIEW_ORDER = ("review_priority", "confidence", "-created", "-pk")


def prediction_list_for_review() -> QuerySet[Prediction]:
    """All predictions, what needs review first: flagged or disputed, least sure; reviewed last."""
    return (
        Prediction.objects.select_related("upload", "upload__owner", "reviewed_by")
        .annotate(
            review_priority=Case(
                When(reviewed_label="", user_flagged=True, then=Value(0)),
                # The browser and the server disagreed on a photo saved from the live page.
                When(reviewed_label="", device_disagrees=True, then=Value(0)),
                When(reviewed_label="", then=Value(1)),
                default=Value(2),
                output_field=IntegerField(),
            )
        )
        .order_by(*REVIEW_ORDER)
    )


def prediction_review_queue(*, skip=()) -> QuerySet[Prediction]:
    """What a reviewer should look at, in the admin's order: not yet reviewed, and
    flagged by its owner or not answered plainly (unsure, or no answer)."""
    doubtful = Q(band__in=[UNSURE, NO_ANSWER]) | Q(
        # Predictions made before bands were stored.
        Q(answer=labels.UNKNOWN) | Q(confidence__lt=DEFAULT_SURE),
        band="",
    )
    return (
        prediction_list_for_review()
        .filter(Q(user_flagged=True) | doubtful, reviewed_label="")
        .exclude(pk__in=list(skip))
    )


def prediction_list_labelled() -> QuerySet[Prediction]:
    """Predictions whose true class a reviewer has set: the next training data."""
    return Prediction.objects.exclude(reviewed_label="").select_related("upload").order_by("pk")


def model_version_list() -> QuerySet[ModelVersion]:
    """Every registered model version, newest first."""
    return ModelVersion.objects.order_by("-created", "-pk")


def model_version_get(*, version: str) -> ModelVersion | None:
    """The version with this name, or None."""
    return ModelVersion.objects.filter(version=version).first()


def model_version_active() -> ModelVersion | None:
    """The version workers serve, or None before the first sync."""
    return ModelVersion.objects.filter(is_active=True).first()


def api_token_list_for_user(*, user) -> QuerySet[ApiToken]:
    """The user's API keys, newest first, revoked ones included."""
    return ApiToken.objects.filter(user=user).order_by("-created", "-pk")


def model_version_performance(*, version: ModelVersion) -> dict:
    """How a version has done since it went live: on reviewed photos, by users' flags,
    answers per class, and the same by day for the chart."""
    qs = Prediction.objects.filter(model=version)
    reviewed = qs.exclude(reviewed_label="")
    right = reviewed.filter(label=F("reviewed_label"))
    total, n_reviewed = qs.count(), reviewed.count()
    counted = dict(qs.values_list("answer").annotate(n=Count("pk")).order_by())
    # In the classes' own order ($1, $2, $5, ... then unknown), not as text.
    order = [*labels.CLASSES, labels.UNKNOWN]
    answers = {a: counted[a] for a in order if a in counted}
    days = (
        qs.annotate(day=TruncDate("created"))
        .values("day")
        .annotate(
            n=Count("pk"),
            reviewed=Count("pk", filter=~Q(reviewed_label="")),
            right=Count("pk", filter=~Q(reviewed_label="") & Q(label=F("reviewed_label"))),
            flagged=Count("pk", filter=Q(user_flagged=True)),
        )
        .order_by("day")
    )
    return {
        "predictions": total,
        "reviewed": n_reviewed,
        "accuracy_reviewed": right.count() / n_reviewed if n_reviewed else None,
        "flagged_share": qs.filter(user_flagged=True).count() / total if total else None,
        "answers": answers,
        "days": [
            {
                **d,
                "accuracy": d["right"] / d["reviewed"] if d["reviewed"] else None,
                "flagged_share": d["flagged"] / d["n"],
            }
            for d in days
        ],
    }

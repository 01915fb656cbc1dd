import json

from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from . import selectors, services
from .ml import labels
from .ml.evaluate import HEADLINE
from .ml.predictor import ModelError
from .models import ApiToken, ModelVersion, Prediction, User


@admin.register(User)
class AccountAdmin(UserAdmin):
    """Django's user admin; deleting a user goes through services.user_delete, so that
    their photos, predictions and API keys go too, files included."""

    def get_deleted_objects(self, objs, request):
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        # Predictions and keys cannot be deleted on their own in the admin
        # (the model's record is kept), but they do go with their user: the
        # permission to delete the user is what counts.
        if self.has_delete_permission(request):
            perms_needed -= {
                Prediction._meta.verbose_name,
                ApiToken._meta.verbose_name,
            }
        return deleted, counts, perms_needed, protected

    def delete_model(self, request, obj):
        services.user_delete(user=obj)

    def delete_queryset(self, request, queryset):
        for user in queryset:
            services.user_delete(user=user)


class ConfidenceBandFilter(admin.SimpleListFilter):
    title = "confidence"
    parameter_name = "confidence"
    BANDS = {
        "lt50": ("below 50%", 0.0, 0.5),
        "50-80": ("50% to 80%", 0.5, 0.8),
        "80-95": ("80% to 95%", 0.8, 0.95),
        "ge95": ("95% and above", 0.95, 1.01),
    }

    def lookups(self, request, model_admin):
        return [(key, title) for key, (title, _, _) in self.BANDS.items()]

    def queryset(self, request, queryset):
        if self.value() not in self.BANDS:
            return queryset
        _, low, high = self.BANDS[self.value()]
        return queryset.filter(confidence__gte=low, confidence__lt=high)


class ReviewedFilter(admin.SimpleListFilter):
    title = "reviewed"
    parameter_name = "reviewed"

    def lookups(self, request, model_admin):
        return [("yes", "Reviewed"), ("no", "Not reviewed")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.exclude(reviewed_label="")
        if self.value() == "no":
            return queryset.filter(reviewed_label="")
        return queryset


def ask_before_changing_reviewed(modeladmin, request, queryset, description):
    """(queryset to change, None), or (None, a page that asks first) when some of the
    chosen photos were reviewed already: a bulk action must not silently undo a review."""
    choice = request.POST.get("reviewed")
    if choice == "change":
        return queryset, None
    if choice == "skip":
        return queryset.filter(reviewed_label=""), None
    reviewed = queryset.exclude(reviewed_label="")
    if not reviewed.exists():
        return queryset, None
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": "Change photos that were reviewed already?",
        "opts": modeladmin.model._meta,
        "description": description,
        "count": queryset.count(),
        "reviewed": reviewed[:50],
        "reviewed_count": reviewed.count(),
        "action": request.POST.get("action", ""),
        "select_across": request.POST.get("select_across", "0"),
        "selected": request.POST.getlist(ACTION_CHECKBOX_NAME),
        "action_checkbox_name": ACTION_CHECKBOX_NAME,
    }
    page = TemplateResponse(request, "admin/classifier/prediction/confirm_reviewed.html", context)
    return None, page


def _relabel_action(label):
    description = f"Relabel as {labels.display(label)}"

    def action(modeladmin, request, queryset):
        queryset, page = ask_before_changing_reviewed(modeladmin, request, queryset, description)
        if page is not None:
            return page
        n = 0
        for prediction in queryset:
            services.prediction_review(
                prediction=prediction, reviewer=request.user, label=label, how="bulk action"
            )
            n += 1
        modeladmin.message_user(
            request, f"Relabelled {n} as {labels.display(label)}.", messages.SUCCESS
        )

    action.__name__ = f"relabel_as_{label}"
    return admin.action(description=description, permissions=["change"])(action)


# The review screen's keys: 1 to 8 for the classes in their order.
REVIEW_KEYS = {label: str(i) for i, label in enumerate(labels.CLASSES, start=1)}
# Photos a reviewer skipped in this session, so the queue moves on past them.
REVIEW_SKIPPED = "review_skipped"


@admin.register(Prediction)
class PredictionAdmin(admin.ModelAdmin):
    # Narrow enough for 1280 px; the model version is a filter, not a column.
    list_display = [
        "thumbnail",
        "answer_display",
        "confidence_display",
        "user_flag",
        "reviewed_label",
        "owner",
        "created",
    ]
    list_display_links = ["answer_display"]
    list_filter = [
        "answer",
        ConfidenceBandFilter,
        ("user_flagged", admin.BooleanFieldListFilter),
        ("device_disagrees", admin.BooleanFieldListFilter),
        ReviewedFilter,
        "model_version",
    ]
    search_fields = ["upload__owner__username"]
    search_help_text = "Search by username"
    list_per_page = 50
    date_hierarchy = "created"
    actions = [
        "confirm_answer",
        "accept_user_label",
        *(_relabel_action(c) for c in labels.CLASSES),
    ]
    # The reviewed label right under the photo: both fit on one screen.
    fieldsets = [
        ("Photo", {"fields": ["photo", "upload_details"]}),
        ("Review", {"fields": ["reviewed_label", "reviewed_by", "reviewed_at"]}),
        (
            "What the user said",
            {"fields": ["owner", "user_label", "user_flagged", "user_labelled_at"]},
        ),
        (
            "What the model said",
            {
                "fields": [
                    "answer",
                    "band",
                    "label",
                    "confidence_display",
                    "probability_table",
                    "threshold",
                    "model_version",
                    "inference_display",
                    "created",
                ]
            },
        ),
        (
            "What the browser said (live page)",
            {
                "fields": [
                    "device_answer",
                    "device_label",
                    "device_confidence",
                    "device_model_version",
                    "device_disagrees",
                ]
            },
        ),
    ]
    # Everything on the page but the reviewed label is the record of what happened.
    readonly_fields = [f for _, o in fieldsets for f in o["fields"] if f != "reviewed_label"]

    def get_queryset(self, request):
        return selectors.prediction_list_for_review()

    def get_ordering(self, request):
        # The changelist would otherwise order by -pk over the selector's order.
        return list(selectors.REVIEW_ORDER)

    def has_add_permission(self, request):
        return False  # predictions come from uploads only

    def has_delete_permission(self, request, obj=None):
        return False  # the model's record is kept; relabel instead

    class Media:
        css = {"all": ["classifier/admin.css"]}

    def get_urls(self):
        review = [
            path(
                "review/",
                self.admin_site.admin_view(self.review_next),
                name="classifier_prediction_review_next",
            ),
            path(
                "review/<int:pk>/",
                self.admin_site.admin_view(self.review_view),
                name="classifier_prediction_review",
            ),
        ]
        return [*review, *super().get_urls()]

    def changelist_view(self, request, extra_context=None):
        extra = {"review_queue": selectors.prediction_review_queue().count()}
        return super().changelist_view(request, {**extra, **(extra_context or {})})

    def review_next(self, request):
        """The first photo in the queue that this session has not skipped."""
        if not self.has_change_permission(request):
            raise PermissionDenied
        if request.GET.get("restart"):
            request.session.pop(REVIEW_SKIPPED, None)
        skipped = request.session.get(REVIEW_SKIPPED, [])
        upcoming = selectors.prediction_review_queue(skip=skipped).first()
        if upcoming is not None:
            return redirect("admin:classifier_prediction_review", upcoming.pk)
        context = {
            **self.admin_site.each_context(request),
            "title": "Review queue",
            "opts": self.model._meta,
            "skipped": len(skipped),
        }
        return TemplateResponse(request, "admin/classifier/prediction/review_done.html", context)

    def review_view(self, request, pk):
        """One photo, large, with the model's top 3 and the owner's label; one key per label."""
        if not self.has_change_permission(request):
            raise PermissionDenied
        prediction = selectors.prediction_list_for_review().filter(pk=pk).first()
        if prediction is None:
            raise Http404("No such prediction.")
        if request.method == "POST":
            return self._review_post(request, prediction)
        skipped = request.session.get(REVIEW_SKIPPED, [])
        context = {
            **self.admin_site.each_context(request),
            "title": f"Review photo #{prediction.pk}",
            "opts": self.model._meta,
            "prediction": prediction,
            "top": [(label, labels.display(label), p) for label, p in prediction.top(3)],
            "choices": [(c, labels.display(c), REVIEW_KEYS[c]) for c in labels.CLASSES],
            "remaining": selectors.prediction_review_queue(skip=skipped).count(),
        }
        return TemplateResponse(request, "admin/classifier/prediction/review.html", context)

    def _review_post(self, request, prediction):
        choice = request.POST.get("choice", "")
        if choice == "skip":
            skipped = request.session.get(REVIEW_SKIPPED, [])
            request.session[REVIEW_SKIPPED] = [*skipped, prediction.pk][-1000:]
        elif choice == "user" and prediction.user_label:
            services.prediction_accept_user_label(
                prediction=prediction, reviewer=request.user, how="review screen"
            )
        elif choice in labels.CLASSES:
            services.prediction_review(
                prediction=prediction, reviewer=request.user, label=choice, how="review screen"
            )
        else:
            self.message_user(request, "Choose a label.", messages.ERROR)
            return redirect("admin:classifier_prediction_review", prediction.pk)
        if choice != "skip":
            self.message_user(
                request,
                f"#{prediction.pk} reviewed as {labels.display(prediction.reviewed_label)}.",
                messages.SUCCESS,
            )
        return redirect("admin:classifier_prediction_review_next")

    def log_change(self, request, obj, message):
        # The reviewed label is the only field, and prediction_review logs each
        # change of it with the old and new label: a second line would repeat it.
        return None

    def save_model(self, request, obj, form, change):
        # The only editable field is the reviewed label, and it goes through
        # the service so that who and when are recorded.
        if "reviewed_label" in form.changed_data:
            # The form has put the new label on obj already; the service must
            # see the old one to log the change.
            obj.reviewed_label = form.initial.get("reviewed_label", "")
            services.prediction_review(
                prediction=obj,
                reviewer=request.user,
                label=form.cleaned_data["reviewed_label"],
                how="edited on its page",
            )

    @admin.action(description="Accept the user's label", permissions=["change"])
    def accept_user_label(self, request, queryset):
        return self._bulk_review(
            request,
            queryset,
            "Accept the user's label",
            services.prediction_accept_user_label,
            done="Accepted the user's label on {n}.",
            skipped="Skipped {n}: their owners gave no label.",
        )

    @admin.action(description="Confirm the model's answer", permissions=["change"])
    def confirm_answer(self, request, queryset):
        return self._bulk_review(
            request,
            queryset,
            "Confirm the model's answer",
            services.prediction_confirm,
            done="Confirmed {n}.",
            skipped="Skipped {n}: the model was unsure of a note and gave no answer to "
            "confirm. Relabel those instead.",
        )

    def _bulk_review(self, request, queryset, title, service, *, done, skipped):
        """Ask before changing reviewed rows, then apply the service to each and say how many."""
        queryset, page = ask_before_changing_reviewed(self, request, queryset, title)
        if page is not None:
            return page
        changed = [
            bool(service(prediction=p, reviewer=request.user, how="bulk action")) for p in queryset
        ]
        self.message_user(request, done.format(n=changed.count(True)), messages.SUCCESS)
        if changed.count(False):
            self.message_user(request, skipped.format(n=changed.count(False)), messages.WARNING)
        return None

    @admin.display(description="photo")
    def thumbnail(self, obj):
        # A link of its own to the page-size copy: a click shows the photo large.
        return format_html(
            '<a class="review-thumb" href="{}" target="_blank" rel="noopener" '
            'title="Open the photo large"><img src="{}" alt="photo #{}" width="64" height="64" '
            'loading="lazy"></a>',
            reverse("classifier:display", args=[obj.pk]),
            reverse("classifier:thumbnail", args=[obj.pk]),
            obj.pk,
        )

    @admin.display(description="user", ordering="upload__owner__username")
    def owner(self, obj):
        return obj.upload.owner.username

    @admin.display(description="answer", ordering="answer")
    def answer_display(self, obj):
        return labels.display(obj.answer)

    @admin.display(description="confidence", ordering="confidence")
    def confidence_display(self, obj):
        return f"{obj.confidence:.1%}"

    @admin.display(description="user's flag", ordering="user_flagged")
    def user_flag(self, obj):
        if not obj.user_label:
            return "-"
        if obj.user_flagged:
            return f"Wrong: {labels.display(obj.user_label)}"
        return "Right"

    @admin.display(description="inference")
    def inference_display(self, obj):
        return f"{obj.inference_ms:.1f} ms (decoding and forward pass)"

    @admin.display(description="photo")
    def photo(self, obj):
        return format_html(
            '<a href="{}"><img src="{}" alt="the uploaded photo" '
            'style="max-width:min(640px,100%);max-height:40vh;height:auto"></a>'
            '<p><a href="{}">Review it on the review screen</a></p>',
            reverse("classifier:photo", args=[obj.pk]),
            reverse("classifier:display", args=[obj.pk]),
            reverse("admin:classifier_prediction_review", args=[obj.pk]),
        )

    @admin.display(description="file")
    def upload_details(self, obj):
        u = obj.upload
        return f"{u.width}x{u.height}, {u.size / 1024:.0f} KB, {u.content_type}, sha256 {u.sha256}"

    @admin.display(description="probabilities")
    def probability_table(self, obj):
        rows = format_html_join(
            "",
            "<tr><th scope='row'>{}</th><td>{}</td><td style='width:200px'>"
            "<div style='background:#79aec8;height:10px;width:{}%'></div></td></tr>",
            (
                (
                    labels.display(c),
                    f"{obj.probabilities.get(c, 0):.2%}",
                    f"{100 * obj.probabilities.get(c, 0):.1f}",
                )
                for c in labels.CLASSES
            ),
        )
        return format_html("<table>{}</table>", rows)


FIGURES = ("n", *HEADLINE)


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    """Every model the app has served or could serve; activating one switches the workers."""

    list_display = [
        "version",
        "is_active",
        "created",
        "activated_at",
        "validation_accuracy",
        "short_sha256",
    ]
    list_filter = ["is_active"]
    ordering = ["-created", "-pk"]
    actions = ["activate"]
    fields = [
        "version",
        "is_active",
        "activated_at",
        "created",
        "registered",
        "file",
        "sha256",
        "card_sha256",
        "held_out_figures",
        "confusion_matrix",
        "since_live",
        "chart",
        "card_json",
    ]
    readonly_fields = fields

    def has_add_permission(self, request):
        return False  # versions are registered from model files

    def change_view(self, request, object_id, form_url="", extra_context=None):
        # Every field is read-only: no Save buttons on a page with nothing to save.
        no_saving = {
            "show_save": False,
            "show_save_and_continue": False,
            "show_save_and_add_another": False,
            "show_delete": False,
        }
        return super().change_view(
            request, object_id, form_url, {**no_saving, **(extra_context or {})}
        )

    def has_delete_permission(self, request, obj=None):
        return False  # predictions point at them

    def get_urls(self):
        confusion = path(
            "<int:pk>/confusion.png",
            self.admin_site.admin_view(self.confusion_png),
            name="classifier_modelversion_confusion",
        )
        return [confusion, *super().get_urls()]

    def confusion_png(self, request, pk):
        version = ModelVersion.objects.filter(pk=pk).first()
        if version is None:
            raise Http404("No such version.")
        png = services.model_version_path(version).with_name(f"{version.version}-confusion.png")
        if not png.is_file():
            raise Http404("No confusion matrix for this version.")
        return FileResponse(png.open("rb"), content_type="image/png")

    @admin.action(description="Activate (workers switch at their next upload)")
    def activate(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Choose exactly one version to activate.", messages.ERROR)
            return
        version = queryset.get()
        try:
            services.model_version_activate(version=version)
        except ModelError as exc:
            self.message_user(request, f"{version.version} cannot be served: {exc}", messages.ERROR)
            return
        self.message_user(request, f"{version.version} is now active.", messages.SUCCESS)

    @admin.display(description="validation accuracy")
    def validation_accuracy(self, obj):
        value = obj.validation.get("accuracy")
        return "-" if value is None else f"{value:.1%}"

    @admin.display(description="sha256")
    def short_sha256(self, obj):
        # Enough to tell versions apart, and to compare with `sha256sum`.
        return obj.sha256[:12] or "-"

    @admin.display(description="held-out figures")
    def held_out_figures(self, obj):
        mine, other = obj.validation, obj.comparison
        sources = sorted(set(mine.get("by_source", {})) | set(other.get("by_source", {})))
        rows = [(k, mine.get(k), other.get(k)) for k in FIGURES]
        rows += [
            (
                f"accuracy on {s}",
                mine.get("by_source", {}).get(s),
                other.get("by_source", {}).get(s),
            )
            for s in sources
        ]
        return _render(
            "held_out_figures",
            compared_with=other.get("model_version", "compared with: none"),
            rows=[(k, _figure(a), _figure(b)) for k, a, b in rows],
            threshold=obj.threshold,
            split=mine.get("split", "held-out photos"),
        )

    @admin.display(description="confusion matrix (held-out photos)")
    def confusion_matrix(self, obj):
        url = reverse("admin:classifier_modelversion_confusion", args=[obj.pk])
        return _render("confusion_matrix", url=url, version=obj.version)

    @admin.display(description="since it went live")
    def since_live(self, obj):
        perf = _performance(obj)
        return _render(
            "since_live",
            perf=perf,
            accuracy=_share(perf["accuracy_reviewed"]),
            flagged=_share(perf["flagged_share"]),
            answers=[(labels.display(a), n) for a, n in perf["answers"].items()],
        )

    @admin.display(description="by day")
    def chart(self, obj):
        return chart_svg(_performance(obj)["days"])

    @admin.display(description="model card")
    def card_json(self, obj):
        return _render("card", card=json.dumps(obj.card, indent=2))


def _performance(version: ModelVersion) -> dict:
    # "since it went live" and "by day" show the same figures: the queries run
    # once per page, kept on the object the change form renders.
    if not hasattr(version, "_performance"):
        version._performance = selectors.model_version_performance(version=version)
    return version._performance


def _render(name: str, **context) -> str:
    """One part of a model version's page, from templates/admin/classifier/modelversion/."""
    return render_to_string(f"admin/classifier/modelversion/{name}.html", context)


def _figure(value):
    if value is None:
        return "-"
    return str(value) if isinstance(value, int) else f"{value:.3f}"


def _share(value):
    return "-" if value is None else f"{value:.1%}"


def chart_svg(days: list[dict], width: int = 560, height: int = 160):
    """Accuracy on reviewed photos (blue) and share flagged (red) by day, as inline SVG."""
    if len(days) == 1:
        # A line needs two days; one day is said in words.
        d = days[0]
        return _render(
            "chart",
            one_day=d,
            accuracy=_share(d["accuracy"]),
            flagged=_share(d["flagged_share"]),
        )
    step = width / max(len(days) - 1, 1)

    def points(key):
        return " ".join(
            f"{i * step:.1f},{height - d[key] * height:.1f}"
            for i, d in enumerate(days)
            if d[key] is not None
        )

    def dots(key):
        # A dot on every day with a value: a day between days without reviews
        # has no line to either side, and would vanish without one.
        return [
            (f"{i * step:.1f}", f"{height - d[key] * height:.1f}")
            for i, d in enumerate(days)
            if d[key] is not None
        ]

    return _render(
        "chart",
        label=f"{days[0]['day']} to {days[-1]['day']}" if days else "",
        width=width,
        height=height,
        view_width=width + 8,
        view_height=height + 8,
        accuracy_points=points("accuracy"),
        flagged_points=points("flagged_share"),
        accuracy_dots=dots("accuracy"),
        flagged_dots=dots("flagged_share"),
    )


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Users' API keys: only names, prefixes and dates; the keys themselves are never stored."""

    list_display = ["name", "user", "prefix", "created", "last_used", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["user__username", "name", "prefix"]
    fields = list_display
    readonly_fields = list_display
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False  # keys are made by their owners, on the account page

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request, queryset):
        for token in queryset.select_related("user"):
            services.api_token_revoke(token=token, user=token.user)
        self.message_user(request, f"Revoked {len(queryset)} keys.", messages.SUCCESS)

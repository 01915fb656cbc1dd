from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from . import selectors, services
from .ml import labels
from .models import Prediction, User

admin.site.register(User, UserAdmin)


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


def _relabel_action(label):
    def action(modeladmin, request, queryset):
        for prediction in queryset:
            services.prediction_review(prediction=prediction, reviewer=request.user, label=label)
        modeladmin.message_user(
            request, f"Relabelled {len(queryset)} as {labels.display(label)}.", messages.SUCCESS
        )

    name = "not a bill" if label == labels.NOT_A_BILL else labels.display(label)
    action.__name__ = f"relabel_as_{label}"
    return admin.action(description=f"Relabel as {name}")(action)


@admin.register(Prediction)
class PredictionAdmin(admin.ModelAdmin):
    list_display = [
        "thumbnail",
        "owner",
        "answer_display",
        "confidence_display",
        "user_flag",
        "reviewed_label",
        "model_version",
        "created",
    ]
    list_display_links = ["thumbnail", "answer_display"]
    list_filter = [
        "answer",
        ConfidenceBandFilter,
        ("user_flagged", admin.BooleanFieldListFilter),
        ReviewedFilter,
        "model_version",
    ]
    search_fields = ["upload__owner__username"]
    search_help_text = "Search by username"
    list_per_page = 50
    date_hierarchy = "created"
    actions = [
        "confirm_answer",
        *(_relabel_action(c) for c in labels.CLASSES),
    ]
    fieldsets = [
        ("Photo", {"fields": ["photo", "upload_details"]}),
        (
            "What the model said",
            {
                "fields": [
                    "answer",
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
            "What the user said",
            {"fields": ["owner", "user_label", "user_flagged", "user_labelled_at"]},
        ),
        ("Review", {"fields": ["reviewed_label", "reviewed_by", "reviewed_at"]}),
    ]
    readonly_fields = [
        "photo",
        "upload_details",
        "answer",
        "label",
        "confidence_display",
        "probability_table",
        "threshold",
        "model_version",
        "inference_display",
        "created",
        "owner",
        "user_label",
        "user_flagged",
        "user_labelled_at",
        "reviewed_by",
        "reviewed_at",
    ]

    def get_queryset(self, request):
        return selectors.prediction_list_for_review()

    def get_ordering(self, request):
        # What needs review first: flagged by the user, then least sure;
        # reviewed ones last. The annotation comes from the selector.
        return ["review_priority", "confidence", "-created", "-pk"]

    def has_add_permission(self, request):
        return False  # predictions come from uploads only

    def has_delete_permission(self, request, obj=None):
        return False  # the model's record is kept; relabel instead

    def save_model(self, request, obj, form, change):
        # The only editable field is the reviewed label, and it goes through
        # the service so that who and when are recorded.
        if "reviewed_label" in form.changed_data:
            services.prediction_review(
                prediction=obj, reviewer=request.user, label=form.cleaned_data["reviewed_label"]
            )

    @admin.action(description="Confirm the model's answer")
    def confirm_answer(self, request, queryset):
        done = skipped = 0
        for prediction in queryset:
            if services.prediction_confirm(prediction=prediction, reviewer=request.user):
                done += 1
            else:
                skipped += 1
        self.message_user(request, f"Confirmed {done}.", messages.SUCCESS)
        if skipped:
            self.message_user(
                request,
                f"Skipped {skipped}: the model was unsure of a note and gave no answer to "
                "confirm. Relabel those instead.",
                messages.WARNING,
            )

    @admin.display(description="photo")
    def thumbnail(self, obj):
        return format_html(
            '<img src="{}" alt="" width="80" loading="lazy" style="max-height:80px;'
            'object-fit:contain">',
            reverse("classifier:thumbnail", args=[obj.pk]),
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
        url = reverse("classifier:photo", args=[obj.pk])
        return format_html(
            '<a href="{}"><img src="{}" alt="the uploaded photo" '
            'style="max-width:min(640px,100%);height:auto"></a>',
            url,
            url,
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
